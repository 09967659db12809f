"""`m2 ask` with tools: loading them (-T, --functions), asking before run_python, showing each
call on standard error, and the run itself.

Imported only when tools are asked for, since making a tool imports pydantic.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.machinery
import importlib.util
import inspect
import re
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from .._tools import Tool
from ._output import EXIT_FAILURE, is_terminal, say

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import TextIO

    from .._agent import RunResult
    from .._conversation import Conversation
    from ._ask import AskOptions, Notices


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
        # The built-in tools print nothing; the user's may.
        chosen.extend(_printing_to_stderr(found) for found in load_functions(functions))

    by_name: dict[str, Tool[..., Any]] = {}
    for found in chosen:
        if by_name.setdefault(found.name, found) is not found:
            raise ConfigError(f"two tools are named {found.name}: rename one (@tool(name=...))")
    return list(by_name.values())


def _printing_to_stderr(found: Tool[..., Any]) -> Tool[..., Any]:
    """The tool, with what it prints sent to stderr: standard output is the answer's (a tool
    that prints must not break `--json` or a pipe). Tools run while m2 itself writes nothing."""
    function = found.function
    if inspect.iscoroutinefunction(function):

        async def run_async(**kwargs: Any) -> Any:
            with _stdout_to_stderr():
                return await function(**kwargs)

        return dataclasses.replace(found, function=run_async)

    def run(**kwargs: Any) -> Any:
        with _stdout_to_stderr():
            return function(**kwargs)

    return dataclasses.replace(found, function=run)


_redirects = 0
_redirects_lock = threading.Lock()
_stdout: TextIO | None = None


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """sys.stdout is stderr while any tool runs. Counted, not nested: tools of one step run at
    once on threads, and each restoring what it found would leave stderr in place for good."""
    global _redirects, _stdout
    with _redirects_lock:
        if _redirects == 0:
            _stdout, sys.stdout = sys.stdout, sys.stderr
        _redirects += 1
    try:
        yield
    finally:
        with _redirects_lock:
            _redirects -= 1
            if _redirects == 0 and _stdout is not None:
                sys.stdout, _stdout = _stdout, None


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


def run_with_tools(
    conversation: Conversation,
    prompt: str,
    tools: Sequence[Tool[..., Any]],
    options: AskOptions,
    notices: Notices,
) -> RunResult | int:
    """Run the tool loop; how it ended, or EXIT_FAILURE when the steps ran out."""
    from ._builtin_tools import run_python
    from ._tool_view import RunView, StandardSteps

    quiet = options.raw or options.json_output
    steps = StandardSteps(notices, think=options.think, ask=_ask_on_terminal, quiet=quiet)
    ask_first = {found.name for found in tools if found is run_python and not options.yes}
    view = RunView(steps, ask_first)
    view.open()
    try:
        result = conversation.run(
            prompt,
            tools=list(tools),
            max_steps=options.max_steps,
            before_tool=view.before_tool,
            on_event=view.on_event,
        )
    finally:
        view.close()

    if result.stopped == "max_steps":
        # Each step is a request to the model; the last one's calls never ran.
        say(f"m2: stopped after {options.max_steps} steps without an answer (raise --max-steps)")
        return EXIT_FAILURE
    return result


def _ask_on_terminal(shown: str, question: str) -> str | None:
    """Show `shown`, ask `question` on stderr and return the line typed; None without a terminal."""
    if not is_terminal(sys.stderr):
        return None
    from ._tool_view import put_question

    with _terminal_input() as source:
        if source is None:
            return None
        return put_question(shown, question, source.readline)


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
