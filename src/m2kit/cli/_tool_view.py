"""How a run with tools is shown, in `m2 ask` and in `m2 chat` alike: each model request as a
reply is shown, and between them a dim line per call, `→ name(arguments)`, and per result,
`← summary`. Who decides whether run_python runs is here too.

A screen supplies the `Steps`; `RunView` drives them from the run's events and hooks. Imported
only when tools are on.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from typing import TYPE_CHECKING, Any, Protocol

from .._tool_runs import ToolResult
from .._types import AnswerDelta, Done, ThinkingDelta
from ._output import say
from ._render import StreamRenderer

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from .._agent import RunEvent
    from .._types import Reply, StreamEvent, ToolCall

ASK_RUN = "run this Python? [y/N] "
_CUT = "…"
# What run_python returns (see _builtin_tools.run_code).
_RUN = re.compile(r"exit code: (-?\d+)\nstdout:\n(.*?)\nstderr:\n(.*)", re.DOTALL)


class Steps(Protocol):
    """A screen's side of `RunView`: one model request at a time, and lines between them."""

    def begin(self) -> None:
        """Start showing a request (a timer, until its first delta)."""

    def feed(self, event: StreamEvent) -> None:
        """Show one event of the request's stream."""

    def end(self, reply: Reply | None) -> None:
        """Stop showing the request; `reply` is what it gave, None when it was cut short."""

    def line(self, text: str) -> None:
        """A dim line between requests: a call, a result."""

    def ask(self, code: str, question: str) -> str | None:
        """Show `code`, ask `question` and return the line typed; None with no one to ask."""


class RunView:
    """A run with tools as the person sees it, and who decides whether a call runs.

    The next request is shown from the moment the last result is in, so that its timer runs
    while the model is asked again. `ask_first`: the tools to ask about before each call.
    """

    def __init__(self, steps: Steps, ask_first: Collection[str]) -> None:
        self._steps = steps
        self._ask_first = ask_first
        self._showing = False
        self._waiting = 0
        self._denied: set[str] = set()

    def open(self) -> None:
        """Start showing a model request, unless one is shown."""
        if not self._showing:
            self._showing = True
            self._steps.begin()

    def close(self, reply: Reply | None = None) -> None:
        """Stop showing the current model request, if any."""
        if self._showing:
            self._showing = False
            self._steps.end(reply)

    def on_event(self, event: RunEvent) -> None:
        """The run's `on_event`: a request's events, then each tool's result."""
        if isinstance(event, ToolResult):
            self._finished(event)
            return
        self.open()
        self._steps.feed(event)
        if isinstance(event, Done):
            self.close(event.reply)
            self._waiting = len(event.reply.tool_calls)

    def before_tool(self, call: ToolCall) -> bool:
        """The run's `before_tool`: show the call; ask first when it is one to ask about.
        False when it is refused."""
        self._steps.line(f"→ {call.name}({arguments_line(call.arguments)})")
        if call.name not in self._ask_first:
            return True

        answer = self._steps.ask(code_of(call), ASK_RUN)
        if answer is not None and answer.strip().lower() in ("y", "yes"):
            return True
        why = ": no terminal to ask on (--yes lets run_python run)" if answer is None else " by you"
        self._steps.line(f"← denied{why}")
        self._denied.add(call.id)
        self._one_less()
        return False

    def _finished(self, result: ToolResult) -> None:
        # A refused call has said so already; its result only tells the model.
        if result.call.id in self._denied:
            self._denied.discard(result.call.id)
            return
        self._steps.line(f"← {result_line(result)}")
        self._one_less()

    def _one_less(self) -> None:
        """Count a call as done; after the step's last, the next request is on its way."""
        self._waiting -= 1
        if self._waiting == 0:
            self.open()


class RendererHolder(Protocol):
    """Where the renderer of the request being shown is kept, for notices to draw around."""

    renderer: StreamRenderer | None


class StandardSteps:
    """A run's model requests on the standard streams, as `m2 ask -T` shows them.

    The thinking (with --think or /think) and the indicator show as the request streams; its
    answer goes to stdout when the request ends, since until then it cannot be told from what
    the model says before calling tools, which goes to stderr. `quiet`: no indicator (--json,
    --raw). `ask`: how a question before run_python is put.
    """

    def __init__(
        self,
        holder: RendererHolder,
        *,
        think: bool,
        ask: Callable[[str, str], str | None],
        quiet: bool = False,
    ) -> None:
        self._holder = holder
        self._think = think
        self._ask = ask
        self._quiet = quiet

    def begin(self) -> None:
        self._holder.renderer = StreamRenderer(think=self._think, quiet=self._quiet)

    def feed(self, event: StreamEvent) -> None:
        if self._holder.renderer is not None and isinstance(event, ThinkingDelta):
            self._holder.renderer.feed(event)

    def end(self, reply: Reply | None) -> None:
        renderer, self._holder.renderer = self._holder.renderer, None
        if renderer is None:
            return
        if reply is not None and not reply.tool_calls and reply.text:
            renderer.feed(AnswerDelta(reply.text))
        renderer.end()
        if reply is not None and reply.tool_calls and reply.text.strip():
            say(reply.text.strip(), dim=True)

    def line(self, text: str) -> None:
        say(cut(text), dim=True)

    def ask(self, code: str, question: str) -> str | None:
        return self._ask(code, question)


def put_question(code: str, question: str, source: Callable[[], str | None]) -> str | None:
    """Show `code` indented and `question` on stderr, and return what `source` reads."""
    indented = "".join(f"    {line}\n" for line in code.splitlines())
    sys.stderr.write(f"{indented}{question}")
    sys.stderr.flush()
    return source()


def arguments_line(text: str) -> str:
    """A call's arguments as `name=value, …`, or as sent when they are not a JSON object."""
    values = _object(text)
    if values is None:
        return " ".join(text.split())
    shown = (f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in values.items())
    return ", ".join(shown)


def result_line(result: ToolResult) -> str:
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


def code_of(call: ToolCall) -> str:
    """The code a run_python call would run, or its arguments as sent."""
    code = (_object(call.arguments) or {}).get("code")
    return code if isinstance(code, str) else call.arguments


def cut(line: str) -> str:
    """`line`, cut to fit the terminal's width."""
    width = shutil.get_terminal_size().columns
    return line if len(line) < width else line[: max(width - 2, 1)] + _CUT


def _object(text: str) -> dict[str, Any] | None:
    """A call's arguments as the object they spell ({} when blank), or None when they are not
    one; as the tool itself will read them."""
    from .._accumulate import decoded_arguments

    return decoded_arguments(text)


def _first_line(text: str) -> str:
    """The first line that is not blank, its spaces squeezed."""
    return next((" ".join(line.split()) for line in text.splitlines() if line.strip()), "")
