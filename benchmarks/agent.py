"""Speed of m2kit's agent loop, and of its native tool-call parser, next to what a user would write.

    uv run python benchmarks/agent.py                      # 20 samples of 50 loops per side
    uv run python benchmarks/agent.py --repeat 5 --loops 20 --markdown

Measured in this process, against one local server (see docs/benchmarks.md, "Agent loop"):

1. a three-step loop (two tool calls, then the answer) with whole completions: MiniMax-M2's
   thinking inline in `content` and standard `tool_calls`. `Conversation.run` against the loop a
   user writes with the openai SDK (`chat.completions.create(messages, tools=...)`, run the call,
   append the assistant message and a `tool` message, call again), and the same loop on
   `http.client` and `json` alone as a floor;
2. the same loop with every step streamed: `run(on_event=...)` against `stream=True` with the
   tool-call fragments joined by index;
3. the same loop with MiniMax's native `<minimax:tool_call>` blocks in `content` (a server with
   no tool parser), whole and streamed: m2kit alone, since the SDK does not parse them;
4. chunks per second through `NativeToolStream.feed` (a long stream with and without a block)
   and `ChunkAccumulator.feed` (with `tools=` offered and not).

Every loop's answer and tool-run count, and every stage's output, is compared with the exact
expected result before its time counts (`WrongOutput`); the server refuses a request whose
history lost the thinking or a tool result. The sides being compared run round-robin.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import statistics
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import openai

import m2kit
from _bench_stream import (
    CLOSE_TAG,
    MODEL,
    LocalServer,
    ScriptedReply,
    big_reply,
    dumps,
    error_response,
    response,
)
from m2kit import AnswerDelta, profile_for
from m2kit._accumulate import ChunkAccumulator
from m2kit._agent import DEFAULT_TOOL_TIMEOUT
from m2kit._native_tools import NativeToolStream
from run import Row, WrongOutput, format_table, machine, printer

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

    from m2kit import Client, Tool

PROMPT = "Add the values stored under a and b."
TOOL_NAME = "lookup"
KEYS = ("a", "b")
VALUES = {"a": "1", "b": "2"}
ANSWER = "a is 1 and b is 2, so the sum is 3."
#: Model calls per loop: one per tool call, then the answer.
STEPS = len(KEYS) + 1
MAX_STEPS = 5
THINKING = (
    "The user wants a plus b. Neither value is known, so I look up a first.",
    "a is 1. Now I need b, again with the lookup tool.",
    "a is 1 and b is 2; the sum is 3. Answer in one sentence.",
)
OPEN = "<minimax:tool_call>"
CLOSE = "</minimax:tool_call>"

# What a user writes by hand for the SDK; m2kit derives the same schema from the type hints.
OPENAI_TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "The value stored under `key`.",
            "parameters": {
                "type": "object",
                "properties": {"key": {"type": "string"}},
                "required": ["key"],
            },
        },
    }
]


@dataclass(frozen=True)
class Outcome:
    """What one loop ended with: its answer text and how often the tool ran."""

    answer: str
    tool_runs: int


class Lookup:
    """The loop's one tool, as an m2kit `Tool` and as a plain function; `runs` counts calls."""

    def __init__(self) -> None:
        self.runs = 0

        def lookup(key: str) -> str:
            """The value stored under `key`."""
            self.runs += 1
            return VALUES[key]

        self.function = lookup
        self.tool: Tool[..., str] = m2kit.tool(lookup)


# The scripted replies. A step's content is MiniMax-M2's raw output: thinking with no opening tag
# (the chat template opened it), `</think>`, then the answer or, in the native form, the call.


def _cut(text: str, size: int) -> list[str]:
    return [text[at : at + size] for at in range(0, len(text), size)]


def step_pieces(number: int, *, native: bool) -> list[str]:
    """The content of step `number`, cut into stream pieces of a token or two."""
    pieces = [*_cut(THINKING[number], 4), CLOSE_TAG, "\n\n"]
    if number == len(KEYS):
        return pieces + _cut(ANSWER, 4)
    if native:
        invoke = f'\n<invoke name="{TOOL_NAME}">\n<parameter name="key">{KEYS[number]}'
        invoke += "</parameter>\n</invoke>\n"
        pieces += [OPEN, *_cut(invoke, 4), CLOSE]
    return pieces


def step_content(number: int, *, native: bool) -> str:
    return "".join(step_pieces(number, native=native))


def _standard_call(number: int) -> dict[str, Any] | None:
    if number == len(KEYS):
        return None
    arguments = json.dumps({"key": KEYS[number]})
    return {
        "id": f"call_{KEYS[number]}",
        "type": "function",
        "function": {"name": TOOL_NAME, "arguments": arguments},
    }


def _whole_body(number: int, *, native: bool) -> bytes:
    call = None if native else _standard_call(number)
    message = {
        "role": "assistant",
        "content": step_content(number, native=native),
        "tool_calls": [] if call is None else [call],
    }
    completion = {
        "id": "chatcmpl-agent",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "stop" if call is None else "tool_calls",
            }
        ],
        "usage": _USAGE,
    }
    return response("200 OK", "application/json", dumps(completion), chunked=False)


def _stream_body(number: int, *, native: bool) -> bytes:
    call = None if native else _standard_call(number)
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": piece} for piece in step_pieces(number, native=native)]
    if call is not None:
        # As vLLM streams a call: id, name and empty arguments first, then argument fragments.
        head = {**call, "function": {"name": TOOL_NAME, "arguments": ""}}
        deltas.append({"tool_calls": [{"index": 0, **head}]})
        for fragment in _cut(call["function"]["arguments"], 6):
            deltas.append({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]})

    chunks = [_chunk(delta, None) for delta in deltas]
    chunks.append(_chunk({}, "stop" if call is None else "tool_calls"))
    chunks.append({**_chunk(None, None), "usage": _USAGE})
    events = [b"data: " + dumps(chunk) + b"\n\n" for chunk in chunks] + [b"data: [DONE]\n\n"]
    body = b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events) + b"0\r\n\r\n"
    return response("200 OK", "text/event-stream", body, chunked=True)


_USAGE = {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160}


def _chunk(delta: dict[str, Any] | None, finish_reason: str | None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    return {
        "id": "chatcmpl-agent",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [] if delta is None else [choice],
    }


class Refused(Exception):
    """A request the scripted loop cannot answer; the server says why with a 400."""


def step_of(request: object) -> int:
    """Which step a chat request asks for: one per tool result in it, after checking that the
    history so far is the loop's own (each reply with its thinking, each call's result)."""
    if not isinstance(request, dict):
        raise Refused("the body is not a JSON object")
    tools = request.get("tools")
    offered = [
        item.get("function", {}).get("name") for item in tools or [] if isinstance(item, dict)
    ]
    if offered != [TOOL_NAME]:
        raise Refused(f"offer exactly the {TOOL_NAME} tool, not {offered}")

    messages = request.get("messages")
    if not isinstance(messages, list) or messages[:1] != [{"role": "user", "content": PROMPT}]:
        raise Refused("the first message must be the prompt")
    history = messages[1:]
    step = len(history) // 2
    if len(history) % 2 or step >= STEPS:
        raise Refused(f"{len(history)} messages after the prompt; expected 0, 2 or 4")
    for number in range(step):
        _check_step(number, history[2 * number], history[2 * number + 1])
    return step


def _check_step(number: int, reply: Any, result: Any) -> None:
    if not isinstance(reply, dict) or reply.get("role") != "assistant":
        raise Refused(f"step {number}: an assistant message must come back")
    if CLOSE_TAG not in str(reply.get("content")):
        raise Refused(f"step {number}: the assistant message lost its thinking")
    calls = reply.get("tool_calls")
    if not isinstance(calls, list) or len(calls) != 1 or not isinstance(calls[0], dict):
        raise Refused(f"step {number}: the assistant message must carry its one tool call")
    function = calls[0].get("function")
    function = function if isinstance(function, dict) else {}
    arguments = json.loads(str(function.get("arguments") or "null"))
    if function.get("name") != TOOL_NAME or arguments != {"key": KEYS[number]}:
        raise Refused(f"step {number}: the call is not {TOOL_NAME}(key={KEYS[number]!r})")

    expected = {"role": "tool", "tool_call_id": calls[0].get("id"), "content": VALUES[KEYS[number]]}
    if not isinstance(result, dict) or {key: result.get(key) for key in expected} != expected:
        raise Refused(f"step {number}: expected the tool result {expected}, got {result}")


class LoopServer(LocalServer):
    """A `LocalServer` that plays the three-step loop.

    `base_url("standard")` answers with standard `tool_calls`, `base_url("native")` with native
    blocks in `content`; a request with `"stream": true` gets the step as server-sent events.
    Every answer is encoded once, at start. `served` counts the steps answered.
    """

    def __init__(self) -> None:
        self._answers = {
            (form, stream, number): (_stream_body if stream else _whole_body)(
                number, native=form == "native"
            )
            for form in ("standard", "native")
            for stream in (False, True)
            for number in range(STEPS)
        }
        super().__init__("agent-bench-server")

    def answer(self, path: str, body: bytes) -> bytes:
        form, _, route = path.lstrip("/").partition("/")
        if form not in ("standard", "native") or route != "v1/chat/completions":
            return error_response(f"agent bench server: nothing at {path}")
        try:
            request = json.loads(body)
            number = step_of(request)
        except (ValueError, Refused) as exc:
            return error_response(f"agent bench server: {exc}")

        self.count_served()
        return self._answers[(form, request.get("stream") is True, number)]


# The loops being compared. Each starts from the prompt alone: a fresh loop on a kept client.


def m2kit_loop(
    client: Client,
    lookup: Lookup,
    *,
    stream: bool,
    tool_timeout: float | None = DEFAULT_TOOL_TIMEOUT,
) -> Outcome:
    """`Conversation.run`; with `stream`, every step streams to an `on_event` that keeps the
    answer deltas, and the streamed answer must equal the returned one."""
    before = lookup.runs
    streamed: list[str] = []

    def on_event(event: object) -> None:
        if isinstance(event, AnswerDelta):
            streamed.append(event.text)

    result = client.conversation().run(
        PROMPT,
        tools=[lookup.tool],
        max_steps=MAX_STEPS,
        tool_timeout=tool_timeout,
        on_event=on_event if stream else None,
    )
    answer = result.text
    if stream and "".join(streamed) != answer:
        answer = f"streamed {''.join(streamed)!r}, returned {answer!r}"
    return Outcome(answer, lookup.runs - before)


def openai_loop(client: openai.OpenAI, lookup: Lookup) -> Outcome:
    """The SDK's tool loop as its guide writes it: whole completions, the message appended as is."""
    before = lookup.runs
    functions = {TOOL_NAME: lookup.function}
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT}]
    for _ in range(MAX_STEPS):
        completion = client.chat.completions.create(
            model=MODEL, messages=messages, tools=OPENAI_TOOLS
        )
        message = completion.choices[0].message
        if not message.tool_calls:
            return Outcome(message.content or "", lookup.runs - before)

        # The SDK serialises its own message objects; its guide appends them unchanged.
        messages.append(message)  # type: ignore[arg-type]
        for call in message.tool_calls:
            assert call.type == "function"
            result = functions[call.function.name](**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return Outcome("", lookup.runs - before)


def openai_stream_loop(client: openai.OpenAI, lookup: Lookup) -> Outcome:
    """The same loop with `stream=True`: content joined, tool-call fragments joined by index."""
    before = lookup.runs
    functions = {TOOL_NAME: lookup.function}
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT}]
    for _ in range(MAX_STEPS):
        stream = client.chat.completions.create(
            model=MODEL, messages=messages, tools=OPENAI_TOOLS, stream=True
        )
        content: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        for chunk in stream:
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            if delta.content:
                content.append(delta.content)
            for part in delta.tool_calls or ():
                call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = part.id or call["id"]
                if part.function is not None:
                    call["name"] += part.function.name or ""
                    call["arguments"] += part.function.arguments or ""
        if not calls:
            return Outcome("".join(content), lookup.runs - before)

        messages.append(
            {
                "role": "assistant",
                "content": "".join(content),
                "tool_calls": [
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": call["arguments"]},
                    }
                    for _, call in sorted(calls.items())
                ],
            }
        )
        for call in calls.values():
            result = functions[call["name"]](**json.loads(call["arguments"]))
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    return Outcome("", lookup.runs - before)


def stdlib_loop(connection: http.client.HTTPConnection, path: str, lookup: Lookup) -> Outcome:
    """The same whole-completion loop on `http.client` and `json` alone: the floor."""
    before = lookup.runs
    messages: list[dict[str, Any]] = [{"role": "user", "content": PROMPT}]
    for _ in range(MAX_STEPS):
        body = json.dumps({"model": MODEL, "messages": messages, "tools": OPENAI_TOOLS})
        connection.request("POST", path, body, {"content-type": "application/json"})
        response = connection.getresponse()
        message = json.loads(response.read())["choices"][0]["message"]
        if not message.get("tool_calls"):
            return Outcome(message["content"], lookup.runs - before)

        messages.append(message)
        for call in message["tool_calls"]:
            result = lookup.function(**json.loads(call["function"]["arguments"]))
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    return Outcome("", lookup.runs - before)


@dataclass(frozen=True)
class Side:
    """One way to run the loop, and the outcome each loop must have."""

    label: str
    loop: Callable[[], Outcome]
    expected: Outcome


@dataclass(frozen=True)
class LoopTiming:
    """Seconds per loop, one value per sample, and new connections per loop over all samples."""

    label: str
    seconds: tuple[float, ...]
    connections: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> str:
        return f"{_ms(min(self.seconds))}-{_ms(max(self.seconds))}"


def time_loops(
    sides: Sequence[Side], server: LoopServer, *, repeat: int, loops: int, warmup: int = 1
) -> list[LoopTiming]:
    """`repeat` samples of `loops` loops per side, round-robin, after `warmup` untimed samples."""
    for _ in range(warmup):
        for side in sides:
            _sample(side, server, loops)

    seconds: dict[str, list[float]] = {side.label: [] for side in sides}
    connections = dict.fromkeys(seconds, 0)
    for _ in range(repeat):
        for side in sides:
            before = server.connections
            seconds[side.label].append(_sample(side, server, loops) / loops)
            connections[side.label] += server.connections - before
    per_loop = max(1, repeat * loops)
    return [
        LoopTiming(label, tuple(values), connections[label] / per_loop)
        for label, values in seconds.items()
    ]


def _sample(side: Side, server: LoopServer, loops: int) -> float:
    served = server.served
    started = time.perf_counter()
    outcomes = [side.loop() for _ in range(loops)]
    seconds = time.perf_counter() - started

    wrong = [outcome for outcome in outcomes if outcome != side.expected]
    if wrong:
        raise WrongOutput(f"{side.label}: {wrong[0]} instead of {side.expected}")
    if server.served - served != loops * STEPS:
        raise WrongOutput(
            f"{side.label}: {server.served - served} steps served for {loops} loops,"
            f" {loops * STEPS} expected"
        )
    return seconds


@dataclass
class Clients:
    """One client of each kind on the server: m2kit's per form ("standard", "native"), the SDK's
    and a kept `http.client` connection on the standard form. Close them with `close`."""

    m2: dict[str, Client]
    sdk: openai.OpenAI
    connection: http.client.HTTPConnection
    path: str  # the standard form's chat path, for the connection

    @classmethod
    def on(cls, server: LoopServer) -> Clients:
        standard = server.base_url("standard")
        url = urlsplit(standard)
        return cls(
            m2={
                form: m2kit.Client(MODEL, server.base_url(form)) for form in ("standard", "native")
            },
            sdk=openai.OpenAI(base_url=standard, api_key="x"),
            connection=http.client.HTTPConnection(url.hostname or "", url.port, timeout=30),
            path=url.path + "/chat/completions",
        )

    def close(self) -> None:
        for client in self.m2.values():
            client.close()
        self.sdk.close()
        self.connection.close()


def whole_sides(clients: Clients, lookup: Lookup) -> list[Side]:
    """Scenarios 1 and 3, whole: m2kit (also with no tool time limit, so no tool thread), the
    SDK loop, the stdlib floor, m2kit on native calls."""
    m2, sdk = clients.m2, clients.sdk
    final = step_content(len(KEYS), native=False)
    return [
        Side(
            "m2kit Conversation.run",
            lambda: m2kit_loop(m2["standard"], lookup, stream=False),
            Outcome(ANSWER, len(KEYS)),
        ),
        Side("openai SDK loop", lambda: openai_loop(sdk, lookup), Outcome(final, len(KEYS))),
        Side(
            "stdlib loop (http.client + json)",
            lambda: stdlib_loop(clients.connection, clients.path, lookup),
            Outcome(final, len(KEYS)),
        ),
        Side(
            "m2kit Conversation.run(tool_timeout=None)",
            lambda: m2kit_loop(m2["standard"], lookup, stream=False, tool_timeout=None),
            Outcome(ANSWER, len(KEYS)),
        ),
        Side(
            "m2kit Conversation.run, native XML calls",
            lambda: m2kit_loop(m2["native"], lookup, stream=False),
            Outcome(ANSWER, len(KEYS)),
        ),
    ]


def stream_sides(clients: Clients, lookup: Lookup) -> list[Side]:
    """Scenarios 2 and 3, streamed: m2kit with `on_event`, the SDK with `stream=True`, m2kit on
    native calls."""
    m2, sdk = clients.m2, clients.sdk
    final = step_content(len(KEYS), native=False)
    return [
        Side(
            "m2kit Conversation.run(on_event=...)",
            lambda: m2kit_loop(m2["standard"], lookup, stream=True),
            Outcome(ANSWER, len(KEYS)),
        ),
        Side(
            "openai SDK loop, stream=True",
            lambda: openai_stream_loop(sdk, lookup),
            Outcome(final, len(KEYS)),
        ),
        Side(
            "m2kit Conversation.run(on_event=...), native XML calls",
            lambda: m2kit_loop(m2["native"], lookup, stream=True),
            Outcome(ANSWER, len(KEYS)),
        ),
    ]


# Scenario 4: the parsers alone, on one long content stream.


@dataclass(frozen=True)
class Parsed:
    """What a parser stage produced: the text it passed on, and each call's name and arguments."""

    text: str
    calls: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Stage:
    """One parser pass over a stream, the number of items it is fed, and its exact output."""

    label: str
    items: int
    run: Callable[[], Parsed]
    expected: Parsed


@dataclass(frozen=True)
class StageTiming:
    label: str
    items: int
    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        """Items per second at the median round."""
        return self.items / statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return self.items / min(self.seconds)


WRITE_TOOL = "write_file"
WRITE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
    "required": ["path", "content"],
}


def block_reply(chunks: int) -> tuple[ScriptedReply, Parsed]:
    """`big_reply(chunks)` with its answer moved into a native `write_file` call's `content`
    value, and what parsing it must give: the text before the block, and the one call."""
    plain = big_reply(chunks)
    at = plain.pieces.index(CLOSE_TAG) + 2
    head = f'\n<invoke name="{WRITE_TOOL}">\n<parameter name="path">factorial.py</parameter>\n'
    head += '<parameter name="content">'
    pieces = [*plain.pieces[:at], OPEN, *_cut(head, 6), *plain.pieces[at:]]
    pieces += [*_cut("</parameter>\n</invoke>\n", 6), CLOSE]

    # The reference parsers strip a value's surrounding newlines, and nothing else.
    value = "".join(plain.pieces[at:]).strip("\r\n")
    call = json.dumps({"path": "factorial.py", "content": value}, ensure_ascii=False)
    before = "".join(plain.pieces[:at])
    return ScriptedReply("block", tuple(pieces), plain.usage), Parsed(before, ((WRITE_TOOL, call),))


def native_stream_pass(pieces: Sequence[str]) -> Parsed:
    """`NativeToolStream.feed` for every piece, then `finish`."""
    stream = NativeToolStream({WRITE_TOOL: WRITE_SCHEMA})
    text: list[str] = []
    calls: list[tuple[str, str]] = []
    for piece in pieces:
        step = stream.feed(piece)
        text.append(step.text)
        calls += [(call.name, call.arguments) for call in step.calls]
    last = stream.finish()
    text.append(last.text)
    calls += [(call.name, call.arguments) for call in last.calls]
    return Parsed("".join(text), tuple(calls))


def accumulator_pass(chunks: Sequence[Mapping[str, Any]], *, tools: bool) -> Parsed:
    """`ChunkAccumulator.feed` for every chunk dict, then `finish`: the streamed answer (which
    must equal the reply's) and the reply's tool calls."""
    schemas = {WRITE_TOOL: WRITE_SCHEMA} if tools else None
    accumulator = ChunkAccumulator(profile_for(MODEL), tools=schemas)
    answers: list[str] = []
    for chunk in chunks:
        answers += [e.text for e in accumulator.feed(chunk) if isinstance(e, AnswerDelta)]
    events, reply = accumulator.finish(done=True)
    answers += [e.text for e in events if isinstance(e, AnswerDelta)]

    answer = "".join(answers)
    if answer != reply.text:
        answer = f"streamed {answer!r}, returned {reply.text!r}"
    return Parsed(answer, tuple((call.name, call.arguments) for call in reply.tool_calls))


def parser_stages(chunks: int) -> list[Stage]:
    """The native parser with and without a block, and the accumulator with and without tools."""
    plain = big_reply(chunks)
    block, parsed = block_reply(chunks)
    plain_chunks, block_chunks = plain.chunks(), block.chunks()
    answer = Parsed(plain.answer)
    return [
        Stage(
            "NativeToolStream.feed, no block",
            len(plain.pieces),
            lambda: native_stream_pass(plain.pieces),
            Parsed(plain.raw),
        ),
        Stage(
            "NativeToolStream.feed, the answer inside one block",
            len(block.pieces),
            lambda: native_stream_pass(block.pieces),
            parsed,
        ),
        Stage(
            "ChunkAccumulator.feed, no tools",
            len(plain_chunks),
            lambda: accumulator_pass(plain_chunks, tools=False),
            answer,
        ),
        Stage(
            "ChunkAccumulator.feed, tools offered, no block",
            len(plain_chunks),
            lambda: accumulator_pass(plain_chunks, tools=True),
            answer,
        ),
        Stage(
            "ChunkAccumulator.feed, tools offered, one block",
            len(block_chunks),
            lambda: accumulator_pass(block_chunks, tools=True),
            Parsed("", parsed.calls),
        ),
    ]


def time_stages(stages: Sequence[Stage], *, rounds: int, warmup: int = 1) -> list[StageTiming]:
    """Each stage `rounds` times, round-robin; each round's output checked before it counts."""
    seconds: dict[str, list[float]] = {stage.label: [] for stage in stages}
    for number in range(warmup + rounds):
        for stage in stages:
            started = time.perf_counter()
            parsed = stage.run()
            elapsed = time.perf_counter() - started
            if parsed != stage.expected:
                raise WrongOutput(
                    f"{stage.label}: wrong output ({len(parsed.text)} chars,"
                    f" {len(parsed.calls)} calls; {len(stage.expected.text)} chars,"
                    f" {len(stage.expected.calls)} calls expected)"
                )
            if number >= warmup:
                seconds[stage.label].append(elapsed)
    return [StageTiming(stage.label, stage.items, tuple(seconds[stage.label])) for stage in stages]


# The table.


def loop_rows(measure: str, timings: Sequence[LoopTiming], anchors: Mapping[str, str]) -> list[Row]:
    """One row per side; `anchors` maps a label to the label its ratio is taken against."""
    medians = {timing.label: timing.median for timing in timings}
    rows = []
    for timing in timings:
        anchor = anchors.get(timing.label)
        ratio = ""
        if anchor is not None:
            ratio = f"{timing.median / medians[anchor]:.2f}x {_short(anchor)}"
        if timing.connections:
            ratio += f"{'; ' if ratio else ''}{timing.connections:.1f} new connections/loop"
        rows.append(Row(measure, timing.label, _ms(timing.median) + " /loop", timing.spread, ratio))
    return rows


def stage_rows(timings: Sequence[StageTiming], anchors: Mapping[str, str]) -> list[Row]:
    medians = {timing.label: timing.median for timing in timings}
    rows = []
    for timing in timings:
        cost = f"{1e6 / timing.median:.2f} us/chunk"
        anchor = anchors.get(timing.label)
        if anchor is not None:
            cost += (
                f", {medians[anchor] / timing.median:.2f}x the per-chunk cost with {_short(anchor)}"
            )
        rows.append(
            Row(
                f"4. parsers, {timing.items:,} chunks",
                timing.label,
                f"{timing.median:,.0f}/s",
                f"best {timing.best:,.0f}/s",
                cost,
            )
        )
    return rows


_SHORT = {
    "openai SDK loop": "SDK",
    "openai SDK loop, stream=True": "SDK",
    "m2kit Conversation.run": "standard",
    "m2kit Conversation.run(on_event=...)": "standard",
    "NativeToolStream.feed, no block": "no block",
    "ChunkAccumulator.feed, no tools": "no tools",
}


def _short(label: str) -> str:
    return _SHORT.get(label, label)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


WHOLE_ANCHORS = {
    "m2kit Conversation.run": "openai SDK loop",
    "m2kit Conversation.run(tool_timeout=None)": "openai SDK loop",
    "stdlib loop (http.client + json)": "openai SDK loop",
    "m2kit Conversation.run, native XML calls": "m2kit Conversation.run",
}
STREAM_ANCHORS = {
    "m2kit Conversation.run(on_event=...)": "openai SDK loop, stream=True",
    "m2kit Conversation.run(on_event=...), native XML calls": (
        "m2kit Conversation.run(on_event=...)"
    ),
}
STAGE_ANCHORS = {
    "NativeToolStream.feed, the answer inside one block": "NativeToolStream.feed, no block",
    "ChunkAccumulator.feed, tools offered, no block": "ChunkAccumulator.feed, no tools",
    "ChunkAccumulator.feed, tools offered, one block": "ChunkAccumulator.feed, no tools",
}


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    say = printer(options.quiet)
    lookup = Lookup()
    times = {"repeat": options.repeat, "loops": options.loops}

    with LoopServer() as server, contextlib.closing(Clients.on(server)) as clients:
        say(f"whole steps: {options.repeat} samples of {options.loops} loops per side")
        whole = time_loops(whole_sides(clients, lookup), server, **times)
        say(f"streamed steps: {options.repeat} samples of {options.loops} loops per side")
        streamed = time_loops(stream_sides(clients, lookup), server, **times)

    say(f"parsers: {options.rounds} rounds of each stage on {options.chunks:,} chunks")
    stages = time_stages(parser_stages(options.chunks), rounds=options.rounds)

    rows = loop_rows("1, 3. whole steps", whole, WHOLE_ANCHORS)
    rows += loop_rows("2, 3. streamed steps", streamed, STREAM_ANCHORS)
    rows += stage_rows(stages, STAGE_ANCHORS)
    print(machine())
    print(format_table(rows, markdown=options.markdown))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=20, help="timed samples per side (20)")
    parser.add_argument("--loops", type=int, default=50, help="loops in each sample (50)")
    parser.add_argument("--chunks", type=int, default=20_000, help="parser stream size (20000)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per parser stage (7)")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


if __name__ == "__main__":
    sys.exit(main())
