"""`m2 ask --schema` and `--json-mode`, run as a subprocess against the scripted server, and the
JSON Schema check behind them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from _server import chunk, completion, json_step, stream_step
from m2kit._errors import ConfigError
from m2kit.cli._ask_schema import load_schema, schema_problems

if TYPE_CHECKING:
    from _server import ScriptedServer, Step

M2 = str(Path(sys.executable).with_name("m2"))
PERSON = {
    "title": "Person",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def m2(server: ScriptedServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "M2_BASE_URL": server.base_url}
    return subprocess.run(
        [M2, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def answer(content: str) -> Step:
    return stream_step([chunk(content=content), chunk(finish_reason="stop")])


@pytest.fixture
def person_file(tmp_path: Path) -> Path:
    path = tmp_path / "person.json"
    path.write_text(json.dumps(PERSON), encoding="utf-8")
    return path


def test_schema_from_a_file(server: ScriptedServer, person_file: Path) -> None:
    """If --schema names a file, then its schema is sent as response_format and the checked JSON
    alone is printed, indented."""
    server.queue(answer('Easy.</think>\n\n{"name": "Ada", "age": 36}'))

    result = m2(server, "ask", "--schema", str(person_file), "Invent a person.")

    assert result.returncode == 0, result.stderr
    assert result.stdout == '{\n  "name": "Ada",\n  "age": 36\n}\n'
    assert result.stderr == ""
    assert server.requests[0].json()["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Person", "schema": PERSON, "strict": False},
    }


def test_inline_schema(server: ScriptedServer) -> None:
    """If --schema is the schema's text, then it is used as is, named "answer" without a title."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    server.queue(answer('{"city": "Zürich"}'))

    result = m2(server, "ask", "--schema", json.dumps(schema), "A city?")

    assert json.loads(result.stdout) == {"city": "Zürich"}
    assert "Zürich" in result.stdout  # non-ASCII kept as it is
    sent = server.requests[0].json()["response_format"]["json_schema"]
    assert sent == {"name": "answer", "schema": schema, "strict": False}


def test_fenced_json_after_thinking(server: ScriptedServer, person_file: Path) -> None:
    """If the answer follows the thinking in a fenced block with prose, then the block's JSON is
    printed, and --think shows the thinking on stderr only."""
    content = 'Ada fits.</think>\n\nHere it is:\n```json\n{"name": "Ada", "age": 36}\n```\nDone.'
    server.queue(answer(content))

    result = m2(server, "ask", "--think", "--schema", str(person_file), "Invent a person.")

    assert json.loads(result.stdout) == {"name": "Ada", "age": 36}
    assert "Ada fits." in result.stderr
    assert "Ada fits." not in result.stdout


def test_invalid_json_is_repaired(server: ScriptedServer, person_file: Path) -> None:
    """If the first answer is not valid JSON, then a second request carries it and what was
    wrong, and its valid answer is printed."""
    first = '{"name": "Ada", "age": '
    server.queue(answer(first), answer('{"name": "Ada", "age": 36}'))

    result = m2(server, "ask", "--schema", str(person_file), "Invent a person.")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"name": "Ada", "age": 36}
    second = server.requests[1].json()
    assert second["response_format"]["type"] == "json_schema"
    messages = second["messages"]
    asked = messages[0]["content"]
    assert messages[0]["role"] == "user"
    assert asked.startswith("Invent a person.\n\nAnswer with only a JSON value matching")
    assert json.loads(asked.split("JSON Schema: ", 1)[1]) == json.loads(person_file.read_text())
    assert messages[1] == {"role": "assistant", "content": first}
    assert messages[2]["role"] == "user"
    assert messages[2]["content"].startswith("That answer could not be used:")


def test_schema_mismatch_is_repaired(server: ScriptedServer, person_file: Path) -> None:
    """If the first answer misses a required field, then the repair request names the field."""
    server.queue(answer('{"name": "Ada"}'), answer('{"name": "Ada", "age": 36}'))

    result = m2(server, "ask", "--schema", str(person_file), "Invent a person.")

    assert result.returncode == 0, result.stderr
    repair = server.requests[1].json()["messages"][-1]["content"]
    assert "age: required but missing" in repair


def test_failure_is_one_line(server: ScriptedServer, person_file: Path) -> None:
    """If no round gives a valid answer, then m2 exits 1 with one stderr line naming the fix."""
    server.queue(answer('{"name": 7, "age": 36}'), answer("I cannot."))

    result = m2(server, "ask", "--schema", str(person_file), "Invent a person.")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("m2: error: the model gave no valid Person after 2 rounds:")
    assert "--repairs" in result.stderr


def test_repairs_zero_asks_once(server: ScriptedServer, person_file: Path) -> None:
    """If --repairs 0 is given, then a bad answer fails at once, after one request."""
    server.queue(answer('{"name": "Ada", "age": "old"}'))

    result = m2(server, "ask", "--repairs", "0", "--schema", str(person_file), "A person?")

    assert result.returncode == 1
    assert "age: should be integer, not string" in result.stderr
    assert len(server.requests) == 1


def test_no_stream_asks_for_a_whole_reply(server: ScriptedServer, person_file: Path) -> None:
    """If --no-stream is given, then the structured answer comes from a whole completion."""
    server.queue(json_step(completion('{"name": "Ada", "age": 36}')))

    result = m2(server, "ask", "--no-stream", "--schema", str(person_file), "A person?")

    assert json.loads(result.stdout) == {"name": "Ada", "age": 36}
    assert "stream" not in server.requests[0].json()


def test_json_mode(server: ScriptedServer) -> None:
    """If --json-mode is given, then json_object is asked for, the prompt asks for JSON (some
    servers refuse json_object without it), and the first JSON value is printed."""
    server.queue(answer('Hmm.</think>\n\nSure: {"a": [1, 2]} and also {"b": 2}'))

    result = m2(server, "ask", "--json-mode", "Some JSON?")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"a": [1, 2]}
    body = server.requests[0].json()
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["content"] == "Some JSON?\n\nAnswer with only a JSON value."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--schema", "missing.json"), "cannot read the schema file missing.json"),
        (("--schema", "{not json"), "the --schema text is not valid JSON"),
        (("--schema", "{}", "--json"), "--schema and --json cannot be used together"),
        (("--json-mode", "--raw"), "--json-mode and --raw cannot be used together"),
        (("--json-mode", "-T", "read_file"), "--json-mode cannot be used with tools"),
    ],
)
def test_usage_errors(server: ScriptedServer, args: tuple[str, ...], message: str) -> None:
    """If the schema cannot be read or the options clash, then m2 exits 2 before any request."""
    result = m2(server, "ask", *args, "hi")

    assert result.returncode == 2
    assert message in result.stderr
    assert not server.requests


def test_load_schema_names(tmp_path: Path) -> None:
    """If a schema has a title, then it names the schema; else the file's stem, else "answer"."""
    path = tmp_path / "my list.json"
    path.write_text('{"type": "array"}', encoding="utf-8")

    assert load_schema(str(path)) == ({"type": "array"}, "my_list")
    assert load_schema('{"title": "Weather report"}')[1] == "Weather_report"
    assert load_schema("  {}")[1] == "answer"


def test_a_non_object_schema_file_is_refused(tmp_path: Path) -> None:
    """If the schema file holds JSON that is not an object, then it is a ConfigError."""
    path = tmp_path / "list.json"
    path.write_text("[1, 2]", encoding="utf-8")

    with pytest.raises(ConfigError, match="is not a JSON Schema"):
        load_schema(str(path))


@pytest.mark.parametrize(
    ("schema", "value", "problems"),
    [
        (PERSON, {"name": "Ada", "age": 36}, []),
        (PERSON, {"name": "Ada", "age": 36.0}, []),
        (PERSON, {"name": "Ada"}, ["age: required but missing"]),
        (PERSON, {"name": "Ada", "age": True}, ["age: should be integer, not boolean"]),
        (PERSON, [], ["the value: should be object, not array"]),
        ({"type": ["string", "null"]}, None, []),
        ({"type": "number"}, 1.5, []),
        ({"type": "integer"}, 1.5, ["the value: should be integer, not number"]),
        ({"enum": ["red", "blue"]}, "green", ['the value: should be one of "red", "blue"']),
        ({"enum": [1]}, True, ["the value: should be one of 1"]),
        ({"const": "x"}, "y", ['the value: should be "x"']),
        (
            {"type": "array", "items": {"type": "object", "required": ["id"]}},
            [{"id": 1}, {}],
            ["[1].id: required but missing"],
        ),
        (
            {"properties": {"a": {"type": "string"}}, "additionalProperties": False},
            {"a": "x", "b": 1},
            ["b: not a property the schema allows"],
        ),
        (
            {"additionalProperties": {"type": "integer"}},
            {"a": 1, "b": "2"},
            ["b: should be integer, not string"],
        ),
        (
            {
                "$defs": {"Item": {"type": "object", "required": ["sku"]}},
                "type": "object",
                "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}},
            },
            {"items": [{"sku": "a"}, {"name": "b"}]},
            ["items[1].sku: required but missing"],
        ),
        (
            {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            [],
            ["the value: matches none of the choices (the value: should be string, not array)"],
        ),
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, 3, []),
        (
            {"allOf": [{"required": ["a"]}, {"required": ["b"]}]},
            {"a": 1},
            ["b: required but missing"],
        ),
        ({"type": "string", "format": "email", "maxLength": 2}, "not an email", []),
        (True, {"anything": 1}, []),
        ({"properties": {"a": False}}, {"a": 1}, ["a: not allowed here"]),
    ],
)
def test_schema_problems(schema: Any, value: Any, problems: list[str]) -> None:
    """If a value breaks a checked keyword, then the problem names where and what; keywords
    outside the checked subset pass."""
    assert schema_problems(schema, value) == problems


@pytest.mark.parametrize(
    ("schema", "said"),
    [
        ('{"type": "objekt"}', "type 'objekt' is not one of"),
        ('{"properties": {"name": {"type": "strin"}}}', "the schema.properties.name: type 'strin'"),
        ('{"required": "name"}', "required should be a list"),
        ('{"anyOf": {"type": "string"}}', "anyOf should be a list"),
        ('{"items": 3}', "the schema.items should be an object or true/false"),
    ],
)
def test_a_misspelt_schema_is_refused_before_any_request(schema: str, said: str) -> None:
    """If the schema has a misspelt type or a misshapen keyword, then load_schema says where,
    instead of letting every answer pass."""
    with pytest.raises(ConfigError, match="not a usable JSON Schema") as caught:
        load_schema(schema)
    assert said in str(caught.value)


# Broken, deep and non-JSON answers

DEEP = "[" * 3000 + "]" * 3000


def cut(content: str) -> Step:
    return stream_step([chunk(content=content), chunk(finish_reason="length")])


@pytest.mark.parametrize(
    ("args", "content", "said"),
    [
        (
            ("--json-mode",),
            '{"items": [{"a": 1}, {"a": 2}, {"a":',
            "no complete JSON value",
        ),
        (("--json-mode",), '{"a": {"b": 1}, }', "the answer is not valid JSON: "),
        (
            ("--schema", '{"type":"object","required":["a"]}'),
            '{"data": {"a": 1, }, "x": {"a": 2}}',
            "the answer is not valid JSON: ",
        ),
        (("--json-mode",), DEEP, "nested too deeply"),
    ],
    ids=["cut-off", "trailing-comma", "schema-trailing-comma", "deep"],
)
def test_a_broken_answer_is_not_mined_for_pieces(
    server: ScriptedServer, args: tuple[str, ...], content: str, said: str
) -> None:
    """If the answer's outer value is broken, cut off or nested thousands deep, then nothing
    inside it is printed: m2 exits 1 with one line saying what is wrong."""
    server.queue(answer(content))

    result = m2(server, "ask", "--repairs", "0", *args, "Some JSON?")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert said in result.stderr


def test_the_value_that_fits_the_schema_is_printed(server: ScriptedServer) -> None:
    """If prose cites [1] before the JSON, then the value that fits the schema is printed."""
    server.queue(answer('As noted in [1], the result is: {"answer": 42}'))

    schema = '{"type":"object","required":["answer"]}'
    result = m2(server, "ask", "--repairs", "0", "--schema", schema, "The answer?")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"answer": 42}


def test_a_cut_reply_prints_nothing_from_before_the_cut(server: ScriptedServer) -> None:
    """If a reply cut at its token limit stops inside a value, then an earlier value is not
    printed, and the hint names --max-tokens."""
    # Thinking first: a MiniMax reply cut before any `</think>` is all thinking.
    server.queue(cut('Easy.</think>As noted in [1], the result is: {"answer": '))

    result = m2(server, "ask", "--repairs", "0", "--json-mode", "The answer?")

    assert result.returncode == 1
    assert result.stdout == ""
    assert "--max-tokens" in result.stderr


@pytest.mark.parametrize(
    ("args", "first", "second"),
    [
        (("--json-mode",), '{"a": NaN}', '{"a": null}'),
        (("--schema", '{"type":"number"}'), "Infinity", "1e308"),
    ],
    ids=["nan", "infinity"],
)
def test_nan_and_infinity_are_repaired(
    server: ScriptedServer, args: tuple[str, ...], first: str, second: str
) -> None:
    """If the answer holds NaN or Infinity, which are not JSON, then a repair round asks again."""
    server.queue(answer(first), answer(second))

    result = m2(server, "ask", *args, "A number?")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(second)
    repair = server.requests[1].json()["messages"][-1]["content"]
    assert "NaN/Infinity are not JSON" in repair


# Schemas that loop or nest without end

LOOP = {
    "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}},
    "$ref": "#/$defs/A",
}


@pytest.mark.parametrize("schema", [{"$ref": "#"}, LOOP], ids=["self", "a-b-a"])
def test_a_ref_loop_is_refused_before_any_request(
    server: ScriptedServer, schema: dict[str, Any]
) -> None:
    """If the schema's $refs lead round in a loop, then m2 exits 2 saying so, before a request."""
    result = m2(server, "ask", "--schema", json.dumps(schema), "hi")

    assert result.returncode == 2, result.stderr
    assert "leads round in a loop" in result.stderr
    assert not server.requests


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        LOOP,
        {"anyOf": [{"$ref": "#"}, {"$ref": "#"}]},
        {"allOf": [{"$ref": "#"}, {"$ref": "#"}, {"$ref": "#"}]},
    ],
    ids=["self", "a-b-a", "any-of", "all-of"],
)
def test_a_ref_loop_is_a_problem_not_a_crash(schema: dict[str, Any]) -> None:
    """If schema_problems follows $refs that loop at one place in the value, then it stops there
    with a problem, at once."""
    problems = schema_problems(schema, {"a": 1})

    assert problems
    assert all("leads round in a loop" in problem for problem in problems)


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def test_a_recursive_schema_stops_at_64_levels() -> None:
    """If a recursive schema meets data 600 deep, then the check stops past 64 levels with one
    problem; data 64 deep is checked in full."""
    schema = {"type": "array", "items": {"$ref": "#"}}

    assert schema_problems(schema, nested(64)) == []
    assert schema_problems(schema, nested(600)) == [
        "[0]" * 65 + ": too deeply nested to check (more than 64 levels)"
    ]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"items": ' * 3000 + "{}" + "}" * 3000, "nested too deeply"),
        ('{"items": ' * 600 + "{}" + "}" * 600, "nested too deeply"),
    ],
    ids=["for-json", "for-the-check"],
)
def test_a_deeply_nested_schema_is_refused(text: str, said: str) -> None:
    """If the schema itself nests thousands or hundreds deep, then load_schema refuses it."""
    with pytest.raises(ConfigError, match=said):
        load_schema(text)
