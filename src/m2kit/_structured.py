"""Structured output: the JSON value in an answer, checked against a pydantic schema. No I/O.

A schema is a pydantic `BaseModel` subclass or anything pydantic's `TypeAdapter` accepts
(`list[Model]`, a dataclass, a `TypedDict`). pydantic is imported only when a schema is used,
because importing it costs about 0.2 s.

`StructuredCall` is the whole of one `parse()` call except sending: the messages and parameters of
the next round, reading each reply, and the repair rounds, so `Client` and `AsyncClient` only chat.
"""

from __future__ import annotations

import json
import re
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, NoReturn, TypeVar

from ._errors import ConfigError, StructuredOutputError
from ._request import normalize_messages

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from pydantic import TypeAdapter, ValidationError

    from ._request import ChatParams
    from ._types import Message, Reply

T = TypeVar("T")
Mode = Literal["json_schema", "json_object"] | None

MODES = ("json_schema", "json_object", None)
INSTRUCTION = "Answer with only a JSON value matching this JSON Schema: "
NO_JSON = "the answer holds no JSON object or array"

_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_OPENING = re.compile(r"[{\[]")
# A whole JSON string, a bracket, or a quote that opens a string which never ends.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|["{}\[\]]', re.DOTALL)
_CONSTANTS = ("NaN", "Infinity", "-Infinity")
# pydantic's JSON parser stops at about this depth too; below it, json's own recursion is safe.
_MAX_NESTING = 200
_TOO_DEEP = f"the answer's JSON is nested too deeply (more than {_MAX_NESTING} levels)"
_NAN = "NaN/Infinity are not JSON; write a number or null"
_MAX_ERRORS = 5
_MAX_PROBLEM = 600


class NoJSONError(ValueError):
    """The answer holds no complete JSON value."""


@dataclass(frozen=True)
class Found:
    """One top-level JSON value in an answer: the value and its exact text, or its `problem`.

    `cut` is True for a value that the answer stops inside of.
    """

    value: Any = None
    source: str = ""
    problem: str = ""
    cut: bool = False


def extract_json(text: str) -> Any:
    """The first top-level JSON value in `text`, an answer written by a model.

    See `json_values` for where it is looked for. Raises `NoJSONError` (a `ValueError`) with a
    short reason when there is none.
    """
    found, problem = first_fit(text, lambda _: "")
    if found is None:
        raise NoJSONError(problem)
    return found.value


def first_fit(
    text: str, problem_of: Callable[[Found], str], *, cut_short: bool = False
) -> tuple[Found | None, str]:
    """The first top-level JSON value in `text` in which `problem_of` finds nothing wrong, and "";
    else None and the first value's problem.

    With `cut_short` (the reply hit its token limit), nothing is taken from an answer that stops
    inside a JSON value: that value was the answer, and a value before it is not.
    """
    found = json_values(text)
    if cut_short and found[-1].cut:
        return None, found[-1].problem

    first = ""
    for item in found:
        problem = item.problem or problem_of(item)
        if not problem:
            return item, ""
        first = first or problem
    return None, first


def json_values(text: str) -> list[Found]:
    """The top-level JSON values in an answer, in the order to try them; never empty.

    A `<think>…</think>` block at the start is skipped. Fenced blocks (```json or bare ```) come
    first, then the whole text. A block, or the text, that is one JSON value of any kind is that
    value; elsewhere only objects and arrays count, and only whole: one that does not decode is
    skipped to its closing bracket, never searched for pieces that do, and one that never closes
    ends the search.
    """
    text = _after_thinking(text).strip()
    if not text:
        return [Found(problem="the answer is empty")]

    found: list[Found] = []
    for block in _FENCE.findall(text):
        found += _values(block.strip(), ends_answer=False)
    # The text holds the fenced values too: each is tried once.
    seen = {item.source for item in found if not item.problem}
    found += [
        item for item in _values(text, ends_answer=True) if item.problem or item.source not in seen
    ]
    return found or [Found(problem=NO_JSON)]


def _after_thinking(text: str) -> str:
    """`text` without a leading `<think>` block."""
    # Only a block that opens at the start: a tag further in may be part of the answer's JSON.
    stripped = text.lstrip()
    if not stripped.startswith("<think>"):
        return text
    end = stripped.find("</think>")
    return "" if end < 0 else stripped[end + len("</think>") :]


def _values(block: str, *, ends_answer: bool) -> list[Found]:
    """The top-level values in `block`: itself when it is one JSON value, else its objects and
    arrays; `ends_answer` when the answer ends where `block` does."""
    if block[:1] not in ("{", "["):
        if block in _CONSTANTS:
            return [Found(problem=_invalid(_NAN))]
        try:
            return [Found(_loads(block), block)]
        except ValueError:
            pass
    return list(_objects_and_arrays(block, ends_answer=ends_answer))


def _objects_and_arrays(text: str, *, ends_answer: bool) -> Iterator[Found]:
    """The objects and arrays at the top level of `text`, in order, decoded or not."""
    opening = _OPENING.search(text)
    while opening:
        start = opening.start()
        end, deepest = _closing(text, start)
        if deepest > _MAX_NESTING:
            yield Found(problem=_TOO_DEEP, cut=end is None and ends_answer)
        elif end is None:
            yield Found(problem=_unfinished(text[start:]), cut=ends_answer)
        else:
            yield _decoded(text[start:end])
        if end is None:
            return
        opening = _OPENING.search(text, end)


def _closing(text: str, start: int) -> tuple[int | None, int]:
    """Where the bracket at `start` closes (None when it never does), and how deep it nests."""
    # Brackets count outside JSON strings only, as a decoder counts them.
    depth = deepest = 0
    for token in _TOKEN.finditer(text, start):
        mark = token.group()
        if mark == '"':
            break
        if mark[0] == '"':
            continue
        depth += 1 if mark in "[{" else -1
        deepest = max(deepest, depth)
        if depth == 0:
            return token.end(), deepest
    return None, deepest


def _decoded(source: str) -> Found:
    """`source`, a whole object or array, decoded; or what keeps it from decoding."""
    try:
        return Found(_loads(source), source)
    except RecursionError:
        return Found(problem=_TOO_DEEP)
    except ValueError as error:
        return Found(problem=_invalid(str(error)))


def _unfinished(source: str) -> str:
    """The problem of an object or array that never closes, with where the decoder gave up."""
    try:
        _loads(source)
    except RecursionError:
        return _TOO_DEEP
    except ValueError as error:
        return f"the answer holds no complete JSON value ({error})"
    return "the answer holds no complete JSON value"


def _loads(text: str) -> Any:
    """`text` decoded as strict JSON: Python's `json` takes NaN and Infinity, JSON does not."""
    return json.loads(text, parse_constant=_refuse)


def _refuse(constant: str) -> NoReturn:
    """Refuse a NaN or Infinity in the JSON being decoded."""
    raise ValueError(_NAN)


def _invalid(reason: str) -> str:
    """The problem of a value that is not valid JSON for `reason`."""
    return f"the answer is not valid JSON: {reason}"


def prepared(schema_type: Any) -> tuple[TypeAdapter[Any], dict[str, Any]]:
    """pydantic's `TypeAdapter` for a schema type, and its JSON Schema.

    A `ConfigError` when pydantic cannot take the type.
    """
    from pydantic import PydanticSchemaGenerationError, PydanticUserError, TypeAdapter

    try:
        adapter: TypeAdapter[Any] = TypeAdapter(schema_type)
        return adapter, adapter.json_schema()
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError) as error:
        # pydantic's messages run to several paragraphs; the first line says what is wrong.
        reason = str(error).strip().splitlines()[0]
        raise ConfigError(
            f"{schema_type!r} is not a schema pydantic can validate: {reason}",
            hint="Pass a pydantic BaseModel subclass, a dataclass, a TypedDict or list[Model].",
        ) from None


def schema_name(schema_type: Any) -> str:
    """A name for the schema within what OpenAI-style servers accept (`[A-Za-z0-9_-]{1,64}`)."""
    # Classes have a plain name; `list[app.models.Item]` becomes `list_Item`.
    # `list[City]` counts as a type on Python 3.10; its arguments tell it from a class.
    plain = isinstance(schema_type, type) and not typing.get_args(schema_type)
    name = schema_type.__name__ if plain else str(schema_type)
    name = re.sub(r"\b(?:\w+\.)+", "", name)
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")
    return name[:64] or "answer"


def response_format_for(schema_type: Any, mode: Mode) -> dict[str, Any] | None:
    """The `response_format` for `mode`: a JSON Schema, any JSON object, or None (prompt only).

    `strict` is False: strict mode wants every field required and `additionalProperties: false`,
    which most pydantic schemas are not.
    """
    if mode != "json_schema":
        return response_format(mode, "", {})
    return response_format(mode, schema_name(schema_type), prepared(schema_type)[1])


def response_format(mode: Mode, name: str, schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `response_format` for `mode`, with the JSON Schema `schema` named `name` in it."""
    if mode is None:
        return None
    if mode == "json_object":
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": False}}


def instruction_for(schema_type: Any) -> str:
    """The line that tells the model the schema, for modes that do not carry it."""
    return schema_instruction(prepared(schema_type)[1])


def schema_instruction(schema: Mapping[str, Any] | None) -> str:
    """The line that tells the model `schema`, compactly; with None, to answer in JSON at all
    (some servers refuse `json_object` unless the messages ask for JSON)."""
    if schema is None:
        return "Answer with only a JSON value."
    return INSTRUCTION + json.dumps(schema, ensure_ascii=False, separators=(",", ":"))


def repair_message(problem: str) -> Message:
    """The user message that asks the model to answer again, saying what was wrong."""
    return {
        "role": "user",
        "content": (
            f"That answer could not be used: {problem}\n"
            "Answer again with only the JSON value that matches the schema: no other text,"
            " no code fence."
        ),
    }


def no_valid_answer(
    name: str, rounds: int, problem: str, reply: Reply, hint: str
) -> StructuredOutputError:
    """The error for an answer still unusable after `rounds` rounds; `problem` is the last one's."""
    plural = "s" if rounds > 1 else ""
    message = f"the model gave no valid {name} after {rounds} round{plural}: {problem}"
    return StructuredOutputError(message, reply=reply, errors=problem, hint=hint)


def describe_errors(error: ValidationError) -> str:
    """pydantic's errors in one short line: `where: what` for the first few."""
    parts = []
    for detail in error.errors(include_url=False)[:_MAX_ERRORS]:
        where = ".".join(str(step) for step in detail["loc"]) or "the value"
        parts.append(f"{where}: {detail['msg']}")
    if error.error_count() > _MAX_ERRORS:
        parts.append(f"and {error.error_count() - _MAX_ERRORS} more")
    return _shortened("; ".join(parts))


def _shortened(text: str) -> str:
    """`text` on one line, cut at `_MAX_PROBLEM` characters."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_PROBLEM else text[: _MAX_PROBLEM - 1] + "…"


def with_instruction(messages: Sequence[Mapping[str, Any]] | str, line: str) -> list[Message]:
    """`messages` with `line` added to the first system message, or in a new one before them."""
    result = normalize_messages(messages)
    first = result[0]
    if first["role"] != "system":
        return [{"role": "system", "content": line}, *result]

    content = first.get("content")
    if isinstance(content, str):
        result[0] = {**first, "content": f"{content}\n\n{line}" if content else line}
    elif isinstance(content, list):
        result[0] = {**first, "content": [*content, {"type": "text", "text": line}]}
    else:
        result[0] = {**first, "content": line}
    return result


class StructuredCall(Generic[T]):
    """One `parse()` call: `messages` and `params` for the next round; `take` reads each reply.

    `take` returns True once `value` holds the validated answer; False when it has added the reply
    and a repair message to `messages` for another round; it raises `StructuredOutputError` when
    the answer is still unusable after `repairs` extra rounds.
    """

    def __init__(
        self,
        schema_type: type[T],
        messages: Sequence[Mapping[str, Any]] | str,
        *,
        mode: Mode,
        repairs: int,
        params: ChatParams,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(
                f"unknown structured output mode {mode!r}: use 'json_schema', 'json_object' or None"
            )
        if repairs < 0:
            raise ConfigError(f"repairs must be 0 or more, not {repairs}")
        if params.get("response_format") is not None:
            raise ConfigError("parse() sets response_format itself: choose it with mode= instead")

        self.adapter: TypeAdapter[T]
        self.adapter, schema = prepared(schema_type)
        self.name = schema_name(schema_type)
        self.mode = mode
        self.repairs_left = repairs
        self.rounds = 0
        wanted = response_format(mode, self.name, schema)
        self.params: ChatParams = {**params, "response_format": wanted}
        # The schema goes in the prompt in every mode: a provider may ignore response_format
        # without a word, and then the model would be asked to fit a schema it never saw.
        self.messages = with_instruction(messages, schema_instruction(schema))
        self._found: list[T] = []

    @property
    def value(self) -> T:
        """The validated answer, once `take` has returned True."""
        return self._found[0]

    def take(self, reply: Reply) -> bool:
        """Read one round's reply: True when `value` holds the answer (see the class)."""
        self.rounds += 1
        cut_short = reply.finish_reason == "length"
        found, problem = first_fit(reply.text, self._problem_of, cut_short=cut_short)
        if found is not None:
            return True

        if self.repairs_left <= 0:
            raise no_valid_answer(self.name, self.rounds, problem, reply, self._hint(reply))
        self.repairs_left -= 1
        self.messages.extend([reply.message, repair_message(problem)])
        return False

    def _problem_of(self, found: Found) -> str:
        """What is wrong with `found` for the schema; "" when nothing is, and it is now `value`."""
        from pydantic import ValidationError

        try:
            self._found = [self.adapter.validate_json(found.source)]
        except ValidationError as error:
            return f"it does not match the schema ({describe_errors(error)})"
        return ""

    def _hint(self, reply: Reply) -> str:
        """What to try when no round gave a valid answer."""
        if reply.finish_reason == "length" or reply.cut_while_thinking:
            return "The reply hit its token limit: raise max_tokens."
        other = 'mode="json_object"' if self.mode == "json_schema" else 'mode="json_schema"'
        return (
            f"Raise repairs=, try {other}, or use a model and provider that support structured"
            " output (`m2 models` shows which)."
        )
