"""`m2 ask`: one question, one answer, streamed or printed whole.

A JSON answer (--schema, --json-mode) is `_ask_schema`'s; a run with tools is `_ask_tools`'s.
"""

from __future__ import annotations

import contextlib
import select
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from .._errors import ConfigError, StreamError, StreamErrorEvent
from .._types import Reply
from ._ask_schema import run_structured
from ._common import logging_enabled, open_store, settings, to_continue
from ._output import EXIT_FAILURE, EXIT_OK, guarded, is_terminal, say, write_json
from ._render import StreamRenderer, describe_notice, footer, reply_json, show_whole, write_raw

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .._agent import RunResult
    from .._client import Client
    from .._conversation import Conversation
    from .._request import ChatParams
    from .._store import Store
    from .._tools import Tool
    from .._types import Notice
    from ._common import Settings

# How long piped input may be silent before m2 says that it is waiting for it.
_STDIN_GRACE = 1.0


@dataclass(frozen=True)
class AskOptions:
    """What `m2 ask` was given; None means "not given" (then config, then the default)."""

    prompt: str | None
    model: str | None
    base_url: str | None
    api_key: str | None
    system: str | None
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    top_k: int | None
    seed: int | None
    stop: list[str]
    think: bool
    raw: bool
    json_output: bool
    stream: bool
    retry_budget: float | None
    timeout: float | None
    profile: str | None
    continue_: bool
    cid: str | None
    include_interrupted: bool
    no_log: bool
    db: str | None
    schema: str | None
    json_mode: bool
    repairs: int
    tools: tuple[str, ...]
    functions: str | None
    max_steps: int
    yes: bool

    @property
    def structured(self) -> bool:
        """Whether the answer is to be JSON (--schema or --json-mode)."""
        return self.schema is not None or self.json_mode

    @property
    def with_tools(self) -> bool:
        """Whether the model may call tools (-T or --functions)."""
        return bool(self.tools) or self.functions is not None

    @property
    def streams_answer(self) -> bool:
        """Whether the answer goes to stdout as it arrives (the other modes print at the end)."""
        quiet = self.raw or self.json_output or self.structured or self.with_tools
        return self.stream and not quiet

    def check(self) -> None:
        """Refuse options that cannot go together."""
        outputs = [
            flag
            for flag, given in (
                ("--schema", self.schema is not None),
                ("--json-mode", self.json_mode),
                ("--json", self.json_output),
                ("--raw", self.raw),
            )
            if given
        ]
        if len(outputs) > 1:
            raise ConfigError(f"{' and '.join(outputs)} cannot be used together: choose one")
        if self.structured and self.with_tools:
            flag = outputs[0]
            raise ConfigError(
                f"{flag} cannot be used with tools (-T, --functions)",
                hint="Ask for the structured answer in a second m2 ask -c call.",
            )


def read_prompt(prompt: str | None) -> str:
    """The prompt, followed by whatever was piped on standard input.

    Bytes that are not UTF-8, piped or in the argument, become U+FFFD rather than an error: the
    model is better served by a damaged character than by no answer.
    """
    piped = ""
    if sys.stdin is not None and not is_terminal(sys.stdin):
        _warn_if_stdin_waits()
        piped = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    parts = [part for part in (prompt, piped.strip("\n")) if part and part.strip()]
    if not parts:
        raise ConfigError(
            'no prompt: give one (m2 ask "…") or pipe text on standard input',
            hint='Example: m2 ask "Write a Python function to calculate factorial."',
        )
    return "\n\n".join(parts)


def _warn_if_stdin_waits() -> None:
    # Standard input left open by a parent process (a script, ssh, a loop) would block silently.
    if not is_terminal(sys.stderr):
        return
    try:
        ready, _, _ = select.select([sys.stdin], [], [], _STDIN_GRACE)
    except (OSError, ValueError):  # Windows pipes, or no real file behind stdin
        return
    if not ready:
        say("m2: reading standard input… (give </dev/null to skip it)", dim=True)


def _params(options: AskOptions, chosen: Settings) -> ChatParams:
    """A new conversation's parameters: the flags, with `settings`' config and defaults."""
    return {
        "max_tokens": chosen.max_tokens,
        "temperature": chosen.temperature,
        "top_p": chosen.top_p,
        "top_k": options.top_k,
        "seed": options.seed,
        "stop": options.stop or None,
    }


class Notices:
    """The client's notices (waits, dropped parameters), drawn around the renderer on screen."""

    def __init__(self) -> None:
        self.renderer: StreamRenderer | None = None

    def __call__(self, notice: Notice) -> None:
        if self.renderer is not None:
            self.renderer.notice(describe_notice(notice))
        else:
            say(describe_notice(notice), dim=True)


def _ask(options: AskOptions) -> Reply | RunResult | int:
    """The final reply, or the exit code when m2 has already said why there is none."""
    options.check()
    prompt = read_prompt(options.prompt)
    chosen = settings(options)
    tools = _tools(options)
    notices = Notices()

    with chosen.client(notices) as client, _store_for(options) as store:
        conversation = _conversation(client, store, options, chosen)
        if tools:
            from ._ask_tools import run_with_tools

            return run_with_tools(conversation, prompt, tools, options, notices)
        if options.structured:
            return run_structured(conversation, prompt, options, notices)

        renderer = StreamRenderer(think=options.think, quiet=options.raw or options.json_output)
        notices.renderer = renderer
        try:
            return _receive(conversation, options, prompt, renderer)
        finally:
            renderer.end()


def _tools(options: AskOptions) -> list[Tool[..., Any]]:
    # Loaded before the first request, so that a broken functions file costs no tokens.
    if not options.with_tools:
        return []
    from ._ask_tools import load_tools

    return load_tools(options.tools, options.functions)


@contextlib.contextmanager
def _store_for(options: AskOptions) -> Iterator[Store | None]:
    """The store, when this turn is kept or an earlier conversation is continued."""
    if not (logging_enabled(options.no_log) or options.continue_ or options.cid):
        yield None
        return
    with open_store(options.db) as store:
        yield store


def _conversation(
    client: Client, store: Store | None, options: AskOptions, chosen: Settings
) -> Conversation:
    from .._conversation import Conversation

    recorder = store if logging_enabled(options.no_log) else None
    params = _params(options, chosen)
    if not (options.continue_ or options.cid):
        return Conversation(client, options.system, recorder=recorder, **params)

    assert store is not None
    found = to_continue(
        store,
        options.cid,
        none="there is no earlier conversation to continue",
        hint='Start one with m2 ask "…" (without -c), or see m2 logs.',
    )
    conversation = Conversation.resume(
        store.load(found),
        client,
        recorder=recorder,
        include_interrupted=options.include_interrupted,
    )
    conversation.params = {**conversation.params, **_given(options)}
    if options.system:
        conversation.system = options.system
    return conversation


def _given(options: AskOptions) -> ChatParams:
    """What this command line says (flags, and M2_MODEL), which wins over the continued
    conversation's own settings; the config file and the defaults do not."""
    given = {
        "model": options.model,
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "top_k": options.top_k,
        "seed": options.seed,
        "stop": options.stop or None,
    }
    return cast("ChatParams", {key: value for key, value in given.items() if value is not None})


def _receive(
    conversation: Conversation, options: AskOptions, prompt: str, renderer: StreamRenderer
) -> Reply:
    """The reply to `prompt`, shown as it streams or whole once it has come."""
    if not options.stream:
        reply = conversation.send(prompt)
        show_whole(renderer, reply, think=options.think)
        return reply

    with conversation.stream(prompt) as events:
        return renderer.play(events)


def _report(outcome: Reply | RunResult, options: AskOptions, seconds: float) -> int:
    """Print what the mode asks for (a streamed answer is out already), then the notes on stderr.

    A tool run's steps are part of the JSON, and its footer counts every call's tokens.
    """
    reply, steps = (outcome, ()) if isinstance(outcome, Reply) else (outcome.reply, outcome.steps)
    if options.json_output:
        write_json(reply_json(reply, steps))
    elif options.raw:
        write_raw(reply)

    if reply.cut_while_thinking:
        say(
            "m2: the reply hit its token limit while the model was still thinking, so there is no"
            " answer: raise --max-tokens."
        )
        return EXIT_FAILURE
    if not reply.text and not reply.tool_calls:
        hidden = reply.thinking and not (options.think or options.raw or options.json_output)
        shown = " (--think shows the thinking)" if hidden else ""
        say(f"m2: the model gave no answer{shown}.")
        return EXIT_FAILURE
    if reply.finish_reason == "length":
        say("m2: the answer was cut short at its token limit: raise --max-tokens for all of it.")
    if is_terminal(sys.stderr):
        say(footer(reply, seconds, steps), dim=True)
    return EXIT_OK


def run(options: AskOptions) -> int:
    """Run `m2 ask`; returns the exit code."""
    # The answer streamed so far may leave stderr's cursor anywhere when Ctrl-C strikes.
    return guarded(lambda: _run(options), clean_line=True)


def _run(options: AskOptions) -> int:
    """The exit code; errors go up to `guarded`, which prints them."""
    started = time.monotonic()
    try:
        outcome = _ask(options)
    except StreamError as error:
        if options.streams_answer and error.partial is not None and error.partial.text:
            error.hint = "The answer above is incomplete. " + (
                error.hint if isinstance(error, StreamErrorEvent) else "Try again."
            )
        raise
    if isinstance(outcome, int):
        return outcome
    return _report(outcome, options, time.monotonic() - started)
