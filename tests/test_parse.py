"""Tests for Client.parse and AsyncClient.parse against the scripted server, on real sockets."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict  # pydantic wants it, not typing's, before 3.12

from _server import completion, error_step, json_step
from m2kit import AsyncClient, BadRequestError, Client, RetryPolicy
from m2kit._errors import StructuredOutputError
from m2kit._structured import INSTRUCTION, instruction_for, repair_message

if TYPE_CHECKING:
    from _server import ScriptedServer
    from m2kit._types import Message

T = TypeVar("T")
ONCE = RetryPolicy(max_attempts=1)
PARIS = '{"name": "Paris", "population": 2100000}'
NO_JSON = "the answer holds no JSON object or array"


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


@dataclass
class Run:
    """`parse` through Client (`sync`) or AsyncClient (`async`), pointed at the scripted server."""

    mode: str
    server: ScriptedServer

    def parse(self, schema: type[T], messages: Any = "Paris?", **kw: Any) -> T:
        options: dict[str, Any] = {"base_url": self.server.base_url, "retry": ONCE}
        if self.mode == "sync":
            with Client(**options) as client:
                return client.parse(messages, schema, **kw)

        async def parse() -> T:
            async with AsyncClient(**options) as client:
                return await client.parse(messages, schema, **kw)

        return anyio.run(parse)

    def answers(self, *contents: str) -> None:
        self.server.queue(*(json_step(completion(content)) for content in contents))

    def answer(self, fields: dict[str, Any]) -> None:
        self.server.queue(json_step(completion(**fields)))

    def body(self, request: int) -> dict[str, Any]:
        body: dict[str, Any] = self.server.requests[request].json()
        return body

    def messages(self, request: int) -> list[Message]:
        messages: list[Message] = self.body(request)["messages"]
        return messages


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest, server: ScriptedServer) -> Run:
    return Run(request.param, server)


def test_valid_answer_becomes_the_model(run: Run) -> None:
    """If the answer is valid JSON for the schema, then parse returns the model from one request."""
    run.answers(PARIS)

    city = run.parse(City)

    assert city == City(name="Paris", population=2100000)
    assert len(run.server.requests) == 1
    assert run.messages(0) == [
        {"role": "system", "content": instruction_for(City)},
        {"role": "user", "content": "Paris?"},
    ]
    assert run.body(0)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "City", "schema": City.model_json_schema(), "strict": False},
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"content": '<think>\nDraft: {"name": "Lyon", "population": 1}\n</think>\n\n' + PARIS},
        {"content": 'Draft: {"name": "Lyon", "population": 1}\n</think>\n\n' + PARIS},
        {"content": PARIS, "reasoning_content": 'Draft: {"name": "Lyon", "population": 1}'},
    ],
    ids=["inline-think", "template-opened", "reasoning-content"],
)
def test_thinking_before_the_json_is_skipped(run: Run, fields: dict[str, Any]) -> None:
    """If the model drafts JSON while thinking, then the answer after the thinking is parsed."""
    run.answer(fields)

    assert run.parse(City).name == "Paris"


def test_fenced_json_is_parsed(run: Run) -> None:
    """If the answer wraps the JSON in a json code fence with prose, then the JSON is parsed."""
    run.answers(f"Here it is:\n\n```json\n{PARIS}\n```\n")

    assert run.parse(City).population == 2100000


@pytest.mark.parametrize(
    ("schema", "answer", "expected"),
    [
        (list[City], f"[{PARIS}]", [City(name="Paris", population=2100000)]),
        (Point, '{"x": 1, "y": 2}', {"x": 1, "y": 2}),
        (Pair, '{"left": "a", "right": "b"}', Pair("a", "b")),
    ],
    ids=["list", "typeddict", "dataclass"],
)
def test_any_type_pydantic_takes_is_parsed(
    run: Run, schema: Any, answer: str, expected: Any
) -> None:
    """If the schema is list[Model], a TypedDict or a dataclass, then the answer becomes one."""
    run.answers(answer)

    assert run.parse(schema) == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"content": "<think>I should count.</think>\nAbout two million people."},
        {"content": "About two million.", "reasoning_content": "I should count."},
    ],
    ids=["inline", "field"],
)
def test_invalid_json_is_repaired_with_the_reply_in_history(
    run: Run, fields: dict[str, Any]
) -> None:
    """If the first answer is not JSON, then round two sends it, its thinking and a repair note."""
    run.answer(fields)
    run.answers(PARIS)

    city = run.parse(City, max_tokens=500)

    assert city.name == "Paris"
    first, second = run.body(0), run.body(1)
    system, user, assistant, repair = second["messages"]
    assert system == {"role": "system", "content": instruction_for(City)}
    assert user == {"role": "user", "content": "Paris?"}
    assert assistant["role"] == "assistant"
    assert "I should count." in json.dumps(assistant)
    assert repair == repair_message(NO_JSON)
    assert second["response_format"] == first["response_format"]
    assert first["max_tokens"] == second["max_tokens"] == 500


def test_validation_error_is_repaired(run: Run) -> None:
    """If the JSON does not match the schema, then the repair note names the field and the error."""
    run.answers('{"name": "Paris", "population": "lots"}', PARIS)

    assert run.parse(City).population == 2100000
    repair = run.messages(1)[-1]["content"]
    assert "population: Input should be a valid integer" in repair


def test_repairs_exhausted_raise_with_the_last_reply(run: Run) -> None:
    """If every round is invalid, then StructuredOutputError holds the last reply and the fix."""
    run.answers("No idea.", "<think>Still unsure.</think>\nSorry, I cannot.")

    with pytest.raises(StructuredOutputError) as caught:
        run.parse(City, repairs=1)

    error = caught.value
    assert len(run.server.requests) == 2
    assert error.raw == "<think>Still unsure.</think>\nSorry, I cannot."
    assert error.text == "Sorry, I cannot."
    assert error.reply.thinking == "Still unsure."
    assert error.errors == NO_JSON
    assert str(error) == f"the model gave no valid City after 2 rounds: {NO_JSON}"
    assert 'mode="json_object"' in error.hint
    assert "repairs=" in error.hint
    assert "m2 models" in error.hint


def test_no_repairs_means_one_request(run: Run) -> None:
    """If repairs is 0, then an invalid first answer raises at once, after one request."""
    run.answers('{"name": "Paris"}')

    with pytest.raises(StructuredOutputError, match="after 1 round: it does not match"):
        run.parse(City, repairs=0)

    assert len(run.server.requests) == 1


def test_json_object_mode_puts_the_schema_in_the_prompt(run: Run) -> None:
    """If the mode is json_object, then the system prompt carries the schema, the format not."""
    run.answers(PARIS)
    messages = [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "Paris?"}]

    run.parse(City, messages, mode="json_object")

    system, user = run.messages(0)
    assert run.body(0)["response_format"] == {"type": "json_object"}
    assert system["content"].startswith("Be exact.\n\n" + INSTRUCTION)
    assert json.loads(system["content"].split(INSTRUCTION)[1]) == City.model_json_schema()
    assert user == messages[1]
    assert messages[0]["content"] == "Be exact."


def test_prompt_only_mode_sends_no_response_format(run: Run) -> None:
    """If the mode is None, then no response_format is sent and the schema goes in a system line."""
    run.answers(PARIS)

    run.parse(City, mode=None)

    assert "response_format" not in run.body(0)
    assert run.messages(0)[0]["role"] == "system"
    assert run.messages(0)[0]["content"].startswith(INSTRUCTION)


def test_a_refused_response_format_is_the_servers_error(run: Run) -> None:
    """If the server refuses the response_format, then its BadRequestError comes through as is."""
    run.server.queue(error_step(400, {"error": {"message": "response_format is not supported"}}))

    with pytest.raises(BadRequestError, match="response_format is not supported"):
        run.parse(City)


def test_importing_m2kit_does_not_import_pydantic() -> None:
    """If m2kit is imported, then pydantic is not, since it costs about 0.2 s."""
    code = "import m2kit, sys; print('pydantic' in sys.modules)"

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )

    assert result.stdout.strip() == "False", result.stderr


class Item(BaseModel):
    name: str
    price: float


class Answer(BaseModel):
    answer: int


BUNDLE = '{"name": "bundle", "price": 30, "main_part": {"name": "screw", "price": 0.1}'
GOOD_ITEM = '{"name": "bundle", "price": 30}'


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"content": BUNDLE + ",}"}, "the answer is not valid JSON: "),
        # Thinking first: a MiniMax reply cut before any `</think>` is all thinking.
        (
            {"content": "<think>Parts.</think>" + BUNDLE, "finish_reason": "length"},
            "no complete JSON value",
        ),
    ],
    ids=["trailing-comma", "cut-off"],
)
def test_a_broken_object_is_repaired_not_mined_for_pieces(
    run: Run, fields: dict[str, Any], problem: str
) -> None:
    """If the answer's object is broken or cut off, then the object inside it is not the answer:
    a repair round says what is wrong."""
    run.answer(fields)
    run.answers(GOOD_ITEM)

    assert run.parse(Item) == Item(name="bundle", price=30)
    repair = run.messages(1)[-1]["content"]
    assert problem in repair
    assert "Input should be" not in repair


def test_the_value_that_validates_is_parsed(run: Run) -> None:
    """If prose cites [1] before the JSON, then the value that fits the schema is parsed."""
    run.answers('As noted in [1], the result is: {"answer": 42}')

    assert run.parse(Answer) == Answer(answer=42)


def test_deep_nesting_is_a_structured_output_error(run: Run) -> None:
    """If the answer is nested thousands deep, then parse says so instead of a RecursionError."""
    run.answers("[" * 3000 + "]" * 3000)

    with pytest.raises(StructuredOutputError, match="nested too deeply"):
        run.parse(dict, repairs=0)


@pytest.mark.parametrize(
    ("schema", "answer", "expected"),
    [(str, '```json\n"hello"\n```', "hello"), (int, "```json\n42\n```", 42)],
    ids=["str", "int"],
)
def test_a_fenced_scalar_is_parsed(run: Run, schema: Any, answer: str, expected: Any) -> None:
    """If the schema is a scalar type and the answer fences one scalar, then it is parsed."""
    run.answers(answer)

    assert run.parse(schema) == expected
