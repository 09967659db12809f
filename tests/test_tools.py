"""Tests for m2kit._tools: schemas from type hints and checks on the model's arguments."""

from __future__ import annotations

import subprocess
import sys
import threading  # noqa: TC003  # tool() resolves the hint threading.Event at run time
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
import pytest
from pydantic import BaseModel, Field

from _tool_helpers import Color, Point, add, add_later, call
from m2kit._tools import Tool, ToolArgumentsError, as_tool, tool

if TYPE_CHECKING:
    from collections.abc import Callable


def properties(t: Tool[..., Any]) -> dict[str, Any]:
    found: dict[str, Any] = t.parameters["properties"]
    return found


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


def test_import_does_not_load_pydantic() -> None:
    """If m2kit._tools is imported, then pydantic is not, so `m2 ask` stays fast."""
    code = "import m2kit._tools, sys; assert 'pydantic' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
