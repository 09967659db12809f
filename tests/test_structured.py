"""Tests for m2kit._structured: finding the JSON in an answer, the request parts, repair rounds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic wants it, not typing's, before 3.12

from m2kit._errors import ConfigError, M2Error, StructuredOutputError
from m2kit._structured import (
    INSTRUCTION,
    NoJSONError,
    StructuredCall,
    describe_errors,
    extract_json,
    instruction_for,
    prepared,
    repair_message,
    response_format_for,
    schema_name,
    with_instruction,
)
from m2kit._types import Reply


class City(BaseModel):
    name: str
    population: int


class Point(TypedDict):
    x: int
    y: int


@dataclass
class Pair:
    left: str
    right: str


def reply(text: str, *, raw: str | None = None, finish_reason: str = "stop") -> Reply:
    raw = text if raw is None else raw
    message = {"role": "assistant", "content": raw}
    return Reply(text=text, thinking=None, raw=raw, message=message, finish_reason=finish_reason)


# extract_json


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('\n\n  {"a": 1}\n', {"a": 1}),
        ('Sure, here it is: {"a": 1}. Anything else?', {"a": 1}),
        ('Let me think {about} this. {"a": 1}', {"a": 1}),
        ('{"a": "}{ and ]["}', {"a": "}{ and ]["}),
        ('{"a": {"b": [1, {"c": null}]}}', {"a": {"b": [1, {"c": None}]}}),
        ('[{"a": 1}, {"a": 2}]', [{"a": 1}, {"a": 2}]),
        ("The list: [1, 2, 3] and that is all", [1, 2, 3]),
        ('{"a": 1} {"b": 2}', {"a": 1}),
        ('[1] then {"b": 2}', [1]),
        ("42", 42),
        ('"just text"', "just text"),
    ],
    ids=[
        "bare",
        "blank-lines",
        "text-around",
        "braces-in-prose-first",
        "braces-in-strings",
        "nested",
        "array-of-objects",
        "array-in-prose",
        "two-values",
        "array-then-object",
        "lone-number",
        "lone-string",
    ],
)
def test_first_json_value_is_found(text: str, expected: Any) -> None:
    """If an answer holds JSON among other text, then the first complete value is returned."""
    assert extract_json(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"a": 1}\n```',
        '```JSON\n{"a": 1}\n```',
        '```\n{"a": 1}\n```',
        'Here you go:\n\n```json\n{"a": 1}\n```\n\nHope it helps {x}.',
        'Inline ```json {"a": 1}```',
    ],
    ids=["json", "upper-case", "bare", "prose-around", "inline"],
)
def test_fenced_json_is_read(text: str) -> None:
    """If the JSON is inside a Markdown code fence, then the fence is not part of the value."""
    assert extract_json(text) == {"a": 1}


def test_fence_inside_a_json_string_survives() -> None:
    """If a JSON string holds a code fence, then the value keeps it whole."""
    text = '```json\n{"code": "```py\\nprint(1)\\n```"}\n```'

    assert extract_json(text) == {"code": "```py\nprint(1)\n```"}


def test_fenced_block_wins_over_braces_before_it() -> None:
    """If JSON-looking prose comes before a json fence, then the value in the fence wins."""
    text = 'Use [1] as a default.\n```json\n{"a": 1}\n```'

    assert extract_json(text) == {"a": 1}


@pytest.mark.parametrize(
    "text",
    [
        '<think>\nmaybe {"a": 0}?\n</think>\n\n{"a": 1}',
        '  <think>[0]</think>```json\n{"a": 1}\n```',
    ],
    ids=["think-then-json", "think-then-fence"],
)
def test_leftover_thinking_is_skipped(text: str) -> None:
    """If a think block opens the text, then drafts inside it are never taken for the answer."""
    assert extract_json(text) == {"a": 1}


def test_unclosed_thinking_holds_no_answer() -> None:
    """If the text is a think block that never closes, then no JSON is found in its drafts."""
    with pytest.raises(NoJSONError, match="empty"):
        extract_json('<think>drafting {"a": 1}')


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the answer is empty"),
        ("   \n", "the answer is empty"),
        ("I cannot help with that.", "the answer holds no JSON object or array"),
        ('{"a": 1,', "no complete JSON value (Expecting property name"),
        ("{name: 'x'}", "the answer is not valid JSON: Expecting property name"),
    ],
    ids=["empty", "blank", "prose", "truncated", "python-repr"],
)
def test_no_json_is_a_value_error_with_a_reason(text: str, reason: str) -> None:
    """If there is no complete JSON value, then a ValueError says why in one short line."""
    with pytest.raises(NoJSONError) as caught:
        extract_json(text)

    assert isinstance(caught.value, ValueError)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)
    assert len(str(caught.value)) < 200


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_PROSE = st.text(st.characters(blacklist_characters="{[<`"), max_size=40)


@given(
    value=st.dictionaries(st.text(), _JSON, max_size=4) | st.lists(_JSON, max_size=4),
    before=_PROSE,
    after=_PROSE,
    fenced=st.booleans(),
)
def test_any_json_value_round_trips(value: Any, before: str, after: str, fenced: bool) -> None:
    """If any JSON object or array sits in prose, fenced or not, then it comes back equal."""
    dumped = json.dumps(value, indent=2 if fenced else None)
    body = f"```json\n{dumped}\n```" if fenced else dumped

    assert extract_json(f"{before}\n{body}\n{after}") == value


# The request: response_format, instruction, name


def test_json_schema_mode_carries_the_models_schema() -> None:
    """If the mode is json_schema, then response_format holds the model's name and JSON Schema."""
    assert response_format_for(City, "json_schema") == {
        "type": "json_schema",
        "json_schema": {"name": "City", "schema": City.model_json_schema(), "strict": False},
    }


def test_other_modes_carry_no_schema() -> None:
    """If the mode is json_object or None, then response_format is a bare JSON object or absent."""
    assert response_format_for(City, "json_object") == {"type": "json_object"}
    assert response_format_for(City, None) is None


@pytest.mark.parametrize(
    ("schema_type", "name"),
    [
        (City, "City"),
        (list[City], "list_City"),
        (dict[str, City], "dict_str_City"),
        (Point, "Point"),
        (Pair, "Pair"),
        (City | None, "City_None"),
    ],
)
def test_schema_names_are_what_servers_accept(schema_type: Any, name: str) -> None:
    """If the schema is a class or a generic, then its name is plain letters, digits and _."""
    assert schema_name(schema_type) == name


def test_long_schema_names_are_cut_to_64() -> None:
    """If a schema's name is longer than 64 characters, then it is cut to 64."""
    long = type("A" * 80, (BaseModel,), {"__annotations__": {"x": int}})

    assert schema_name(long) == "A" * 64


@pytest.mark.parametrize("schema_type", [list[City], Point, Pair])
def test_any_type_pydantic_takes_is_a_schema(schema_type: Any) -> None:
    """If the schema is list[Model], a TypedDict or a dataclass, then its JSON Schema is built."""
    _, schema = prepared(schema_type)

    assert schema == TypeAdapter(schema_type).json_schema()
    assert response_format_for(schema_type, "json_schema") is not None


def test_a_type_pydantic_refuses_is_a_config_error() -> None:
    """If pydantic cannot build a schema for the type, then a one-line ConfigError names it."""

    class Opaque:
        pass

    with pytest.raises(ConfigError, match="is not a schema pydantic can validate") as caught:
        prepared(Opaque)

    assert "\n" not in str(caught.value)
    assert "BaseModel" in caught.value.hint


def test_instruction_holds_the_schema_as_compact_json() -> None:
    """If the schema goes in the prompt, then the line holds the JSON Schema, parseable."""
    line = instruction_for(City)

    assert line.startswith(INSTRUCTION)
    assert json.loads(line[len(INSTRUCTION) :]) == City.model_json_schema()


def test_instruction_goes_in_a_new_system_message_first() -> None:
    """If there is no system message, then the instruction becomes one, before the others."""
    assert with_instruction("Hi", "JSON please") == [
        {"role": "system", "content": "JSON please"},
        {"role": "user", "content": "Hi"},
    ]


def test_instruction_joins_an_existing_system_message() -> None:
    """If the messages start with a system message, then the instruction is added to it, a copy."""
    given_messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    parts = [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]}]

    assert with_instruction(given_messages, "JSON")[0]["content"] == "Be brief.\n\nJSON"
    assert with_instruction(parts, "JSON")[0]["content"][-1] == {"type": "text", "text": "JSON"}
    assert given_messages[0]["content"] == "Be brief."


# Repair messages and errors


def test_repair_message_says_what_was_wrong() -> None:
    """If an answer is unusable, then the repair message is a user turn naming the problem."""
    message = repair_message("the answer holds no JSON object or array")

    assert message["role"] == "user"
    assert "the answer holds no JSON object or array" in message["content"]
    assert "only the JSON value" in message["content"]


def test_validation_errors_read_as_one_short_line() -> None:
    """If pydantic finds errors, then each reads `where: what` on one line."""
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(list[City]).validate_python([{"name": "Paris", "population": "many"}, {}])

    assert describe_errors(caught.value) == (
        "0.population: Input should be a valid integer, unable to parse string as an integer;"
        " 1.name: Field required; 1.population: Field required"
    )


def test_many_validation_errors_are_counted_not_listed() -> None:
    """If pydantic finds more than five errors, then the rest are counted."""
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(list[int]).validate_python(["a"] * 8)

    assert describe_errors(caught.value).endswith("; and 3 more")


def test_structured_output_error_keeps_the_last_reply() -> None:
    """If parse gives up, then the error holds the reply, its raw text, answer and the problem."""
    last = reply("nope", raw="<think>hm</think>nope")

    error = StructuredOutputError("no valid City", reply=last, errors="no JSON")

    assert isinstance(error, M2Error)
    assert (error.raw, error.text, error.errors, error.reply) == (last.raw, "nope", "no JSON", last)
    assert "repairs=" in error.hint


# StructuredCall, fed replies by hand


def test_a_valid_answer_ends_the_call() -> None:
    """If the first answer is valid, then take returns True and value is the model instance."""
    call = StructuredCall(City, "Paris?", mode="json_schema", repairs=1, params={})

    assert call.take(reply('{"name": "Paris", "population": 2100000}'))
    assert call.value == City(name="Paris", population=2100000)
    assert call.messages == [
        {"role": "system", "content": instruction_for(City)},
        {"role": "user", "content": "Paris?"},
    ]


def test_an_invalid_answer_adds_the_reply_and_a_repair() -> None:
    """If an answer is invalid, then history gains the reply's message and a repair message."""
    call = StructuredCall(City, "Paris?", mode="json_schema", repairs=1, params={})
    first = reply("Paris, about 2 million", raw="<think>hm</think>Paris, about 2 million")

    assert not call.take(first)
    assert call.messages[2] == first.message
    assert call.messages[3] == repair_message("the answer holds no JSON object or array")

    with pytest.raises(StructuredOutputError) as caught:
        call.take(reply('{"name": "Paris"}'))
    assert "after 2 rounds" in str(caught.value)
    assert "population: Field required" in caught.value.errors


def test_a_reply_cut_at_its_limit_names_max_tokens() -> None:
    """If the last reply stopped at its token limit, then the hint says to raise max_tokens."""
    call = StructuredCall(City, "Paris?", mode="json_schema", repairs=0, params={})

    with pytest.raises(StructuredOutputError) as caught:
        call.take(reply('{"name": "Par', finish_reason="length"))

    assert "max_tokens" in caught.value.hint


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "json", "repairs": 1, "params": {}}, "unknown structured output mode"),
        ({"mode": None, "repairs": -1, "params": {}}, "repairs must be 0 or more"),
        (
            {"mode": None, "repairs": 1, "params": {"response_format": {"type": "text"}}},
            "choose it with mode=",
        ),
    ],
    ids=["mode", "repairs", "response-format"],
)
def test_bad_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    """If the mode, repairs or a response_format is wrong, then a ConfigError says so."""
    with pytest.raises(ConfigError, match=message):
        StructuredCall(City, "Hi", **options)


# Only top-level values count

BUNDLE = '{"name": "bundle", "price": 30, "main_part": {"name": "screw", "price": 0.1},}'
BUNDLE_CUT = '{"name": "bundle", "price": 30, "main_part": {"name": "screw", "price": 0.1}'
CITED = 'As noted in [1], the result is: {"answer": 42}'
DEEP = "[" * 3000 + "]" * 3000


class Item(BaseModel):
    name: str
    price: float


class Answer(BaseModel):
    answer: int


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (BUNDLE, "the answer is not valid JSON: "),
        (BUNDLE_CUT, "the answer holds no complete JSON value"),
        ('{"items": [{"a": 1}, {"a": 2}, {"a":', "the answer holds no complete JSON value"),
        ('{"a": {"b": 1}, }', "the answer is not valid JSON: "),
        ('{"data": {"a": 1, }, "x": {"a": 2}}', "the answer is not valid JSON: "),
    ],
    ids=["trailing-comma", "cut-off", "cut-off-list", "nested-trailing-comma", "two-inside"],
)
def test_a_broken_value_is_never_mined_for_pieces(text: str, reason: str) -> None:
    """If the outer object does not decode, then no object inside it is taken for the answer."""
    with pytest.raises(NoJSONError) as caught:
        extract_json(text)

    assert str(caught.value).startswith(reason)


def test_a_value_after_a_broken_one_is_found() -> None:
    """If a broken object comes first, then the search goes on after its closing brace."""
    assert extract_json('{"a": {"b": 1},} and then [2]') == [2]


def test_extract_json_keeps_the_first_top_level_value() -> None:
    """If prose cites [1] before the answer, then extract_json alone still gives the first value."""
    assert extract_json(CITED) == [1]


@pytest.mark.parametrize(
    "text",
    [DEEP, "[" * 3000, '{"a": ' * 3000 + "1" + "}" * 3000, "x " + "[" * 201 + "]" * 201],
    ids=["closed", "never-closed", "objects", "in-prose"],
)
def test_deep_nesting_is_no_json_not_a_recursion_error(text: str) -> None:
    """If the JSON is nested thousands deep, then it is a NoJSONError, never a RecursionError."""
    with pytest.raises(NoJSONError, match="nested too deeply"):
        extract_json(text)


def test_nesting_up_to_the_limit_is_read() -> None:
    """If the JSON is nested 200 deep, as deep as pydantic reads, then it is decoded."""
    assert extract_json("[" * 200 + "]" * 200) is not None


@pytest.mark.parametrize(
    "text",
    ['{"a": NaN}', "Infinity", "-Infinity", "NaN", "[1, Infinity]", '```json\n{"a": NaN}\n```'],
)
def test_nan_and_infinity_are_not_json(text: str) -> None:
    """If the answer holds NaN or Infinity, which JSON has no words for, then it is refused."""
    with pytest.raises(NoJSONError, match="NaN/Infinity are not JSON"):
        extract_json(text)


def test_a_nan_in_prose_does_not_hide_the_json() -> None:
    """If prose starts with the word NaN, then the JSON after it is still found."""
    assert extract_json('NaN is not a number. {"a": 1}') == {"a": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [('```json\n"hello"\n```', "hello"), ("```json\n42\n```", 42), ("Here:\n```\nnull\n```", None)],
    ids=["string", "number", "null"],
)
def test_a_fenced_scalar_is_a_value(text: str, expected: Any) -> None:
    """If a code fence holds one JSON scalar, then that scalar is the value."""
    assert extract_json(text) == expected


def test_the_first_value_that_validates_is_the_answer() -> None:
    """If prose cites [1] before the answer, then StructuredCall takes the value that validates."""
    call = StructuredCall(Answer, "?", mode="json_schema", repairs=0, params={})

    assert call.take(reply(CITED))
    assert call.value == Answer(answer=42)


def test_a_trailing_comma_is_repaired_as_invalid_json() -> None:
    """If the answer has a trailing comma, then the repair says it is not valid JSON, and the
    object inside it is not taken."""
    call = StructuredCall(Item, "?", mode="json_schema", repairs=1, params={})

    assert not call.take(reply(BUNDLE))

    repair = call.messages[-1]["content"]
    assert "not valid JSON: " in repair
    assert "Input should be" not in repair


def test_when_nothing_validates_the_first_values_problem_is_told() -> None:
    """If no value validates, then the problem is the first one's, not a later one's."""
    call = StructuredCall(Answer, "?", mode="json_schema", repairs=0, params={})

    with pytest.raises(StructuredOutputError) as caught:
        call.take(reply('{"answer": "x"} [1]'))

    assert caught.value.errors.startswith("it does not match the schema (answer: Input should")


def test_a_cut_off_object_is_not_taken_from_its_inner_piece() -> None:
    """If a reply cut at its token limit stops inside the object, then nothing is taken."""
    call = StructuredCall(Item, "?", mode="json_schema", repairs=0, params={})

    with pytest.raises(StructuredOutputError) as caught:
        call.take(reply(BUNDLE_CUT, finish_reason="length"))

    assert "no complete JSON value" in caught.value.errors
    assert "max_tokens" in caught.value.hint


def test_a_cut_reply_gives_nothing_that_came_before_the_cut() -> None:
    """If a reply cut at its token limit stops inside a value, then an earlier value that would
    validate is not taken: it is not the answer the model was writing."""
    call = StructuredCall(list[int], "?", mode="json_schema", repairs=0, params={})

    with pytest.raises(StructuredOutputError) as caught:
        call.take(reply("As noted in [1], the result is: [2, 3,", finish_reason="length"))

    assert "no complete JSON value" in caught.value.errors


def test_a_reply_that_stopped_is_read_up_to_a_cut() -> None:
    """If a reply that stopped on its own ends inside a value, then a whole value before counts."""
    call = StructuredCall(list[int], "?", mode="json_schema", repairs=0, params={})

    assert call.take(reply("As noted in [1], the result is: [2, 3,"))
    assert call.value == [1]


def test_deep_nesting_is_a_problem_for_a_repair() -> None:
    """If the answer is nested thousands deep, then StructuredCall reports it, without a crash."""
    call = StructuredCall(dict, "?", mode="json_schema", repairs=0, params={})

    with pytest.raises(StructuredOutputError, match="nested too deeply"):
        call.take(reply(DEEP))


@pytest.mark.parametrize(
    ("schema_type", "text", "expected"),
    [(str, '```json\n"hello"\n```', "hello"), (int, "```json\n42\n```", 42)],
    ids=["str", "int"],
)
def test_a_fenced_scalar_validates(schema_type: Any, text: str, expected: Any) -> None:
    """If the schema is a scalar type and the answer fences one scalar, then it is the value."""
    call = StructuredCall(schema_type, "?", mode="json_schema", repairs=0, params={})

    assert call.take(reply(text))
    assert call.value == expected
