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
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from ._errors import ConfigError, StructuredOutputError
from ._request import normalize_messages

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pydantic import TypeAdapter, ValidationError

    from ._request import ChatParams
    from ._types import Message, Reply

T = TypeVar("T")
Mode = Literal["json_schema", "json_object"] | None

MODES = ("json_schema", "json_object", None)
INSTRUCTION = "Answer with only a JSON value matching this JSON Schema: "

_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_MAX_ERRORS = 5
_MAX_PROBLEM = 600


class NoJSONError(ValueError):
    """The answer holds no complete JSON object or array."""


def extract_json(text: str) -> Any:
    """The first complete JSON object or array in `text`, an answer written by a model.

    A `<think>…</think>` block at the start is skipped. Fenced blocks (```json or bare ```) are
    read first, then the whole text; a text that is one JSON value of any kind is that value.
    Raises `NoJSONError` (a `ValueError`) with a short reason when there is none.
    """
    return _locate(text)[0]


def _locate(text: str) -> tuple[Any, str]:
    """The first JSON value in `text`, and the exact text it was decoded from."""
    text = _after_thinking(text).strip()
    if not text:
        raise NoJSONError("the answer is empty")

    # The fast path, and the only one for a lone number or string.
    try:
        return json.loads(text), text
    except ValueError:
        pass

    first_error = ""
    for block in [*_FENCE.findall(text), text]:
        try:
            return _first_value(block)
        except NoJSONError as error:
            first_error = first_error or str(error)
    raise NoJSONError(first_error)


def _after_thinking(text: str) -> str:
    """`text` without a leading `<think>` block."""
    # Only a block that opens at the start: a tag further in may be part of the answer's JSON.
    stripped = text.lstrip()
    if not stripped.startswith("<think>"):
        return text
    end = stripped.find("</think>")
    return "" if end < 0 else stripped[end + len("</think>") :]


def _first_value(text: str) -> tuple[Any, str]:
    """The first JSON object or array that decodes, and its exact text."""
    decoder = json.JSONDecoder()
    first_error: ValueError | None = None
    for start, char in enumerate(text):
        if char not in "{[":
            continue
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError as error:
            first_error = first_error or error
            continue
        return value, text[start:end]

    if first_error is None:
        raise NoJSONError("the answer holds no JSON object or array")
    raise NoJSONError(f"the answer holds no complete JSON value ({first_error})")


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
    name = schema_type.__name__ if isinstance(schema_type, type) else str(schema_type)
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
        from pydantic import ValidationError

        self.rounds += 1
        try:
            _, found = _locate(reply.text)
            self._found = [self.adapter.validate_json(found)]
            return True
        except NoJSONError as error:
            problem = str(error)
        except ValidationError as error:
            problem = f"it does not match the schema ({describe_errors(error)})"

        if self.repairs_left <= 0:
            raise no_valid_answer(self.name, self.rounds, problem, reply, self._hint(reply))
        self.repairs_left -= 1
        self.messages.extend([reply.message, repair_message(problem)])
        return False

    def _hint(self, reply: Reply) -> str:
        """What to try when no round gave a valid answer."""
        if reply.finish_reason == "length" or reply.cut_while_thinking:
            return "The reply hit its token limit: raise max_tokens."
        other = 'mode="json_object"' if self.mode == "json_schema" else 'mode="json_schema"'
        return (
            f"Raise repairs=, try {other}, or use a model and provider that support structured"
            " output (`m2 models` shows which)."
        )
