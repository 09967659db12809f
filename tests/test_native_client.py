"""Tests for MiniMax-M2's native tool calls through m2kit.Client and AsyncClient, on real sockets.

The parser itself is covered by test_native_tools.py; these check the wiring in `_accumulate` and
`_client`: only a request with `tools` parses, the block leaves history and `Reply.text` but stays
in `Reply.raw`, and a streamed call arrives as one whole `ToolCallDelta`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _server import chunk, completion, json_step, stream_step
from m2kit import (
    AnswerDelta,
    AsyncClient,
    Client,
    Done,
    Reply,
    RetryPolicy,
    StreamInterrupted,
    ThinkingDelta,
    ToolCallDelta,
)

if TYPE_CHECKING:
    from _server import ScriptedServer, Step
    from m2kit import StreamEvent

ONCE = RetryPolicy(max_attempts=1)
PLAIN_MODEL = "meta-llama/Llama-3.3-70B-Instruct"


def tool(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties}
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


WEATHER = tool(
    "get_weather",
    {"city": {"type": "string"}, "days": {"type": "integer"}, "postcode": {"type": "string"}},
)
CLOCK = tool("get_time", {"zone": {"type": "string"}})
TOOLS = [WEATHER, CLOCK]

BLOCK = """<minimax:tool_call>
<invoke name="get_weather">
<parameter name="city">Paris</parameter>
<parameter name="days">3</parameter>
<parameter name="postcode">123</parameter>
</invoke>
</minimax:tool_call>"""
ARGUMENTS = {"city": "Paris", "days": 3, "postcode": "123"}
# MiniMax's template opens the thinking itself, so the output starts inside it.
TEMPLATE = "Plan.</think>\n\nLet me check.\n" + BLOCK
EXPLICIT = "<think>\nPlan.\n</think>\n\nLet me check.\n" + BLOCK
UNCLOSED_THINKING = "<think>I will call\n" + BLOCK


@dataclass
class Run:
    """Calls through Client (`sync`) or AsyncClient (`async`), pointed at the scripted server."""

    mode: str
    server: ScriptedServer

    def chat(self, messages: Any = "Weather?", **params: Any) -> Reply:
        options: dict[str, Any] = {"base_url": self.server.base_url, "retry": ONCE}
        if self.mode == "sync":
            with Client(**options) as client:
                return client.chat(messages, **params)

        async def chat() -> Reply:
            async with AsyncClient(**options) as client:
                return await client.chat(messages, **params)

        return anyio.run(chat)

    def stream(self, messages: Any = "Weather?", **params: Any) -> list[StreamEvent]:
        options: dict[str, Any] = {"base_url": self.server.base_url, "retry": ONCE}
        if self.mode == "sync":
            with Client(**options) as client:
                return list(client.stream(messages, **params))

        async def stream() -> list[StreamEvent]:
            async with AsyncClient(**options) as client:
                return [event async for event in client.stream(messages, **params)]

        return anyio.run(stream)


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest, server: ScriptedServer) -> Run:
    return Run(request.param, server)


def streamed(pieces: list[str], finish: str = "tool_calls", **first: Any) -> Step:
    """A stream of `pieces` as content chunks, after one chunk of other delta fields if given."""
    chunks = [chunk(**first)] if first else []
    chunks += [chunk(piece) for piece in pieces]
    return stream_step([*chunks, chunk(finish_reason=finish)])


def whole(content: str, finish: str = "tool_calls", **fields: Any) -> Step:
    return json_step(completion(content, finish_reason=finish, **fields))


def reply_of(events: list[StreamEvent]) -> Reply:
    done = events[-1]
    assert isinstance(done, Done)
    return done.reply


def texts(events: list[StreamEvent], kind: type[ThinkingDelta | AnswerDelta]) -> str:
    return "".join(event.text for event in events if isinstance(event, kind))


def call_deltas(events: list[StreamEvent]) -> list[ToolCallDelta]:
    return [event for event in events if isinstance(event, ToolCallDelta)]


def calls(reply: Reply) -> list[tuple[int, str, Any]]:
    return [(call.index, call.name, json.loads(call.arguments)) for call in reply.tool_calls]


def without_ids(reply: Reply) -> tuple[Any, ...]:
    """What a reply says, with the fresh ids of native calls left out."""
    message = dict(reply.message)
    if "tool_calls" in message:
        message["tool_calls"] = [item["function"] for item in message["tool_calls"]]
    return (reply.text, reply.thinking, reply.raw, message, calls(reply), reply.thinking_source)


def assert_history_holds_the_calls(reply: Reply, content: str | None) -> None:
    assert reply.message["content"] == content
    assert reply.message["tool_calls"] == [call.to_message() for call in reply.tool_calls]


def assert_one_whole_delta_per_call(events: list[StreamEvent], reply: Reply) -> None:
    expected = [ToolCallDelta(c.index, c.id, c.name, c.arguments) for c in reply.tool_calls]
    assert call_deltas(events) == expected


def cut(text: str, *marks: str) -> list[str]:
    """`text` cut just after the first occurrence of each mark."""
    points = sorted(text.index(mark) + len(mark) for mark in marks)
    return [text[a:b] for a, b in pairwise([0, *points, len(text)])]


# Thinking inline, whole and streamed.


@pytest.mark.parametrize(
    ("content", "history"),
    [
        (TEMPLATE, "Plan.</think>\n\nLet me check.\n"),
        (EXPLICIT, "<think>\nPlan.\n</think>\n\nLet me check.\n"),
    ],
    ids=["template-style", "explicit-think"],
)
def test_whole_reply_with_inline_thinking_has_the_call_out_of_history(
    run: Run, content: str, history: str
) -> None:
    """If a whole reply thinks inline then calls natively, then history keeps all but the block."""
    run.server.queue(whole(content))

    reply = run.chat(tools=TOOLS)

    assert (reply.thinking, reply.text, reply.raw) == ("Plan.", "Let me check.\n", content)
    assert calls(reply) == [(0, "get_weather", ARGUMENTS)]
    assert_history_holds_the_calls(reply, history)
    assert reply.finish_reason == "tool_calls"


def test_argument_types_follow_the_schema(run: Run) -> None:
    """If the schema says integer days and string postcode, then 3 is a number and "123" text."""
    run.server.queue(whole(TEMPLATE))

    [call] = run.chat(tools=TOOLS).tool_calls

    arguments = json.loads(call.arguments)
    assert type(arguments["days"]) is int
    assert arguments["postcode"] == "123"
    assert call.id.startswith("call_")


AWKWARD_CUTS = {
    "inside-open-tag": ("<minimax:to",),
    "inside-a-value": ("Pa", '<parameter name="days">'),
    "inside-close-tag": ("</minimax:tool",),
    "every-tag-split": (
        "<minim",
        "<invo",
        '<parameter name="ci',
        "Par",
        "</parameter",
        "</minimax:",
    ),
    "think-and-block-split": ("Plan.</thi", "\n<minimax:tool_call", "</invoke"),
}


@pytest.mark.parametrize("marks", AWKWARD_CUTS.values(), ids=AWKWARD_CUTS)
def test_stream_split_at_awkward_places_matches_the_whole_reply(
    run: Run, marks: tuple[str, ...]
) -> None:
    """If the block streams cut inside tags and values, then the reply equals the whole one."""
    run.server.queue(streamed(cut(TEMPLATE, *marks)), whole(TEMPLATE))

    events = run.stream(tools=TOOLS)
    reply = reply_of(events)

    assert without_ids(reply) == without_ids(run.chat(tools=TOOLS))
    assert_one_whole_delta_per_call(events, reply)
    assert (texts(events, ThinkingDelta), texts(events, AnswerDelta)) == (
        "Plan.",
        "Let me check.\n",
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(points=st.lists(st.integers(1, len(TEMPLATE) - 1), max_size=12, unique=True))
def test_stream_cut_anywhere_gives_the_whole_replys_call(
    server: ScriptedServer, mode: str, points: list[int]
) -> None:
    """If the content is cut at random points into chunks, then reply and deltas never change."""
    edges = [0, *sorted(points), len(TEMPLATE)]
    server.queue(streamed([TEMPLATE[a:b] for a, b in pairwise(edges)]))

    events = Run(mode, server).stream(tools=TOOLS)
    reply = reply_of(events)

    assert (reply.thinking, reply.text, reply.raw) == ("Plan.", "Let me check.\n", TEMPLATE)
    assert calls(reply) == [(0, "get_weather", ARGUMENTS)]
    assert_history_holds_the_calls(reply, "Plan.</think>\n\nLet me check.\n")
    assert_one_whole_delta_per_call(events, reply)
    assert (texts(events, ThinkingDelta), texts(events, AnswerDelta)) == (
        "Plan.",
        "Let me check.\n",
    )


# Thinking elsewhere: in a field, or never closed.


def test_thinking_in_reasoning_content_and_the_block_in_content(run: Run) -> None:
    """If thinking comes in reasoning_content and the block in content, then both are handled."""
    content = "\n\n" + BLOCK
    run.server.queue(
        streamed(cut(content, "<minimax:tool_call>\n"), reasoning_content="Plan."),
        whole(content, reasoning_content="Plan."),
    )

    events = run.stream(tools=TOOLS)
    reply = reply_of(events)

    assert (reply.thinking, reply.text, reply.raw) == ("Plan.", "", content)
    assert reply.thinking_source == "field"
    assert calls(reply) == [(0, "get_weather", ARGUMENTS)]
    assert_history_holds_the_calls(reply, "<think>\nPlan.\n</think>\n\n")
    assert_one_whole_delta_per_call(events, reply)
    assert texts(events, ThinkingDelta) == "Plan."
    assert without_ids(run.chat(tools=TOOLS)) == without_ids(reply)


def test_block_while_thinking_never_closed_is_a_call_and_the_thinking_stays(run: Run) -> None:
    """If the block comes inside a `<think>` that never closes, then it is a call, thinking kept."""
    run.server.queue(streamed(cut(UNCLOSED_THINKING, "call\n<mini")), whole(UNCLOSED_THINKING))

    events = run.stream(tools=TOOLS)
    reply = reply_of(events)

    assert (reply.thinking, reply.text, reply.raw) == ("I will call", "", UNCLOSED_THINKING)
    assert calls(reply) == [(0, "get_weather", ARGUMENTS)]
    assert_history_holds_the_calls(reply, "<think>I will call\n")
    assert_one_whole_delta_per_call(events, reply)
    assert without_ids(run.chat(tools=TOOLS)) == without_ids(reply)


def test_block_a_reasoning_parser_filed_as_thinking_is_a_call(run: Run) -> None:
    """If the model forgot `</think>` and the server's reasoning parser put the block in
    reasoning_content, then it is a call all the same, and the thinking is the text around it."""
    reasoning = "I will call\n" + BLOCK
    pieces = cut(reasoning, "call\n<mini", '<parameter name="da')
    step = stream_step(
        [*(chunk(reasoning_content=piece) for piece in pieces), chunk(finish_reason="tool_calls")]
    )
    run.server.queue(step, whole("", reasoning_content=reasoning))

    events = run.stream(tools=TOOLS)
    reply = reply_of(events)

    assert (reply.thinking, reply.text) == ("I will call", "")
    assert calls(reply) == [(0, "get_weather", ARGUMENTS)]
    assert "minimax:tool_call" not in texts(events, ThinkingDelta)
    assert_one_whole_delta_per_call(events, reply)
    assert without_ids(run.chat(tools=TOOLS)) == without_ids(reply)


def test_block_that_is_the_whole_content_leaves_content_none(run: Run) -> None:
    """If the content is nothing but the block, then history content is None beside the call."""
    run.server.queue(streamed(cut(BLOCK, "Par")), whole(BLOCK))

    reply = reply_of(run.stream(tools=TOOLS))

    assert (reply.text, reply.raw) == ("", BLOCK)
    assert_history_holds_the_calls(reply, None)
    assert without_ids(run.chat(tools=TOOLS)) == without_ids(reply)


# When a block is not a call.


def test_without_tools_in_the_request_the_block_stays_text(run: Run) -> None:
    """If the request offers no tools, then the block stays answer text and no call is made."""
    run.server.queue(streamed(cut(TEMPLATE, "<minimax:")), whole(TEMPLATE))

    events = run.stream()
    replies = [reply_of(events), run.chat()]

    assert "tools" not in run.server.requests[0].json()
    assert call_deltas(events) == []
    assert texts(events, AnswerDelta) == "Let me check.\n" + BLOCK
    for reply in replies:
        assert (reply.text, reply.raw, reply.tool_calls) == (
            "Let me check.\n" + BLOCK,
            TEMPLATE,
            (),
        )
        assert reply.message == {"role": "assistant", "content": TEMPLATE}


def test_name_not_among_the_tools_stays_text(run: Run) -> None:
    """If the block calls a tool the request did not offer, then it stays text and is no call."""
    run.server.queue(streamed(cut(TEMPLATE, "<invoke")), whole(TEMPLATE))

    events = run.stream(tools=[CLOCK])
    replies = [reply_of(events), run.chat(tools=[CLOCK])]

    assert call_deltas(events) == []
    assert texts(events, AnswerDelta) == "Let me check.\n" + BLOCK
    for reply in replies:
        assert (reply.text, reply.raw, reply.tool_calls) == (
            "Let me check.\n" + BLOCK,
            TEMPLATE,
            (),
        )
        assert reply.message == {"role": "assistant", "content": TEMPLATE}


def test_unknown_invoke_beside_a_known_one_stays_and_the_known_one_is_called(run: Run) -> None:
    """If one block calls an offered and an unknown tool, then only the offered one is called."""
    rogue = '<invoke name="launch">\n<parameter name="what">rockets</parameter>\n</invoke>\n'
    content = BLOCK.replace("</minimax:tool_call>", rogue + "</minimax:tool_call>")
    run.server.queue(streamed(cut(content, '"laun')))

    reply = reply_of(run.stream(tools=TOOLS))

    assert reply.text == f"<minimax:tool_call>\n{rogue}</minimax:tool_call>"
    assert reply.raw == content
    assert calls(reply) == [(0, "get_weather", ARGUMENTS)]


# Native and structured calls together.


STRUCTURED = {"id": "call_s", "function": {"name": "get_time", "arguments": '{"zone": "CET"}'}}


def test_structured_call_then_native_block_are_calls_0_and_1(run: Run) -> None:
    """If a structured tool_calls delta precedes a native block, then they are calls 0 and 1."""
    run.server.queue(
        stream_step(
            [
                chunk("Plan.</think>\n\n"),
                chunk(tool_calls=[{"index": 0, **STRUCTURED}]),
                chunk(BLOCK[:30]),
                chunk(BLOCK[30:]),
                chunk(finish_reason="tool_calls"),
            ]
        ),
        whole("Plan.</think>\n\n" + BLOCK, tool_calls=[{"index": 0, **STRUCTURED}]),
    )

    events = run.stream(tools=TOOLS)
    reply = reply_of(events)

    assert calls(reply) == [(0, "get_time", {"zone": "CET"}), (1, "get_weather", ARGUMENTS)]
    assert reply.tool_calls[0].id == "call_s"
    assert [delta.index for delta in call_deltas(events)] == [0, 1]
    assert_history_holds_the_calls(reply, "Plan.</think>\n\n")
    assert without_ids(run.chat(tools=TOOLS)) == without_ids(reply)


def test_structured_call_at_index_1_and_a_native_block_keep_distinct_indices(run: Run) -> None:
    """If a structured call has index 1 (seen in recordings), then the native call gets another."""
    run.server.queue(whole("Plan.</think>\n\n" + BLOCK, tool_calls=[{"index": 1, **STRUCTURED}]))

    reply = run.chat(tools=TOOLS)

    indices = [call.index for call in reply.tool_calls]
    assert len(set(indices)) == 2


def test_native_block_then_structured_call_keep_distinct_indices(run: Run) -> None:
    """If a native block streams before a structured tool_calls delta, then indices differ."""
    run.server.queue(
        stream_step(
            [
                chunk("Plan.</think>\n\n" + BLOCK),
                chunk(tool_calls=[{"index": 0, **STRUCTURED}]),
                chunk(finish_reason="tool_calls"),
            ]
        )
    )

    events = run.stream(tools=TOOLS)
    reply = reply_of(events)

    assert len({call.index for call in reply.tool_calls}) == 2
    assert len({delta.index for delta in call_deltas(events)}) == 2


def test_standard_native_standard_calls_keep_distinct_indices(run: Run) -> None:
    """If a standard call, a native block and another standard call stream in that order, then
    the three calls and their deltas have three different indices."""
    second = {"id": "call_t", "function": {"name": "get_time", "arguments": '{"zone": "UTC"}'}}
    run.server.queue(
        stream_step(
            [
                chunk(tool_calls=[{"index": 0, **STRUCTURED}]),
                chunk("Plan.</think>\n\n" + BLOCK),
                chunk(tool_calls=[{"index": 1, **second}]),
                chunk(finish_reason="tool_calls"),
            ]
        )
    )

    events = run.stream(tools=TOOLS)
    reply = reply_of(events)

    assert len({call.index for call in reply.tool_calls}) == 3
    by_index: dict[int, set[str]] = {}
    for delta in call_deltas(events):
        if delta.id:
            by_index.setdefault(delta.index, set()).add(delta.id)
    assert all(len(ids) == 1 for ids in by_index.values())
    assert len(by_index) == 3


# History and stream endings.


@pytest.mark.parametrize("content", [TEMPLATE, BLOCK], ids=["after-thinking", "block-only"])
def test_next_request_carries_the_call_once_as_tool_calls(run: Run, content: str) -> None:
    """If reply.message goes back as history, then the call is sent once, in tool_calls only."""
    run.server.queue(streamed(cut(content, "<invoke")), whole("Plan.</think>\n\nSunny."))
    reply = reply_of(run.stream(tools=TOOLS))
    [call] = reply.tool_calls

    result = {"role": "tool", "tool_call_id": call.id, "content": "sunny"}
    run.chat([{"role": "user", "content": "Weather?"}, reply.message, result], tools=TOOLS)

    sent = run.server.requests[1].json()["messages"][1]
    assert sent == reply.message
    assert "minimax:tool_call" not in (sent["content"] or "")
    assert json.dumps(sent).count("get_weather") == 1
    assert [item["id"] for item in sent["tool_calls"]] == [call.id]


UNCLOSED_BLOCK = {
    "cut-inside-a-call": (
        'OK.\n<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Par',
        "length",
        [],
    ),
    "cut-after-an-invoke": (
        BLOCK.removesuffix("</minimax:tool_call>"),
        "stop",
        [(0, "get_weather", ARGUMENTS)],
    ),
}


@pytest.mark.parametrize(
    ("block", "finish", "expected"), UNCLOSED_BLOCK.values(), ids=UNCLOSED_BLOCK
)
def test_unclosed_block_at_the_end_loses_nothing(
    run: Run, block: str, finish: str, expected: list[tuple[int, str, Any]]
) -> None:
    """If the stream ends inside a block, then it is text whole, or a call when after </invoke>."""
    content = "Plan.</think>\n\n" + block
    run.server.queue(streamed(cut(content, "<minimax", "<parameter"), finish=finish))

    events = run.stream(tools=TOOLS)
    reply = reply_of(events)

    assert reply.raw == content
    assert calls(reply) == expected
    assert_one_whole_delta_per_call(events, reply)
    shown = "Plan.</think>\n\n" + texts(events, AnswerDelta)
    if expected:
        assert shown + block == content
        assert reply.message["content"] == "Plan.</think>\n\n"
    else:
        assert shown == content
        assert reply.message == {"role": "assistant", "content": content}
    assert texts(events, ThinkingDelta) == reply.thinking == "Plan."


def test_stream_dropped_inside_a_block_keeps_it_in_the_partial_raw(run: Run) -> None:
    """If the connection drops inside a block, then the partial reply's raw still holds it."""
    received = TEMPLATE[: TEMPLATE.index("Paris")]
    run.server.queue(stream_step([chunk(received[:20]), chunk(received[20:])], done=False))

    with pytest.raises(StreamInterrupted) as caught:
        run.stream(tools=TOOLS)

    partial = caught.value.partial
    assert partial is not None
    assert partial.raw == received
    assert partial.tool_calls == ()


@pytest.mark.parametrize("finish", ["stop", "length"])
def test_thinking_that_mentions_the_tag_streams_as_the_whole_reply_splits(
    run: Run, finish: str
) -> None:
    """If the reasoning mentions `<minimax:tool_call>` without a call and the answer follows in
    content, then the streamed reply is the whole one: thinking, then the answer, not cut."""
    reasoning = "<minimax:tool_call> is the tag I would use, but no tool is needed."
    answer = "Paris is the capital of France."
    pieces = [chunk(reasoning_content=reasoning[:20]), chunk(reasoning_content=reasoning[20:])]
    run.server.queue(
        stream_step([*pieces, chunk(answer), chunk(finish_reason=finish)]),
        whole(answer, finish, reasoning_content=reasoning),
    )

    events = run.stream(tools=TOOLS)
    reply = reply_of(events)

    assert (reply.thinking, reply.text, reply.cut_while_thinking) == (reasoning, answer, False)
    assert texts(events, ThinkingDelta) == reasoning
    assert texts(events, AnswerDelta) == answer
    first_answer = next(n for n, e in enumerate(events) if isinstance(e, AnswerDelta))
    last_thinking = max(n for n, e in enumerate(events) if isinstance(e, ThinkingDelta))
    assert last_thinking < first_answer
    assert without_ids(run.chat(tools=TOOLS)) == without_ids(reply)
