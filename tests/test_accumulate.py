"""Tests for m2kit._accumulate: chunks and whole completions become events and one Reply."""

from __future__ import annotations

import re
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
from m2kit._accumulate import (
    ChunkAccumulator,
    reasoning_text,
    reply_from_completion,
    stream_error,
    usage_from,
)
from m2kit._profiles import profile_for

if TYPE_CHECKING:
    from collections.abc import Sequence

    from m2kit import StreamEvent

M2_MODEL = "MiniMaxAI/MiniMax-M2"
GPT_OSS = "openai/gpt-oss-120b"
M2 = profile_for(M2_MODEL)
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


@pytest.mark.parametrize("model", [M2_MODEL, GPT_OSS])
@pytest.mark.parametrize("shape", SHAPES)
def test_streamed_reply_equals_the_whole_reply(shape: str, model: str) -> None:
    """If the same output comes streamed or whole, then both give the same Reply."""
    content, field, reasoning, finish = SHAPES[shape]
    chunks = [chunk(**_field(field, piece)) for piece in reasoning]
    chunks += [chunk(piece) for piece in content] + [chunk(finish_reason=finish, usage=USAGE)]
    whole = completion(
        "".join(content), **_field(field, "".join(reasoning)), finish_reason=finish, usage=USAGE
    )

    events, streamed = feed(chunks, model=model)

    assert streamed == reply_from_completion(whole, profile_for(model))
    assert texts(events, AnswerDelta).endswith(streamed.text)


def test_complete_reply_without_finish_reason_splits_alike_streamed_and_whole() -> None:
    """If M2 text with no </think> ends complete but with no finish reason, streamed ([DONE]) or
    whole (null), then both read it as the answer of a normal stop and keep finish_reason None."""
    streamed = feed([chunk("Paris is"), chunk(" the capital.")], done=True)[1]
    whole = reply_from_completion(completion("Paris is the capital.", finish_reason=None), M2)

    assert streamed == whole
    assert (whole.text, whole.thinking) == ("Paris is the capital.", None)
    assert whole.finish_reason is None


def test_partial_reply_without_close_tag_is_thinking() -> None:
    """If an M2 stream drops before </think>, then the partial reply holds it as thinking."""
    with pytest.raises(StreamInterrupted) as caught:
        feed([chunk("half a"), chunk(" thought")], done=False)

    partial = caught.value.partial
    assert partial is not None
    assert (partial.text, partial.thinking) == ("", "half a thought")


def test_partial_reply_splits_like_the_finished_one() -> None:
    """If reasoning follows inline thinking, then the partial reply splits as finish would."""
    accumulator = ChunkAccumulator(M2)
    accumulator.feed(chunk("plan</think>Hi"))
    accumulator.feed(chunk(reasoning_content="late"))

    partial = accumulator.partial()

    assert (partial.text, partial.thinking, partial.raw) == ("Hi", "plan\n\nlate", "plan</think>Hi")


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


@pytest.mark.parametrize(
    "field",
    [
        "reasoning_content",
        "reasoning",
        "reasoning_details",
    ],
)
def test_field_history_is_the_content_for_a_model_without_inline_tags(field: str) -> None:
    """If a model whose template reads no tags (gpt-oss) sends field thinking, then history keeps
    the content as received and sends no reasoning field (Groq and Cerebras answer 400)."""
    pieces = ["Greet ", "them.\n"]
    chunks = [chunk(**_field(field, piece)) for piece in pieces]
    chunks += [chunk("\nHello!"), chunk(finish_reason="stop")]
    whole = completion("\nHello!", **_field(field, "".join(pieces)))

    _, streamed = feed(chunks, model=GPT_OSS)

    expected = {"role": "assistant", "content": "\nHello!"}
    assert streamed.message == expected
    assert reply_from_completion(whole, profile_for(GPT_OSS)).message == expected
    assert (streamed.text, streamed.thinking) == ("Hello!", "Greet them.")


def test_field_history_next_to_tool_calls_for_a_model_without_inline_tags() -> None:
    """If gpt-oss sends field thinking and a tool call, then history has the call, no content."""
    chunks = [chunk(reasoning="Need weather."), chunk(tool_calls=[call(0, "{}", "c", "f")])]

    _, reply = feed(chunks, model=GPT_OSS)

    assert reply.message == {
        "role": "assistant",
        "content": None,
        "tool_calls": [ToolCall("c", "f", "{}").to_message()],
    }


def test_openrouter_reasoning_and_details_are_not_doubled() -> None:
    """If a delta carries the same text in reasoning and reasoning_details, then it counts once."""
    details = [{"type": "reasoning.text", "text": "Hmm."}]

    both = {"reasoning": "Hmm.", "reasoning_details": details}

    assert reasoning_text(both) == "Hmm."
    assert reasoning_text({"reasoning_details": details}) == "Hmm."
    assert reasoning_text({"reasoning": None, "reasoning_content": None}) is None
    assert reasoning_text({"reasoning_details": [{"type": "reasoning.encrypted"}]}) is None


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


def test_parallel_calls_sharing_an_index_are_kept_apart_by_id() -> None:
    """If parallel calls all come at index 0 with their own ids, then each is a call of its own,
    and fragments without an id join the latest one."""
    chunks = [
        chunk(tool_calls=[call(0, "", "call_a", "get_weather")]),
        chunk(tool_calls=[call(0, WEATHER)]),
        chunk(tool_calls=[call(0, "", "call_b", "get_time")]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": "{"}}]),
        chunk(tool_calls=[call(0, "}")]),
        chunk(finish_reason="tool_calls"),
    ]

    _, reply = feed(chunks)

    assert reply.tool_calls == (
        ToolCall("call_a", "get_weather", WEATHER, 0),
        ToolCall("call_b", "get_time", "{}", 0),
    )


def test_a_call_split_in_two_by_sglang_is_one_call() -> None:
    """If a call's name comes with empty arguments and its arguments at the next index with no
    name or id, the start of the object repeated (sglang#23071), then it is one call, whole."""
    whole = '{"command": "head -100", "description": "Run tests"}'
    repeated = '{"command": "head -100"' + whole
    chunks = [
        chunk(tool_calls=[call(0, "", "call_a", "bash")]),
        chunk(tool_calls=[{"index": 1, "id": None, "function": {"name": None, "arguments": ""}}]),
        chunk(tool_calls=[call(1, repeated[:30])]),
        chunk(tool_calls=[call(1, repeated[30:])]),
        chunk(finish_reason="tool_calls"),
    ]

    _, reply = feed(chunks)

    assert reply.tool_calls == (ToolCall("call_a", "bash", whole, 0),)


@pytest.mark.parametrize(
    "arguments",
    ['{"a": 1}', '{"a": "{"}', '{"a": 1', '{"a"{"b": 2}', "", '{"x": "{\\"x\\": 1}"}'],
)
def test_arguments_are_kept_unless_a_repeated_start_explains_them(arguments: str) -> None:
    """If arguments are JSON, or are not JSON in any other way than a repeated start, then they
    are kept exactly as sent."""
    _, reply = feed([chunk(tool_calls=[call(0, arguments, "call_a", "f")])])

    assert reply.tool_calls[0].arguments == arguments


def test_a_repeated_id_joins_its_call() -> None:
    """If every fragment of a call repeats its id, then the fragments still make one call."""
    chunks = [chunk(tool_calls=[call(0, part, "call_a", "f")]) for part in ('{"a": ', "1}")]

    _, reply = feed(chunks)

    assert reply.tool_calls == (ToolCall("call_a", "f", '{"a": 1}', 0),)


def test_whole_completion_calls_sharing_an_index_are_kept_apart() -> None:
    """If a whole completion lists two calls both at index 0, then both are kept, in order."""
    tool_calls = [call(0, WEATHER, "call_a", "get_weather"), call(0, "{}", "call_b", "get_time")]

    reply = reply_from_completion(completion(None, tool_calls=tool_calls), M2)

    assert [(c.id, c.name, c.index) for c in reply.tool_calls] == [
        ("call_a", "get_weather", 0),
        ("call_b", "get_time", 0),
    ]


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

    (found,) = reply.tool_calls
    assert re.fullmatch(r"call_[0-9a-f]{24}", found.id)
    assert found == ToolCall(found.id, "", "{}", 0)


def test_calls_without_an_id_or_sharing_one_get_ids_of_their_own() -> None:
    """If a call has no id, or the id of an earlier call, then it gets a fresh one, the same in
    every reply built from the stream, so that each result answers one call."""
    chunks = [
        chunk(tool_calls=[call(0, "{}", "dup", "f")]),
        chunk(tool_calls=[call(1, "{}", "dup", "g")]),
        chunk(tool_calls=[call(2, "{}", "", "h")]),
        chunk(tool_calls=[call(3, "{}", "call_0", "k")]),
        chunk(finish_reason="tool_calls"),
    ]

    _, reply = feed(chunks)

    ids = [found.id for found in reply.tool_calls]
    assert ids[0] == "dup"
    assert ids[3] == "call_0"
    assert len(set(ids)) == 4
    assert [item["id"] for item in reply.message["tool_calls"]] == ids


@pytest.mark.parametrize(
    ("arguments", "sent"),
    [
        ('{"a": 1}', '{"a": 1}'),
        ("{'a': 1}", '{"a": 1}'),
        ("", "{}"),
        ('{"a": 1', "{}"),
        ("[1, 2]", "{}"),
        ("[" * 1000, "{}"),
    ],
)
def test_history_carries_arguments_a_server_can_parse(arguments: str, sent: str) -> None:
    """If a call's arguments are not a JSON object, then history carries the object they spell,
    or {} (vLLM refuses a request whose past calls it cannot parse); the reply keeps them as
    sent."""
    _, reply = feed([chunk(tool_calls=[call(0, arguments, "c1", "f")])])

    assert reply.tool_calls[0].arguments == arguments
    assert reply.message["tool_calls"][0]["function"]["arguments"] == sent


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


# Payloads of unexpected shapes: ignored, never a crash.


def _choice(**fields: Any) -> dict[str, Any]:
    return chunk() | {"choices": [{"index": 0, **fields}]}


ODD_CHUNKS: dict[str, dict[str, Any]] = {
    "delta-a-string": _choice(delta="Hi"),
    "delta-a-list": _choice(delta=["Hi"]),
    "choices-a-dict": chunk() | {"choices": {"index": 0, "delta": {"content": "x"}}},
    "choices-a-number": chunk() | {"choices": 3},
    "choices-a-string": chunk() | {"choices": "abc"},
    "function-a-string": chunk(tool_calls=[{"index": 0, "id": "a", "function": "get_weather"}]),
    "call-without-function": chunk(tool_calls=[{"index": 0, "id": "a", "type": "function"}]),
    "tool-calls-a-string": _choice(delta={"tool_calls": "get_weather"}),
    "name-a-number": chunk(tool_calls=[{"index": 0, "function": {"name": 7}}]),
    "index-a-string": chunk(tool_calls=[{"index": "0", "function": {"name": None}}]),
    "usage-a-list": chunk() | {"usage": [1, 2]},
    "usage-a-string": chunk() | {"usage": "lots"},
    "x_groq-a-string": chunk() | {"x_groq": "fast"},
    "reasoning-a-number": _choice(delta={"reasoning_content": 3, "reasoning": ["x"]}),
    "details-a-dict": _choice(delta={"reasoning_details": {"text": "x"}}),
    "content-a-number": _choice(delta={"content": 5}),
    "finish-a-dict": _choice(delta={}, finish_reason={"type": "stop"}),
    "model-a-dict": chunk() | {"model": {"id": "m"}},
}


@pytest.mark.parametrize("odd", ODD_CHUNKS)
def test_a_chunk_of_odd_shape_is_ignored(odd: str) -> None:
    """If a chunk has a field of an unexpected type, then it is ignored and the reply comes."""
    accumulator = ChunkAccumulator(PLAIN)
    for piece in (ODD_CHUNKS[odd], chunk("Hi", finish_reason="stop"), ODD_CHUNKS[odd]):
        accumulator.feed(piece)

    _, reply = accumulator.finish(done=True)

    assert (reply.text, reply.tool_calls, reply.finish_reason) == ("Hi", (), "stop")
    assert reply.model == "MiniMaxAI/MiniMax-M2"


def test_usage_fields_of_odd_types_are_left_out() -> None:
    """If usage counts are text, floats or booleans, or details a list, then they read as None."""
    raw = {"prompt_tokens": "10", "completion_tokens": 5.0, "total_tokens": True}

    assert usage_from({"usage": raw | {"completion_tokens_details": [3]}}) == Usage()
    assert usage_from({"usage": None, "x_groq": {"usage": "x"}}) is None


ODD_COMPLETIONS: dict[str, dict[str, Any]] = {
    "choices-a-dict": {"choices": {"message": {"content": "Hi"}}},
    "choices-empty": {"choices": []},
    "choices-missing": {"object": "chat.completion"},
    "choice-a-string": {"choices": ["Hi"]},
    "message-a-list": {"choices": [{"message": ["Hi"], "finish_reason": "stop"}]},
    "message-a-string": {"choices": [{"message": "Hi"}]},
    "function-a-string": completion(None, tool_calls=[{"id": "a", "function": "get_weather"}]),
    "call-without-function": completion(None, tool_calls=[{"id": "a", "type": "function"}]),
    "usage-a-string": completion("") | {"usage": "lots", "model": 7},
}


@pytest.mark.parametrize("odd", ODD_COMPLETIONS)
def test_a_completion_of_odd_shape_gives_an_empty_reply(odd: str) -> None:
    """If a whole completion has a part of an unexpected type, then it reads as an empty reply."""
    reply = reply_from_completion(ODD_COMPLETIONS[odd], M2)

    assert (reply.text, reply.thinking, reply.tool_calls, reply.usage) == ("", None, (), None)
    assert reply.model in (None, "MiniMaxAI/MiniMax-M2")


PARTS = [
    {"type": "text", "text": "Plan.</think>"},
    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    {"type": "text", "text": "Hi"},
    {"type": "text", "text": None},
    "stray",
]


def test_content_as_a_list_of_parts_is_joined_from_its_text_parts() -> None:
    """If content comes as a list of parts, streamed or whole, then its text parts are joined."""
    streamed = feed([_choice(delta={"content": PARTS}), chunk(finish_reason="stop")])[1]
    message = {"content": PARTS}
    whole = completion(None) | {"choices": [{"message": message, "finish_reason": "stop"}]}

    assert streamed == reply_from_completion(whole, M2)
    assert (streamed.text, streamed.thinking, streamed.raw) == ("Hi", "Plan.", "Plan.</think>Hi")


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


TOKEN = "tok-abcdef123456"
ERROR_SHAPES: dict[str, object] = {
    "error-object": {"message": f"key {TOKEN} refused", "code": f"bad_{TOKEN}"},
    "event-error-json": f'{{"error": {{"message": "key {TOKEN} refused"}}}}',
    "event-error-text": f"key {TOKEN} refused",
    "unreadable-quote": f"unreadable stream data: key {TOKEN} refused",
    "error-without-message": {"detail": f"key {TOKEN} refused"},
}


@pytest.mark.parametrize("shape", ERROR_SHAPES)
def test_stream_errors_never_carry_the_token(shape: str) -> None:
    """If an error sent in a 200 stream quotes the token, then the exception has it redacted."""
    accumulator = ChunkAccumulator(M2, secret=TOKEN)
    accumulator.feed(chunk("Plan.</think>Par"))
    error = ERROR_SHAPES[shape]

    raised = [accumulator.error_event(error)]
    if isinstance(error, dict):
        with pytest.raises(StreamErrorEvent) as caught:
            accumulator.feed(chunk() | {"error": error})
        raised.append(caught.value)

    for exc in raised:
        assert TOKEN not in f"{exc} {exc.message} {exc.code}"
        assert "[token]" in exc.message
        assert exc.partial is not None
        assert exc.partial.text == "Par"


@pytest.mark.parametrize("shape", ["error-object", "event-error-text"])
def test_completion_errors_never_carry_the_token(shape: str) -> None:
    """If a whole completion's error object or text quotes the token, then it is redacted."""
    with pytest.raises(StreamErrorEvent) as caught:
        reply_from_completion({"error": ERROR_SHAPES[shape]}, M2, secret=TOKEN)

    assert TOKEN not in caught.value.message
    assert caught.value.partial is None


def test_stream_error_reads_every_shape_alike() -> None:
    """If an error comes as an object, its JSON text or wrapped in `error`, then it reads alike."""
    error = {"message": "Upstream went away", "code": 502}
    text = '{"message": "Upstream went away", "code": 502}'

    for given in (error, text, f'{{"error": {text}}}'):
        raised = stream_error(given, partial=None)
        assert (raised.message, raised.code) == ("Upstream went away", 502)
    assert stream_error({"detail": "x"}, partial=None).message == '{"detail": "x"}'


def test_other_choices_are_ignored() -> None:
    """If a chunk carries a second choice, then only choice 0 makes the reply."""
    second = {"index": 1, "delta": {"content": "other"}, "finish_reason": None}
    first = chunk("Plan.</think>Hi", finish_reason="stop")

    _, reply = feed([first | {"choices": [*first["choices"], second]}])

    assert reply.text == "Hi"


def test_a_fresh_id_on_every_fragment_is_still_one_call() -> None:
    """If a server sends a new id on each fragment of one call, then it is still one call."""
    chunks = [
        chunk(tool_calls=[call(0, "", "call_1", "get_weather")]),
        chunk(tool_calls=[call(0, '{"city"', "call_2")]),
        chunk(tool_calls=[call(0, ': "Paris"}', "call_3")]),
        chunk(finish_reason="tool_calls"),
    ]

    _, reply = feed(chunks)

    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_1", "get_weather", '{"city": "Paris"}')
    ]
