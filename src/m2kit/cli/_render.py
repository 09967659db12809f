"""A reply as it streams, for `m2 ask` and `m2 chat`'s plain screen: the answer on standard
output; the thinking, an indicator and notices on standard error."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any, TextIO

from .._types import (
    AnswerDelta,
    Done,
    Notice,
    ParameterDropped,
    Reply,
    StreamEvent,
    ThinkingDelta,
    Usage,
    Wait,
)
from ._output import CLEAR_LINE, DIM, RESET, color, is_terminal, write

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from .._agent import ToolStep

# How often the indicator's clock is redrawn.
_INDICATOR_PERIOD = 0.25


def describe_notice(notice: Notice) -> str:
    if isinstance(notice, Wait):
        origin = "as the server asked" if notice.source == "server" else "before retrying"
        wait = f"waiting {notice.seconds:.1f} s {origin}"
        return f"m2: {notice.reason}; {wait} (attempt {notice.attempt} failed)"
    assert isinstance(notice, ParameterDropped)
    return f"m2: not sending {notice.name.replace('_', '-')}: {notice.reason}"


def _in_foreground(stream: TextIO) -> bool:
    # Run in the background (`m2 ask … > out &`), m2 must not draw over the shell's prompt.
    try:
        return os.tcgetpgrp(stream.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):  # not a real terminal (tests), or no job control
        return True


class _Indicator:
    """A dim status line on a terminal's stderr ("thinking… 12s"), kept fresh by a daemon thread.

    Every write to stderr while it may be visible goes through `_lock`, so the thread never draws
    in the middle of another line. Once `hide()` is called it stays hidden.
    """

    def __init__(self, err: TextIO, *, color: bool, period: float = _INDICATOR_PERIOD) -> None:
        self._err = err
        self._period = period
        self._dim, self._reset = (DIM, RESET) if color else ("", "")
        self._lock = threading.Lock()
        self._label = "waiting for the model…"
        self._started = time.monotonic()
        self._active = True
        self._visible = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="m2-indicator", daemon=True)

    def start(self) -> None:
        with self._lock:
            self._draw()
        self._thread.start()

    def show(self, label: str) -> None:
        """Say what the model is doing ("thinking…"); a new label is drawn at once."""
        if self._label != label:
            self._label = label
            with self._lock:
                self._draw()

    def say(self, line: str) -> None:
        """Write a whole line of stderr around the indicator."""
        with self._lock:
            self._clear()
            self._err.write(f"{line}\n")
            self._draw()

    def hide(self) -> None:
        with self._lock:
            self._active = False
            self._clear()
        self._stopped.set()

    def _tick(self) -> None:
        while not self._stopped.wait(self._period):
            with self._lock:
                self._draw()

    def _draw(self) -> None:
        if not self._active or not _in_foreground(self._err):
            return
        elapsed = time.monotonic() - self._started
        # Cut to the width, or each redraw would wrap and leave a line behind.
        label = f"{self._label} {elapsed:.0f}s"[: shutil.get_terminal_size().columns - 1]
        self._err.write(f"{CLEAR_LINE}{self._dim}{label}{self._reset}")
        self._err.flush()
        self._visible = True

    def _clear(self) -> None:
        if self._visible:
            self._err.write(CLEAR_LINE)
            self._err.flush()
            self._visible = False


class StreamRenderer:
    """Writes a stream as it arrives: answer to stdout, thinking or an indicator to stderr.

    With `quiet` (`--raw`, `--json`: their output comes at the end) only the indicator shows.
    """

    def __init__(
        self,
        *,
        think: bool,
        quiet: bool = False,
        out: TextIO = sys.stdout,
        err: TextIO = sys.stderr,
        period: float = _INDICATOR_PERIOD,
    ) -> None:
        self._think = think and not quiet
        self._quiet = quiet
        self._out = out
        self._err = err
        self._err_color = color(err)
        self._indicator: _Indicator | None = None
        if is_terminal(err) and os.environ.get("TERM") != "dumb":
            self._indicator = _Indicator(err, color=self._err_color, period=period)
            self._indicator.start()
        self._thinking_open = False
        self._answer_tail: str | None = None

    def notice(self, line: str) -> None:
        """A line for the person (a wait, a dropped parameter), around the indicator."""
        if self._err_color:
            line = f"{DIM}{line}{RESET}"
        if self._indicator is not None:
            self._indicator.say(line)
        else:
            self._err.write(f"{line}\n")
            self._err.flush()

    def feed(self, event: StreamEvent) -> None:
        if self._quiet:
            if self._indicator is not None and isinstance(event, (ThinkingDelta, AnswerDelta)):
                self._indicator.show(
                    "thinking…" if isinstance(event, ThinkingDelta) else "answering…"
                )
            return
        if isinstance(event, AnswerDelta):
            if self._thinking_open:
                self._err.write("\n")  # a blank line between the thinking and the answer
            self._close_thinking()
            self._out.write(event.text)
            self._out.flush()
            self._answer_tail = event.text[-1:]
        elif isinstance(event, ThinkingDelta):
            self._thinking(event.text)

    def play(self, events: Iterable[StreamEvent]) -> Reply:
        """Feed every event; returns the reply that `Done` carried (a stream ends with it, or
        raises). `end()` is still the caller's to call."""
        final: Reply | None = None
        for event in events:
            self.feed(event)
            if isinstance(event, Done):
                final = event.reply
        assert final is not None
        return final

    def _thinking(self, text: str) -> None:
        if not self._think:
            if self._indicator is not None:
                self._indicator.show("thinking…")
            return
        self._hide_indicator()
        if not self._thinking_open and self._err_color:
            self._err.write(DIM)
        self._thinking_open = True
        self._err.write(text)
        self._err.flush()

    def _hide_indicator(self) -> None:
        if self._indicator is not None:
            self._indicator.hide()
            self._indicator = None

    def _close_thinking(self) -> None:
        self._hide_indicator()
        if self._thinking_open:
            self._err.write(f"{RESET if self._err_color else ''}\n")
            self._err.flush()
            self._thinking_open = False

    def end(self) -> None:
        """Finish the output, complete or not: close the thinking, end the answer with a newline.

        Afterwards stderr's cursor is at the start of a line, unless the terminal echoed `^C`.
        """
        self._close_thinking()
        if self._answer_tail not in (None, "\n"):
            self._out.write("\n")
        self._out.flush()


def show_whole(renderer: StreamRenderer, reply: Reply, *, think: bool) -> None:
    """A reply that arrived whole (`--no-stream`), shown as a stream would be."""
    if reply.thinking and think:
        renderer.feed(ThinkingDelta(reply.thinking))
    if reply.text:
        renderer.feed(AnswerDelta(reply.text))


def write_raw(reply: Reply) -> None:
    ending = "\n" if reply.raw and not reply.raw.endswith("\n") else ""
    write(reply.raw + ending)


def reply_json(reply: Reply, steps: Sequence[ToolStep] = ()) -> dict[str, Any]:
    """`m2 ask --json`: the reply; for a tool run also each step (its reply's fields, its
    calls' results) and `total_usage`, every call's tokens added up."""
    found = _reply_fields(reply)
    if steps:
        found["steps"] = [
            _reply_fields(step.reply)
            | {
                "results": [
                    {"tool_call_id": r.call.id, "content": r.content, "error": r.error}
                    for r in step.results
                ]
            }
            for step in steps
        ]
        found["total_usage"] = asdict(total_usage([*(step.reply for step in steps), reply]))
    return found


def total_usage(replies: Sequence[Reply]) -> Usage:
    """Every reply's token counts added up; a count no reply gave stays None."""

    def add(name: str) -> int | None:
        counts = [getattr(r.usage, name) for r in replies if r.usage is not None]
        known = [count for count in counts if count is not None]
        return sum(known) if known else None

    return Usage(*(add(field.name) for field in fields(Usage)))


def _reply_fields(reply: Reply) -> dict[str, Any]:
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


def footer(reply: Reply, seconds: float, steps: Sequence[ToolStep] = ()) -> str:
    """A short line about who answered and what it cost (a tool run: all its calls)."""
    parts = [reply.model or "?"]
    if reply.provider:
        parts.append(f"via {reply.provider}")
    parts.append(f"{seconds:.1f} s")
    usage = total_usage([*(step.reply for step in steps), reply])
    if usage.total_tokens is not None:
        parts.append(f"{usage.total_tokens} tokens")
    if steps:
        parts.append(f"{len(steps) + 1} calls")
    return " · ".join(parts)
