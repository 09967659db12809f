"""Tests for m2kit._tool_runs: results, the runners, time limits, interrupts and many calls."""

from __future__ import annotations

import dataclasses
import functools
import json
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from _tool_helpers import Color, Point, add, add_later, call
from m2kit._tool_runs import ToolResult, run_async, run_many_async, run_many_sync, run_sync
from m2kit._tools import Tool, tool

if TYPE_CHECKING:
    from collections.abc import Callable

    from m2kit._types import ToolCall

    Runner = Callable[[Tool[..., Any], ToolCall, float | None], ToolResult]


@dataclasses.dataclass
class Place:
    name: str
    population: int


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


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("timeout", [None, 5.0])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync tool", "async tool"])
def test_a_tool_that_calls_sys_exit(runner: Runner, timeout: float | None, is_async: bool) -> None:
    """If a tool calls sys.exit(0), then the result is an error saying so, and nothing exits."""

    def leave() -> None:
        sys.exit(0)

    async def leave_async() -> None:
        sys.exit(0)

    chosen = tool(leave_async) if is_async else tool(leave)
    result = runner(chosen, call(chosen.name), timeout)
    assert (result.content, result.error) == ("Error: the tool called sys.exit(0)", True)


@pytest.mark.parametrize(
    ("code", "called"), [(None, "sys.exit()"), (3, "sys.exit(3)"), ("bye", "sys.exit('bye')")]
)
def test_the_exit_code_in_the_error(code: str | int | None, called: str) -> None:
    """If a tool exits with another code or a message, then the error shows it."""

    @tool
    def leave() -> None:
        sys.exit(code)

    assert run_sync(leave, call("leave")).content == f"Error: the tool called {called}"


@pytest.mark.skipif(sys.platform == "win32", reason="uses SIGALRM")
def test_a_system_exit_from_outside_the_tool_goes_through() -> None:
    """If SystemExit is raised in the waiting thread, not by the tool (here by a signal handler),
    then the runner lets it through."""
    release = threading.Event()

    @tool(timeout=5)
    def waits() -> str:
        release.wait(5)
        return "done"

    def stop(signum: int, frame: object) -> None:
        sys.exit(7)

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    try:
        with pytest.raises(SystemExit) as caught:
            run_sync(waits, call("waits"))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        release.set()
    assert caught.value.code == 7


class Loop(list[object]):
    """A list that holds itself, which JSON cannot write."""

    def __init__(self) -> None:
        super().__init__()
        self.append(self)


UNWRITABLE: dict[str, tuple[Callable[[], object], str, str]] = {
    "tuple keys": (
        lambda: {("Lyon", 1): "sunny"},
        "TypeError: keys must be str, int, float, bool or None, not tuple",
        "{('Lyon', 1): 'sunny'}",
    ),
    "a loop": (Loop, "ValueError: Circular reference detected", "[[...]]"),
}


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("kind", list(UNWRITABLE))
def test_a_value_json_cannot_write(runner: Runner, kind: str) -> None:
    """If a tool ran but returned what JSON cannot write, then the result says the tool ran,
    gives the value as text, and is not an error."""
    make, reason, text = UNWRITABLE[kind]
    ran: list[str] = []

    @tool
    def book() -> object:
        ran.append("booked")
        return make()

    result = runner(book, call("book"), None)
    assert ran == ["booked"]
    assert (result.content, result.error) == (
        f"The tool ran, but its result could not be written as JSON ({reason}). As text: {text}",
        False,
    )


def test_a_long_value_json_cannot_write_is_cut() -> None:
    """If such a value's text is long, then it is cut, and says so."""

    @tool
    def many() -> object:
        return {(number,): "x" * 100 for number in range(1000)}

    result = run_sync(many, call("many"))
    assert not result.error
    assert len(result.content) < 4200
    assert result.content.endswith("xxx… (cut)")


def test_a_value_whose_text_fails_too() -> None:
    """If JSON cannot write a value and str() fails on it, then the result still says the tool
    ran."""

    class Mute:
        def __str__(self) -> str:
            raise RuntimeError("no words")

    @tool
    def mute() -> object:
        return Mute()

    result = run_sync(mute, call("mute"))
    assert (result.content, result.error) == (
        "The tool ran, but its result could not be written as JSON (RuntimeError: no words)."
        " As text: (a Mute that str() fails on too)",
        False,
    )


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


def test_import_does_not_load_pydantic_or_anyio() -> None:
    """If m2kit is imported, then neither pydantic nor anyio is, until a tool is made or run."""
    code = (
        "import m2kit, sys; loaded = {'pydantic', 'anyio'} & set(sys.modules); "
        "assert not loaded, sorted(loaded)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
