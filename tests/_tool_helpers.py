"""Types, tools and calls that both test_tools and test_tool_runs use."""

from __future__ import annotations

import enum

import anyio
from pydantic import BaseModel

from m2kit._tools import tool
from m2kit._types import ToolCall


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    x: int
    y: int = 0


def call(name: str, arguments: str = "{}", id: str = "") -> ToolCall:
    return ToolCall(id=id or f"call-{name}", name=name, arguments=arguments)


@tool
def add(a: int, b: int = 1) -> int:
    return a + b


@tool
async def add_later(a: int, b: int = 1) -> int:
    await anyio.sleep(0)
    return a + b
