"""MiniMax-M2's native tool calls, parsed out of `content` for servers that leave them there.

The model writes its calls as text between two single tokens:

    <minimax:tool_call>
    <invoke name="get_weather">
    <parameter name="city">Paris</parameter>
    </invoke>
    </minimax:tool_call>

Values are raw text, never escaped, so the rules pick the boundaries that actually end each part:

- A block runs from `<minimax:tool_call>` to the first `</minimax:tool_call>` or the end of the
  text. A block that never closes counts only when it ends right after an `</invoke>` (the model
  stopped at its token limit, or forgot the closing token, just after a call); one cut inside a
  call stays text whole, so a batch of calls cut short is never run in part.
- An invoke runs to the next `<invoke name=…>` or the end of its block, and ends at its last
  `</invoke>`; values may hold `</invoke>` but not an `<invoke name=…>` opening.
- One invoke that does not parse (no `</invoke>`, stray text among its parameters) leaves its
  whole block as text: the other calls in it may be pieces of a value, such as a file that quotes
  this very format, and must not run.
- A value ends at the last `</parameter>` before the next `<parameter name=…>` that follows a
  `</parameter>`, or before the invoke's end: HTML and `</parameter>` inside values survive
  (vLLM's non-greedy match cut them short, vllm#44060). Only `</parameter>` + `<parameter name=`
  inside a value stays ambiguous.
- A call to a name not in the request's tools is not a call. Such invokes stay in content where
  they were, inside their block's tags; the recognised calls are cut out, and a block left with
  only whitespace goes entirely. Text outside blocks, thinking included, is kept exactly; think
  tags mean nothing here.

`parse_native` is `NativeToolStream` fed the whole text at once, so both follow one rule set.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._types import ToolCall

OPEN = "<minimax:tool_call>"
CLOSE = "</minimax:tool_call>"
_INVOKE_END = "</invoke>"
_PARAM_END = "</parameter>"
_NAME = r"""\s+name=(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))\s*>"""
_INVOKE = re.compile(r"<invoke" + _NAME)
_PARAM = re.compile(r"<parameter" + _NAME)

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_FAIL: Any = object()  # "this schema does not fit the value", where None is a real value
# How deep `$ref`s and unions are followed: a schema that refers to itself must not loop forever.
_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class NativeParse:
    """`content` without the recognised calls (everything else exactly as received), and the
    calls in order of appearance."""

    content: str
    calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class NativeStep:
    """What one streamed delta releases: text safe to show now, and calls completed by it."""

    text: str
    calls: tuple[ToolCall, ...] = ()


def parse_native(content: str, tools: Mapping[str, Mapping[str, Any]]) -> NativeParse:
    """Take MiniMax-M2's native calls out of a whole `content`.

    `tools` maps each tool name of the request to its JSON Schema `parameters`; with no tools,
    nothing is parsed. Each call gets a fresh id and `arguments` as JSON text.
    """
    stream = NativeToolStream(tools)
    first = stream.feed(content)
    last = stream.finish()
    return NativeParse(first.text + last.text, first.calls + last.calls)


class NativeToolStream:
    """Incremental twin of `parse_native`: for any cut of the content into deltas, the joined
    texts equal `parse_native(content).content` and the calls match (ids aside).

    Held back are a possible partial `<minimax:tool_call>` at the end of a delta and everything
    from an opened block until it resolves; its calls come out together when it does. Deltas
    without `<` pass straight through while no block is open.
    """

    def __init__(self, tools: Mapping[str, Mapping[str, Any]]) -> None:
        self.tools = tools
        self._held = ""  # outside a block: a possible beginning of OPEN
        self._body: list[str] | None = None  # inside a block: its text after OPEN so far
        self._tail = ""  # the body's last characters, to find a tag cut across deltas
        self._count = 0

    def feed(self, delta: str) -> NativeStep:
        """Take one piece of `content`; return what can be passed on now."""
        if self._body is None and not self._held and ("<" not in delta or not self.tools):
            return NativeStep(delta)

        text: list[str] = []
        calls: list[ToolCall] = []
        while delta:
            if self._body is None:
                delta = self._outside(self._held + delta, text)
            else:
                delta = self._inside(delta, text, calls)
        return NativeStep("".join(text), tuple(calls))

    def finish(self) -> NativeStep:
        """Flush what was held: a partial tag as text, an unclosed block by the rules above."""
        if self._body is None:
            text, self._held = self._held, ""
            return NativeStep(text)

        body = "".join(self._body)
        self._body = None
        calls: list[ToolCall] = []
        return NativeStep(self._resolve(body, False, calls), tuple(calls))

    def _outside(self, text: str, out: list[str]) -> str:
        """Pass on `text` up to an opening tag; return what follows it, for `_inside`."""
        self._held = ""
        at = text.find(OPEN)
        if at >= 0:
            out.append(text[:at])
            self._body, self._tail = [], ""
            return text[at + len(OPEN) :]

        # OPEN holds one "<", so only the last one can begin a partial tag.
        lt = text.rfind("<")
        if lt >= 0 and OPEN.startswith(text[lt:]):
            self._held, text = text[lt:], text[:lt]
        out.append(text)
        return ""

    def _inside(self, delta: str, out: list[str], calls: list[ToolCall]) -> str:
        """Add `delta` to the open block; once it closes, resolve it and return what follows."""
        assert self._body is not None
        window = self._tail + delta
        close = window.find(CLOSE)
        if close < 0:
            self._body.append(delta)
            self._tail = window[1 - len(CLOSE) :]
            return ""

        joined = "".join(self._body) + delta
        at = len(joined) - len(window) + close
        self._body = None
        out.append(self._resolve(joined[:at], True, calls))
        return joined[at + len(CLOSE) :]

    def _resolve(self, body: str, closed: bool, calls: list[ToolCall]) -> str:
        """Add a block's calls to `calls`; return the text that stays of it."""
        end = CLOSE if closed else ""
        kept, found = _parse_block(body, self.tools)
        if not found or not (closed or body.rstrip().endswith(_INVOKE_END)):
            return OPEN + body + end

        for name, arguments in found:
            text = json.dumps(arguments, ensure_ascii=False)
            calls.append(ToolCall(new_call_id(), name, text, self._count))
            self._count += 1
        return "" if not kept or kept.isspace() else OPEN + kept + end


def _parse_block(
    body: str, tools: Mapping[str, Mapping[str, Any]]
) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """The body without its recognised invokes, and their names and arguments; none of them
    when one invoke does not parse."""
    starts = list(_INVOKE.finditer(body))
    kept = [body[: starts[0].start()] if starts else body]
    found: list[tuple[str, dict[str, Any]]] = []
    for number, match in enumerate(starts):
        stop = starts[number + 1].start() if number + 1 < len(starts) else len(body)
        end = body.rfind(_INVOKE_END, match.end(), stop)
        name = _name(match)
        inner = body[match.end() : end]
        arguments = _parse_parameters(inner, tools.get(name, {})) if end >= 0 else None
        if arguments is None:
            return body, []
        if name not in tools:
            kept.append(body[match.start() : stop])
            continue

        found.append((name, arguments))
        rest = body[end + len(_INVOKE_END) : stop]
        if rest and not rest.isspace():
            kept.append(rest)
    return "".join(kept), found


def _parse_parameters(inner: str, schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """The converted values of one invoke's parameters, or None when they do not parse."""
    starts: list[re.Match[str]] = []
    for match in _PARAM.finditer(inner):
        if not starts and inner[: match.start()].strip():
            return None
        if not starts or _follows(inner, match.start(), _PARAM_END):
            starts.append(match)
    if not starts:
        return {} if not inner.strip() else None

    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    arguments: dict[str, Any] = {}
    for number, match in enumerate(starts):
        stop = starts[number + 1].start() if number + 1 < len(starts) else len(inner)
        end = inner.rfind(_PARAM_END, match.end(), stop)
        if end < 0 or inner[end + len(_PARAM_END) : stop].strip():
            return None
        name = _name(match)
        arguments[name] = convert_value(inner[match.end() : end], properties.get(name), schema)
    return arguments


def _name(match: re.Match[str]) -> str:
    """The `name=` of an opening tag, whichever way it was quoted."""
    return next(group for group in match.groups() if group is not None)


def _follows(text: str, at: int, tag: str) -> bool:
    """Whether `tag` ends just before `at`, whitespace aside."""
    while at > 0 and text[at - 1].isspace():
        at -= 1
    return text.endswith(tag, 0, at)


def convert_value(
    text: str, schema: Mapping[str, Any] | None, root: Mapping[str, Any] | None = None
) -> Any:
    """Convert one parameter value by its JSON Schema `schema`.

    The text loses surrounding newlines only. Strings stay text; integer, number, object and
    array parse as JSON, boolean also takes 1/0, yes/no and on/off; unions (`anyOf`, `oneOf`,
    type lists) are tried in order; a value that fits nothing stays text. `null` becomes None
    wherever the schema allows null, before the union is tried in order, since the template
    renders None as `null`. `$ref` is followed into `root` (the tool's parameters schema; by
    default `schema` itself). With no schema, text stays text.
    """
    value = text.strip("\r\n")
    base = (schema or {}) if root is None else root
    if value.strip() == "null" and _allows_null(schema, base, 0):
        return None
    converted = _convert(value, schema, base, 0)
    return value if converted is _FAIL else converted


def _convert(value: str, schema: Any, root: Mapping[str, Any], depth: int) -> Any:
    """`value` converted by `schema`, or `_FAIL` when it does not fit."""
    if not isinstance(schema, Mapping) or not schema or depth > _MAX_DEPTH:
        return value
    if "$ref" in schema:
        return _convert(value, _follow(schema["$ref"], root), root, depth + 1)

    options = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
    if isinstance(options, list):
        for option in options:
            converted = _convert(value, option, root, depth + 1)
            if converted is not _FAIL:
                return converted
        return _FAIL

    choices = [schema["const"]] if "const" in schema else schema.get("enum")
    if isinstance(choices, list):
        # Enum strings stay as written: "none" in ["auto", "none"] is the string.
        if value in choices:
            return value
        parsed = _json(value)
        for choice in choices:
            if not isinstance(choice, str) and type(parsed) is type(choice) and parsed == choice:
                return parsed

    types = schema.get("type")
    if types is None:
        types = "object" if "properties" in schema else "array" if "items" in schema else None
    if types is None:
        return _FAIL if isinstance(choices, list) else value
    for kind in [types] if isinstance(types, str) else types:
        converted = _by_type(value, kind)
        if converted is not _FAIL:
            return converted
    return _FAIL


def _by_type(value: str, kind: Any) -> Any:
    """`value` as the JSON Schema type `kind`, or `_FAIL`; unknown kinds keep the text."""
    if kind == "string" or kind not in ("null", "boolean", "integer", "number", "object", "array"):
        return value
    if kind == "null":
        return None if value.strip() == "null" else _FAIL
    if kind == "boolean":
        word = value.strip().lower()
        return True if word in _TRUE else False if word in _FALSE else _FAIL

    parsed = _json(value)
    if kind == "object":
        return parsed if isinstance(parsed, dict) else _FAIL
    if kind == "array":
        return parsed if isinstance(parsed, list) else _FAIL
    if isinstance(parsed, bool) or not isinstance(parsed, (int, float)):
        return _FAIL
    if isinstance(parsed, float) and not math.isfinite(parsed):
        return _FAIL
    if kind == "number":
        return parsed
    if isinstance(parsed, float):
        return int(parsed) if parsed.is_integer() else _FAIL
    return parsed


def new_call_id() -> str:
    """An id for a call the server gave none (or none of its own): `call_` and 24 hex digits."""
    return f"call_{secrets.token_hex(12)}"


def _json(value: str) -> Any:
    """The JSON value `value` spells, or `_FAIL`. NaN and Infinity are not JSON, though Python
    reads them: arguments holding them would be refused where they are parsed again."""
    try:
        return json.loads(value, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return _FAIL


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _allows_null(schema: Any, root: Mapping[str, Any], depth: int) -> bool:
    """Whether `schema` lets the value be null, in any of the ways a schema can say so."""
    if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
        return False
    if "$ref" in schema:
        return _allows_null(_follow(schema["$ref"], root), root, depth + 1)

    types = schema.get("type")
    if types == "null" or (isinstance(types, list) and "null" in types):
        return True
    if schema.get("nullable") is True or schema.get("const", _FAIL) is None:
        return True
    choices = schema.get("enum")
    if isinstance(choices, list) and None in choices:
        return True
    options = [*(schema.get("anyOf") or ()), *(schema.get("oneOf") or ())]
    return any(_allows_null(option, root, depth + 1) for option in options)


def _follow(ref: Any, root: Mapping[str, Any]) -> Any:
    """The schema a local `$ref` ("#/$defs/Name") points to in `root`, or None."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node: Any = root
    for part in ref[1:].split("/")[1:]:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part.replace("~1", "/").replace("~0", "~"))
    return node
