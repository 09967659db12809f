"""Tests for m2kit._tools: schemas from type hints, argument checks, and running tool calls."""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
import pytest
from pydantic import BaseModel, Field

from m2kit._tool_runs import ToolResult, run_async, run_many_async, run_many_sync, run_sync
from m2kit._tools import Tool, ToolArgumentsError, as_tool, tool
from m2kit._types import ToolCall

if TYPE_CHECKING:
    from collections.abc import Callable

    Runner = Callable[[Tool[..., Any], ToolCall, float | None], ToolResult]


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    x: int
    y: int = 0


@dataclasses.dataclass
class Place:
    name: str
    population: int


def call(name: str, arguments: str = "{}", id: str = "") -> ToolCall:
    return ToolCall(id=id or f"call-{name}", name=name, arguments=arguments)


def properties(t: Tool[..., Any]) -> dict[str, Any]:
    found: dict[str, Any] = t.parameters["properties"]
    return found


def by_run_sync(t: Tool[..., Any], c: ToolCall, timeout: float | None) -> ToolResult:
    return run_sync(t, c, timeout=timeout)


def by_run_async(t: Tool[..., Any], c: ToolCall, timeout: float | None) -> ToolResult:
    return anyio.run(functools.partial(run_async, t, c, timeout=timeout))


def run_many(
    many: str, calls: list[ToolCall], tools: dict[str, Tool[..., Any]], *, parallel: bool = True
) -> list[ToolResult]:
    if many == "sync":
        return run_many_sync(calls, tools, parallel=parallel)
    return anyio.run(functools.partial(run_many_async, calls, tools, parallel=parallel))


RUNNERS = [pytest.param(by_run_sync, id="run_sync"), pytest.param(by_run_async, id="run_async")]


@tool
def add(a: int, b: int = 1) -> int:
    return a + b


@tool
async def add_later(a: int, b: int = 1) -> int:
    await anyio.sleep(0)
    return a + b


# Schemas


def test_scalar_hints() -> None:
    """If parameters are int, str, float and bool, then the schema types them and requires all."""

    @tool
    def f(a: int, b: str, c: float, d: bool) -> None: ...

    assert f.parameters == {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "string"},
            "c": {"type": "number"},
            "d": {"type": "boolean"},
        },
        "required": ["a", "b", "c", "d"],
        "additionalProperties": False,
    }


def test_defaults() -> None:
    """If a parameter has a default, then it is not required and the schema shows the default."""
    assert add.parameters["required"] == ["a"]
    assert properties(add)["b"] == {"type": "integer", "default": 1}


def test_optional() -> None:
    """If a parameter is `X | None`, then null is allowed, and null arrives as None."""

    @tool
    def f(note: str | None = None) -> None: ...

    assert properties(f)["note"] == {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "default": None,
    }
    assert f.arguments(call("f", '{"note": null}')) == {"note": None}


def test_literal() -> None:
    """If a parameter is a Literal, then the schema lists its values."""

    @tool
    def f(unit: Literal["c", "f"]) -> None: ...

    assert properties(f)["unit"] == {"type": "string", "enum": ["c", "f"]}


def test_enum() -> None:
    """If a parameter is an Enum, then the schema lists its values and a value becomes a member."""

    @tool
    def f(color: Color) -> None: ...

    assert properties(f)["color"] == {"$ref": "#/$defs/Color"}
    assert f.parameters["$defs"]["Color"] == {"type": "string", "enum": ["red", "blue"]}
    assert f.arguments(call("f", '{"color": "blue"}')) == {"color": Color.BLUE}


def test_list() -> None:
    """If a parameter is `list[int]`, then it is an array of integers, and items are converted."""

    @tool
    def f(numbers: list[int]) -> None: ...

    assert properties(f)["numbers"] == {"type": "array", "items": {"type": "integer"}}
    assert f.arguments(call("f", '{"numbers": [1, "2"]}')) == {"numbers": [1, 2]}


def test_nested_model() -> None:
    """If a parameter is a pydantic model, then its schema is in $defs and it arrives as a model."""

    @tool
    def f(at: Point) -> None: ...

    assert properties(f)["at"] == {"$ref": "#/$defs/Point"}
    assert f.parameters["$defs"]["Point"]["required"] == ["x"]
    assert f.arguments(call("f", '{"at": {"x": 3}}')) == {"at": Point(x=3, y=0)}


def test_annotated_description() -> None:
    """If a hint carries Field(description=...), then it describes the property and wins over
    the docstring."""

    @tool
    def f(days: Annotated[int, Field(description="Days ahead.", ge=1)]) -> None:
        """Forecast.

        Args:
            days: Ignored, because the hint has its own.
        """

    assert properties(f)["days"] == {"type": "integer", "minimum": 1, "description": "Days ahead."}


def test_docstring_args() -> None:
    """If the docstring has a Google-style Args: section, then it describes the properties and
    leaves the description."""

    @tool
    def get_weather(city: str, days: int = 1) -> str:
        """The forecast for a city.

        Uses the national weather service.

        Args:
            city: The city's name,
                in English.
            days (int): How many days ahead.

        Returns:
            One line per day.
        """
        return ""

    assert get_weather.description == (
        "The forecast for a city.\n\nUses the national weather service.\n\n"
        "Returns:\n    One line per day."
    )
    assert properties(get_weather)["city"]["description"] == "The city's name, in English."
    assert properties(get_weather)["days"]["description"] == "How many days ahead."


def test_no_docstring() -> None:
    """If the function has no docstring, then the description is empty."""
    assert add.description == ""


def test_parameter_names_that_pydantic_reserves() -> None:
    """If parameters are named like BaseModel attributes or schema keys, then they still work."""

    @tool
    def f(json: str, title: str, model_config: int) -> None: ...

    assert properties(f) == {
        "json": {"type": "string"},
        "title": {"type": "string"},
        "model_config": {"type": "integer"},
    }
    arguments = '{"json": "a", "title": "b", "model_config": 1}'
    assert f.arguments(call("f", arguments)) == {"json": "a", "title": "b", "model_config": 1}


def test_decorator_forms() -> None:
    """If `@tool()` or `@tool(name=..., description=..., timeout=...)` is used, then the tool
    takes the given values."""

    @tool()
    def plain(a: int) -> int:
        """Doubles."""
        return 2 * a

    @tool(name="double", description="Twice a.", timeout=2.5)
    def named(a: int) -> int:
        return 2 * a

    assert (plain.name, plain.description, plain.timeout) == ("plain", "Doubles.", None)
    assert (named.name, named.description, named.timeout) == ("double", "Twice a.", 2.5)


def test_tool_is_still_callable() -> None:
    """If a tool is called directly, then its function runs."""
    assert add(2, b=3) == 5
    assert anyio.run(add_later, 2) == 3
    assert add_later.is_async
    assert not add.is_async


def test_as_tool() -> None:
    """If `as_tool` gets a tool it returns it, a function it wraps, anything else it refuses."""

    def double(a: int) -> int:
        return 2 * a

    assert as_tool(add) is add
    assert as_tool(double).name == "double"
    with pytest.raises(TypeError, match="expected a function or a @tool"):
        as_tool(3)  # type: ignore[arg-type]  # the wrong type is the point


def test_to_openai() -> None:
    """If a tool is sent, then its entry has the OpenAI function shape."""
    assert add.to_openai() == {
        "type": "function",
        "function": {"name": "add", "description": "", "parameters": add.parameters},
    }


def star_args(*items: str) -> None: ...


def star_kwargs(**options: str) -> None: ...


def no_hint(city, days: int) -> None:  # type: ignore[no-untyped-def]  # the missing hint is the point
    ...


def positional(city: str, /) -> None: ...


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (star_args, r"\*items .* use a named parameter instead, e\.g\. `items: list\[str\]`"),
        (star_kwargs, r"\*\*options .* use named parameters instead"),
        (no_hint, r"parameter 'city' has no type hint; add one, e\.g\. `city: str`"),
        (positional, r"parameter 'city' is positional-only; remove the '/'"),
    ],
)
def test_decoration_errors(function: Callable[..., Any], message: str) -> None:
    """If a parameter cannot be described to the model, then decoration fails naming it and the
    fix."""
    with pytest.raises(TypeError, match=message):
        tool(function)


def test_unresolvable_hint() -> None:
    """If a hint names a type defined inside a function, then decoration says to move it."""

    class Local(BaseModel):
        x: int

    def f(at: Local) -> None: ...

    with pytest.raises(TypeError, match="define the types they name at module level"):
        tool(f)


def test_type_without_schema() -> None:
    """If a hint is a type pydantic cannot describe, then decoration fails with TypeError."""

    def f(event: threading.Event) -> None: ...

    with pytest.raises(TypeError, match="cannot be described in JSON Schema"):
        tool(f)


def test_bad_name() -> None:
    """If a tool name breaks the function-name rule, then decoration says to pass name=."""
    with pytest.raises(ValueError, match=r"pass name=\.\.\."):
        tool(name="get weather")(star_args)


# Arguments


def test_lax_coercion() -> None:
    """If the model writes numbers as strings or strings as numbers, then they are converted."""

    @tool
    def f(days: int, zip_code: str, ratio: float) -> None: ...

    arguments = '{"days": "3", "zip_code": 75001, "ratio": 1}'
    assert f.arguments(call("f", arguments)) == {"days": 3, "zip_code": "75001", "ratio": 1.0}


def test_empty_arguments() -> None:
    """If the arguments are an empty string, then they mean no arguments."""

    @tool
    def now() -> str:
        return "noon"

    assert now.arguments(call("now", "")) == {}
    assert now.arguments(call("now", " \n")) == {}
    with pytest.raises(ToolArgumentsError, match="a: required but missing"):
        add.arguments(call("add", ""))


def test_python_repr_arguments_are_read() -> None:
    """If a server sends the arguments as a Python repr (mlx-openai-server#124), then they are
    read as the object they spell, and a repr of anything else is still refused."""
    assert add.arguments(call("add", "{'a': 1, 'b': 2}")) == {"a": 1, "b": 2}
    with pytest.raises(ToolArgumentsError, match="not valid JSON"):
        add.arguments(call("add", "[1, 2"))
    with pytest.raises(ToolArgumentsError, match="not valid JSON"):
        add.arguments(call("add", "__import__('os').getcwd()"))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ('{"b": 2}', "Invalid arguments for add: a: required but missing"),
        (
            '{"a": "three"}',
            "Invalid arguments for add: a: Input should be a valid integer, unable to parse string"
            ' as an integer (got "three")',
        ),
        (
            '{"a": 1, "c": 2}',
            "Invalid arguments for add: c: not a parameter (the parameters are a, b)",
        ),
        (
            '{"a": 1',
            "Invalid arguments for add: not valid JSON (Expecting ',' delimiter at character 7);"
            " send one JSON object",
        ),
        (
            "[1, 2]",
            "Invalid arguments for add: expected a JSON object of named arguments, got [1, 2]",
        ),
    ],
)
def test_argument_errors(arguments: str, message: str) -> None:
    """If the arguments are missing, mistyped, unknown or not JSON, then the error says which and
    what was expected, briefly."""
    with pytest.raises(ToolArgumentsError) as caught:
        add.arguments(call("add", arguments))
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_nested_argument_errors() -> None:
    """If a nested value is wrong, then the error points at it by path."""

    @tool
    def f(points: list[Point]) -> None: ...

    with pytest.raises(ToolArgumentsError, match=r"points\[1\]\.x: required but missing"):
        f.arguments(call("f", '{"points": [{"x": 1}, {"y": 2}]}'))


# Results


def test_to_message() -> None:
    """If a result goes back to the model, then it is a tool message for its call."""
    result = ToolResult(call("add", id="call_7"), "3", error=False, elapsed=0.1)
    assert result.to_message() == {
        "role": "tool",
        "tool_call_id": "call_7",
        "name": "add",
        "content": "3",
    }


RETURNED: dict[str, tuple[object, str]] = {
    "text": ("il fait beau", "il fait beau"),
    "dict": ({"ville": "Zürich", "at": Color.RED}, '{"ville": "Zürich", "at": "red"}'),
    "list": ([1, 2.5, None], "[1, 2.5, null]"),
    "none": (None, "null"),
    "bool": (True, "true"),
    "number": (42, "42"),
    "model": (Point(x=1, y=2), '{"x":1,"y":2}'),
    "dataclass": (Place("Lyon", 522000), '{"name": "Lyon", "population": 522000}'),
    "models in a list": ([Point(x=1)], '[{"x": 1, "y": 0}]'),
}


@pytest.mark.parametrize("kind", list(RETURNED))
def test_return_values(kind: str) -> None:
    """If a tool returns text, it goes back as is; anything else goes back as JSON."""

    @tool
    def give(kind: str) -> object:
        return RETURNED[kind][0]

    result = run_sync(give, call("give", json.dumps({"kind": kind})))
    assert (result.content, result.error) == (RETURNED[kind][1], False)
    assert result.elapsed >= 0


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("chosen", [add, add_later], ids=["sync tool", "async tool"])
def test_both_kinds_under_both_runners(runner: Runner, chosen: Tool[..., Any]) -> None:
    """If a sync or an async tool runs under either runner, then its value comes back."""
    result = runner(chosen, call(chosen.name, '{"a": 2}'), None)
    assert (result.content, result.error) == ("3", False)


@pytest.mark.parametrize("runner", RUNNERS)
def test_raising_tool(runner: Runner) -> None:
    """If a tool raises, then the result is an error naming the exception, and nothing raises."""

    @tool
    async def find(city: str) -> str:
        raise ValueError(f"no such city: {city}")

    result = runner(find, call("find", '{"city": "Atlantis"}'), None)
    assert (result.content, result.error) == ("Error: ValueError: no such city: Atlantis", True)


@pytest.mark.parametrize("runner", RUNNERS)
def test_invalid_arguments_result(runner: Runner) -> None:
    """If the arguments are invalid, then the result carries the argument error for the model."""
    result = runner(add, call("add", '{"a": "x"}'), None)
    assert result.error
    assert result.content.startswith("Error: Invalid arguments for add: a: Input should be")


@pytest.mark.parametrize("runner", RUNNERS)
def test_own_timeout_wins(runner: Runner) -> None:
    """If a sync tool outlives its own timeout, then the result says so, whatever the default."""
    release = threading.Event()

    @tool(timeout=0.05)
    def stuck() -> str:
        release.wait(10)
        return "late"

    try:
        result = runner(stuck, call("stuck"), 30.0)
    finally:
        release.set()
    assert (result.content, result.error) == ("Error: the tool did not finish within 0.05 s", True)


@pytest.mark.parametrize("runner", RUNNERS)
def test_default_timeout(runner: Runner) -> None:
    """If an async tool without a timeout outlives the runner's default, then the result says so."""

    @tool
    async def stuck() -> str:
        await anyio.sleep(10)
        return "late"

    result = runner(stuck, call("stuck"), 0.05)
    assert (result.content, result.error) == ("Error: the tool did not finish within 0.05 s", True)


@pytest.mark.parametrize("runner", RUNNERS)
def test_tools_own_timeout_error(runner: Runner) -> None:
    """If a tool raises TimeoutError itself within its limit, then that is its error, not ours."""

    @tool(timeout=5)
    def slow_service() -> str:
        raise TimeoutError("the weather service did not answer")

    result = runner(slow_service, call("slow_service"), None)
    assert result.content == "Error: TimeoutError: the weather service did not answer"


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("timeout", [None, 5.0])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync tool", "async tool"])
def test_keyboard_interrupt_propagates(
    runner: Runner, timeout: float | None, is_async: bool
) -> None:
    """If a tool is interrupted with KeyboardInterrupt, then the runner raises it."""

    def interrupted() -> None:
        raise KeyboardInterrupt

    async def interrupted_async() -> None:
        raise KeyboardInterrupt

    chosen = tool(interrupted_async) if is_async else tool(interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner(chosen, call(chosen.name), timeout)


def test_cancellation_propagates() -> None:
    """If the caller is cancelled while a tool runs, then the cancellation is not turned into a
    result."""

    @tool
    async def forever() -> str:
        await anyio.sleep_forever()
        return "never"

    async def main() -> tuple[bool, bool]:
        finished = False
        with anyio.move_on_after(0.05) as scope:
            await run_async(forever, call("forever"))
            finished = True
        return finished, scope.cancelled_caught

    assert anyio.run(main) == (False, True)


# Many calls


def test_parallel_sync_calls_overlap() -> None:
    """If two sync tools must meet at a barrier, then run_many_sync runs them together."""
    barrier = threading.Barrier(2, timeout=5)

    @tool
    def left() -> str:
        barrier.wait()
        return "left"

    @tool
    def right() -> str:
        barrier.wait()
        return "right"

    results = run_many_sync([call("left"), call("right")], {"left": left, "right": right})
    assert [(r.content, r.error) for r in results] == [("left", False), ("right", False)]


def test_parallel_async_calls_overlap() -> None:
    """If two async tools each wait for the other, then run_many_async runs them together."""

    async def main() -> list[ToolResult]:
        ready = {"left": anyio.Event(), "right": anyio.Event()}

        async def meet(mine: str, theirs: str) -> str:
            ready[mine].set()
            with anyio.fail_after(5):
                await ready[theirs].wait()
            return mine

        @tool
        async def left() -> str:
            return await meet("left", "right")

        @tool
        async def right() -> str:
            return await meet("right", "left")

        return await run_many_async([call("left"), call("right")], {"left": left, "right": right})

    results = anyio.run(main)
    assert [(r.content, r.error) for r in results] == [("left", False), ("right", False)]


def test_parallel_sync_tools_under_async_runner_overlap() -> None:
    """If two sync tools must meet at a barrier, then run_many_async runs both on threads."""
    barrier = threading.Barrier(2, timeout=5)

    @tool
    def meet(side: str) -> str:
        barrier.wait()
        return side

    calls = [call("meet", '{"side": "left"}'), call("meet", '{"side": "right"}')]
    results = anyio.run(run_many_async, calls, {"meet": meet})
    assert [r.content for r in results] == ["left", "right"]


@pytest.mark.parametrize("many", ["sync", "async"])
def test_results_in_call_order(many: str) -> None:
    """If a later call finishes first, then results still come in call order."""
    second_done = threading.Event()

    @tool
    def first() -> str:
        second_done.wait(5)
        return "first"

    @tool
    def second() -> str:
        second_done.set()
        return "second"

    calls, tools = [call("first"), call("second")], {"first": first, "second": second}
    results = run_many(many, calls, tools)
    assert [r.content for r in results] == ["first", "second"]
    assert second_done.is_set()


@pytest.mark.parametrize("many", ["sync", "async"])
def test_sequential(many: str) -> None:
    """If parallel=False, then the calls run one after another, in order."""
    log: list[str] = []

    @tool
    async def note(word: str) -> str:
        log.append(f"start {word}")
        await anyio.sleep(0.01)
        log.append(f"end {word}")
        return word

    calls = [call("note", '{"word": "a"}'), call("note", '{"word": "b"}')]
    results = run_many(many, calls, {"note": note}, parallel=False)
    assert [r.content for r in results] == ["a", "b"]
    assert log == ["start a", "end a", "start b", "end b"]


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("many", ["sync", "async"])
def test_unknown_tool(many: str, parallel: bool) -> None:
    """If a call names no known tool, then its result is an error listing the tools."""
    calls = [call("add", '{"a": 1}'), call("nope"), call("add_later", '{"a": 2}')]
    tools: dict[str, Tool[..., Any]] = {"add": add, "add_later": add_later}
    results = run_many(many, calls, tools, parallel=parallel)
    assert [(r.content, r.error) for r in results] == [
        ("2", False),
        ("Error: no tool named nope; available: add, add_later", True),
        ("3", False),
    ]
    assert results[1].call.name == "nope"


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("many", ["sync", "async"])
def test_keyboard_interrupt_among_many(many: str, parallel: bool) -> None:
    """If one of several tools is interrupted, then the runner raises KeyboardInterrupt itself."""

    @tool
    def interrupted() -> None:
        raise KeyboardInterrupt

    calls = [call("add", '{"a": 1}'), call("interrupted")]
    tools: dict[str, Tool[..., Any]] = {"add": add, "interrupted": interrupted}
    with pytest.raises(KeyboardInterrupt):
        run_many(many, calls, tools, parallel=parallel)


def test_import_does_not_load_pydantic() -> None:
    """If m2kit._tools is imported, then pydantic is not, so `m2 ask` stays fast."""
    code = "import m2kit._tools, sys; assert 'pydantic' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
