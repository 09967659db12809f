"""Running tool calls, sync or under anyio, one at a time or together, each under a time limit.

Running a tool never raises the tool's errors: they come back as a `ToolResult` with
`error=True`, worded for the model, and so does a call to a tool that is not there, and a tool
that calls `sys.exit()`. A value that cannot be written as JSON comes back as text, with
`error=False`, since the tool did run. KeyboardInterrupt, cancellation and a SystemExit that
the tool did not raise itself always go through. anyio is imported by the first run, never by
`import m2kit`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import enum
import functools
import json
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ._tools import ToolArgumentsError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
    from concurrent.futures import Future

    from ._tools import Tool
    from ._types import Message, ToolCall

T = TypeVar("T")

# At most this many characters of str(value) stand in for a value that JSON cannot write.
_FALLBACK_TEXT = 4000


class _TimedOut(Exception):
    """A run that went past its time limit."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the tool did not finish within {seconds:g} s")


class _Exited(Exception):
    """A tool that raised SystemExit, turned into an error where it was raised, in the tool's
    own call: a SystemExit that reaches the runner from anywhere else is not the tool's."""

    def __init__(self, code: object) -> None:
        super().__init__(f"the tool called sys.exit({'' if code is None else repr(code)})")


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

    limit = _limit(tool, timeout)
    started = time.perf_counter()
    try:
        work = _job(tool, tool.arguments(call))
        if tool.is_async:
            value = _wait(_start(functools.partial(anyio.run, _within, limit, work)), limit)
        elif limit is None:
            value = work()
        else:
            value = _wait(_start(work), limit)
    except Exception as exc:
        return _failed(call, exc, started)
    return _returned(call, value, started)


async def run_async(
    tool: Tool[..., Any], call: ToolCall, *, timeout: float | None = None
) -> ToolResult:
    """Run one call under anyio and return its result; the tool's errors become its content.

    `timeout` (seconds) applies when the tool has none of its own. A sync tool runs on a worker
    thread (`anyio.to_thread`); past the limit the thread is abandoned, since it cannot be killed,
    and finishes on its own.
    """
    import anyio.to_thread

    limit = _limit(tool, timeout)
    started = time.perf_counter()
    try:
        job = _job(tool, tool.arguments(call))
        if tool.is_async:
            value = await _within(limit, job)
        else:
            work = functools.partial(anyio.to_thread.run_sync, job, abandon_on_cancel=True)
            value = await _within(limit, work)
    except Exception as exc:
        return _failed(call, exc, started)
    return _returned(call, value, started)


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


def _limit(tool: Tool[..., Any], timeout: float | None) -> float | None:
    """The run's time limit in seconds: the tool's own, else the runner's."""
    return tool.timeout if tool.timeout is not None else timeout


def _unknown(call: ToolCall, tools_by_name: Mapping[str, Tool[..., Any]]) -> ToolResult:
    """The result of a call to a tool that is not there."""
    available = ", ".join(tools_by_name) or "none"
    return ToolResult(call, f"Error: no tool named {call.name}; available: {available}", True, 0.0)


def _job(tool: Tool[..., Any], kwargs: dict[str, Any]) -> Callable[[], Any]:
    """The tool's call with these arguments, to make with no arguments: a function for a sync
    tool, a coroutine function for an async one; a SystemExit it raises becomes `_Exited`."""
    function = tool.function
    if tool.is_async:

        async def run_async() -> Any:
            with _exit_is_an_error():
                return await function(**kwargs)

        return run_async

    def run() -> Any:
        with _exit_is_an_error():
            return function(**kwargs)

    return run


@contextlib.contextmanager
def _exit_is_an_error() -> Iterator[None]:
    # Only the tool's own code runs inside this block. The one SystemExit it cannot tell from
    # the tool's is a signal handler's that calls sys.exit while an inline sync tool runs on the
    # main thread; m2 installs none. Interpreter shutdown raises no SystemExit in the tool.
    try:
        yield
    except SystemExit as exc:
        raise _Exited(exc.code) from exc


def _returned(call: ToolCall, value: object, started: float) -> ToolResult:
    """The result of a call that returned `value`. A value that cannot be written as JSON is
    not an error: the tool ran, and its side effects happened, so its str() stands in."""
    try:
        content = _content(value)
    except Exception as exc:
        content = (
            f"The tool ran, but its result could not be written as JSON "
            f"({type(exc).__name__}: {exc}). As text: {_text(value)}"
        )
    return ToolResult(call, content, False, time.perf_counter() - started)


def _text(value: object) -> str:
    """`str(value)`, cut to _FALLBACK_TEXT characters, or a placeholder when str() fails too."""
    try:
        text = str(value)
    except Exception:
        return f"(a {type(value).__name__} that str() fails on too)"
    return text if len(text) <= _FALLBACK_TEXT else text[:_FALLBACK_TEXT] + "… (cut)"


def _failed(call: ToolCall, exc: Exception, started: float) -> ToolResult:
    """The result of a call that raised `exc`, worded for the model."""
    if isinstance(exc, (ToolArgumentsError, _TimedOut, _Exited)):
        content = f"Error: {exc}"
    else:
        content = f"Error: {type(exc).__name__}: {exc}"
    return ToolResult(call, content, True, time.perf_counter() - started)


async def _within(limit: float | None, work: Callable[[], Awaitable[T]]) -> T:
    """What `work` returns, or `_TimedOut` once `limit` seconds have passed."""
    import anyio

    if limit is None:
        return await work()
    with anyio.move_on_after(limit):
        return await work()
    raise _TimedOut(limit)


def _start(work: Callable[[], T]) -> Future[T]:
    """Run `work` on a new daemon thread, in a copy of this context; its outcome is the future's."""
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
    """The future's result, or `_TimedOut` once `limit` seconds have passed."""
    from concurrent.futures import wait

    if limit is not None and not wait([future], timeout=limit).done:
        raise _TimedOut(limit)
    return future.result()


def _content(value: object) -> str:
    """A tool's return value as text for the model: a string as it is, anything else as JSON."""
    from pydantic import BaseModel

    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, ensure_ascii=False, default=_jsonable)


def _jsonable(value: object) -> object:
    """What `json.dumps` writes for a value it cannot: models, dataclasses, enums and sets."""
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
