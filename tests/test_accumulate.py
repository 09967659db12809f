"""Tests for m2kit._accumulate: chunks and whole completions become events and one Reply."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from _server import chunk, completion
from m2kit import (
    AnswerDelta,
    Reply,
    StreamErrorEvent,
    StreamInterrupted,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from m2kit._accumulate import ChunkAccumulator, reasoning_text, reply_from_completion, usage_from
from m2kit._profiles import profile_for

if TYPE_CHECKING:
    from collections.abc import Sequence

    from m2kit import StreamEvent

M2 = profile_for("MiniMaxAI/MiniMax-M2")
PLAIN = profile_for("meta-llama/Llama-3.3-70B-Instruct")
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
WEATHER = '{"city": "Paris"}'


def feed(
    chunks: Sequence[dict[str, Any]], *, done: bool = True, model: str = "MiniMaxAI/MiniMax-M2"
) -> tuple[list[StreamEvent], Reply]:
    accumulator = ChunkAccumulator(profile_for(model))
    events: list[StreamEvent] = []
    for piece in chunks:
        events.extend(accumulator.feed(piece))
    last, reply = accumulator.finish(done=done)
    return events + last, reply


def texts(events: Sequence[StreamEvent], kind: type[ThinkingDelta | AnswerDelta]) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


def call(index: int, arguments: str, call_id: str = "", name: str = "") -> dict[str, Any]:
    function = {"arguments": arguments} | ({"name": name} if name else {})
    return {"index": index, "id": call_id, "type": "function", "function": function}


# Thinking shapes: the stream and the whole completion agree.

# (content pieces, reasoning field, reasoning pieces, finish reason)
SHAPES: dict[str, tuple[list[str], str | None, list[str], str]] = {
    "inline-no-open-tag": (["Greet them.", "</think>\n\n", "Hello!"], None, [], "stop"),
    "leading-open-tag": (["<think>\nGreet them.\n", "</think>\n\nHello!"], None, [], "stop"),
    "close-tag-split": (["Greet them.</thi", "nk>\n\nHello!"], None, [], "stop"),
    "reasoning_content": (["Hello!"], "reasoning_content", ["Greet ", "them."], "stop"),
    "reasoning": (["Hello!"], "reasoning", ["Greet ", "them."], "stop"),
    "reasoning_details": (["Hello!"], "reasoning_details", ["Greet ", "them."], "stop"),
    "cut-while-thinking": (["Greet ", "them and"], None, [], "length"),
    "never-closed-stop": (["Hello", "!"], None, [], "stop"),
}


def _field(name: str | None, text: str) -> dict[str, Any]:
    if name == "reasoning_details":
        return {name: [{"type": "reasoning.text", "text": text}]}
    return {name: text} if name else {}


@pytest.mark.parametrize("shape", SHAPES)
def test_streamed_reply_equals_the_whole_reply(shape: str) -> None:
    """If the same output comes streamed or whole, then both give the same Reply."""
    content, field, reasoning, finish = SHAPES[shape]
    chunks = [chunk(**_field(field, piece)) for piece in reasoning]
    chunks += [chunk(piece) for piece in content] + [chunk(finish_reason=finish, usage=USAGE)]
    whole = completion(
        "".join(content), **_field(field, "".join(reasoning)), finish_reason=finish, usage=USAGE
    )

    events, streamed = feed(chunks)

    assert streamed == reply_from_completion(whole, M2)
    assert texts(events, AnswerDelta).endswith(streamed.text)


@pytest.mark.parametrize(
    ("shape", "text", "thinking", "source"),
    [
        ("inline-no-open-tag", "Hello!", "Greet them.", "inline"),
        ("close-tag-split", "Hello!", "Greet them.", "inline"),
        ("reasoning_content", "Hello!", "Greet them.", "field"),
        ("reasoning_details", "Hello!", "Greet them.", "field"),
        ("cut-while-thinking", "", "Greet them and", "inline"),
        ("never-closed-stop", "Hello!", None, None),
    ],
)
def test_thinking_shape_gives_text_and_thinking(
    shape: str, text: str, thinking: str | None, source: str | None
) -> None:
    """If a thinking shape is streamed, then text, thinking and their source come out split."""
    content, field, reasoning, finish = SHAPES[shape]
    chunks = [chunk(**_field(field, piece)) for piece in reasoning]

    _, reply = feed([*chunks, *(chunk(piece) for piece in content), chunk(finish_reason=finish)])

    assert (reply.text, reply.thinking, reply.thinking_source) == (text, thinking, source)
    assert reply.cut_while_thinking == (finish == "length")


def test_inline_history_is_the_raw_content() -> None:
    """If thinking came inline, then the history message holds the content exactly as received."""
    _, reply = feed(
        [chunk("Greet them.</thi"), chunk("nk>\n\nHello!"), chunk(finish_reason="stop")]
    )

    assert reply.message == {"role": "assistant", "content": "Greet them.</think>\n\nHello!"}
    assert reply.raw == reply.message["content"]


def test_field_history_is_rebuilt_inline() -> None:
    """If thinking came in a field, then the history message has it back in M2's native form."""
    _, reply = feed(
        [chunk(reasoning_content="Greet them."), chunk("Hello!"), chunk(finish_reason="stop")]
    )

    assert reply.message["content"] == "<think>\nGreet them.\n</think>\n\nHello!"
    assert reply.raw == "Hello!"


def test_openrouter_reasoning_and_details_are_not_doubled() -> None:
    """If a delta carries the same text in reasoning and reasoning_details, then it counts once."""
    details = [{"type": "reasoning.text", "text": "Hmm."}]

    assert reasoning_text({"reasoning": "Hmm.", "reasoning_details": details}) == "Hmm."
    assert reasoning_text({"reasoning": None, "reasoning_details": details}) == "Hmm."
    assert reasoning_text({"reasoning": None, "reasoning_content": None}) is None


def test_plain_model_keeps_think_mid_answer() -> None:
    """If a model that does not start in thinking mentions </think>, then all of it is answer."""
    _, reply = feed([chunk("Use </think> to close."), chunk(finish_reason="stop")], model="x/llama")

    assert (reply.text, reply.thinking) == ("Use </think> to close.", None)


# Usage, wherever it comes.


def _running(total: int) -> dict[str, int]:
    return {"prompt_tokens": 10, "completion_tokens": total - 10, "total_tokens": total}


USAGE_PLACEMENTS: dict[str, list[dict[str, Any]]] = {
    "final-empty-choices": [
        chunk("Hi"),
        chunk(finish_reason="stop"),
        chunk(choices=False, usage=USAGE),
    ],
    "last-content-chunk": [chunk("H"), chunk("i", finish_reason="stop", usage=USAGE)],
    "running-total": [
        chunk("H", usage=_running(11)),
        chunk("i", usage=_running(12)),
        chunk(finish_reason="stop", usage=USAGE),
    ],
    "groq-x_groq": [chunk("Hi"), chunk(finish_reason="stop") | {"x_groq": {"usage": USAGE}}],
}


@pytest.mark.parametrize("placement", USAGE_PLACEMENTS)
def test_usage_is_right_wherever_it_comes(placement: str) -> None:
    """If usage comes last, with content, as a running total or in x_groq, then the last wins."""
    events, reply = feed(USAGE_PLACEMENTS[placement])

    assert reply.usage == Usage(10, 5, 15)
    assert [e for e in events if isinstance(e, UsageUpdate)][-1] == UsageUpdate(Usage(10, 5, 15))
    assert reply.text == "Hi"


def test_null_usage_keeps_the_earlier_one() -> None:
    """If a later chunk has usage null (TGI), then the usage seen before stays."""
    _, reply = feed([chunk("Hi", usage=USAGE), chunk(finish_reason="stop") | {"usage": None}])

    assert reply.usage == Usage(10, 5, 15)


def test_reasoning_tokens_come_from_completion_details() -> None:
    """If usage has completion_tokens_details.reasoning_tokens, then usage carries it."""
    raw = USAGE | {"completion_tokens_details": {"reasoning_tokens": 3}}

    assert usage_from({"usage": raw}) == Usage(10, 5, 15, reasoning_tokens=3)


# Tool-call deltas.


def test_tool_call_fragments_join_per_index() -> None:
    """If arguments come in fragments with empty ids on follow-ups, then each call is joined."""
    chunks = [
        chunk(tool_calls=[call(0, "", "call_a", "get_weather")]),
        chunk(tool_calls=[call(0, '{"city": ')]),
        chunk(tool_calls=[call(1, "", "call_b", "get_time")]),
        chunk(tool_calls=[call(0, '"Paris"}')]),
        chunk(tool_calls=[call(1, "{}")]),
        chunk(finish_reason="tool_calls"),
    ]

    events, reply = feed(chunks)

    assert reply.tool_calls == (
        ToolCall("call_a", "get_weather", WEATHER, 0),
        ToolCall("call_b", "get_time", "{}", 1),
    )
    assert events[1] == ToolCallDelta(0, "", "", '{"city": ')
    assert reply.message["tool_calls"][0] == {
        "id": "call_a",
        "type": "function",
        "function": {"name": "get_weather", "arguments": WEATHER},
    }


def test_whole_tool_call_in_one_chunk_starting_at_index_1() -> None:
    """If a whole call arrives in one chunk at index 1 (Anthropic-compatible), then it is kept."""
    _, reply = feed([chunk("Reading."), chunk(tool_calls=[call(1, WEATHER, "t1", "get_weather")])])

    assert reply.tool_calls == (ToolCall("t1", "get_weather", WEATHER, 1),)


def test_legacy_tgi_object_tool_calls_are_read() -> None:
    """If tool_calls is one object with null names and empty ids (TGI 2.2), then it is joined."""
    legacy = [
        {"index": 0, "id": "", "function": {"name": None, "arguments": part}} for part in "{}"
    ]

    _, reply = feed(
        [chunk() | {"choices": [{"index": 0, "delta": {"tool_calls": item}}]} for item in legacy]
    )

    assert reply.tool_calls == (ToolCall("call_0", "", "{}", 0),)


def test_json_object_arguments_become_json_text() -> None:
    """If a whole completion gives arguments as a JSON object (older TGI), then they become text."""
    tool_calls = [{"id": "0", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]

    reply = reply_from_completion(completion(None, tool_calls=tool_calls), M2)

    assert reply.tool_calls == (ToolCall("0", "get_weather", '{"city": "Paris"}', 0),)
    assert reply.message["content"] is None


def test_field_thinking_stays_in_history_next_to_tool_calls() -> None:
    """If a reply is only field thinking and a tool call, then history keeps the thinking."""
    _, reply = feed([chunk(reasoning="Need weather."), chunk(tool_calls=[call(0, "{}", "c", "f")])])

    assert reply.message["content"] == "<think>\nNeed weather.\n</think>\n\n"


# Stream state and endings.


def test_started_turns_true_with_the_first_answer_byte() -> None:
    """If only a role, blank content and usage arrived, then the answer has not started yet."""
    accumulator = ChunkAccumulator(M2)
    accumulator.feed(chunk(role="assistant", content=""))
    accumulator.feed(chunk(choices=False, usage=USAGE))
    assert not accumulator.started

    accumulator.feed(chunk(tool_calls=[call(0, "{")]))
    assert accumulator.started


def test_end_without_finish_or_done_is_interrupted() -> None:
    """If a stream ends with neither [DONE] nor a finish reason, then it raises with the partial."""
    with pytest.raises(StreamInterrupted) as caught:
        feed([chunk("Plan.</think>"), chunk("Hel")], done=False)

    partial = caught.value.partial
    assert partial is not None
    assert (partial.text, partial.thinking, partial.finish_reason) == ("Hel", "Plan.", None)


def test_finish_reason_without_done_is_complete() -> None:
    """If a stream ends without [DONE] but with a finish reason (cerebras), then it is complete."""
    _, reply = feed([chunk("Plan.</think>Hi"), chunk(finish_reason="stop")], done=False)

    assert (reply.text, reply.finish_reason) == ("Hi", "stop")


def test_error_object_in_a_chunk_raises_with_its_message() -> None:
    """If a chunk carries an error object (OpenRouter), then StreamErrorEvent has its message."""
    accumulator = ChunkAccumulator(M2)
    accumulator.feed(chunk("Plan.</think>Par"))

    with pytest.raises(StreamErrorEvent) as caught:
        accumulator.feed(chunk() | {"error": {"code": 400, "message": "Token limit reached"}})

    assert (caught.value.message, caught.value.code) == ("Token limit reached", 400)
    assert caught.value.partial is not None
    assert caught.value.partial.text == "Par"


def test_error_event_data_gives_the_server_message() -> None:
    """If `event: error` data is JSON with an error object (Groq), then its message is read."""
    error = ChunkAccumulator(M2).error_event(
        '{"error": {"message": "Tool call failed", "code": "x"}}'
    )

    assert (error.message, error.code) == ("Tool call failed", "x")


def test_other_choices_are_ignored() -> None:
    """If a chunk carries a second choice, then only choice 0 makes the reply."""
    second = {"index": 1, "delta": {"content": "other"}, "finish_reason": None}
    first = chunk("Plan.</think>Hi", finish_reason="stop")

    _, reply = feed([first | {"choices": [*first["choices"], second]}])

    assert reply.text == "Hi"
