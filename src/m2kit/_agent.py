"""The agent loop's state, with no I/O: which tools, which steps so far, what to send next.

A run sends the conversation with the tools offered; while the reply asks for tools (in the
standard form, or MiniMax-M2's native blocks, which the client has already turned into
`Reply.tool_calls`) and steps remain, it runs them and sends again with each result as a `tool`
message. Every step's assistant message goes back exactly as the client built it, thinking
included, so the model keeps its reasoning across the loop.

`Conversation.run` and `AsyncConversation.run` drive this; they only call the client and the
tools.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._errors import ConfigError
from ._tool_runs import ToolResult
from ._tools import Tool, as_tool
from ._types import Reply, StreamEvent, ToolCall

if TYPE_CHECKING:
    from ._types import Message

logger = logging.getLogger("m2kit")

#: What a `before_tool` hook answers: True (or None: a hook that only looks) runs the call,
#: False refuses it (the model is told), a ToolCall runs that one instead (edited arguments;
#: same tool, and the call's id is kept).
Decision = bool | ToolCall | None
BeforeTool = Callable[[ToolCall], Decision | Awaitable[Decision]]
AfterStep = Callable[["ToolStep"], Awaitable[None] | None]
#: What `on_event` receives: every event of every step's stream, and each tool's result.
RunEvent = StreamEvent | ToolResult
Stopped = Literal["answer", "max_steps"]

DEFAULT_MAX_STEPS = 10
DEFAULT_TOOL_TIMEOUT = 60.0
DENIED = "Error: this call was not allowed; do not try it again in the same form."


@dataclass(frozen=True, slots=True)
class ToolStep:
    """One step of a run that called tools: the reply that asked, and each call's result, in
    the order of the calls. `latency`: seconds from sending to the end of the reply;
    `first_token`: to its first delta, when it streamed."""

    reply: Reply
    results: tuple[ToolResult, ...]
    latency: float | None = None
    first_token: float | None = None

    def messages(self) -> list[Message]:
        """The step as history: the assistant message, then one `tool` message per call."""
        return [dict(self.reply.message), *(result.to_message() for result in self.results)]


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended.

    - `reply`: the last reply: the answer, or at `max_steps` the one whose calls were not run.
    - `steps`: every step that ran tools, in order.
    - `stopped`: "answer", or "max_steps" when the model still wanted tools.
    """

    reply: Reply
    steps: tuple[ToolStep, ...]
    stopped: Stopped

    @property
    def text(self) -> str:
        """The answer (the last reply's text, without thinking)."""
        return self.reply.text


class AgentRun:
    """One run's tools and steps. Raises ConfigError for no tools, two tools of one name, or
    `max_steps` below 1."""

    def __init__(
        self,
        tools: Sequence[Mapping[str, Any] | Callable[..., Any]],
        *,
        max_steps: int,
        parallel: bool,
        tool_timeout: float | None,
    ) -> None:
        if max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1, not {max_steps}")
        self.tools: dict[str, Tool[..., Any]] = {}
        for item in tools:
            if isinstance(item, Mapping):
                name = item.get("function", {}).get("name", "?")
                raise ConfigError(
                    f"run() runs the tools it offers, and {name!r} is a schema with no function:"
                    " pass a @tool function instead"
                )
            found = as_tool(item)
            if found.name in self.tools:
                raise ConfigError(f"two tools are named {found.name!r}: give one another name")
            self.tools[found.name] = found
        if not self.tools:
            raise ConfigError("run() needs tools=[...]: use send() for a plain reply")

        self.max_steps = max_steps
        self.parallel = parallel
        self.tool_timeout = tool_timeout
        self.steps: list[ToolStep] = []
        self.calls_made = 0  # model calls, the unit of max_steps

    def offered(self) -> list[dict[str, Any]]:
        """The request's `tools`."""
        return [found.to_openai() for found in self.tools.values()]

    def messages(self, start: Sequence[Message]) -> list[Message]:
        """What the next call sends: the turn's messages, then every step so far."""
        messages = [dict(message) for message in start]
        for step in self.steps:
            messages.extend(step.messages())
        return messages

    def wants_tools(self, reply: Reply) -> bool:
        """Whether the loop goes on: the reply asks for tools and another call is allowed."""
        self.calls_made += 1
        return bool(reply.tool_calls) and self.calls_made < self.max_steps

    def result(self, reply: Reply) -> RunResult:
        """How the run ended, given its last reply."""
        stopped: Stopped = "max_steps" if reply.tool_calls else "answer"
        if stopped == "max_steps":
            # Info, not a warning: RunResult.stopped says it to the caller, who says it best.
            logger.info(
                "the run stopped after %d model calls with tools still asked for: raise max_steps",
                self.calls_made,
            )
        return RunResult(reply, tuple(self.steps), stopped)

    def decided(self, call: ToolCall, decision: object) -> ToolCall | None:
        """The call to run after `before_tool` answered, or None when it was refused."""
        if isinstance(decision, ToolCall):
            if decision.name != call.name:
                # The result goes back under the call's id: it must answer the call made.
                raise ConfigError(
                    f"before_tool turned a call to {call.name!r} into one to {decision.name!r}:"
                    " it may edit the arguments, not the tool"
                )
            return dataclasses.replace(decision, id=call.id, index=call.index)
        if decision is True or decision is None:
            return call
        if decision is False:
            return None
        raise ConfigError(
            f"before_tool returned {decision!r}: return True, False or a ToolCall",
        )

    def add_step(
        self,
        reply: Reply,
        results: Sequence[ToolResult],
        latency: float | None,
        first_token: float | None,
    ) -> ToolStep:
        """Record a step whose tools have run, and return it."""
        step = ToolStep(reply, tuple(results), latency, first_token)
        self.steps.append(step)
        return step


def denied(call: ToolCall) -> ToolResult:
    """The result a refused call sends back."""
    return ToolResult(call=call, content=DENIED, error=True, elapsed=0.0)


def in_call_order(
    calls: Sequence[ToolCall], planned: Sequence[ToolCall | None], ran: Sequence[ToolResult]
) -> list[ToolResult]:
    """Every call's result in the order the model asked: `planned` holds what `decided` gave
    for each call (None: refused), `ran` the results of the others, in order."""
    results = iter(ran)
    return [
        denied(call) if plan is None else next(results)
        for call, plan in zip(calls, planned, strict=True)
    ]


def step_to_json(step: ToolStep, reply_to_json: Callable[[Reply], Any]) -> dict[str, Any]:
    """A step as saved files and the store keep it; the reply in `reply_to_json`'s form."""
    return {
        "reply": reply_to_json(step.reply),
        "results": [
            {
                "call": dataclasses.asdict(result.call),
                "content": result.content,
                "error": result.error,
                "elapsed": result.elapsed,
            }
            for result in step.results
        ],
        "latency": step.latency,
        "first_token": step.first_token,
    }


def step_from_json(data: Any, reply_from_json: Callable[[Any], Reply]) -> ToolStep:
    """The step `step_to_json` wrote."""
    results = tuple(
        ToolResult(
            call=ToolCall(**item["call"]),
            content=str(item["content"]),
            error=bool(item["error"]),
            elapsed=float(item["elapsed"]),
        )
        for item in data["results"]
    )
    return ToolStep(
        reply_from_json(data["reply"]),
        results,
        _seconds(data.get("latency")),
        _seconds(data.get("first_token")),
    )


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def steps_json(steps: Sequence[ToolStep], reply_to_json: Callable[[Reply], Any]) -> str | None:
    """The steps as JSON text for the store, or None when there are none."""
    if not steps:
        return None
    return json.dumps([step_to_json(step, reply_to_json) for step in steps], ensure_ascii=False)
