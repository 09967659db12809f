"""`m2 chat` on a terminal: prompt_toolkit reads the prompts, rich draws the replies.

A reply is drawn as Markdown while it streams, and drawn once more, whole, when it ends. Raw
text would show `**` and fences until the end and then jump; Markdown drawn only at the end
would leave the person staring at a timer through a long answer. Redrawing works only while the
drawing fits on the screen (rows that scrolled off cannot be rubbed out, so rich would leave
copies of them in the scrollback), so while streaming only the last screenful is drawn; the
whole reply goes to the scrollback once, when it is complete.

Everything in a session goes through one rich console on standard output: the answer, the
thinking and the notes share the screen, and a live drawing stays whole only if every write
passes through it. A run with tools draws each model request live in the same way, with its
calls and results printed between them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import WordCompleter
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from rich.console import Console, ConsoleOptions, Group, NewLine, RenderableType, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment
from rich.text import Text

from .._types import AnswerDelta, Done, StreamEvent, ThinkingDelta
from ._chat_commands import NAMES, WELCOME_KEYS, handle
from ._chat_session import INTERRUPTED, typed_line
from ._output import EXIT_OK

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from prompt_toolkit.key_binding import KeyPressEvent

    from .._conversation import Turn
    from .._stream import ChatStream
    from .._types import Reply
    from ._chat_session import Session

# Redraws per second while a reply streams; each one lays out the whole reply again.
_REFRESH = 8
_PROMPT = "> "


def interact(session: Session, *, history: Path | None) -> int:
    """Read prompts until Ctrl-D or /exit; Ctrl-C stops a reply, or clears the prompt."""
    with _quiet_terminal():
        return _interact(session, history)


def _interact(session: Session, history: Path | None) -> int:
    prompt = _prompt_session(history, session)
    session.screen.note(f"{session.model} · {WELCOME_KEYS} · /help")
    session.recap()
    message = _PROMPT
    while True:
        try:
            text = prompt.prompt(message)
        except KeyboardInterrupt:
            continue  # as in a shell: the line typed so far is dropped
        except EOFError:
            return EXIT_OK

        try:
            if not handle(session, text):
                return EXIT_OK
        except KeyboardInterrupt:
            session.screen.note(INTERRUPTED)
        # A blank line between one exchange and the next prompt.
        message = f"\n{_PROMPT}"


class TerminalScreen:
    """The session drawn with rich on standard output."""

    def __init__(self) -> None:
        self.console = Console(highlight=False)

    def note(self, line: str) -> None:
        self.console.print(Text(line, style="dim"))

    def error(self, line: str) -> None:
        self.console.print(Text(line, style="red"))

    def show(self, text: str) -> None:
        self.console.print(Text(text))

    def footer(self, line: str) -> None:
        self.note(line)

    def recap(self, turn: Turn) -> None:
        self.console.print(Text(f"{_PROMPT}{turn.user}", style="dim"))
        if turn.reply is not None and turn.reply.text.strip():
            self.console.print(ChatMarkdown(turn.reply.text))

    def play(self, stream: ChatStream, *, think: bool) -> Reply:
        view = TurnView(think=think)
        with _live(view, self.console):
            try:
                for event in stream:
                    view.feed(event)
            finally:
                # Whatever happened, the last drawing shows all that arrived.
                view.end()
        assert view.reply is not None  # a stream ends with Done, or raises
        return view.reply

    def steps(self, *, think: bool) -> TerminalSteps:
        return TerminalSteps(self.console, think=think)


class TerminalSteps:
    """A run's model requests, each drawn live as a reply is; its calls and results between
    them, dim, one line each."""

    def __init__(self, console: Console, *, think: bool) -> None:
        self._console = console
        self._think = think
        self._view: TurnView | None = None
        self._live: Live | None = None

    def begin(self) -> None:
        self._view = TurnView(think=self._think)
        self._live = _live(self._view, self._console)
        self._live.start()

    def feed(self, event: StreamEvent) -> None:
        if self._view is not None:
            self._view.feed(event)

    def end(self, reply: Reply | None) -> None:
        if self._view is not None and self._live is not None:
            self._view.end()
            self._live.stop()
        self._view = self._live = None

    def line(self, text: str) -> None:
        self._console.print(Text(text, style="dim", no_wrap=True, overflow="ellipsis"))

    def ask(self, code: str, question: str) -> str | None:
        indented = "\n".join(f"    {line}" for line in code.splitlines())
        self._console.print(Text(indented))
        self._console.print(Text(question), end="")
        return typed_line()


def _live(view: TurnView, console: Console) -> Live:
    return Live(
        view,
        console=console,
        refresh_per_second=_REFRESH,
        vertical_overflow="visible",  # TurnView keeps itself to the screen's height
    )


class ChatMarkdown(Markdown):
    """Markdown that keeps the answer's line breaks.

    CommonMark joins the lines of a paragraph, which runs a poem, an address or a list written
    without markers into one line; models mean their line breaks, as chat interfaces show them.
    """

    def __init__(self, markup: str) -> None:
        super().__init__(markup)
        for token in self.parsed:
            for child in token.children or ():
                if child.type == "softbreak":
                    child.type = "hardbreak"


class TurnView:
    """One turn as rich draws it: the thinking (dim, or folded behind a timer), then the answer.

    While streaming it draws only its last lines, one fewer than the screen has; after `end()`
    it draws everything.
    """

    def __init__(self, *, think: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self._think = think
        self._clock = clock
        self._started = clock()
        self._thinking: list[str] = []
        self._answer: list[str] = []
        self._thought: float | None = None  # seconds until the answer began
        self._ended = False
        self.reply: Reply | None = None

    def feed(self, event: StreamEvent) -> None:
        if isinstance(event, ThinkingDelta):
            self._thinking.append(event.text)
        elif isinstance(event, AnswerDelta):
            if self._thought is None:
                self._thought = self._clock() - self._started
            self._answer.append(event.text)
        elif isinstance(event, Done):
            self.reply = event.reply

    def end(self) -> None:
        if self._thought is None:
            self._thought = self._clock() - self._started
        self._ended = True

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        parts = self._parts()
        if self._ended:
            yield Group(*parts)
            return

        lines = [line for part in parts for line in console.render_lines(part, options, pad=False)]
        room = max(1, options.size.height - 1)
        for line in lines[-room:]:
            yield from line
            yield Segment.line()

    def _parts(self) -> list[RenderableType]:
        parts: list[RenderableType] = []
        thinking = "".join(self._thinking).strip()
        if self._think and thinking:
            parts.append(Text(thinking, style="dim"))
        elif label := self._label(thinking):
            parts.append(Text(label, style="dim"))

        answer = "".join(self._answer)
        if answer.strip():
            if parts and self._think and thinking:
                parts.append(NewLine())
            parts.append(ChatMarkdown(answer))
        return parts

    def _label(self, thinking: str) -> str | None:
        """The timer that stands in for what the model is doing, or what it did."""
        if self._thought is not None:
            return f"thought for {_seconds(self._thought)}" if thinking else None
        elapsed = self._clock() - self._started
        doing = "thinking…" if thinking else "waiting for the model…"
        return f"{doing} {elapsed:.0f}s"


@contextlib.contextmanager
def _quiet_terminal() -> Iterator[None]:
    """While the session runs, the terminal neither echoes keys nor drops output at Ctrl-C.

    Outside prompt_toolkit's prompt, the terminal itself echoes what is typed (`^C` included)
    into the reply being drawn, and by default throws away output not yet shown when Ctrl-C
    strikes. Either puts the screen a line off from where rich believes its drawing is, and the
    reply is then drawn twice. Keys typed during a reply still reach the next prompt, which
    shows them.
    """
    try:
        import termios
    except ImportError:  # Windows: no such flag, and no such flush
        yield
        return

    fd = sys.stdin.fileno()
    saved: list[Any] | None = None
    try:
        saved = termios.tcgetattr(fd)
        changed = list(saved)
        changed[3] = (changed[3] | termios.NOFLSH) & ~termios.ECHO  # the local modes
        termios.tcsetattr(fd, termios.TCSANOW, changed)
    except termios.error:
        saved = None
    try:
        yield
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSANOW, saved)


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"


def _prompt_session(history: Path | None, session: Session) -> PromptSession[str]:
    bindings = KeyBindings()

    # Reversed from prompt_toolkit's multi-line default: a chat sends far more than it wraps.
    @bindings.add("enter")
    def _send(event: KeyPressEvent) -> None:
        event.current_buffer.validate_and_handle()

    @bindings.add("escape", "enter")
    def _new_line(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    return PromptSession(
        history=_history(history, session),
        multiline=True,
        key_bindings=bindings,
        prompt_continuation=lambda width, line, wrap: " " * width,
        completer=WordCompleter(list(NAMES), sentence=True),
        complete_while_typing=False,
    )


def _history(path: Path | None, session: Session) -> History:
    if path is None:
        return InMemoryHistory()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Past prompts are private: the file is the user's alone, as the store is.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600))
    except OSError as exc:
        session.screen.note(f"m2: prompts are not kept across sessions: {path}: {exc.strerror}")
        return InMemoryHistory()
    return FileHistory(path)
