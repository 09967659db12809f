"""The terminal renderer: the indicator thread, notices around it, and where the cursor ends."""

from __future__ import annotations

import io
import time

from m2kit._agent import ToolStep
from m2kit._tool_runs import ToolResult
from m2kit._types import AnswerDelta, Reply, ThinkingDelta, ToolCall, Usage, Wait
from m2kit.cli._output import CLEAR_LINE
from m2kit.cli._render import StreamRenderer, describe_notice, footer


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr is when a person watches."""

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("no descriptor")


def test_indicator_shows_at_once_and_ticks() -> None:
    """If stderr is a terminal, then the indicator shows before any byte and keeps its clock."""
    err = Terminal()
    renderer = StreamRenderer(think=False, out=io.StringIO(), err=err, period=0.01)

    time.sleep(0.1)
    renderer.end()

    assert err.getvalue().startswith(f"{CLEAR_LINE}\x1b[2mwaiting for the model… 0s")
    assert err.getvalue().count(CLEAR_LINE) > 3
    assert err.getvalue().endswith(CLEAR_LINE)


def test_nothing_is_drawn_after_the_answer_starts() -> None:
    """If the answer has begun, then the indicator never draws again, whatever the timing."""
    err, out = Terminal(), io.StringIO()
    renderer = StreamRenderer(think=False, out=out, err=err, period=0.001)
    renderer.feed(ThinkingDelta("hmm"))
    renderer.feed(AnswerDelta("Hello"))
    drawn = err.getvalue()

    time.sleep(0.05)
    renderer.end()

    assert "thinking… " in drawn
    assert drawn.endswith(CLEAR_LINE)
    assert err.getvalue() == drawn
    assert out.getvalue() == "Hello\n"


def test_notices_are_whole_lines_around_the_indicator() -> None:
    """If a wait is announced while the indicator shows, then it is a line of its own."""
    err = Terminal()
    renderer = StreamRenderer(think=False, out=io.StringIO(), err=err, period=0.001)
    line = describe_notice(Wait("rate limited (429)", 2.0, 1, "server"))

    renderer.notice(line)
    renderer.end()

    assert f"{CLEAR_LINE}\x1b[2m{line}\x1b[0m\n" in err.getvalue()


def test_quiet_mode_keeps_only_the_indicator() -> None:
    """If the output waits for the end (--raw, --json), then only the indicator is drawn."""
    err, out = Terminal(), io.StringIO()
    renderer = StreamRenderer(think=True, quiet=True, out=out, err=err, period=0.01)

    renderer.feed(ThinkingDelta("secret plan"))
    renderer.feed(AnswerDelta("Hello"))
    renderer.end()

    assert out.getvalue() == ""
    assert "secret plan" not in err.getvalue()
    assert "answering… " in err.getvalue()


def test_no_indicator_off_a_terminal() -> None:
    """If stderr is not a terminal, then nothing but the thinking (with --think) is written."""
    err, out = io.StringIO(), io.StringIO()
    renderer = StreamRenderer(think=True, out=out, err=err)

    renderer.feed(ThinkingDelta("plan"))
    renderer.feed(AnswerDelta("Hi"))
    renderer.end()

    assert err.getvalue() == "plan\n\n"
    assert out.getvalue() == "Hi\n"


def _reply(tokens: int | None) -> Reply:
    usage = None if tokens is None else Usage(total_tokens=tokens)
    return Reply(text="Hi", thinking=None, raw="Hi", message={}, model="m", usage=usage)


def test_footer_counts_every_call_of_a_run() -> None:
    """If a reply ends a tool run, then the footer adds the tokens of every step's call, and
    says how many calls there were; a call without counts adds nothing."""
    call = ToolCall("c1", "f", "{}")
    steps = [
        ToolStep(_reply(100), (ToolResult(call, "ok", error=False, elapsed=0.0),)),
        ToolStep(_reply(None), ()),
    ]

    assert footer(_reply(42), 1.25) == "m · 1.2 s · 42 tokens"
    assert footer(_reply(42), 1.25, steps) == "m · 1.2 s · 142 tokens · 3 calls"
