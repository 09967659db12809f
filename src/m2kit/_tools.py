"""Typed Python functions as tools: their JSON Schema, checks on the model's arguments, and runs.

pydantic builds the schemas and checks the arguments. It is imported when the first tool is made,
never by `import m2kit`, which must stay fast (pydantic costs about 0.2 s). Running a tool never
raises the tool's errors: they come back as a `ToolResult` with `error=True`, worded for the model;
KeyboardInterrupt, SystemExit and cancellation always go through.
"""

from __future__ import annotations

import contextvars
import dataclasses
import enum
import functools
import inspect
import json
import re
import threading
import time
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from ._errors import M2Error

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
    from concurrent.futures import Future

    from pydantic import BaseModel, ValidationError

    from ._types import Message, ToolCall

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

# The OpenAI function-name rule, which the router and vLLM enforce too.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Keyword Args)\s*:\s*$")
_ARG_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
# Keys whose values are data, not schema: a "title" inside them is the user's, not pydantic's.
_DATA_KEYS = frozenset({"default", "const", "enum", "examples"})
_MAX_ERRORS = 5
_MAX_SHOWN = 60


class ToolArgumentsError(M2Error, ValueError):
    """The model's arguments were not a JSON object, or did not fit the tool's parameters.

    The message is written for the model: it names each bad field and what was expected.
    """


class _TimedOut(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"the tool did not finish within {seconds:g} s")


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
    return len(line) - len(line.lstrip())


def _arguments_model(
    name: str, function: Callable[..., Any]
) -> tuple[type[BaseModel], dict[str, str]]:
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
            " use str, int, float, bool, Literal, Enum, list, dict or pydantic models"
        ) from exc
    return model, fields


def _check_parameter(tool_name: str, param: inspect.Parameter, hints: dict[str, Any]) -> None:
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
    import pydantic

    try:
        schema: dict[str, Any] = _without_titles(model.model_json_schema())
    except pydantic.PydanticUserError as exc:
        raise TypeError(f"tool {name}: its parameters have no JSON Schema ({exc})") from exc
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
    import ast

    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _problems(exc: ValidationError, params: Iterable[str]) -> str:
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
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text or "arguments"


def _shown(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of one tool call. `content` goes back to the model; `elapsed` is in seconds."""

    call: ToolCall
    content: str
    error: bool
    elapsed: float

    def to_message(self) -> Message:
        """The `tool` message for the conversation's history."""
        return {
            "role": "tool",
            "tool_call_id": self.call.id,
            "name": self.call.name,
            "content": self.content,
        }


def run_sync(tool: Tool[..., Any], call: ToolCall, *, timeout: float | None = None) -> ToolResult:
    """Run one call and return its result; the tool's errors become the result's content.

    `timeout` (seconds) applies when the tool has none of its own. A sync tool with a time limit
    runs on a thread, and an async tool always does (under `anyio.run`). A thread cannot be killed:
    past the limit it is left to finish on its own, and its result is dropped.
    """
    import anyio

    limit = tool.timeout if tool.timeout is not None else timeout
    started = time.perf_counter()
    try:
        kwargs = tool.arguments(call)
        if tool.is_async:
            work = functools.partial(tool.function, **kwargs)
            value = _wait(_start(functools.partial(anyio.run, _within, limit, work)), limit)
        elif limit is None:
            value = tool.function(**kwargs)
        else:
            value = _wait(_start(functools.partial(tool.function, **kwargs)), limit)
        content, error = _content(value), False
    except Exception as exc:
        content, error = _failure(exc), True
    return ToolResult(call, content, error, time.perf_counter() - started)


async def run_async(
    tool: Tool[..., Any], call: ToolCall, *, timeout: float | None = None
) -> ToolResult:
    """Run one call under anyio and return its result; the tool's errors become its content.

    `timeout` (seconds) applies when the tool has none of its own. A sync tool runs on a worker
    thread (`anyio.to_thread`); past the limit the thread is abandoned, since it cannot be killed,
    and finishes on its own.
    """
    import anyio.to_thread

    limit = tool.timeout if tool.timeout is not None else timeout
    started = time.perf_counter()
    try:
        kwargs = tool.arguments(call)
        job = functools.partial(tool.function, **kwargs)
        if tool.is_async:
            value = await _within(limit, job)
        else:
            work = functools.partial(anyio.to_thread.run_sync, job, abandon_on_cancel=True)
            value = await _within(limit, work)
        content, error = _content(value), False
    except Exception as exc:
        content, error = _failure(exc), True
    return ToolResult(call, content, error, time.perf_counter() - started)


def run_many_sync(
    calls: Sequence[ToolCall],
    tools_by_name: Mapping[str, Tool[..., Any]],
    *,
    parallel: bool = True,
    timeout: float | None = None,
) -> list[ToolResult]:
    """Run the calls, each on its own thread when `parallel`, and return results in call order."""

    def one(call: ToolCall) -> ToolResult:
        if (found := tools_by_name.get(call.name)) is None:
            return _unknown(call, tools_by_name)
        return run_sync(found, call, timeout=timeout)

    if not parallel or len(calls) < 2:
        return [one(call) for call in calls]
    running = [_start(functools.partial(one, call)) for call in calls]
    return [future.result() for future in running]


async def run_many_async(
    calls: Sequence[ToolCall],
    tools_by_name: Mapping[str, Tool[..., Any]],
    *,
    parallel: bool = True,
    timeout: float | None = None,
) -> list[ToolResult]:
    """Run the calls, concurrently in a task group when `parallel`; results come in call order."""
    import anyio

    results = [_unknown(call, tools_by_name) for call in calls]
    stopped: list[BaseException] = []

    async def one(number: int, call: ToolCall) -> None:
        if (found := tools_by_name.get(call.name)) is not None:
            results[number] = await run_async(found, call, timeout=timeout)

    if not parallel or len(calls) < 2:
        for number, call in enumerate(calls):
            await one(number, call)
        return results

    async def guarded(number: int, call: ToolCall) -> None:
        try:
            await one(number, call)
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:
            # A task group would wrap a KeyboardInterrupt in an exception group; keep it bare.
            stopped.append(exc)
            group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        for number, call in enumerate(calls):
            group.start_soon(guarded, number, call)
    if stopped:
        raise stopped[0]
    return results


def _unknown(call: ToolCall, tools_by_name: Mapping[str, Tool[..., Any]]) -> ToolResult:
    available = ", ".join(tools_by_name) or "none"
    return ToolResult(call, f"Error: no tool named {call.name}; available: {available}", True, 0.0)


async def _within(limit: float | None, work: Callable[[], Awaitable[T]]) -> T:
    import anyio

    if limit is None:
        return await work()
    with anyio.move_on_after(limit):
        return await work()
    raise _TimedOut(limit)


def _start(work: Callable[[], T]) -> Future[T]:
    from concurrent.futures import Future

    future: Future[T] = Future()
    context = contextvars.copy_context()

    def target() -> None:
        try:
            future.set_result(context.run(work))
        except BaseException as exc:  # handed to the waiting thread, KeyboardInterrupt included
            future.set_exception(exc)

    # A daemon thread, so that a tool which never returns cannot keep the interpreter alive.
    threading.Thread(target=target, name="m2kit-tool", daemon=True).start()
    return future


def _wait(future: Future[T], limit: float | None) -> T:
    from concurrent.futures import wait

    if limit is not None and not wait([future], timeout=limit).done:
        raise _TimedOut(limit)
    return future.result()


def _failure(exc: Exception) -> str:
    if isinstance(exc, (ToolArgumentsError, _TimedOut)):
        return f"Error: {exc}"
    return f"Error: {type(exc).__name__}: {exc}"


def _content(value: object) -> str:
    from pydantic import BaseModel

    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, ensure_ascii=False, default=_jsonable)


def _jsonable(value: object) -> object:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)
