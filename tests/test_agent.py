"""Tests for m2kit._agent: the tool loop of `Conversation.run` and `AsyncConversation.run`.

Every run goes to the scripted server, through Client or AsyncClient alike: the model's replies
are scripted, the tools are real functions, and each request is checked as the server got it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from _recorded import load_steps
from _server import Step, chunk, completion, error_step, json_step, stream_step
from m2kit import (
    AsyncClient,
    BadRequestError,
    Client,
    ConfigError,
    Done,
    M2Error,
    RetryPolicy,
    RunResult,
    StreamInterrupted,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolResult,
    ToolStep,
    tool,
)
from m2kit._agent import DENIED
from m2kit._conversation import AsyncConversation, Conversation, ConversationBase
from m2kit._store import Store

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from _server import ScriptedServer
    from m2kit import Message, RunEvent

ONCE = RetryPolicy(max_attempts=1)
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
PARIS = {"city": "Paris", "sky": "sunny", "celsius": 21}
PROMPT = "Weather in Paris, and 2 + 3?"

Log = list[tuple[Any, ...]]


# What the model says, and what the history must hold.


def user(text: str) -> Message:
    return {"role": "user", "content": text}


def assistant(content: str | None, *calls: dict[str, Any]) -> Message:
    message: Message = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = list(calls)
    return message


def result(call_id: str, name: str, content: str) -> Message:
    return {"role": "tool", "tool_call_id": call_id, "name": name, "content": content}


def call(call_id: str, name: str, **arguments: Any) -> dict[str, Any]:
    """A tool call as the server sends it, and as it goes back in history."""
    text = json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


WEATHER = call("call_w", "get_weather", city="Paris")
ADD = call("call_a", "add", a=2, b=3)


def asks(
    *calls: dict[str, Any],
    thinking: str = "I need the weather.",
    streamed: bool = False,
    in_field: bool = False,
) -> Step:
    """A reply that thinks, inline (MiniMax-M2's `...</think>`) or in `reasoning_content`, then
    asks for `calls`; streamed, each call comes whole in a chunk of its own."""
    content = f"{thinking}</think>\n\n"
    if not streamed:
        whole = completion(
            None if in_field else content,
            reasoning_content=thinking if in_field else None,
            tool_calls=list(calls),
            finish_reason="tool_calls",
            usage=USAGE,
        )
        return json_step(whole)

    chunks = [chunk(reasoning_content=thinking) if in_field else chunk(content)]
    chunks += [chunk(tool_calls=[item | {"index": at}]) for at, item in enumerate(calls)]
    return stream_step([*chunks, chunk(finish_reason="tool_calls", usage=USAGE)])


def answers(text: str, *, streamed: bool = False) -> Step:
    content = f"All done.</think>\n\n{text}"
    if not streamed:
        return json_step(completion(content, usage=USAGE))
    return stream_step([chunk(content), chunk(finish_reason="stop", usage=USAGE)])


def weather_and_add(log: Log) -> list[Tool[..., Any]]:
    """`get_weather(city)` and `add(a, b)`, noting each call in `log`."""

    @tool
    def get_weather(city: str) -> dict[str, Any]:
        """The weather now in a city."""
        log.append(("get_weather", city))
        return {"city": city, "sky": "sunny", "celsius": 21}

    @tool
    def add(a: int, b: int) -> int:
        """The sum of two integers."""
        log.append(("add", a, b))
        return a + b

    return [get_weather, add]


def dangling_calls(messages: list[Message]) -> list[str]:
    """The ids of calls in assistant messages that no `tool` message right after answers."""
    missing = []
    for at, message in enumerate(messages):
        answered = set()
        for later in messages[at + 1 :]:
            if later.get("role") != "tool":
                break
            answered.add(later["tool_call_id"])
        ids = [item["id"] for item in message.get("tool_calls") or ()]
        missing += [call_id for call_id in ids if call_id not in answered]
    return missing


# Playing runs on Conversation or AsyncConversation.


@dataclass(frozen=True)
class Do:
    """One thing to do with a conversation: "run" or "send" `text`, with `params` (a run's
    tools, hooks and other keywords)."""

    action: str
    text: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Agent:
    """Plays `Do`s on a Conversation (`sync`) or an AsyncConversation (`async`).

    Each result is the RunResult or Reply, or the M2Error raised; `last` is the conversation
    last played, for a test whose run raised something else.
    """

    mode: str
    server: ScriptedServer
    last: ConversationBase | None = None

    def play(self, *steps: Do, **options: Any) -> tuple[ConversationBase, list[Any]]:
        if self.mode == "sync":
            with Client(base_url=self.server.base_url, retry=ONCE) as client:
                conversation = self.last = Conversation(client, **options)
                return conversation, [_play(conversation, step) for step in steps]

        async def play() -> tuple[ConversationBase, list[Any]]:
            async with AsyncClient(base_url=self.server.base_url, retry=ONCE) as client:
                conversation = self.last = AsyncConversation(client, **options)
                return conversation, [await _aplay(conversation, step) for step in steps]

        return anyio.run(play)

    def run(self, text: str, **params: Any) -> tuple[ConversationBase, Any]:
        conversation, results = self.play(Do("run", text, params))
        return conversation, results[0]

    def body(self, request: int) -> dict[str, Any]:
        body: dict[str, Any] = self.server.requests[request].json()
        return body

    def messages(self, request: int) -> list[Message]:
        messages: list[Message] = self.body(request)["messages"]
        return messages


def _play(conversation: Conversation, step: Do) -> Any:
    try:
        if step.action == "run":
            return conversation.run(step.text, **step.params)
        if step.action == "rerun":
            return conversation.run(conversation.drop_last(), **step.params)
        return conversation.send(step.text, **step.params)
    except M2Error as exc:
        return exc


async def _aplay(conversation: AsyncConversation, step: Do) -> Any:
    try:
        if step.action == "run":
            return await conversation.run(step.text, **step.params)
        if step.action == "rerun":
            return await conversation.run(conversation.drop_last(), **step.params)
        return await conversation.send(step.text, **step.params)
    except M2Error as exc:
        return exc


@pytest.fixture(params=["sync", "async"])
def agent(request: pytest.FixtureRequest, server: ScriptedServer) -> Agent:
    return Agent(request.param, server)


def streamed_ids(streamed: bool) -> str:
    return "streamed" if streamed else "whole"


# The loop, step by step.


@pytest.mark.parametrize("streamed", [False, True], ids=streamed_ids)
def test_three_steps_send_back_every_call_and_result(agent: Agent, streamed: bool) -> None:
    """If the model asks for one tool, then another, then answers, then each request carries
    every earlier step (thinking inline, calls, results), and the run ends with the answer."""
    agent.server.queue(
        asks(WEATHER, streamed=streamed),
        asks(ADD, thinking="Now the sum.", streamed=streamed),
        answers("Sunny in Paris; 2 + 3 = 5.", streamed=streamed),
    )
    log: Log = []
    tools = weather_and_add(log)
    events: list[RunEvent] = []
    on_event = {"on_event": events.append} if streamed else {}

    conversation, run = agent.run(PROMPT, tools=tools, **on_event)

    assert isinstance(run, RunResult)
    assert log == [("get_weather", "Paris"), ("add", 2, 3)]
    assert len(agent.server.requests) == 3
    step_1 = [
        assistant("I need the weather.</think>\n\n", WEATHER),
        result("call_w", "get_weather", json.dumps(PARIS)),
    ]
    step_2 = [assistant("Now the sum.</think>\n\n", ADD), result("call_a", "add", "5")]
    assert agent.messages(0) == [user(PROMPT)]
    assert agent.messages(1) == [user(PROMPT), *step_1]
    assert agent.messages(2) == [user(PROMPT), *step_1, *step_2]
    offered = [found.to_openai() for found in tools]
    assert [agent.body(at)["tools"] for at in range(3)] == [offered] * 3
    assert [agent.body(at).get("stream", False) for at in range(3)] == [streamed] * 3

    assert (run.stopped, run.text) == ("answer", "Sunny in Paris; 2 + 3 = 5.")
    assert [step.reply.tool_calls[0].name for step in run.steps] == ["get_weather", "add"]
    assert [[r.content for r in step.results] for step in run.steps] == [[json.dumps(PARIS)], ["5"]]
    assert all(not r.error for step in run.steps for r in step.results)
    turn = conversation.turns[-1]
    assert (turn.user, turn.status, turn.reply, turn.steps) == (
        PROMPT,
        "complete",
        run.reply,
        run.steps,
    )
    assert conversation.history() == [
        user(PROMPT),
        *step_1,
        *step_2,
        assistant("All done.</think>\n\nSunny in Paris; 2 + 3 = 5."),
    ]


@pytest.mark.parametrize("streamed", [False, True], ids=streamed_ids)
def test_field_thinking_goes_back_inline_for_minimax(agent: Agent, streamed: bool) -> None:
    """If MiniMax-M2's thinking comes in `reasoning_content` beside the calls, then the next
    request rebuilds it inline in the step's assistant message."""
    agent.server.queue(asks(WEATHER, streamed=streamed, in_field=True), answers("Sunny."))
    on_event = {"on_event": lambda event: None} if streamed else {}

    _, run = agent.run(PROMPT, tools=weather_and_add([]), **on_event)

    assert agent.messages(1) == [
        user(PROMPT),
        assistant("<think>\nI need the weather.\n</think>\n\n", WEATHER),
        result("call_w", "get_weather", json.dumps(PARIS)),
    ]
    reply = run.steps[0].reply
    assert (reply.thinking, reply.thinking_source, reply.text) == (
        "I need the weather.",
        "field",
        "",
    )


NATIVE = (
    'I need the sum.</think>\n\n<minimax:tool_call>\n<invoke name="add">\n'
    '<parameter name="a">2</parameter>\n<parameter name="b">3</parameter>\n'
    "</invoke>\n</minimax:tool_call>"
)


@pytest.mark.parametrize("streamed", [False, True], ids=streamed_ids)
def test_native_minimax_calls_run_and_go_back_as_tool_calls(agent: Agent, streamed: bool) -> None:
    """If MiniMax-M2 writes its native XML call in content, then the tool runs with ints, and
    the next request has the call once, in `tool_calls`, with the thinking kept in content."""
    if streamed:
        pieces = [NATIVE[:25], NATIVE[25:60], NATIVE[60:101], NATIVE[101:]]
        first = stream_step([*(chunk(piece) for piece in pieces), chunk(finish_reason="stop")])
    else:
        first = json_step(completion(NATIVE))
    agent.server.queue(first, answers("5."))
    log: Log = []
    types: list[type] = []

    @tool
    def add(a: int, b: int) -> int:
        """The sum of two integers."""
        types.extend((type(a), type(b)))
        log.append(("add", a, b))
        return a + b

    on_event = {"on_event": lambda event: None} if streamed else {}
    _, run = agent.run("2 + 3?", tools=[add], **on_event)

    assert (log, types) == ([("add", 2, 3)], [int, int])
    (native,) = run.steps[0].reply.tool_calls
    sent = agent.messages(1)
    assert sent == [
        user("2 + 3?"),
        assistant("I need the sum.</think>\n\n", call(native.id, "add", a=2, b=3)),
        result(native.id, "add", "5"),
    ]
    assert "minimax:tool_call" not in json.dumps(sent)
    assert run.text == "5."


# Streaming.


def _fragments(shape: str) -> list[dict[str, Any]]:
    """Tool-call chunks: one call in fragments, one call whole, or two calls interleaved."""
    weather_head = {"index": 0, "id": "call_w", "type": "function"}
    add_head = {"index": 1, "id": "call_a", "type": "function"}
    if shape == "fragments":
        return [
            chunk(
                tool_calls=[weather_head | {"function": {"name": "get_weather", "arguments": ""}}]
            ),
            chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"city": '}}]),
            chunk(tool_calls=[{"index": 0, "function": {"arguments": '"Paris"}'}}]),
        ]
    if shape == "whole":
        return [chunk(tool_calls=[WEATHER | {"index": 0}])]
    return [
        chunk(tool_calls=[weather_head | {"function": {"name": "get_weather", "arguments": ""}}]),
        chunk(tool_calls=[add_head | {"function": {"name": "add", "arguments": '{"a": 2'}}]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"city": "Paris"}'}}]),
        chunk(tool_calls=[{"index": 1, "function": {"arguments": ', "b": 3}'}}]),
    ]


@pytest.mark.parametrize("shape", ["fragments", "whole", "interleaved"])
def test_streamed_steps_reach_on_event_and_join_fragments(agent: Agent, shape: str) -> None:
    """If a run streams, then every step's events and each tool result reach on_event in order,
    and tool-call fragments join per index (ids and names only on the first)."""
    agent.server.queue(
        stream_step(
            [
                chunk("I need the weather.</think>\n\n"),
                *_fragments(shape),
                chunk(finish_reason="tool_calls"),
            ]
        ),
        answers("Sunny.", streamed=True),
    )
    log: Log = []
    events: list[RunEvent] = []

    _, run = agent.run(PROMPT, tools=weather_and_add(log), on_event=events.append)

    two = shape == "interleaved"
    ran = {("get_weather", "Paris"), ("add", 2, 3)} if two else {("get_weather", "Paris")}
    assert (len(log), set(log)) == (len(ran), ran)
    calls = [WEATHER, ADD] if two else [WEATHER]
    results = [result("call_w", "get_weather", json.dumps(PARIS))]
    results += [result("call_a", "add", "5")] if two else []
    assert agent.messages(1) == [
        user(PROMPT),
        assistant("I need the weather.</think>\n\n", *calls),
        *results,
    ]

    kinds = [type(event).__name__ for event in events]
    first_done = kinds.index("Done")
    assert kinds[0] == "ThinkingDelta"
    assert set(kinds[1:first_done]) == {"ToolCallDelta"}
    assert kinds[first_done + 1 : first_done + 1 + len(calls)] == ["ToolResult"] * len(calls)
    assert "AnswerDelta" in kinds[first_done + 1 :]
    assert kinds[-1] == "Done"
    deltas = [event for event in events if isinstance(event, ToolCallDelta)]
    if shape == "fragments":
        assert [(d.id, d.name) for d in deltas] == [("call_w", "get_weather"), ("", ""), ("", "")]
    tool_results = [event for event in events if isinstance(event, ToolResult)]
    assert tool_results == list(run.steps[0].results)
    dones = [event for event in events if isinstance(event, Done)]
    assert [done.reply for done in dones] == [run.steps[0].reply, run.reply]


def test_streamed_run_records_the_first_token(agent: Agent) -> None:
    """If a run streams, then its turn has a first-token time no later than its latency."""
    agent.server.queue(asks(WEATHER, streamed=True), answers("Sunny.", streamed=True))

    conversation, _ = agent.run(PROMPT, tools=weather_and_add([]), on_event=lambda event: None)

    turn = conversation.turns[-1]
    assert turn.first_token is not None
    assert turn.latency is not None
    assert 0 < turn.first_token <= turn.latency


# Parallel and sequential calls.


def test_parallel_calls_overlap_and_keep_call_order(agent: Agent) -> None:
    """If the model asks for two calls in one reply, then both tools run at once, and their
    results go back in call order even when the second finishes first."""
    barrier = threading.Barrier(2, timeout=10)
    finished: list[str] = []

    @tool
    def left(n: int) -> str:
        """Left."""
        barrier.wait()
        time.sleep(0.05)
        finished.append("left")
        return f"left {n}"

    @tool
    def right(n: int) -> str:
        """Right."""
        barrier.wait()
        finished.append("right")
        return f"right {n}"

    agent.server.queue(asks(call("c1", "left", n=1), call("c2", "right", n=2)), answers("Both."))

    _, run = agent.run("Both", tools=[left, right])

    assert finished == ["right", "left"]
    assert [(r.call.id, r.content, r.error) for r in run.steps[0].results] == [
        ("c1", "left 1", False),
        ("c2", "right 2", False),
    ]
    assert agent.messages(1)[2:] == [
        result("c1", "left", "left 1"),
        result("c2", "right", "right 2"),
    ]


def test_async_tools_overlap_under_async_conversation(server: ScriptedServer) -> None:
    """If two async tools each wait for the other, then AsyncConversation.run runs them as
    concurrent tasks."""
    server.queue(asks(call("c1", "meet", side="left"), call("c2", "meet", side="right")))
    server.queue(answers("Met."))

    async def main() -> RunResult:
        ready = {"left": anyio.Event(), "right": anyio.Event()}

        @tool
        async def meet(side: str) -> str:
            """Wait for the other side."""
            ready[side].set()
            with anyio.fail_after(10):
                await ready["right" if side == "left" else "left"].wait()
            return side

        async with AsyncClient(base_url=server.base_url, retry=ONCE) as client:
            return await AsyncConversation(client).run("Meet", tools=[meet])

    run = anyio.run(main)

    assert [(r.content, r.error) for r in run.steps[0].results] == [
        ("left", False),
        ("right", False),
    ]


def test_parallel_false_runs_calls_one_after_another(agent: Agent) -> None:
    """If parallel=False, then each call of a reply starts only after the one before ended."""
    order: list[str] = []

    @tool
    def step(label: str) -> str:
        """One step."""
        order.append(f"start {label}")
        time.sleep(0.05)
        order.append(f"end {label}")
        return label

    agent.server.queue(
        asks(call("c1", "step", label="one"), call("c2", "step", label="two")), answers("Done.")
    )

    _, run = agent.run("Steps", tools=[step], parallel=False)

    assert order == ["start one", "end one", "start two", "end two"]
    assert [r.content for r in run.steps[0].results] == ["one", "two"]


# Failing tools.


@pytest.mark.parametrize("limit", ["own", "run"])
def test_failing_calls_send_their_error_and_the_loop_goes_on(agent: Agent, limit: str) -> None:
    """If a tool raises, gets invalid arguments, outlasts its timeout, or is not offered, then
    each error goes back as that call's result, and the model gets to answer."""
    release = threading.Event()

    @tool
    def forecast(city: str) -> str:
        """Tomorrow's weather."""
        raise ValueError(f"no forecast for {city}")

    @tool(timeout=0.2 if limit == "own" else None)
    def slow() -> str:
        """Takes its time."""
        release.wait(5)
        return "late"

    log: Log = []
    get_weather, add = weather_and_add(log)
    agent.server.queue(
        asks(
            call("c1", "forecast", city="Atlantis"),
            call("c2", "add", a="two"),
            call("c3", "slow"),
            call("c4", "nope"),
        ),
        answers("Sorry."),
    )
    timeout = {"tool_timeout": 0.2} if limit == "run" else {}

    began = time.monotonic()
    try:
        conversation, run = agent.run("Try", tools=[forecast, add, slow, get_weather], **timeout)
    finally:
        release.set()

    assert time.monotonic() - began < 4
    contents = [message["content"] for message in agent.messages(1)[2:]]
    assert contents[0] == "Error: ValueError: no forecast for Atlantis"
    assert contents[1].startswith("Error: Invalid arguments for add: a: ")
    assert "b: required but missing" in contents[1]
    assert contents[2] == "Error: the tool did not finish within 0.2 s"
    assert contents[3] == "Error: no tool named nope; available: forecast, add, slow, get_weather"
    assert [r.error for r in run.steps[0].results] == [True] * 4
    assert log == []
    assert (run.stopped, run.text, conversation.turns[-1].status) == (
        "answer",
        "Sorry.",
        "complete",
    )


# Hooks.


def test_before_tool_false_refuses_the_call(agent: Agent) -> None:
    """If before_tool returns False for a call, then that tool does not run, the model is told,
    and the other calls run."""
    log: Log = []
    agent.server.queue(asks(WEATHER, ADD), answers("Only the sum."))
    asked: list[ToolCall] = []

    def before_tool(found: ToolCall) -> bool:
        asked.append(found)
        return found.name != "get_weather"

    _, run = agent.run(PROMPT, tools=weather_and_add(log), before_tool=before_tool)

    assert [found.id for found in asked] == ["call_w", "call_a"]
    assert log == [("add", 2, 3)]
    assert agent.messages(1)[2:] == [
        result("call_w", "get_weather", DENIED),
        result("call_a", "add", "5"),
    ]
    assert [r.error for r in run.steps[0].results] == [True, False]


def test_before_tool_edit_runs_the_edited_call_under_the_original_id(agent: Agent) -> None:
    """If before_tool returns an edited ToolCall, then the tool gets the edited arguments, and
    history has the model's call with the edited call's result under the model's id."""
    log: Log = []
    agent.server.queue(asks(WEATHER), answers("Rome is sunny."))

    def before_tool(found: ToolCall) -> ToolCall:
        return dataclasses.replace(found, id="changed", arguments='{"city": "Rome"}')

    _, run = agent.run(PROMPT, tools=weather_and_add(log), before_tool=before_tool)

    assert log == [("get_weather", "Rome")]
    rome = json.dumps({"city": "Rome", "sky": "sunny", "celsius": 21})
    assert agent.messages(1)[1:] == [
        assistant("I need the weather.</think>\n\n", WEATHER),
        result("call_w", "get_weather", rome),
    ]
    (ran,) = run.steps[0].results
    assert (ran.call.id, ran.call.arguments) == ("call_w", '{"city": "Rome"}')


def test_after_step_sees_each_step_once_its_tools_ran(agent: Agent) -> None:
    """If after_step is given, then it gets each ToolStep, in order, with its results."""
    agent.server.queue(asks(WEATHER), asks(ADD), answers("Done."))
    seen: list[ToolStep] = []

    _, run = agent.run(PROMPT, tools=weather_and_add([]), after_step=seen.append)

    assert seen == list(run.steps)
    assert [len(step.results) for step in seen] == [1, 1]


def test_before_tool_may_not_change_the_tool(agent: Agent) -> None:
    """If before_tool returns a call to another tool, then ConfigError says it may edit only
    the arguments, and no tool runs."""
    log: Log = []
    agent.server.queue(asks(WEATHER), answers("Unused."))

    def before_tool(found: ToolCall) -> ToolCall:
        return dataclasses.replace(found, name="add", arguments='{"a": 1, "b": 2}')

    _, error = agent.run(PROMPT, tools=weather_and_add(log), before_tool=before_tool)

    assert isinstance(error, ConfigError)
    assert "not the tool" in str(error)
    assert log == []


def test_before_tool_with_a_bad_answer_fails_the_turn(agent: Agent) -> None:
    """If before_tool returns neither a bool nor a ToolCall, then ConfigError says what to return
    and the turn is failed."""
    log: Log = []
    agent.server.queue(asks(WEATHER), answers("Unused."))

    conversation, error = agent.run(
        PROMPT, tools=weather_and_add(log), before_tool=lambda found: "yes"
    )

    assert isinstance(error, ConfigError)
    assert "return True, False or a ToolCall" in str(error)
    assert (log, len(agent.server.requests)) == ([], 1)
    assert conversation.turns[-1].status == "failed"


def test_async_hooks_are_awaited(server: ScriptedServer) -> None:
    """If AsyncConversation.run gets coroutine hooks, then it awaits before_tool's decision and
    after_step for each step."""
    log: Log = []
    server.queue(asks(WEATHER, ADD), answers("Only the sum."))
    seen: list[ToolStep] = []

    async def before_tool(found: ToolCall) -> bool:
        await anyio.sleep(0)
        return found.name == "add"

    async def after_step(step: ToolStep) -> None:
        await anyio.sleep(0)
        seen.append(step)

    async def main() -> RunResult:
        async with AsyncClient(base_url=server.base_url, retry=ONCE) as client:
            conversation = AsyncConversation(client)
            tools = weather_and_add(log)
            return await conversation.run(
                PROMPT, tools=tools, before_tool=before_tool, after_step=after_step
            )

    run = anyio.run(main)

    assert log == [("add", 2, 3)]
    assert seen == list(run.steps)
    assert [r.content for r in run.steps[0].results] == [DENIED, "5"]


# Stopping.


def test_max_steps_stops_a_model_that_always_wants_tools(
    agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    """If the model asks for a tool at every step, then the run stops after max_steps calls,
    the turn is recorded, and the next send carries no call left without its result."""
    log: Log = []
    agent.server.queue(*(asks(call(f"c{n}", "add", a=n, b=1)) for n in range(3)), answers("Hi."))

    with caplog.at_level(logging.INFO, logger="m2kit"):
        conversation, results = agent.play(
            Do("run", "Count", {"tools": weather_and_add(log), "max_steps": 3}), Do("send", "Hello")
        )

    run = results[0]
    assert (run.stopped, len(run.steps)) == ("max_steps", 2)
    assert [found.id for found in run.reply.tool_calls] == ["c2"]
    assert log == [("add", 0, 1), ("add", 1, 1)]
    assert len(agent.server.requests) == 4
    assert conversation.turns[0].status == "complete"
    assert conversation.turns[0].steps == run.steps
    assert any("raise max_steps" in record.getMessage() for record in caplog.records)

    sent = agent.messages(3)
    assert sent[-2:] == [assistant("I need the weather.</think>\n\n"), user("Hello")]
    assert dangling_calls(sent) == []
    assert len(sent) == 1 + 2 * 2 + 2
    assert "tools" not in agent.body(3)


def test_max_steps_of_one_runs_no_tool(agent: Agent) -> None:
    """If max_steps is 1, then one request goes, no tool runs, and the run stops at max_steps."""
    log: Log = []
    agent.server.queue(asks(WEATHER))

    _, run = agent.run(PROMPT, tools=weather_and_add(log), max_steps=1)

    assert (run.stopped, run.steps, log, len(agent.server.requests)) == ("max_steps", (), [], 1)


# Errors mid-run.


def test_a_refused_second_request_fails_the_turn_with_step_one_kept(agent: Agent) -> None:
    """If the server refuses the second request (400), then the error reaches the caller, the
    turn is failed with step 1 in its steps, and the next send leaves the turn out."""
    agent.server.queue(
        asks(WEATHER),
        error_step(400, {"error": {"message": "tool message out of order"}}),
        answers("Hi."),
    )

    conversation, results = agent.play(
        Do("run", PROMPT, {"tools": weather_and_add([])}), Do("send", "Hello")
    )

    assert isinstance(results[0], BadRequestError)
    turn = conversation.turns[0]
    assert (turn.status, turn.reply) == ("failed", None)
    assert turn.error is not None
    assert "tool message out of order" in turn.error
    assert [step.reply.tool_calls[0].id for step in turn.steps] == ["call_w"]
    assert agent.messages(2) == [user("Hello")]


@pytest.mark.parametrize("include", [False, True], ids=["default", "include_interrupted"])
def test_a_dropped_stream_mid_run_is_interrupted(agent: Agent, include: bool) -> None:
    """If the second step's stream drops, then StreamInterrupted reaches the caller, the turn is
    interrupted with step 1 and the partial reply, sent back only with include_interrupted."""
    agent.server.queue(
        asks(WEATHER, streamed=True),
        stream_step([chunk("Almost"), chunk(" there"), chunk(finish_reason="stop")], drop_after=1),
        answers("Hi."),
    )

    conversation, results = agent.play(
        Do("run", PROMPT, {"tools": weather_and_add([]), "on_event": lambda event: None}),
        Do("send", "Hello"),
        include_interrupted=include,
    )

    assert isinstance(results[0], StreamInterrupted)
    turn = conversation.turns[0]
    assert turn.status == "interrupted"
    assert turn.reply is not None
    assert turn.reply.raw == "Almost"
    assert len(turn.steps) == 1
    step_1 = [
        user(PROMPT),
        assistant("I need the weather.</think>\n\n", WEATHER),
        result("call_w", "get_weather", json.dumps(PARIS)),
        assistant("Almost"),
    ]
    assert agent.messages(2) == [*(step_1 if include else []), user("Hello")]


def test_ctrl_c_in_a_tool_interrupts_the_turn(agent: Agent) -> None:
    """If Ctrl-C strikes while a tool runs, then it reaches the caller, and the turn is
    interrupted with the reply whose tools were running, its calls never sent back."""

    @tool
    def get_weather(city: str) -> str:
        """The weather now in a city."""
        raise KeyboardInterrupt

    agent.server.queue(asks(WEATHER), answers("Hi."))

    with pytest.raises(KeyboardInterrupt):
        agent.play(Do("run", PROMPT, {"tools": [get_weather]}), include_interrupted=True)

    conversation = agent.last
    assert conversation is not None
    turn = conversation.turns[0]
    assert (turn.status, turn.error, turn.steps) == ("interrupted", "Ctrl-C", ())
    assert turn.reply is not None
    assert [found.id for found in turn.reply.tool_calls] == ["call_w"]
    assert conversation.history() == [
        user(PROMPT),
        assistant("I need the weather.</think>\n\n"),
    ]


# The store.


def test_stored_run_comes_back_with_its_steps(
    agent: Agent, server: ScriptedServer, tmp_path: Path
) -> None:
    """If a run is recorded in the store, then Store.load gives back its turn with every step,
    one usage row per model call, and a resumed conversation sends the same history."""
    server.queue(asks(WEATHER), asks(ADD, thinking="Now the sum."), answers("Sunny; 5."))
    path = tmp_path / "m2.db"

    with Store(path) as store:
        conversation, _ = agent.play(
            Do("run", PROMPT, {"tools": weather_and_add([])}), recorder=store
        )
        rows = store.usage()
    with Store(path) as store:
        stored = store.load(conversation.id)

    assert stored.turns == conversation.turns
    (turn,) = stored.turns
    assert [step.reply.tool_calls[0].name for step in turn.steps] == ["get_weather", "add"]
    assert [[r.content for r in step.results] for step in turn.steps] == [
        [json.dumps(PARIS)],
        ["5"],
    ]
    assert len(rows) == len(server.requests) == 3
    assert [(row.outcome, row.total_tokens) for row in rows] == [("complete", 15)] * 3
    assert {row.conversation_id for row in rows} == {conversation.id}

    server.queue(answers("Hello."))
    with Client(base_url=server.base_url, retry=ONCE) as client:
        Conversation.resume(stored, client).send("Hello")
    assert server.requests[-1].json()["messages"] == [*conversation.history(), user("Hello")]
    assert dangling_calls(conversation.history()) == []


def test_stored_failed_run_has_a_usage_row_per_request(
    agent: Agent, server: ScriptedServer, tmp_path: Path
) -> None:
    """If a run fails at its second request, then the store keeps step 1 and a usage row for
    each request: the step's as complete, the refused one as failed."""
    server.queue(asks(WEATHER), error_step(400, {"error": {"message": "bad"}}))

    with Store(tmp_path / "m2.db") as store:
        conversation, _ = agent.play(
            Do("run", PROMPT, {"tools": weather_and_add([])}), recorder=store
        )
        rows = store.usage()
        (turn,) = store.load(conversation.id).turns

    assert [row.outcome for row in rows] == ["complete", "failed"]
    assert (turn.status, len(turn.steps)) == ("failed", 1)
    assert turn.steps == conversation.turns[0].steps


def test_step_latency_counts_the_reply_only(agent: Agent, tmp_path: Path) -> None:
    """If a step's tool takes 0.5 s, then the step's latency (and its usage row's) is the
    reply's time only, as ToolStep documents."""

    @tool
    def get_weather(city: str) -> str:
        """The weather now in a city."""
        time.sleep(0.5)
        return "sunny"

    agent.server.queue(asks(WEATHER), answers("Sunny."))

    with Store(tmp_path / "m2.db") as store:
        _, run = agent.play(Do("run", PROMPT, {"tools": [get_weather]}), recorder=store)
        rows = store.usage()

    (step,) = run[0].steps
    assert step.latency is not None
    assert step.latency < 0.5
    assert rows[0].latency is not None
    assert rows[0].latency < 0.5


def test_last_call_usage_row_has_that_calls_latency(agent: Agent, tmp_path: Path) -> None:
    """If a run's first reply takes 0.5 s and its answer comes at once, then the answer's usage
    row has the answer's latency, so the rows do not count the first call twice."""
    agent.server.queue(
        dataclasses.replace(asks(WEATHER), delay=0.5),
        answers("Sunny."),
    )

    with Store(tmp_path / "m2.db") as store:
        agent.play(Do("run", PROMPT, {"tools": weather_and_add([])}), recorder=store)
        rows = store.usage()

    assert [row.latency is not None for row in rows] == [True, True]
    assert rows[1].latency is not None
    assert rows[1].latency < 0.5


# Tools given to the conversation rather than to run().


def test_tools_in_the_conversations_params_are_run(agent: Agent) -> None:
    """If the conversation holds the tools in its params, then run() offers and runs them."""
    log: Log = []
    agent.server.queue(asks(WEATHER), answers("Sunny."))

    _, results = agent.play(Do("run", PROMPT), tools=weather_and_add(log))

    assert log == [("get_weather", "Paris")]
    assert [item["function"]["name"] for item in agent.body(0)["tools"]] == ["get_weather", "add"]
    assert results[0].stopped == "answer"


def test_conversation_with_tools_in_its_params_saves(
    server: ScriptedServer, tmp_path: Path
) -> None:
    """If the conversation holds its tools in params, then save() still writes the file."""
    server.queue(asks(WEATHER), answers("Sunny."))

    with Client(base_url=server.base_url, retry=ONCE) as client:
        conversation = Conversation(client, tools=weather_and_add([]))
        conversation.run(PROMPT)
        conversation.save(tmp_path / "conversation.json")

    assert (tmp_path / "conversation.json").exists()


def test_stored_conversation_with_tools_in_its_params_resumes(
    server: ScriptedServer, tmp_path: Path
) -> None:
    """If the conversation holds its tools in params, then after Store.load a resumed
    conversation can still send."""
    server.queue(asks(WEATHER), answers("Sunny."), answers("Hello."))

    with Store(tmp_path / "m2.db") as store, Client(base_url=server.base_url) as client:
        conversation = Conversation(client, recorder=store, tools=weather_and_add([]))
        conversation.run(PROMPT)
        resumed = Conversation.resume(store.load(conversation.id), client)
        resumed.send("Hello")

    assert server.requests[-1].json()["messages"][-1] == user("Hello")


# Saving, exporting and trimming.


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_saved_run_sends_the_same_next_request(
    server: ScriptedServer, tmp_path: Path, mode: str
) -> None:
    """If a conversation with a run is saved and loaded, then its turns and the next request
    are the same as the original's."""
    path = tmp_path / "conversation.json"
    server.queue(asks(WEATHER), asks(ADD), answers("Sunny; 5."), answers("Hello."))
    with Client(base_url=server.base_url, retry=ONCE) as client:
        original = Conversation(client, system="Be brief.")
        original.run(PROMPT, tools=weather_and_add([]))
        original.save(path)
        assert Conversation.from_json(original.to_json(), client).turns == original.turns
        original.send("Hello")
    expected = server.requests[-1].body

    server.queue(answers("Hello."))
    if mode == "sync":
        with Client(base_url=server.base_url, retry=ONCE) as client:
            loaded = Conversation.load(path, client)
            assert loaded.turns == original.turns[:1]
            loaded.send("Hello")
    else:

        async def load_and_send() -> None:
            async with AsyncClient(base_url=server.base_url, retry=ONCE) as client:
                loaded = AsyncConversation.load(path, client)
                assert loaded.turns == original.turns[:1]
                await loaded.send("Hello")

        anyio.run(load_and_send)

    assert server.requests[-1].body == expected


def test_markdown_shows_tool_calls_and_results(server: ScriptedServer) -> None:
    """If a run's conversation becomes Markdown, then each call, each result and each error
    appears before the answer."""

    @tool
    def forecast(city: str) -> str:
        """Tomorrow's weather."""
        raise ValueError("no forecast")

    get_weather = weather_and_add([])[0]
    server.queue(asks(WEATHER, call("c2", "forecast", city="Paris")), answers("Sunny today."))
    with Client(base_url=server.base_url, retry=ONCE) as client:
        conversation = Conversation(client)
        conversation.run(PROMPT, tools=[get_weather, forecast])
        text = conversation.to_markdown()

    thought = "<details><summary>Thinking</summary>\n\nI need the weather.\n\n</details>"
    weather_call = 'Tool call `get_weather`:\n\n```json\n{"city": "Paris"}\n```'
    forecast_call = 'Tool call `forecast`:\n\n```json\n{"city": "Paris"}\n```'
    weather_result = f"Result of `get_weather`:\n\n```\n{json.dumps(PARIS)}\n```"
    forecast_error = "Error from `forecast`:\n\n```\nError: ValueError: no forecast\n```"
    answer = "<details><summary>Thinking</summary>\n\nAll done.\n\n</details>\n\nSunny today."
    blocks = [thought, weather_call, forecast_call, weather_result, forecast_error, answer]
    assert "\n\n".join(blocks) in text


def test_trimmed_thinking_stays_inside_the_run(agent: Agent) -> None:
    """If trim_thinking is on, then a run's requests keep each step's thinking, and only a
    later turn's request drops it, calls and results kept."""
    agent.server.queue(asks(WEATHER), answers("Sunny."), answers("Hello."))

    agent.play(
        Do("run", PROMPT, {"tools": weather_and_add([])}), Do("send", "Hello"), trim_thinking=True
    )

    weather_result = result("call_w", "get_weather", json.dumps(PARIS))
    assert agent.messages(1)[1:] == [
        assistant("I need the weather.</think>\n\n", WEATHER),
        weather_result,
    ]
    assert agent.messages(2) == [
        user(PROMPT),
        assistant("", WEATHER),
        weather_result,
        assistant("Sunny."),
        user("Hello"),
    ]


# Recorded streams with tool calls, replayed as a run's first step.


@dataclass(frozen=True)
class RecordedCall:
    """A recording whose reply calls `name` with `arguments`; `streams` when it is SSE."""

    path: str
    model: str
    name: str
    arguments: dict[str, Any]
    streams: bool = True


SAN_FRANCISCO = {"location": "San Francisco"}
BROOKLYN = {"location": "Brooklyn, NY", "format": "fahrenheit"}
RECORDED = [
    RecordedCall(
        "vercel-ai/deepseek-tool-call.chunks.txt", "deepseek-reasoner", "weather", SAN_FRANCISCO
    ),
    RecordedCall("vercel-ai/alibaba-tool-call.chunks.txt", "qwen3-max", "weather", SAN_FRANCISCO),
    RecordedCall("vercel-ai/xai-tool-call.chunks.txt", "grok-3-mini", "weather", SAN_FRANCISCO),
    RecordedCall("vercel-ai/groq-tool-call.chunks.txt", "llama-3.3-70b-versatile", "weather", {}),
    RecordedCall(
        "vercel-ai/anthropic-fallback-tool-call.sse",
        "claude-haiku-4-5",
        "read_file",
        {"path": "a.txt"},
    ),
    RecordedCall(
        "text-generation-inference/test_flash_llama_grammar_tools_choice_stream.json",
        "meta-llama/Llama-3.1-8B-Instruct",
        "get_current_weather",
        BROOKLYN,
    ),
    RecordedCall(
        "text-generation-inference/test_flash_llama_grammar_tools_auto_nostream.json",
        "meta-llama/Llama-3.1-8B-Instruct",
        "get_current_weather",
        BROOKLYN,
        streams=False,
    ),
    RecordedCall(
        "huggingface_hub/InferenceClientVCRTest.test_chat_completion_with_tool.yaml",
        "meta-llama/Meta-Llama-3-70B-Instruct",
        "get_n_day_weather_forecast",
        {"format": "fahrenheit", "location": "San Francisco, CA", "num_days": 3},
        streams=False,
    ),
]


def _tool_for(recorded: RecordedCall, log: list[dict[str, Any]]) -> Tool[..., Any]:
    """A tool named as the recording's call, whose parameters are the recorded arguments."""

    def weather(location: str) -> str:
        log.append({"location": location})
        return "foggy"

    def no_arguments() -> str:
        log.append({})
        return "foggy"

    def read_file(path: str) -> str:
        log.append({"path": path})
        return "contents"

    def current(location: str, format: str) -> str:
        log.append({"location": location, "format": format})
        return "cold"

    def days(format: str, location: str, num_days: int) -> str:
        log.append({"format": format, "location": location, "num_days": num_days})
        return "rain"

    by_parameters: dict[tuple[str, ...], Callable[..., str]] = {
        ("location",): weather,
        (): no_arguments,
        ("path",): read_file,
        ("format", "location"): current,
        ("format", "location", "num_days"): days,
    }
    function = by_parameters[tuple(sorted(recorded.arguments))]
    return tool(name=recorded.name, description="Recorded.")(function)


@pytest.mark.parametrize("recorded", RECORDED, ids=[r.path.split("/")[-1] for r in RECORDED])
def test_recorded_tool_call_runs_in_the_loop(agent: Agent, recorded: RecordedCall) -> None:
    """If a recorded reply with a tool call is a run's first step, then the tool runs with the
    recorded arguments and the second request carries that call and its result."""
    agent.server.queue(load_steps(recorded.path)[0], answers("Done."))
    log: list[dict[str, Any]] = []
    offered = _tool_for(recorded, log)
    on_event = {"on_event": lambda event: None} if recorded.streams else {}

    _, run = agent.run("Go", tools=[offered], model=recorded.model, **on_event)

    assert log == [recorded.arguments]
    assert run.stopped == "answer"
    sent = agent.messages(1)
    assert [message["role"] for message in sent] == ["user", "assistant", "tool"]
    (sent_call,) = sent[1]["tool_calls"]
    assert sent_call["function"]["name"] == recorded.name
    assert json.loads(sent_call["function"]["arguments"] or "{}") == recorded.arguments
    assert sent[2]["tool_call_id"] == sent_call["id"] != ""
    assert sent[2]["content"] == run.steps[0].results[0].content


# Configuration errors.


@tool(name="twin")
def _twin_one() -> str:
    return "one"


@tool(name="twin")
def _twin_two() -> str:
    return "two"


SCHEMA = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "run\\(\\) needs tools"),
        ({"tools": []}, "run\\(\\) needs tools"),
        ({"tools": [SCHEMA]}, "'lookup' is a schema with no function"),
        ({"tools": [_twin_one, _twin_two]}, "two tools are named 'twin'"),
        ({"tools": [_twin_one], "max_steps": 0}, "max_steps must be at least 1"),
    ],
    ids=["no-tools", "empty", "schema", "same-name", "max-steps-0"],
)
def test_bad_run_is_a_config_error_before_any_request(
    agent: Agent, params: dict[str, Any], message: str
) -> None:
    """If run() gets no tools, a raw schema, two tools of one name or max_steps 0, then
    ConfigError is raised before any request, and no turn is recorded."""
    conversation, error = agent.run("Go", **params)

    assert isinstance(error, ConfigError)
    assert re.search(message, str(error))
    assert agent.server.requests == []
    assert conversation.turns == []
    assert conversation.title is None


def test_drop_last_then_run_retries_a_run_with_its_tools(agent: Agent) -> None:
    """If the last turn was a run, then run(drop_last()) runs its text again with the tools,
    the dropped turn out of history, and one turn is left."""
    log: Log = []
    agent.server.queue(asks(WEATHER), answers("Sunny."), asks(WEATHER), answers("Still sunny."))
    tools = {"tools": weather_and_add(log)}

    conversation, results = agent.play(Do("run", PROMPT, tools), Do("rerun", "", tools))

    assert results[1].text == "Still sunny."
    assert [turn.user for turn in conversation.turns] == [PROMPT]
    assert agent.messages(2) == [user(PROMPT)]
    assert [tool["function"]["name"] for tool in agent.body(2)["tools"]] == ["get_weather", "add"]
    assert len(log) == 2
