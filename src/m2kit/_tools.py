"""Typed Python functions as tools: their JSON Schema, and checks on the model's arguments.

pydantic builds the schemas and checks the arguments. It is imported when the first tool is made,
never by `import m2kit`, which must stay fast (pydantic costs about 0.2 s). Running tools is
`_tool_runs`'s.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from ._errors import M2Error

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from pydantic import BaseModel, ValidationError

    from ._types import ToolCall

P = ParamSpec("P")
R = TypeVar("R")

# The OpenAI function-name rule, which the router and vLLM enforce too.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Keyword Args)\s*:\s*$")
_ARG_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
# Keys whose values are data, not schema: a "title" inside them is the user's, not pydantic's.
_DATA_KEYS = frozenset({"default", "const", "enum", "examples"})
_MAX_ERRORS = 5
_MAX_SHOWN = 60
_DESCRIBABLE = "use str, int, float, bool, Literal, Enum, list, dict or pydantic models"


class ToolArgumentsError(M2Error, ValueError):
    """The model's arguments were not a JSON object, or did not fit the tool's parameters.

    The message is written for the model: it names each bad field and what was expected.
    """


@dataclass(frozen=True, eq=False)
class Tool(Generic[P, R]):
    """A Python function the model may call. Make one with `@tool`; calling it calls the function.

    - `name`: what the model calls it; the function's name unless given.
    - `description`: the docstring without its `Args:` section, unless given.
    - `parameters`: the JSON Schema of the arguments (read-only): one property per parameter,
      described from `Annotated[..., Field(description=...)]` or else the docstring's `Args:`.
    - `timeout`: seconds a run may take, or None; it wins over the default a runner is given.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[P, R]
    _model: type[BaseModel] = dataclasses.field(repr=False)
    # Field name in `_model` -> parameter name; aliases keep names like `json` or `_id` usable.
    _fields: dict[str, str] = dataclasses.field(repr=False)
    timeout: float | None = None

    @classmethod
    def from_function(
        cls,
        function: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> Tool[P, R]:
        """The tool for a function with a type hint on every parameter (see `tool`)."""
        if isinstance(function, Tool):
            function = function.function
        name = name or str(getattr(function, "__name__", ""))
        if not _NAME.match(name):
            raise ValueError(
                f"{name!r} cannot be a tool name: use 1 to 64 letters, digits, '_' or '-';"
                " pass name=... to @tool"
            )
        if timeout is not None and timeout <= 0:
            raise ValueError(f"tool {name}: timeout must be a positive number of seconds")

        summary, documented = _parse_docstring(inspect.getdoc(function))
        model, fields = _arguments_model(name, function)
        parameters = _schema(name, model, documented)
        text = summary if description is None else description
        return cls(name, text, parameters, function, model, fields, timeout)

    @property
    def is_async(self) -> bool:
        """Whether the function is a coroutine function (a runner awaits it on an event loop)."""
        return inspect.iscoroutinefunction(self.function)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.function(*args, **kwargs)

    def to_openai(self) -> dict[str, Any]:
        """The entry for the request's `tools` list."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def arguments(self, call: ToolCall) -> dict[str, Any]:
        """The call's arguments, checked and converted to the parameters' types (pydantic's lax
        mode: "3" becomes 3, "red" an Enum member, a dict a model), keyed by parameter name.

        An empty `arguments` string means no arguments. Raises `ToolArgumentsError`.
        """
        from pydantic import ValidationError

        data = _decode(self.name, call.arguments)
        try:
            checked = self._model.model_validate(data)
        except ValidationError as exc:
            problems = _problems(exc, self._fields.values())
            raise ToolArgumentsError(f"Invalid arguments for {self.name}: {problems}") from exc
        return {param: getattr(checked, field) for field, param in self._fields.items()}


@overload
def tool(function: Callable[P, R], /) -> Tool[P, R]: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None, timeout: float | None = None
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...


def tool(
    function: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Make a sync or async function a tool: `@tool`, `@tool()` or `@tool(name=..., ...)`.

    Every parameter needs a type hint; the types must be ones pydantic can describe (str, int,
    float, bool, Literal, Enum, list, dict, `X | None`, pydantic models). `timeout` is in seconds.
    Raises TypeError for `*args`, `**kwargs`, positional-only or unhinted parameters.
    """

    def make(function: Callable[P, R]) -> Tool[P, R]:
        return Tool.from_function(function, name=name, description=description, timeout=timeout)

    return make if function is None else make(function)


def as_tool(obj: Tool[..., Any] | Callable[..., Any]) -> Tool[..., Any]:
    """`obj` if it is a tool, else the tool made from the function."""
    if isinstance(obj, Tool):
        return obj
    if callable(obj):
        return Tool.from_function(obj)
    raise TypeError(f"expected a function or a @tool, got {type(obj).__name__}")


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The docstring without its `Args:` section, and that section's text for each parameter."""
    lines = (doc or "").splitlines()
    start = next((i for i, line in enumerate(lines) if _ARGS_HEADER.match(line)), None)
    if start is None:
        return "\n".join(lines).strip(), {}

    # The section ends at the first line indented no deeper than its header ("Returns:").
    depth = _indent(lines[start])
    after = range(start + 1, len(lines))
    end = next((i for i in after if lines[i].strip() and _indent(lines[i]) <= depth), len(lines))

    documented: dict[str, str] = {}
    entry_depth: int | None = None
    current = ""
    for line in lines[start + 1 : end]:
        if not line.strip():
            continue
        entry_depth = _indent(line) if entry_depth is None else entry_depth
        entry = _ARG_ENTRY.match(line.strip()) if _indent(line) <= entry_depth else None
        if entry:
            current = entry.group(1)
            documented[current] = entry.group(2).strip()
        elif current:
            documented[current] = f"{documented[current]} {line.strip()}".strip()

    summary = "\n".join([*lines[:start], *lines[end:]]).strip()
    return summary, documented


def _indent(line: str) -> int:
    """How many blanks the line starts with."""
    return len(line) - len(line.lstrip())


def _arguments_model(
    name: str, function: Callable[..., Any]
) -> tuple[type[BaseModel], dict[str, str]]:
    """A pydantic model of the function's parameters, and its field name -> parameter name."""
    import pydantic

    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except NameError as exc:
        raise TypeError(
            f"tool {name}: its type hints cannot be resolved ({exc});"
            " define the types they name at module level"
        ) from exc

    definitions: dict[str, Any] = {}
    fields: dict[str, str] = {}
    for number, param in enumerate(signature.parameters.values()):
        _check_parameter(name, param, hints)
        default = ... if param.default is param.empty else param.default
        definitions[f"p{number}"] = (hints[param.name], pydantic.Field(default, alias=param.name))
        fields[f"p{number}"] = param.name

    # Models write numbers for string fields (a zip code, an id); pydantic's lax mode refuses them.
    config = pydantic.ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    try:
        model = pydantic.create_model(name, __config__=config, **definitions)
    except pydantic.PydanticUserError as exc:
        raise TypeError(
            f"tool {name}: a parameter's type cannot be described in JSON Schema ({exc});"
            f" {_DESCRIBABLE}"
        ) from exc
    return model, fields


def _check_parameter(tool_name: str, param: inspect.Parameter, hints: dict[str, Any]) -> None:
    """TypeError, with the fix, for a parameter the model could not be told how to pass."""
    where = f"tool {tool_name}: parameter {param.name!r}"
    if param.kind is param.VAR_POSITIONAL:
        raise TypeError(
            f"tool {tool_name}: *{param.name} cannot be described to the model;"
            f" use a named parameter instead, e.g. `{param.name}: list[str]`"
        )
    if param.kind is param.VAR_KEYWORD:
        raise TypeError(
            f"tool {tool_name}: **{param.name} cannot be described to the model;"
            f" use named parameters instead, or `{param.name}: dict[str, str]`"
        )
    if param.kind is param.POSITIONAL_ONLY:
        raise TypeError(f"{where} is positional-only; remove the '/' so it can be passed by name")
    if param.name not in hints:
        fix = f"add one, e.g. `{param.name}: str`"
        if param.name in ("self", "cls"):
            fix = "make the tool from the bound method instead: tool(obj.method)"
        raise TypeError(f"{where} has no type hint; {fix}")


def _schema(name: str, model: type[BaseModel], documented: dict[str, str]) -> dict[str, Any]:
    """The parameters' JSON Schema, described from the docstring where `Field` gave nothing."""
    import pydantic

    try:
        schema: dict[str, Any] = _without_titles(model.model_json_schema())
    except pydantic.PydanticUserError as exc:
        raise TypeError(
            f"tool {name}: its parameters have no JSON Schema ({exc}); {_DESCRIBABLE}"
        ) from exc

    for param, prop in schema.get("properties", {}).items():
        if param in documented and "description" not in prop:
            prop["description"] = documented[param]
    return schema


def _without_titles(node: Any) -> Any:
    # pydantic titles every schema for people; to the model they are tokens that say nothing.
    if isinstance(node, list):
        return [_without_titles(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: value if key in _DATA_KEYS else _without_titles(value)
        for key, value in node.items()
        if not (key == "title" and isinstance(value, str))
    }


def _decode(tool_name: str, text: str) -> dict[str, Any]:
    """The arguments as a dict (blank or null: none); ToolArgumentsError when they are no object."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # Some servers send a Python repr of the arguments (mlx-openai-server#124).
        literal = _python_literal(text)
        if isinstance(literal, dict):
            return literal
        raise ToolArgumentsError(
            f"Invalid arguments for {tool_name}: not valid JSON ({exc.msg} at character"
            f" {exc.pos}); send one JSON object"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ToolArgumentsError(
            f"Invalid arguments for {tool_name}: expected a JSON object of named arguments,"
            f" got {_shown(data)}"
        )
    return data


def _python_literal(text: str) -> object:
    """The Python literal `text` spells, or None."""
    import ast

    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _problems(exc: ValidationError, params: Iterable[str]) -> str:
    """pydantic's first few errors in one line for the model, each naming its field."""
    problems = []
    for error in exc.errors(include_url=False)[:_MAX_ERRORS]:
        where = _location(error["loc"])
        if error["type"] == "missing":
            problems.append(f"{where}: required but missing")
        elif error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
            problems.append(f"{where}: not a parameter (the parameters are {', '.join(params)})")
        else:
            problems.append(f"{where}: {error['msg']} (got {_shown(error['input'])})")

    if exc.error_count() > _MAX_ERRORS:
        problems.append(f"and {exc.error_count() - _MAX_ERRORS} more")
    return "; ".join(problems)


def _location(loc: tuple[int | str, ...]) -> str:
    """An error's location as `items[0].name`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text or "arguments"


def _shown(value: object) -> str:
    """A value as short JSON, cut at `_MAX_SHOWN` characters."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"
