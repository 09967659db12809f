"""`m2 chat`: a conversation held in the terminal, every turn recorded in the store.

One `Session` (the client, the conversation, this session's usage) is shown through one of two
screens. On a terminal, prompt_toolkit reads and rich draws (`_chat_terminal`). Otherwise each
line of standard input is one turn and the answers are printed plain, the way `m2 ask` prints
them, for scripts. Slash commands live in `_chat_commands`.

Tools (-T, --functions) load before the session starts, and only when asked for: making a tool
imports pydantic.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, cast

from .._errors import ConfigError, M2Error
from .._types import ParameterDropped
from ._chat_commands import handle
from ._chat_session import Screen, Session, Toolbox, typed_line
from ._common import logging_enabled, open_store, settings, to_continue
from ._output import EXIT_FAILURE, EXIT_OK, broken_pipe, failed, interrupted, is_terminal, say
from ._render import StreamRenderer, describe_notice

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from .._client import Client
    from .._conversation import Conversation, Turn
    from .._request import ChatParams
    from .._store import Store
    from .._stream import ChatStream
    from .._types import Notice, Reply
    from ._common import Settings
    from ._tool_view import Steps

_HISTORY_NAME = "chat_history"


@dataclass(frozen=True)
class ChatOptions:
    """What `m2 chat` was given; None means "not given" (settings fill it in)."""

    model: str | None
    base_url: str | None
    api_key: str | None
    system: str | None
    profile: str | None
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    top_k: int | None
    retry_budget: float | None
    timeout: float | None
    db: str | None
    no_log: bool
    cid: str | None
    resume: bool
    include_interrupted: bool
    tools: tuple[str, ...]
    functions: str | None
    max_steps: int
    yes: bool


class PlainScreen:
    """Standard streams, as `m2 ask` uses them: answers on stdout, everything else on stderr."""

    def __init__(self) -> None:
        self.renderer: StreamRenderer | None = None

    def note(self, line: str) -> None:
        if self.renderer is not None:
            self.renderer.notice(line)
        else:
            say(line, dim=True)

    def error(self, line: str) -> None:
        say(line)

    def show(self, text: str) -> None:
        say(text)

    def footer(self, line: str) -> None:
        if is_terminal(sys.stderr):
            say(line, dim=True)

    def recap(self, turn: Turn) -> None:
        """Scripts know what they sent: nothing to repeat."""

    def play(self, stream: ChatStream, *, think: bool) -> Reply:
        renderer = self.renderer = StreamRenderer(think=think)
        try:
            return renderer.play(stream)
        finally:
            renderer.end()
            self.renderer = None

    def steps(self, *, think: bool) -> Steps:
        from ._tool_view import StandardSteps

        return StandardSteps(self, think=think, ask=_ask_in_line_mode)


def _ask_in_line_mode(code: str, question: str) -> str | None:
    # In line mode standard input holds the messages: no answer can come from it.
    if not is_terminal(sys.stdin):
        return None
    from ._tool_view import put_question

    return put_question(code, question, typed_line)


def run(options: ChatOptions) -> int:
    """Run `m2 chat`; returns the exit code."""
    interactive = is_terminal(sys.stdin) and is_terminal(sys.stdout)
    screen: Screen = PlainScreen()
    if interactive and os.environ.get("TERM") != "dumb":
        from ._chat_terminal import TerminalScreen

        screen = TerminalScreen()

    try:
        # Before the store opens and any request goes: a broken functions file costs nothing.
        tools = _toolbox(options)
        session = _open(options, screen, tools)
    except M2Error as error:
        return failed(error)

    try:
        if interactive:
            from ._chat_terminal import interact

            return interact(session, history=_history_path(options))
        return read_lines(session, sys.stdin.buffer)
    except KeyboardInterrupt:
        return interrupted(clean_line=True)
    except BrokenPipeError:
        return broken_pipe()
    finally:
        session.close()


def read_lines(session: Session, source: BinaryIO) -> int:
    """One turn (or command) per line of `source`; exit 1 when anything went wrong."""
    session.recap()
    for raw in iter(source.readline, b""):
        # As in `m2 ask`: a damaged character serves the model better than no answer.
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not handle(session, line):
            break
    return EXIT_FAILURE if session.had_error else EXIT_OK


def _toolbox(options: ChatOptions) -> Toolbox | None:
    """The tools of -T and --functions; None without them (and then pydantic stays unloaded)."""
    if not options.tools and options.functions is None:
        return None
    from ._ask_tools import load_tools
    from ._builtin_tools import run_python

    tools = load_tools(options.tools, options.functions)
    if not tools:
        return None
    asked = frozenset() if options.yes else frozenset(t.name for t in tools if t is run_python)
    return Toolbox(tuple(tools), options.max_steps, asked)


def _open(options: ChatOptions, screen: Screen, tools: Toolbox | None) -> Session:
    if options.resume and options.cid is not None:
        raise ConfigError("give either --cid ID or -c/--continue, not both")
    found = settings(options)
    log = logging_enabled(options.no_log)
    resuming = options.resume or options.cid is not None
    store = open_store(options.db) if log or resuming else None
    try:
        client = found.client(_notice_hook(screen))
        if store is not None and resuming:
            conversation = _resumed(options, client, store, recorder=store if log else None)
        else:
            conversation = _new(options, found, client, recorder=store)
    except BaseException:
        if store is not None:
            store.close()
        raise
    if store is not None and not log:
        store.close()
        store = None

    return Session(client, conversation, screen, store, api_key=options.api_key, tools=tools)


def _new(
    options: ChatOptions, found: Settings, client: Client, recorder: Store | None
) -> Conversation:
    from .._conversation import Conversation

    # The model goes in the params so that the store records it with the conversation.
    params: ChatParams = {
        "model": client.model,
        "max_tokens": found.max_tokens,
        "temperature": found.temperature,
        "top_p": found.top_p,
        "top_k": options.top_k,
    }
    return Conversation(
        client,
        options.system,
        recorder=recorder,
        include_interrupted=options.include_interrupted,
        **params,
    )


def _resumed(
    options: ChatOptions, client: Client, store: Store, recorder: Store | None
) -> Conversation:
    from .._conversation import Conversation

    cid = to_continue(
        store,
        options.cid,
        none=f"there is no stored conversation to continue in {store.path}",
        hint="Start one with `m2 chat`.",
    )
    conversation = Conversation.resume(
        store.load(cid),
        client,
        recorder=recorder,
        include_interrupted=options.include_interrupted,
    )

    # What this command line gives wins over what the conversation was held with.
    given = {
        "model": options.model,
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "top_k": options.top_k,
    }
    conversation.params.update(
        cast("ChatParams", {k: v for k, v in given.items() if v is not None})
    )
    if options.system is not None:
        conversation.system = options.system
    return conversation


def _notice_hook(screen: Screen) -> Callable[[Notice], None]:
    shown: set[str] = set()

    def notice(notice: Notice) -> None:
        line = describe_notice(notice)
        # A dropped parameter is dropped again every turn: saying so once is enough.
        if isinstance(notice, ParameterDropped):
            if line in shown:
                return
            shown.add(line)
        screen.note(line)

    return notice


def _history_path(options: ChatOptions) -> Path | None:
    """Where prompts are kept for recall across sessions; None (memory only) with --no-log."""
    if not logging_enabled(options.no_log):
        return None
    from .._store import default_db_path

    return default_db_path().parent / _HISTORY_NAME
