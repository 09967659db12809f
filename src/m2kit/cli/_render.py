"""Terminal output for `m2 ask`: the answer on standard output, all else on standard error."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from typing import Any, TextIO

from .._types import (
    AnswerDelta,
    Done,
    Notice,
    ParameterDropped,
    Reply,
    StreamEvent,
    ThinkingDelta,
    Wait,
)

_DIM = "\x1b[2m"
_RESET = "\x1b[0m"
_CLEAR_LINE = "\r\x1b[K"
# The indicator is redrawn at most this often, so a fast stream costs no extra writes.
_INDICATOR_PERIOD = 0.25


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except ValueError:
        return False


def _color(stream: TextIO) -> bool:
    # no-color.org: only a non-empty NO_COLOR counts.
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


def say(message: str, *, dim: bool = False) -> None:
    """One line for the person, on standard error."""
    if dim and _color(sys.stderr):
        message = f"{_DIM}{message}{_RESET}"
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()


def describe_notice(notice: Notice) -> str:
    if isinstance(notice, Wait):
        origin = "as the server asked" if notice.source == "server" else "before retrying"
        wait = f"waiting {notice.seconds:.1f} s {origin}"
        return f"m2: {notice.reason}; {wait} (attempt {notice.attempt} failed)"
    assert isinstance(notice, ParameterDropped)
    return f"m2: not sending {notice.name.replace('_', '-')}: {notice.reason}"


class StreamRenderer:
    """Writes a stream as it arrives: answer to stdout, thinking or an indicator to stderr."""

    def __init__(self, *, think: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self._think = think
        self._out = out
        self._err = err
        self._err_color = _color(err)
        self._indicator = not think and is_terminal(err) and os.environ.get("TERM") != "dumb"
        self._indicator_shown_at: float | None = None
        self._thinking_open = False
        self._answer_tail: str | None = None
        self._started = time.monotonic()

    def feed(self, event: StreamEvent) -> None:
        if isinstance(event, AnswerDelta):
            if self._thinking_open:
                self._err.write("\n")  # a blank line between the thinking and the answer
            self._close_thinking()
            self._out.write(event.text)
            self._out.flush()
            self._answer_tail = event.text[-1:]
        elif isinstance(event, ThinkingDelta):
            self._thinking(event.text)

    def _thinking(self, text: str) -> None:
        if self._think:
            if not self._thinking_open and self._err_color:
                self._err.write(_DIM)
            self._thinking_open = True
            self._err.write(text)
            self._err.flush()
        elif self._indicator:
            self._draw_indicator()

    def _draw_indicator(self) -> None:
        now = time.monotonic()
        if (
            self._indicator_shown_at is not None
            and now - self._indicator_shown_at < _INDICATOR_PERIOD
        ):
            return
        self._indicator_shown_at = now
        elapsed = now - self._started
        label = f"thinking… {elapsed:.0f}s"
        self._err.write(f"{_CLEAR_LINE}{_DIM if self._err_color else ''}{label}")
        self._err.write(_RESET if self._err_color else "")
        self._err.flush()

    def _close_thinking(self) -> None:
        if self._thinking_open:
            self._err.write(f"{_RESET if self._err_color else ''}\n")
            self._err.flush()
            self._thinking_open = False
        elif self._indicator_shown_at is not None:
            self._err.write(_CLEAR_LINE)
            self._err.flush()
            self._indicator_shown_at = None

    def end(self) -> None:
        """Finish the output, complete or not: close the thinking, end the answer with a newline."""
        self._close_thinking()
        if self._answer_tail not in (None, "\n"):
            self._out.write("\n")
        self._out.flush()


def write_whole(reply: Reply, *, think: bool) -> None:
    """A reply that arrived whole (`--no-stream`), shown as a stream would be."""
    renderer = StreamRenderer(think=think)
    if reply.thinking and think:
        renderer.feed(ThinkingDelta(reply.thinking))
    if reply.text:
        renderer.feed(AnswerDelta(reply.text))
    renderer.end()


def write_raw(reply: Reply) -> None:
    sys.stdout.write(reply.raw)
    if reply.raw and not reply.raw.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()


def reply_json(reply: Reply) -> dict[str, Any]:
    return {
        "answer": reply.text,
        "reasoning": reply.thinking,
        "raw": reply.raw,
        "model": reply.model,
        "provider": reply.provider,
        "finish_reason": reply.finish_reason,
        "usage": asdict(reply.usage) if reply.usage else None,
        "tool_calls": [call.to_message() for call in reply.tool_calls],
        "thinking_source": reply.thinking_source,
        "cut_while_thinking": reply.cut_while_thinking,
        "request_id": reply.request_id,
        "message": reply.message,
    }


def write_json(reply: Reply) -> None:
    sys.stdout.write(json.dumps(reply_json(reply), ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def footer(reply: Reply, seconds: float) -> str:
    """A short line about who answered and what it cost."""
    parts = [reply.model or "?"]
    if reply.provider:
        parts.append(f"via {reply.provider}")
    parts.append(f"{seconds:.1f} s")
    if reply.usage and reply.usage.total_tokens is not None:
        parts.append(f"{reply.usage.total_tokens} tokens")
    return " · ".join(parts)


def final_event(event: StreamEvent) -> Reply | None:
    return event.reply if isinstance(event, Done) else None
