"""The state of one `m2 chat` and what a turn does, whichever screen shows it.

With tools (-T, --functions) each message is a `Conversation.run`: `RunView` shows its model
requests through the screen's `Steps`, and the calls and results between them.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import M2Error, StreamError, StreamErrorEvent
from .._types import Reply
from ._output import error_line, is_terminal
from ._render import footer

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .._agent import RunResult, ToolStep
    from .._client import Client
    from .._conversation import Conversation, Turn
    from .._store import Store
    from .._stream import ChatStream
    from .._tools import Tool
    from ._tool_view import Steps

# A self-hosted server answers GET /models at once, or not at all.
_MODELS_TIMEOUT = 5.0
INTERRUPTED = "m2: stopped; that reply stays out of the history (/retry asks again)"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


class Screen(Protocol):
    """Where a session shows itself: a terminal drawn by rich, or plain standard streams."""

    def note(self, line: str) -> None:
        """A line about the session (a wait, a setting changed), dim where it can be."""

    def error(self, line: str) -> None:
        """A line about something that went wrong, red where it can be."""

    def show(self, text: str) -> None:
        """Text the person asked for (/help, /usage)."""

    def footer(self, line: str) -> None:
        """Who answered and what it cost, after a reply; a terminal-only courtesy."""

    def recap(self, turn: Turn) -> None:
        """Show the last turn of a conversation taken up again."""

    def play(self, stream: ChatStream, *, think: bool) -> Reply:
        """Show a reply as it streams; return it once `Done` arrives. Errors pass through."""

    def steps(self, *, think: bool) -> Steps:
        """How the model requests of a run with tools are shown."""


@dataclass(frozen=True)
class Toolbox:
    """The tools a session offers, the most model requests a message may take, and which tools
    are asked about before each call (run_python, unless --yes)."""

    tools: tuple[Tool[..., Any], ...]
    max_steps: int
    ask_first: frozenset[str]

    def describe(self) -> str:
        """One line a tool: its name and the first sentence of its description."""
        width = max(len(found.name) for found in self.tools)
        return "\n".join(
            f"{found.name:<{width}}  {_first_sentence(found.description)}" for found in self.tools
        )


def typed_line() -> str | None:
    """A line typed on the terminal (standard input), or None when it is not one.

    The session keeps the terminal's echo off between prompts (see `_chat_terminal`): it is on
    while the person answers. Keys typed ahead during the reply are dropped first, so that a "y"
    typed before the question was shown cannot answer it.
    """
    if not is_terminal(sys.stdin):
        return None
    try:
        import termios
    except ImportError:  # Windows: the console echoes by itself
        return sys.stdin.readline()

    fd = sys.stdin.fileno()
    try:
        saved = termios.tcgetattr(fd)
        echoing = list(saved)
        echoing[3] |= termios.ECHO | termios.ICANON  # the local modes
        termios.tcflush(fd, termios.TCIFLUSH)
        termios.tcsetattr(fd, termios.TCSANOW, echoing)
    except termios.error:
        return sys.stdin.readline()
    try:
        return sys.stdin.readline()
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


@dataclass
class Tally:
    """This session's calls and tokens, for /usage."""

    calls: int = 0
    unfinished: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    counted: int = 0

    def add(self, turn: Turn) -> None:
        """Count a turn: each model request of a run with tools is a call of its own."""
        self.calls += 1 + len(turn.steps)
        self.unfinished += turn.status != "complete"
        replies = [step.reply for step in turn.steps]
        if turn.reply is not None:
            replies.append(turn.reply)
        for reply in replies:
            usage = reply.usage
            if usage is None:
                continue
            self.counted += 1
            self.prompt_tokens += usage.prompt_tokens or 0
            self.completion_tokens += usage.completion_tokens or 0
            self.reasoning_tokens += usage.reasoning_tokens or 0

    def describe(self) -> str:
        calls = f"{self.calls} call{'' if self.calls == 1 else 's'}"
        if self.unfinished:
            calls += f" ({self.unfinished} not complete)"
        if not self.counted:
            return f"this session: {calls}, no token counts reported"

        total = self.prompt_tokens + self.completion_tokens
        line = (
            f"this session: {calls}, {total:,} tokens:"
            f" {self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion"
        )
        if self.reasoning_tokens:
            line += f" ({self.reasoning_tokens:,} of them thinking)"
        if self.counted < self.calls:
            line += f", as reported for {self.counted} of the calls"
        return line


class Session:
    """One `m2 chat`: the client, the conversation in progress, and what the commands change."""

    def __init__(
        self,
        client: Client,
        conversation: Conversation,
        screen: Screen,
        store: Store | None,
        *,
        api_key: str | None = None,
        tools: Toolbox | None = None,
    ) -> None:
        self.client = client
        self.api_key = api_key  # as given: a self-hosted server's model list may need it
        self.tools = tools
        self.conversation = conversation
        self.screen = screen
        self.store = store
        self.think = False
        self.tally = Tally()
        self.had_error = False

    @property
    def model(self) -> str:
        return self.conversation.params.get("model") or self.client.model

    def send(self, text: str) -> None:
        """Send one message and show the reply (with tools, the run); errors become one line
        and the session goes on."""
        self._turn(lambda: self._answer(text))

    def retry(self) -> None:
        """Send the last message again, in place of its reply (whatever became of it)."""
        if self.conversation.turns:
            self.screen.note(f"m2: again: {_first_line(self.conversation.turns[-1].user)}")
        self._turn(self._again)

    def new(self) -> None:
        """A new conversation with the same model, settings and system prompt."""
        from .._conversation import Conversation

        old = self.conversation
        self.conversation = Conversation(
            self.client,
            old.system,
            recorder=old.recorder,
            trim_thinking=old.trim_thinking,
            include_interrupted=old.include_interrupted,
            **old.params,
        )

    def set_model(self, name: str) -> None:
        """Use `name` from the next turn on. ConfigError for a model id the router would refuse,
        or one a self-hosted server does not list (when it lists its models at all)."""
        if self.client.is_router:
            from .._routing import parse_model

            parse_model(name)
        else:
            self._check_served(name)
        self.conversation.params["model"] = name

    def _check_served(self, name: str) -> None:
        from .._auth import resolve_token
        from .._catalog import fetch_catalog
        from .._errors import ConfigError

        base_url = self.client.base_url
        try:
            served = [
                model.id
                for model in fetch_catalog(
                    base_url, resolve_token(base_url, self.api_key), timeout=_MODELS_TIMEOUT
                )
            ]
        except M2Error as error:
            self.screen.note(f"m2: could not check the name with the server ({error}); using it")
            return
        if served and name not in served:
            raise ConfigError(
                f"the server at {base_url} does not serve {name!r}",
                hint="It serves: " + ", ".join(served[:10]) + ("…" if len(served) > 10 else ""),
            )

    def recap(self) -> None:
        """Say which conversation goes on, when it is one taken up again."""
        turns = len(self.conversation.turns)
        if turns:
            title = self.conversation.title or self.conversation.id
            plural = "" if turns == 1 else "s"
            self.screen.note(f"m2: continuing “{title}”, {turns} turn{plural} so far")
            self.screen.recap(self.conversation.turns[-1])

    def error(self, line: str) -> None:
        self.had_error = True
        self.screen.error(line)

    def close(self) -> None:
        self.client.close()
        if self.store is not None:
            self.store.close()

    def _answer(self, text: str) -> Reply | RunResult:
        if self.tools is not None:
            return self._run(text)
        with self.conversation.stream(text) as stream:
            return self.screen.play(stream, think=self.think)

    def _again(self) -> Reply | RunResult:
        if self.tools is not None:
            return self._run(self.conversation.drop_last())
        with self.conversation.retry_stream() as stream:
            return self.screen.play(stream, think=self.think)

    def _run(self, text: str) -> RunResult:
        assert self.tools is not None
        from ._tool_view import RunView

        view = RunView(self.screen.steps(think=self.think), self.tools.ask_first)
        view.open()
        try:
            return self.conversation.run(
                text,
                tools=list(self.tools.tools),
                max_steps=self.tools.max_steps,
                before_tool=view.before_tool,
                on_event=view.on_event,
            )
        except KeyboardInterrupt:
            from ._builtin_tools import stop_running

            stop_running()  # the session goes on, and code left running would outlive the turn
            raise
        finally:
            view.close()

    def _turn(self, answer: Callable[[], Reply | RunResult]) -> None:
        started = time.monotonic()
        turns = self.conversation.turns
        before, last = len(turns), turns[-1] if turns else None
        try:
            outcome = answer()
            if isinstance(outcome, Reply):
                self._report(outcome, time.monotonic() - started)
            elif outcome.stopped == "max_steps":
                # Each step is a request to the model; the last one's calls never ran.
                steps = len(outcome.steps) + 1
                self.error(f"m2: stopped after {steps} steps without an answer (raise --max-steps)")
            else:
                self._report(outcome.reply, time.monotonic() - started, outcome.steps)
        except StreamError as error:
            self.error(error_line(_with_retry_hint(error)))
        except M2Error as error:
            self.error(error_line(_in_session(error, router=self.client.is_router)))
        finally:
            # A retry drops the turn it replaces first: a new last turn is this one.
            turns = self.conversation.turns
            if turns and len(turns) >= before and turns[-1] is not last:
                self.tally.add(turns[-1])

    def _report(self, reply: Reply, seconds: float, steps: Sequence[ToolStep] = ()) -> None:
        if reply.cut_while_thinking:
            self.error(
                "m2: the reply hit its token limit while the model was still thinking, so there"
                " is no answer: start m2 chat with a higher --max-tokens."
            )
            return
        if not reply.text and not reply.tool_calls:
            hidden = " (/think shows the thinking)" if reply.thinking and not self.think else ""
            self.error(f"m2: the model gave no answer{hidden}.")
            return
        if reply.finish_reason == "length":
            self.screen.note("m2: the answer was cut short at its token limit (--max-tokens).")
        self.screen.footer(footer(reply, seconds, steps))


def _in_session(error: M2Error, *, router: bool) -> M2Error:
    """The error with a hint that names what to type here, where flags are out of reach."""
    from .._errors import ModelNotFoundError

    if isinstance(error, ModelNotFoundError):
        error.hint = (
            "Switch with /model NAME; `:provider` suffixes must name a provider serving it"
            " (`m2 models NAME` lists them)."
            if router
            else "Switch with /model NAME to one the server serves (GET /v1/models lists them)."
        )
    return error


def _with_retry_hint(error: StreamError) -> StreamError:
    again = "/retry asks again."
    hint = f"{error.hint} {again}" if isinstance(error, StreamErrorEvent) else again
    if error.partial is not None and error.partial.text:
        hint = f"The answer above is incomplete. {hint}"
    error.hint = hint
    return error


def _first_sentence(text: str) -> str:
    paragraph = " ".join(text.strip().split("\n\n")[0].split())
    return _SENTENCE_END.split(paragraph, maxsplit=1)[0]


def _first_line(text: str, width: int = 60) -> str:
    lines = text.strip().splitlines() or [""]
    if len(lines) > 1 or len(lines[0]) > width:
        return lines[0][: width - 1] + "…"
    return lines[0]
