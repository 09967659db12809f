"""`m2 ask --schema` and `--json-mode`: the schema, the repair rounds and the check behind them.

The check is a subset of JSON Schema written here (see `schema_problems`), so that `m2 ask` needs
neither a JSON Schema library nor pydantic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from .._types import AnswerDelta, ThinkingDelta
from ._output import write_json
from ._render import StreamRenderer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._conversation import Conversation
    from .._structured import Found
    from .._types import Reply
    from ._ask import AskOptions, Notices

# What `schema_problems` checks; other keywords (formats, patterns, lengths, ranges) are not.
_KINDS: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}
_MAX_PROBLEMS = 5
# How deep into a value, or into the schema itself, the check goes: a recursive schema would
# otherwise follow a deep enough value down to a RecursionError.
_MAX_DEPTH = 64


def run_structured(
    conversation: Conversation, prompt: str, options: AskOptions, notices: Notices
) -> Reply:
    """Ask for a JSON answer, with repair rounds, and print it; each round is a turn.

    StructuredOutputError when the answer is still not valid after `--repairs` more rounds.
    """
    from .._structured import no_valid_answer, repair_message, response_format, schema_instruction

    if options.schema is None:
        schema: Mapping[str, Any] | None = None
        name = "JSON value"
        wanted = response_format("json_object", name, {})
    else:
        schema, name = load_schema(options.schema)
        wanted = response_format("json_schema", name, schema)

    # In the prompt too: a provider may ignore response_format without a word.
    text = f"{prompt}\n\n{schema_instruction(schema)}"
    rounds = 0
    while True:
        rounds += 1
        reply = _reply(conversation, text, options, notices, wanted)
        value, problem = _checked(reply, schema)
        if not problem:
            write_json(value)
            return reply
        if rounds > options.repairs:
            break
        text = repair_message(problem)["content"]

    raise no_valid_answer(name, rounds, problem, reply, _hint(reply, options))


def _reply(
    conversation: Conversation,
    text: str,
    options: AskOptions,
    notices: Notices,
    wanted: dict[str, Any] | None,
) -> Reply:
    """One round's reply to `text`, its thinking shown as it comes (with --think)."""
    # Only the thinking is shown as it comes: the JSON is printed once it has been checked.
    renderer = StreamRenderer(think=options.think)
    notices.renderer = renderer
    try:
        if not options.stream:
            reply = conversation.send(text, response_format=wanted)
            if options.think and reply.thinking:
                renderer.feed(ThinkingDelta(reply.thinking))
            return reply
        with conversation.stream(text, response_format=wanted) as events:
            return renderer.play(event for event in events if not isinstance(event, AnswerDelta))
    finally:
        renderer.end()
        notices.renderer = None


def _checked(reply: Reply, schema: Mapping[str, Any] | None) -> tuple[Any, str]:
    """The JSON value in an answer that fits `schema`, and what is wrong when none does (the
    first value's problem; "" when nothing is)."""
    from .._structured import first_fit

    def problem_of(found: Found) -> str:
        problems = [] if schema is None else schema_problems(schema, found.value)
        return f"it does not match the schema ({_joined(problems)})" if problems else ""

    cut_short = reply.finish_reason == "length"
    found, problem = first_fit(reply.text, problem_of, cut_short=cut_short)
    return (None, " ".join(problem.split())) if found is None else (found.value, "")


def _hint(reply: Reply, options: AskOptions) -> str:
    """What to try when no round gave a valid answer."""
    if reply.finish_reason == "length" or reply.cut_while_thinking:
        return "The reply hit its token limit: raise --max-tokens."
    other = "--json-mode" if options.schema is not None else "--schema"
    return (
        f"Raise --repairs, try {other}, or use a model and provider that support structured"
        " output (m2 models shows which)."
    )


def load_schema(given: str) -> tuple[dict[str, Any], str]:
    """The JSON Schema of `--schema` (a file, or the schema itself when it starts with "{"), and
    a name for it within what servers accept. ConfigError when it cannot be read or is no object.
    """
    from .._structured import schema_name

    inline = given.lstrip().startswith("{")
    where = "the --schema text" if inline else given
    try:
        text = given if inline else Path(given).read_text(encoding="utf-8")
        schema = json.loads(text)
    except OSError as error:
        raise ConfigError(f"cannot read the schema file {given}: {error.strerror}") from None
    except ValueError as error:
        raise ConfigError(f"{where} is not valid JSON: {error}") from None
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply to read") from None
    if not isinstance(schema, dict):
        raise ConfigError(f"{where} is not a JSON Schema: it should be a JSON object")
    mistake = _mistake(schema, schema)
    if mistake:
        raise ConfigError(f"{where} is not a usable JSON Schema: {mistake}")

    title = schema.get("title")
    fallback = "answer" if inline else Path(given).stem
    return schema, schema_name(title if isinstance(title, str) and title else fallback)


_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")


def _mistake(schema: object, root: object, at: str = "the schema", depth: int = 0) -> str | None:
    """The first misspelt or misshapen keyword among those `schema_problems` checks, or the first
    `$ref` loop, so that a typo is refused up front instead of letting any answer through; None
    when there is none. `root` is the whole schema."""
    if isinstance(schema, bool):
        return None
    if not isinstance(schema, dict):
        return f"{at} should be an object or true/false"
    if depth > _MAX_DEPTH:
        return f"the schema is nested too deeply to check (more than {_MAX_DEPTH} levels)"

    kinds = schema.get("type", [])
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind not in _TYPES:
            return f"{at}: type {kind!r} is not one of {', '.join(_TYPES)}"
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        return f"{at}: required should be a list of property names"
    if _ref_loop(root, schema):
        return f"{at}: $ref {schema['$ref']!r} leads round in a loop of $refs"

    children: list[tuple[str, object]] = []
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        return f"{at}: properties should be an object"
    children += [(f"{at}.properties.{name}", value) for name, value in properties.items()]
    for key in ("items", "additionalProperties"):
        if key in schema:
            children.append((f"{at}.{key}", schema[key]))
    for key in ("allOf", "anyOf", "oneOf"):
        options = schema.get(key, [])
        if not isinstance(options, list):
            return f"{at}: {key} should be a list of schemas"
        children += [(f"{at}.{key}[{n}]", option) for n, option in enumerate(options)]
    for path, child in children:
        found = _mistake(child, root, path, depth + 1)
        if found:
            return found
    return None


def _ref_loop(root: object, schema: Mapping[str, Any]) -> bool:
    """Whether the `$ref`s from `schema`, followed one after another, come back round."""
    passed: set[int] = set()
    node: object = schema
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        if id(node) in passed:
            return True
        passed.add(id(node))
        node = _resolved(root, node["$ref"])
    return False


def schema_problems(schema: object, value: object) -> list[str]:
    """What is wrong with `value` for a JSON Schema, as "where: what" lines; empty when it fits.

    A subset of JSON Schema: `type`, `enum`, `const`, `required`, `properties`,
    `additionalProperties`, `items` (one schema for every item), `allOf`, `anyOf`, `oneOf` (read
    as anyOf) and `$ref` within the schema. Other keywords are not checked. The check stops with
    a problem more than 64 levels into the value, and where `$ref`s lead round in a loop.
    """
    return _problems(schema, value, _Place(schema))


@dataclass(frozen=True)
class _Place:
    """Where in the value a check is: the path to it, how deep that is, and the schemas being
    applied to it there (a `$ref` back to one of them would loop for ever)."""

    root: object
    where: str = ""
    depth: int = 0
    applying: frozenset[int] = frozenset()

    def inside(self, where: str) -> _Place:
        """A part of the value, at `where`."""
        return _Place(self.root, where, self.depth + 1)

    def under(self, schema: object) -> _Place:
        """The same value, with `schema` being applied to it."""
        return replace(self, applying=self.applying | {id(schema)})


def _problems(schema: object, value: object, place: _Place) -> list[str]:
    """`schema_problems` for the part of the value at `place`."""
    at = place.where or "the value"
    if schema is False:
        return [f"{at}: not allowed here"]
    if not isinstance(schema, dict):
        return []
    if id(schema) in place.applying:
        return [f"{at}: cannot be checked: the schema's $ref leads round in a loop"]
    if place.depth > _MAX_DEPTH:
        return [f"{at}: too deeply nested to check (more than {_MAX_DEPTH} levels)"]

    here = place.under(schema)
    problems: list[str] = []
    if isinstance(schema.get("$ref"), str):
        problems += _problems(_resolved(place.root, schema["$ref"]), value, here)
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if isinstance(kinds, list) and not any(_is_kind(value, str(kind)) for kind in kinds):
        problems.append(f"{at}: should be {' or '.join(map(str, kinds))}, not {_kind_of(value)}")
        return problems
    if "const" in schema and not _same(value, schema["const"]):
        problems.append(f"{at}: should be {json.dumps(schema['const'], ensure_ascii=False)}")
    choices = schema.get("enum")
    if isinstance(choices, list) and not any(_same(value, choice) for choice in choices):
        shown = ", ".join(json.dumps(choice, ensure_ascii=False) for choice in choices)
        problems.append(f"{at}: should be one of {shown}")

    for part in schema.get("allOf") or []:
        problems += _problems(part, value, here)
    for key in ("anyOf", "oneOf"):
        parts = schema.get(key)
        if isinstance(parts, list) and parts:
            found = [_problems(part, value, here) for part in parts]
            if all(found):
                problems.append(f"{at}: matches none of the choices ({found[0][0]})")

    if isinstance(value, dict):
        problems += _object_problems(schema, value, place)
    elif isinstance(value, list) and isinstance(schema.get("items"), (dict, bool)):
        for number, item in enumerate(value):
            problems += _problems(schema["items"], item, place.inside(f"{place.where}[{number}]"))
    return problems


def _object_problems(
    schema: Mapping[str, Any], value: Mapping[str, Any], place: _Place
) -> list[str]:
    """The problems of an object's keys: missing, not allowed, or wrong inside."""
    problems = []
    prefix = f"{place.where}." if place.where else ""
    for key in schema.get("required") or []:
        if key not in value:
            problems.append(f"{prefix}{key}: required but missing")

    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            problems += _problems(properties[key], item, place.inside(prefix + key))
        elif extra is False:
            problems.append(f"{prefix}{key}: not a property the schema allows")
        else:
            problems += _problems(extra, item, place.inside(prefix + key))
    return problems


def _resolved(root: object, ref: str) -> object:
    """The part of the schema a local `$ref` ("#/$defs/Item") points at; anything else passes."""
    if not ref.startswith("#"):
        return True

    node = root
    for step in ref[1:].split("/")[1:]:
        step = step.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or step not in node:
            return True
        node = node[step]
    return node


def _is_kind(value: object, kind: str) -> bool:
    """Whether `value` is of the JSON Schema type `kind`; an unknown kind takes anything."""
    # bool is an int in Python, but never a number in JSON.
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return kind == "number" or float(value).is_integer()
    expected = _KINDS.get(kind)
    return expected is None or isinstance(value, expected)


def _kind_of(value: object) -> str:
    """The JSON Schema type of `value`, for a message."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return next((kind for kind, found in _KINDS.items() if isinstance(value, found)), "unknown")


def _same(value: object, expected: object) -> bool:
    """Equal, and both booleans or neither: in Python, True == 1."""
    return isinstance(value, bool) == isinstance(expected, bool) and value == expected


def _joined(problems: list[str]) -> str:
    """The first `_MAX_PROBLEMS` problems in one line, and how many more there are."""
    shown = problems[:_MAX_PROBLEMS]
    if len(problems) > _MAX_PROBLEMS:
        shown.append(f"and {len(problems) - _MAX_PROBLEMS} more")
    return "; ".join(shown)
