"""`m2 ask`: one question, one streamed answer. Library errors become one line here."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._errors import ConfigError, M2Error, StreamError
from .._retry import RetryPolicy
from ._render import (
    StreamRenderer,
    _is_terminal,
    describe_notice,
    final_event,
    footer,
    say,
    write_json,
    write_raw,
    write_whole,
)

if TYPE_CHECKING:
    from .._request import ChatParams
    from .._types import Message, Notice, Reply

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


@dataclass
class AskOptions:
    prompt: str | None
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    system: str | None = None
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    think: bool = False
    raw: bool = False
    json_output: bool = False
    stream: bool = True
    retry_budget: float = 120.0
    timeout: float = 120.0


def read_prompt(prompt: str | None) -> str:
    """The prompt, followed by whatever was piped on standard input."""
    piped = "" if sys.stdin is None or _is_terminal(sys.stdin) else sys.stdin.read()
    parts = [part for part in (prompt, piped.strip("\n")) if part and part.strip()]
    if not parts:
        raise ConfigError(
            'no prompt: give one (m2 ask "…") or pipe text on standard input',
            hint='Example: m2 ask "Write a Python function to calculate factorial."',
        )
    return "\n\n".join(parts)


def _messages(options: AskOptions, prompt: str) -> list[Message]:
    messages: list[Message] = []
    if options.system:
        messages.append({"role": "system", "content": options.system})
    messages.append({"role": "user", "content": prompt})
    return messages


def _params(options: AskOptions) -> ChatParams:
    return {
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "top_k": options.top_k,
        "seed": options.seed,
        "stop": options.stop or None,
    }


def _notice(notice: Notice) -> None:
    say(describe_notice(notice), dim=True)


def _error_line(error: M2Error) -> str:
    line = f"m2: error: {error}"
    if error.retry_summary:
        line += f" ({error.retry_summary})"
    if error.hint:
        line += f". {error.hint}" if not line.endswith(".") else f" {error.hint}"
    return line


def _ask(options: AskOptions) -> Reply:
    from .._client import Client

    prompt = read_prompt(options.prompt)
    client = Client(
        options.model,
        options.base_url,
        options.api_key,
        timeout=options.timeout,
        retry=RetryPolicy(budget=options.retry_budget),
        on_notice=_notice,
    )
    with client:
        messages, params = _messages(options, prompt), _params(options)
        if not options.stream:
            reply = client.chat(messages, **params)
            if not (options.raw or options.json_output):
                write_whole(reply, think=options.think)
            return reply

        renderer = (
            None if options.raw or options.json_output else StreamRenderer(think=options.think)
        )
        final: Reply | None = None
        try:
            for event in client.stream(messages, **params):
                if renderer is not None:
                    renderer.feed(event)
                final = final_event(event) or final
        finally:
            if renderer is not None:
                renderer.end(final)
        assert final is not None
        return final


def _report(reply: Reply, options: AskOptions, seconds: float) -> int:
    if options.json_output:
        write_json(reply)
        return EXIT_OK
    if options.raw:
        write_raw(reply)
        return EXIT_OK

    if reply.cut_while_thinking:
        say(
            "m2: the reply hit its token limit while the model was still thinking, so there is no"
            " answer: raise --max-tokens."
        )
        return EXIT_FAILURE
    if not reply.text and not reply.tool_calls:
        shown = "" if options.think or not reply.thinking else " (--think shows the thinking)"
        say(f"m2: the model gave no answer{shown}.")
        return EXIT_FAILURE
    if reply.finish_reason == "length":
        say("m2: the answer was cut short at its token limit: raise --max-tokens for all of it.")
    if _is_terminal(sys.stderr):
        say(footer(reply, seconds), dim=True)
    return EXIT_OK


def run(options: AskOptions) -> int:
    """Run `m2 ask`; returns the exit code."""
    started = time.monotonic()
    try:
        reply = _ask(options)
        return _report(reply, options, time.monotonic() - started)
    except KeyboardInterrupt:
        say("\nm2: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`m2 ask … | head`): stop quietly, as other Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except ConfigError as error:
        say(_error_line(error))
        return EXIT_USAGE
    except StreamError as error:
        if error.partial is not None and error.partial.text and not options.json_output:
            say("m2: the answer above is incomplete.")
        say(_error_line(error))
        return EXIT_FAILURE
    except M2Error as error:
        say(_error_line(error))
        return EXIT_FAILURE
