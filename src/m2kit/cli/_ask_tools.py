"""`m2 ask` with tools: loading them (-T, --functions), asking before run_python, showing each
call on standard error, and the run itself.

Imported only when tools are asked for, since making a tool imports pydantic.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import inspect
import json
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from .._tool_runs import ToolResult
from .._tools import Tool
from .._types import AnswerDelta, Done, ThinkingDelta, ToolCall
from ._output import EXIT_FAILURE, is_terminal, say
from ._render import StreamRenderer

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import TextIO

    from .._agent import RunResult
    from .._conversation import Conversation
    from .._types import Reply, StreamEvent
    from ._ask import AskOptions, Notices

_CUT = "…"
# What run_python returns (see _builtin_tools.run_code).
_RUN = re.compile(r"exit code: (-?\d+)\nstdout:\n(.*?)\nstderr:\n(.*)", re.DOTALL)


def load_tools(names: Sequence[str], functions: str | None) -> list[Tool[..., Any]]:
    """The built-in tools named (each NAME may list several, comma-separated; "all" is every
    one), then those of the functions file. ConfigError for an unknown name or a clash."""
    chosen: list[Tool[..., Any]] = []
    wanted = [name.strip() for given in names for name in given.split(",") if name.strip()]
    if wanted:
        from ._builtin_tools import BUILTINS

        for name in wanted:
            if name == "all":
                chosen.extend(BUILTINS.values())
            elif name in BUILTINS:
                chosen.append(BUILTINS[name])
            else:
                raise ConfigError(
                    f"there is no built-in tool {name!r}",
                    hint=f"Choose from {', '.join(BUILTINS)} or all; for your own tools, use"
                    " --functions FILE.py.",
                )
    if functions is not None:
        chosen.extend(load_functions(functions))

    by_name: dict[str, Tool[..., Any]] = {}
    for found in chosen:
        if by_name.setdefault(found.name, found) is not found:
            raise ConfigError(f"two tools are named {found.name}: rename one (@tool(name=...))")
    return list(by_name.values())


def load_functions(path: str) -> list[Tool[..., Any]]:
    """The tools of a Python file: its top-level `Tool` objects, or, when it has none, every
    public function defined in it. ConfigError (one line) when the file does not load."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--functions: there is no file {path}")
    if file.suffix != ".py":
        # Run as Python, a JSON or text file would fail in a way that says nothing useful.
        raise ConfigError(f"--functions takes a Python file (FILE.py), not {path}")

    module = _imported(file)
    tools = {id(value): value for value in vars(module).values() if isinstance(value, Tool)}
    if tools:
        return list(tools.values())

    functions = [
        value
        for name, value in vars(module).items()
        if not name.startswith("_")
        and inspect.isfunction(value)
        and value.__module__ == module.__name__
    ]
    if not functions:
        raise ConfigError(
            f"--functions: {path} defines no tools",
            hint="Define functions with a type hint on every parameter, or mark them with @tool.",
        )
    try:
        return [Tool.from_function(function) for function in functions]
    except (TypeError, ValueError) as error:
        raise ConfigError(f"--functions: {path}: {error}") from None


def _imported(file: Path) -> Any:
    """The functions file, run as a module; ConfigError when it raises."""
    name = "m2_functions_" + re.sub(r"\W", "_", file.stem)
    loader = importlib.machinery.SourceFileLoader(name, str(file))
    spec = importlib.util.spec_from_file_location(name, file, loader=loader)
    assert spec is not None  # a loader was given
    module = importlib.util.module_from_spec(spec)
    # Its module is findable by name (dataclasses and pydantic resolve annotations through it),
    # and its own folder importable; last on the path, so that no file there shadows a library.
    sys.modules[name] = module
    sys.path.append(str(file.resolve().parent))
    try:
        loader.exec_module(module)
    except (Exception, SystemExit) as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise ConfigError(
            f"--functions: {file} does not load: {reason}",
            hint=f"Run python {file} to see the whole traceback.",
        ) from None
    return module


class ToolScreen:
    """What the person sees of a run with tools, and who decides whether run_python runs.

    Each model request gets a `StreamRenderer` of its own, which shows the thinking (with
    --think) or an indicator. An answer that comes with tool calls is commentary and goes to
    stderr; the final answer goes to stdout when its request ends (it cannot be told apart from
    commentary before that). Each call is shown as `→ name(arguments)`, its result as `← …`.
    """

    def __init__(
        self, tools: Sequence[Tool[..., Any]], options: AskOptions, notices: Notices
    ) -> None:
        from ._builtin_tools import run_python

        self._ask_first = {found.name for found in tools if found is run_python and not options.yes}
        self._think = options.think
        self._quiet = options.raw or options.json_output
        self._notices = notices
        self._renderer: StreamRenderer | None = None
        self._waiting = 0
        self._denied: set[str] = set()

    def open(self) -> None:
        """Start showing a model request."""
        if self._renderer is None:
            self._renderer = StreamRenderer(think=self._think, quiet=self._quiet)
            self._notices.renderer = self._renderer

    def close(self) -> None:
        """Stop showing the current model request."""
        if self._renderer is not None:
            self._renderer.end()
            self._renderer = None
            self._notices.renderer = None

    def on_event(self, event: StreamEvent | ToolResult) -> None:
        """Show one event of the run: thinking as it comes, a step's end, or a tool's result."""
        if isinstance(event, ToolResult):
            self._finished(event)
            return
        self.open()
        assert self._renderer is not None
        if isinstance(event, ThinkingDelta):
            self._renderer.feed(event)
        elif isinstance(event, Done):
            self._step_done(event.reply)

    def _step_done(self, reply: Reply) -> None:
        """Show a request's reply: the answer on stdout, or commentary before tool calls."""
        assert self._renderer is not None
        if not reply.tool_calls:
            if reply.text:
                self._renderer.feed(AnswerDelta(reply.text))
            self.close()
            return

        self.close()
        if reply.text.strip():
            say(reply.text.strip(), dim=True)
        self._waiting = len(reply.tool_calls)

    def before_tool(self, call: ToolCall) -> bool:
        """Show the call; for run_python, ask first (unless --yes). False when refused."""
        say(_cut(f"→ {call.name}({_arguments(call.arguments)})"), dim=True)
        if call.name not in self._ask_first:
            return True

        answer = _ask_on_terminal(_code(call), "run this Python? [y/N] ")
        if answer is not None and answer.strip().lower() in ("y", "yes"):
            return True
        why = ": no terminal to ask on (--yes lets run_python run)" if answer is None else " by you"
        say(f"← denied{why}", dim=True)
        self._denied.add(call.id)
        self._one_less()
        return False

    def _finished(self, result: ToolResult) -> None:
        """Show a call's result, unless it was refused and already said so."""
        if result.call.id in self._denied:
            self._denied.discard(result.call.id)
            return
        say(_cut(f"← {_summary(result)}"), dim=True)
        self._one_less()

    def _one_less(self) -> None:
        """Count a call as done; after the step's last, the next request is on its way."""
        self._waiting -= 1
        if self._waiting == 0:
            self.open()


def run_with_tools(
    conversation: Conversation,
    prompt: str,
    tools: Sequence[Tool[..., Any]],
    options: AskOptions,
    notices: Notices,
) -> RunResult | int:
    """Run the tool loop; how it ended, or EXIT_FAILURE when the steps ran out."""
    screen = ToolScreen(tools, options, notices)
    screen.open()
    try:
        result = conversation.run(
            prompt,
            tools=list(tools),
            max_steps=options.max_steps,
            before_tool=screen.before_tool,
            on_event=screen.on_event,
        )
    finally:
        screen.close()

    if result.stopped == "max_steps":
        steps = options.max_steps  # each a request to the model; the last one's calls never ran
        say(f"m2: stopped after {steps} steps without an answer (raise --max-steps)")
        return EXIT_FAILURE
    return result


def _arguments(text: str) -> str:
    """A call's arguments as `name=value, …`, or as sent when they are not a JSON object."""
    values = _object(text)
    if values is None:
        return " ".join(text.split())
    shown = (f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in values.items())
    return ", ".join(shown)


def _object(text: str) -> dict[str, Any] | None:
    """A call's arguments as a JSON object (none when blank), or None when they are not one."""
    try:
        values = json.loads(text) if text.strip() else {}
    except ValueError:
        return None
    return values if isinstance(values, dict) else None


def _summary(result: ToolResult) -> str:
    """A result in one line: its first line and how many more, or the error; for run_python,
    the first line the code printed, and its exit code when not 0."""
    text = result.content.strip()
    if result.error:
        return "error: " + _first_line(text.removeprefix("Error:").strip())
    ran = _RUN.match(text) if result.call.name == "run_python" else None
    if ran is not None:
        code, printed, errors = ran.groups()
        shown = printed if printed != "(nothing)" else errors
        lines = shown.strip().count("\n") + 1
        first = _first_line(shown) or "(nothing)"
        more = f" (+{lines - 1} lines)" if lines > 1 else ""
        return (f"exit code {code}: " if code != "0" else "") + first + more
    lines = text.count("\n") + 1
    first = _first_line(text) or "(nothing)"
    return f"{first} (+{lines - 1} lines)" if lines > 1 else first


def _first_line(text: str) -> str:
    """The first line that is not blank, its spaces squeezed."""
    return next((" ".join(line.split()) for line in text.splitlines() if line.strip()), "")


def _cut(line: str) -> str:
    """`line`, cut to fit the terminal's width."""
    width = shutil.get_terminal_size().columns
    return line if len(line) < width else line[: max(width - 2, 1)] + _CUT


def _code(call: ToolCall) -> str:
    """The code a run_python call would run, or its arguments as sent."""
    code = (_object(call.arguments) or {}).get("code")
    return code if isinstance(code, str) else call.arguments


def _ask_on_terminal(shown: str, question: str) -> str | None:
    """Show `shown`, ask `question` on stderr and return the line typed; None without a terminal."""
    if not is_terminal(sys.stderr):
        return None
    with _terminal_input() as source:
        if source is None:
            return None
        indented = "".join(f"    {line}\n" for line in shown.splitlines())
        sys.stderr.write(f"{indented}{question}")
        sys.stderr.flush()
        return source.readline()


@contextlib.contextmanager
def _terminal_input() -> Iterator[TextIO | None]:
    # Standard input may be the piped prompt: then the terminal itself is asked.
    if sys.stdin is not None and is_terminal(sys.stdin):
        yield sys.stdin
        return
    try:
        tty = open("/dev/tty", encoding="utf-8", errors="replace")  # noqa: SIM115  # closed below
    except OSError:
        yield None
        return
    with tty:
        yield tty
