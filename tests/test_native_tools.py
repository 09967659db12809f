from __future__ import annotations

import json
import re
from itertools import pairwise
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from m2kit._native_tools import (
    CLOSE,
    OPEN,
    NativeParse,
    NativeToolStream,
    convert_value,
    parse_native,
)

WEATHER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "units": {"type": "string", "enum": ["metric", "imperial", "none"]},
    },
    "required": ["city"],
}
WRITE: dict[str, Any] = {
    "type": "object",
    "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
}
TOOLS: dict[str, dict[str, Any]] = {"get_weather": WEATHER, "write_file": WRITE, "now": {}}

PARIS = """<minimax:tool_call>
<invoke name="get_weather">
<parameter name="city">Paris</parameter>
<parameter name="days">3</parameter>
</invoke>
</minimax:tool_call>"""


def invoke(name: str, **values: str) -> str:
    parameters = "".join(
        f'<parameter name="{key}">{value}</parameter>\n' for key, value in values.items()
    )
    return f'<invoke name="{name}">\n{parameters}</invoke>\n'


def block(*invokes: str) -> str:
    return f"{OPEN}\n{''.join(invokes)}{CLOSE}"


def calls_of(parse: NativeParse) -> list[tuple[str, Any, int]]:
    return [(call.name, json.loads(call.arguments), call.index) for call in parse.calls]


def streamed(pieces: list[str], tools: dict[str, dict[str, Any]] = TOOLS) -> NativeParse:
    stream = NativeToolStream(tools)
    steps = [stream.feed(piece) for piece in pieces]
    steps.append(stream.finish())
    return NativeParse(
        "".join(step.text for step in steps), tuple(call for step in steps for call in step.calls)
    )


def assert_same(pieces: list[str], tools: dict[str, dict[str, Any]] = TOOLS) -> None:
    whole = parse_native("".join(pieces), tools)
    stream = streamed(pieces, tools)
    assert stream.content == whole.content
    assert calls_of(stream) == calls_of(whole)


# Blocks and calls.


def test_text_before_a_block_stays_content() -> None:
    """If text precedes a block, then it stays content exactly and the call is parsed."""
    parse = parse_native("Let me check.\n\n" + PARIS, TOOLS)
    assert parse.content == "Let me check.\n\n"
    assert calls_of(parse) == [("get_weather", {"city": "Paris", "days": 3}, 0)]


def test_two_invokes_in_one_block_get_indices_0_and_1() -> None:
    """If one block holds two invokes, then they become calls 0 and 1 in order."""
    content = block(invoke("get_weather", city="Paris"), invoke("get_weather", city="Lyon"))
    parse = parse_native(content, TOOLS)
    assert parse.content == ""
    assert calls_of(parse) == [
        ("get_weather", {"city": "Paris"}, 0),
        ("get_weather", {"city": "Lyon"}, 1),
    ]


def test_two_blocks_number_calls_across_blocks_and_keep_text_between() -> None:
    """If two blocks come with text around them, then calls count on and the text stays."""
    content = f"a {block(invoke('now'))} b {block(invoke('get_weather', city='Oslo'))} c"
    parse = parse_native(content, TOOLS)
    assert parse.content == "a  b  c"
    assert calls_of(parse) == [("now", {}, 0), ("get_weather", {"city": "Oslo"}, 1)]


def test_calls_have_fresh_ids_and_json_arguments() -> None:
    """If calls are parsed, then each id is call_ and 24 hex digits and ids differ."""
    parse = parse_native(block(invoke("now"), invoke("now")), TOOLS)
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", call.id) for call in parse.calls)
    assert parse.calls[0].id != parse.calls[1].id


def test_arguments_are_json_and_keep_non_ascii() -> None:
    """If values are non-ASCII or booleans, then arguments are JSON text with them unescaped."""
    tools = {"f": {"properties": {"city": {"type": "string"}, "ok": {"type": "boolean"}}}}
    parse = parse_native(block(invoke("f", city="Zürich 東京", ok="yes")), tools)
    arguments = parse.calls[0].arguments
    assert arguments == '{"city": "Zürich 東京", "ok": true}'
    assert json.loads(arguments) == {"city": "Zürich 東京", "ok": True}


def test_single_quoted_and_unquoted_names_are_read() -> None:
    """If invoke and parameter names use single quotes or none, then the call is parsed."""
    content = f"{OPEN}\n<invoke name='get_weather'>\n<parameter name=city>Rome</parameter>\n"
    content += f"<parameter name='days'>2</parameter>\n</invoke>\n<invoke name=now></invoke>{CLOSE}"
    parse = parse_native(content, TOOLS)
    assert calls_of(parse) == [("get_weather", {"city": "Rome", "days": 2}, 0), ("now", {}, 1)]


def test_block_inside_unclosed_thinking_is_parsed_and_the_thinking_kept() -> None:
    """If the block comes while `<think>` is still open, then it is parsed and the rest kept."""
    parse = parse_native("<think>\nI need the weather.\n" + PARIS + "\n", TOOLS)
    assert parse.content == "<think>\nI need the weather.\n\n"
    assert [call.name for call in parse.calls] == ["get_weather"]


def test_text_without_a_tag_is_unchanged() -> None:
    """If the content has no `<` at all, then it comes back unchanged with no calls."""
    assert parse_native("Just an answer.\n", TOOLS) == NativeParse("Just an answer.\n")
    step = NativeToolStream(TOOLS).feed("Just an answer.\n")
    assert step.text == "Just an answer.\n"
    assert step.calls == ()


# Values.


def test_surrounding_newlines_go_and_inner_spaces_stay() -> None:
    """If a value has blank lines around it and spaces inside, then only the newlines go."""
    parse = parse_native(block(invoke("get_weather", city="\n\n  New  York \n")), TOOLS)
    assert json.loads(parse.calls[0].arguments) == {"city": "  New  York "}


def test_value_with_parameter_closing_text_and_html_is_whole() -> None:
    """If a value holds `</parameter>`, `</invoke>` and HTML, then the value is kept whole."""
    xml = "<parameter>\n  <hello></hello>\n</parameter>"
    html = '<div class="x"><p>Hi</p></div>\n</invoke> and <parameter name="q"> too'
    parse = parse_native(block(invoke("write_file", content=xml + html, path="t.xml")), TOOLS)
    assert json.loads(parse.calls[0].arguments) == {"content": xml + html, "path": "t.xml"}


def test_string_parameter_that_looks_like_a_number_or_null_stays_text() -> None:
    """If a string-typed value reads 123, null, none or true, then it stays that text."""
    for text in ("123", "null", "none", "true"):
        parse = parse_native(block(invoke("get_weather", city=text)), TOOLS)
        assert json.loads(parse.calls[0].arguments) == {"city": text}


def test_enum_value_none_stays_a_string() -> None:
    """If an enum of strings holds "none", then the value "none" stays that string."""
    parse = parse_native(block(invoke("get_weather", city="X", units="none")), TOOLS)
    assert json.loads(parse.calls[0].arguments)["units"] == "none"
    assert convert_value("none", {"enum": ["auto", "none"]}) == "none"


@pytest.mark.parametrize(
    ("text", "schema", "expected"),
    [
        ("42", {"type": "integer"}, 42),
        ("-7", {"type": "integer"}, -7),
        ("5.0", {"type": "integer"}, 5),
        ("three", {"type": "integer"}, "three"),
        ("2.5", {"type": "number"}, 2.5),
        ("1e3", {"type": "number"}, 1000.0),
        ("NaN", {"type": "number"}, "NaN"),
        ("TRUE", {"type": "boolean"}, True),
        ("off", {"type": "boolean"}, False),
        ("1", {"type": "boolean"}, True),
        ("maybe", {"type": "boolean"}, "maybe"),
        ('{"a": [1, 2]}', {"type": "object"}, {"a": [1, 2]}),
        ("{not json", {"type": "object"}, "{not json"),
        ("[1, 2]", {"type": "array"}, [1, 2]),
        ('{"a": 1}', {"type": "array"}, '{"a": 1}'),
        ("12", None, "12"),
        ("12", {}, "12"),
    ],
)
def test_values_convert_by_type(text: str, schema: dict[str, Any] | None, expected: Any) -> None:
    """If a value has a non-string type, then it parses as that type or else stays text."""
    converted = convert_value(text, schema)
    assert converted == expected
    assert type(converted) is type(expected)


@pytest.mark.parametrize(
    ("text", "schema", "expected"),
    [
        ("null", {"anyOf": [{"type": "integer"}, {"type": "null"}]}, None),
        ("null", {"oneOf": [{"type": "string"}, {"type": "null"}]}, None),
        ("null", {"type": ["integer", "null"]}, None),
        ("7", {"type": ["integer", "null"]}, 7),
        ("7", {"anyOf": [{"type": "integer"}, {"type": "string"}]}, 7),
        ("seven", {"anyOf": [{"type": "integer"}, {"type": "string"}]}, "seven"),
        ("[1]", {"oneOf": [{"type": "object"}, {"type": "array"}]}, [1]),
        ("null", {"type": "integer"}, "null"),
        ("null", {"type": "string"}, "null"),
        ("null", {"enum": ["null", "x"]}, "null"),
    ],
)
def test_unions_are_tried_in_order_and_null_needs_permission(
    text: str, schema: dict[str, Any], expected: Any
) -> None:
    """If a schema is a union, then options go in order and `null` is None only if allowed."""
    assert convert_value(text, schema) == expected


def test_refs_into_defs_are_followed() -> None:
    """If a pydantic model nests another, then `$ref` into `$defs` decides the conversion."""

    class Point(BaseModel):
        x: int
        y: int

    class Args(BaseModel):
        point: Point
        mode: Literal["fast", "none"] | None = None
        count: int | None = None

    schema = Args.model_json_schema()
    content = block(invoke("plot", point='{"x": 1, "y": 2}', mode="none", count="null"))
    parse = parse_native(content, {"plot": schema})
    assert json.loads(parse.calls[0].arguments) == {
        "point": {"x": 1, "y": 2},
        "mode": "none",
        "count": None,
    }


# What is not a call.


def test_unknown_tool_name_stays_text() -> None:
    """If a block calls only a tool the request did not offer, then the block stays verbatim."""
    content = "Sure.\n" + block(invoke("rm_rf", path="/"))
    assert parse_native(content, TOOLS) == NativeParse(content)


def test_mixed_block_keeps_the_unknown_invoke_inside_the_block_tags() -> None:
    """If a block mixes known and unknown names, then the unknown invoke stays inside the tags."""
    unknown = invoke("rm_rf", path="/")
    content = block(invoke("now"), unknown, invoke("get_weather", city="Oslo"))
    parse = parse_native(content, TOOLS)
    assert parse.content == f"{OPEN}\n{unknown}{CLOSE}"
    assert calls_of(parse) == [("now", {}, 0), ("get_weather", {"city": "Oslo"}, 1)]


def test_empty_tools_parse_nothing() -> None:
    """If the request offered no tools, then nothing is parsed."""
    assert parse_native(PARIS, {}) == NativeParse(PARIS)


def test_missing_invoke_close_leaves_the_block_as_text() -> None:
    """If an invoke lacks `</invoke>`, then its block stays text, well-formed neighbours too."""
    broken = '<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n'
    assert parse_native(f"{OPEN}\n{broken}{CLOSE}", TOOLS) == NativeParse(
        f"{OPEN}\n{broken}{CLOSE}"
    )

    content = block(broken, invoke("now"))
    assert parse_native(content, TOOLS) == NativeParse(content)


def test_missing_angle_brackets_stay_text() -> None:
    """If the model drops the angle brackets (exo#1882), then the block stays verbatim."""
    content = f'{OPEN}\ninvoke name="get_weather">\nparameter name="city">Parisparameter>\n'
    content += f"invoke>\n{CLOSE}"
    assert parse_native(content, TOOLS) == NativeParse(content)


def test_stray_text_inside_an_invoke_makes_it_text() -> None:
    """If an invoke holds text outside its parameters, then it is not a call."""
    content = block('<invoke name="now">\noops\n</invoke>\n')
    assert parse_native(content, TOOLS) == NativeParse(content)


def test_unclosed_block_right_after_an_invoke_yields_the_call() -> None:
    """If the block's closing token is missing right after `</invoke>`, then the call counts."""
    parse = parse_native("Checking.\n" + PARIS.removesuffix(CLOSE), TOOLS)
    assert parse.content == "Checking.\n"
    assert calls_of(parse) == [("get_weather", {"city": "Paris", "days": 3}, 0)]


@pytest.mark.parametrize(
    "cut",
    [
        f'{OPEN}\n<invoke name="get_weather">\n<parameter name="city">Par',
        f'{OPEN}\n{invoke("now")}<invoke name="get_weather">\n',
        f"{OPEN}\n{invoke('now')}Done, thanks.",
    ],
    ids=["inside-a-value", "inside-a-second-invoke", "prose-after"],
)
def test_unclosed_block_that_does_not_end_after_an_invoke_stays_text(cut: str) -> None:
    """If an unclosed block ends anywhere but right after `</invoke>`, then it stays text whole."""
    assert parse_native("Hi " + cut, TOOLS) == NativeParse("Hi " + cut)


def test_a_block_quoted_inside_a_value_runs_nothing() -> None:
    """If a value quotes a whole block (a file about this format), then no call runs from it."""
    quoted = block(invoke("get_weather", city="Oslo"))
    content = block(invoke("write_file", path="doc.md", content=f"Example:\n{quoted}\n"))
    parse = parse_native(content, TOOLS)
    assert parse == NativeParse(content)


def test_a_forgotten_close_before_a_new_block_still_yields_both_calls() -> None:
    """If a block opens again before the first one closed, then both calls are parsed."""
    content = f"{OPEN}\n{invoke('now')}{block(invoke('get_weather', city='Oslo'))}"
    assert calls_of(parse_native(content, TOOLS)) == [
        ("now", {}, 0),
        ("get_weather", {"city": "Oslo"}, 1),
    ]


def test_closing_token_inside_a_value_is_not_run_cut_short() -> None:
    """If a value holds the block's closing token, then nothing runs and no text is lost."""
    content = block(invoke("get_weather", city=f"a {CLOSE} b"))
    assert parse_native(content, TOOLS) == NativeParse(content)


# Streaming.


def test_stream_passes_text_before_a_block_at_once_and_holds_the_block() -> None:
    """If a block opens mid-stream, then prior text passes at once and calls come when it closes."""
    stream = NativeToolStream(TOOLS)
    assert stream.feed("Let me check.\n<mini").text == "Let me check.\n"
    assert stream.feed("max:tool_call>\n<invoke name=").text == ""
    last = stream.feed(PARIS.removeprefix(OPEN + "\n<invoke name=") + "\nDone")
    assert last.text == "\nDone"
    assert [call.name for call in last.calls] == ["get_weather"]
    assert stream.finish().text == ""


def test_stream_releases_a_false_partial_tag_as_text() -> None:
    """If what looked like the opening tag turns out otherwise, then it is released as text."""
    stream = NativeToolStream(TOOLS)
    assert stream.feed("a <minimax:to").text == "a "
    assert stream.feed("ol>").text == "<minimax:tool>"
    assert stream.feed("<mini").text == ""
    assert stream.finish().text == "<mini"


def test_block_split_at_every_boundary_matches_the_whole() -> None:
    """If a block is cut in two at any point or fed char by char, then the stream matches."""
    content = "Hi.\n" + block(invoke("get_weather", city="<b>Paris</b>", days="3")) + "\nok"
    for at in range(len(content) + 1):
        assert_same([content[:at], content[at:]])
    assert_same(list(content))


FRAGMENTS = [
    OPEN,
    CLOSE,
    "<think>",
    '<invoke name="get_weather">',
    "<invoke name='now'>",
    '<invoke name="nope">',
    "</invoke>",
    '<parameter name="city">',
    '<parameter name="days">',
    "</parameter>",
    invoke("get_weather", city="Paris", days="3"),
    invoke("now"),
    block(invoke("get_weather", city="<b>x</b>"), invoke("nope")),
    f"{OPEN}\n{invoke('now')}",
]
PARTIALS = [tag[:end] for tag in (OPEN, CLOSE) for end in range(1, len(tag))]


@st.composite
def contents(draw: st.DrawFn) -> str:
    parts = st.one_of(
        st.sampled_from(FRAGMENTS),
        st.sampled_from(PARTIALS),
        st.text("ab3 \n<>/", max_size=4),
    )
    return "".join(draw(st.lists(parts, max_size=14)))


@st.composite
def pieces(draw: st.DrawFn, text: str) -> list[str]:
    if draw(st.booleans()):
        return list(text)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=len(text) + 3)))
    return [text[start:end] for start, end in pairwise([0, *cuts, len(text)])]


@settings(max_examples=600)
@given(data=st.data())
def test_stream_agrees_with_the_whole_parse_for_any_cut(data: st.DataObject) -> None:
    """If content is cut anywhere, even inside tags, then the stream equals parse_native."""
    content = data.draw(contents())
    assert_same(data.draw(pieces(content)))


@settings(max_examples=300)
@given(content=contents())
def test_text_is_lost_only_to_calls(content: str) -> None:
    """If no call is parsed, then the content comes back exactly as given."""
    parse = parse_native(content, TOOLS)
    if not parse.calls:
        assert parse.content == content


@given(content=st.text(max_size=60))
def test_any_text_parses_without_error(content: str) -> None:
    """If the content is arbitrary text, then parsing never raises and keeps it unchanged."""
    assert parse_native(content, TOOLS).content == content
