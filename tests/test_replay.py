"""Every recorded chat call, replayed through the real client, agrees with an oracle read from the
recording itself: the joined content, the answer, the finish reason, the last usage, the tool
calls, the thinking kept in history, or the error class its status stands for.

The oracle parses the recorded bytes on its own (SSE by the WHATWG rules: an event left without
its blank line at the end of the body is never dispatched) and knows nothing of the client's code.
Which models start inside their thinking it reads from the model name, by its own list of the
families whose templates open `<think>` (see REFERENCE.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from _recorded import Exchange, load_exchanges, recorded_chat_files
from m2kit import (
    AnswerDelta,
    AuthenticationError,
    BadRequestError,
    Client,
    Done,
    M2Error,
    ModelNotFoundError,
    RateLimitError,
    Reply,
    RetryPolicy,
    ServerError,
    StreamErrorEvent,
    StreamInterrupted,
    ThinkingDelta,
)

if TYPE_CHECKING:
    from _server import ScriptedServer

_BY_STATUS: dict[int, type[M2Error]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: ModelNotFoundError,
    422: BadRequestError,
    429: RateLimitError,
    500: ServerError,
}
_LINE_END = re.compile(r"\r\n|\r|\n")
_THINKS_FIRST = re.compile(
    r"(^|/)(minimax-m2|qwen3-.*-thinking-2507|qwq-(?!32b-preview)|deepseek-r1)", re.IGNORECASE
)


@dataclass
class Oracle:
    """What the recording says the client must make of it."""

    error: type[M2Error] | None = None
    error_words: set[str] = field(default_factory=set)
    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    # [index, id, name, arguments] per call, in arrival order.
    tool_calls: list[list[Any]] = field(default_factory=list)
    done: bool = False
    thinks_first: bool = False

    def answer(self) -> str:
        """The answer in `content` when no reasoning field is set."""
        text = self.content.lstrip()
        opened = text.startswith("<think>")
        if not (opened or self.thinks_first):
            return text

        body = text.removeprefix("<think>")
        if "</think>" in body:
            return body.split("</think>", 1)[1].lstrip()
        # Never closed: an explicit tag, or a cut at the token limit, leaves it all thinking;
        # otherwise the model answered straight away.
        return "" if opened or self.finish_reason == "length" else text


def _sse_events(body: bytes) -> list[tuple[str, str]]:
    """(event, data) pairs by the WHATWG event-stream rules."""
    events = []
    event, pending = "", False
    data: list[str] = []
    # What follows the last line end is an unfinished line: dropped, like its event.
    for line in _LINE_END.split(body.decode("utf-8"))[:-1]:
        if not line:
            if pending:
                events.append((event or "message", "\n".join(data)))
            event, data, pending = "", [], False
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event, pending = value, True
        elif name == "data":
            data.append(value)
            pending = True
    return events


def _leaves(value: object) -> set[str]:
    if isinstance(value, str):
        return {value.strip()}
    if isinstance(value, dict):
        return set().union(*(_leaves(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_leaves(v) for v in value))
    return set()


def _reasoning(part: dict[str, Any]) -> str:
    for key in ("reasoning_content", "reasoning"):
        if isinstance(part.get(key), str) and part[key]:
            return str(part[key])
    details = part.get("reasoning_details")
    if isinstance(details, list):
        return "".join(d.get("text") or "" for d in details if isinstance(d, dict))
    return ""


def _usage(data: dict[str, Any]) -> dict[str, Any] | None:
    usage = data.get("usage")
    if not isinstance(usage, dict) and isinstance(data.get("x_groq"), dict):
        usage = data["x_groq"].get("usage")
    return usage if isinstance(usage, dict) else None


def _add_tool_calls(oracle: Oracle, raw: object) -> None:
    items = [raw] if isinstance(raw, dict) else raw if isinstance(raw, list) else []
    for position, item in enumerate(items):
        index = item.get("index", position)
        call_id = item.get("id") or ""
        function = item.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = "" if arguments is None else json.dumps(arguments, ensure_ascii=False)

        # A fragment joins the latest call at its index, unless it brings another id.
        same_index = [entry for entry in oracle.tool_calls if entry[0] == index]
        entry = same_index[-1] if same_index else None
        if entry is None or (call_id and entry[1] and call_id != entry[1]):
            entry = [index, "", "", ""]
            oracle.tool_calls.append(entry)
        entry[1] = entry[1] or call_id
        entry[2] = entry[2] or function.get("name") or ""
        entry[3] += arguments


def _content(value: object) -> str:
    if isinstance(value, list):
        return "".join(
            p["text"] for p in value if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return value if isinstance(value, str) else ""


def _add_part(oracle: Oracle, data: dict[str, Any], key: str) -> None:
    for choice in data.get("choices") or ():
        if choice.get("index", 0) != 0:
            continue
        part = choice.get(key) or {}
        oracle.reasoning += _reasoning(part)
        oracle.content += _content(part.get("content"))
        _add_tool_calls(oracle, part.get("tool_calls"))
        oracle.finish_reason = choice.get("finish_reason") or oracle.finish_reason
    oracle.usage = _usage(data) or oracle.usage


def _stream_oracle(body: bytes) -> Oracle:
    oracle = Oracle()
    for event, data in _sse_events(body):
        if data == "[DONE]":
            oracle.done = True
            break
        chunk = json.loads(data)
        if event == "error" or chunk.get("error"):
            return Oracle(StreamErrorEvent, _leaves(chunk.get("error")))
        _add_part(oracle, chunk, "delta")
    if not oracle.done and oracle.finish_reason is None:
        oracle.error = StreamInterrupted
    return oracle


def _whole_oracle(status: int, body: bytes) -> Oracle:
    try:
        data = json.loads(body)
    except ValueError:
        data = body.decode()
    if status >= 400:
        return Oracle(_BY_STATUS[status], _leaves(data))

    oracle = Oracle()
    _add_part(oracle, data, "message")
    return oracle


def oracle_for(exchange: Exchange) -> Oracle:
    step = exchange.step
    if step.chunks is not None:
        oracle = _stream_oracle(b"".join(step.chunks))
    else:
        oracle = _whole_oracle(step.status, step.body)
    oracle.thinks_first = bool(_THINKS_FIRST.search(_model(exchange)))
    return oracle


def _model(exchange: Exchange) -> str:
    """The model the recorded call asked for (it picks the thinking profile), else the reply's."""
    if isinstance(exchange.request, dict) and exchange.request.get("model"):
        return str(exchange.request["model"])
    step = exchange.step
    first = step.chunks[0] if step.chunks else step.body
    found = re.search(rb'"model":\s*"([^"]+)"', first)
    return found.group(1).decode() if found else "tgi"


def _streams(exchange: Exchange) -> bool:
    asked = isinstance(exchange.request, dict) and exchange.request.get("stream") is True
    return asked or exchange.step.chunks is not None


def _check_reply(reply: Reply, oracle: Oracle) -> None:
    assert reply.raw == oracle.content
    assert reply.finish_reason == oracle.finish_reason

    if oracle.usage is None:
        assert reply.usage is None
    else:
        assert reply.usage is not None
        got = (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens)
        usage = oracle.usage
        assert got == (
            usage.get("prompt_tokens"),
            usage.get("completion_tokens"),
            usage.get("total_tokens"),
        )

    calls = [[call.index, call.name, call.arguments] for call in reply.tool_calls]
    expected = [[index, name, arguments] for index, _, name, arguments in oracle.tool_calls]
    assert calls == sorted(expected, key=lambda call: call[0])

    if not oracle.reasoning.strip():
        assert reply.text == oracle.answer()
        return
    assert (reply.thinking, reply.text) == (oracle.reasoning.strip(), oracle.content.lstrip())
    # Tag-template families get the thinking rebuilt inline; other models get the content as
    # received and no reasoning field, which Groq and Cerebras refuse.
    assert "reasoning_content" not in reply.message
    assert "reasoning" not in reply.message
    inline = oracle.reasoning.strip() in (reply.message["content"] or "")
    assert inline or (reply.message["content"] or "") == oracle.content


def _quotes(message: str, words: set[str]) -> bool:
    """Whether `message` is one of the server's words, on one line, maybe cut short with "…"."""
    message = " ".join(message.split())
    lines = {" ".join(word.split()) for word in words}
    if message.endswith("…"):
        return any(line.startswith(message[:-1]) for line in lines)
    return message in lines


def _replay(client: Client, exchange: Exchange) -> Reply:
    model = _model(exchange)
    if not _streams(exchange):
        return client.chat("Hello", model=model)

    events = list(client.stream("Hello", model=model))
    done = events[-1]
    assert isinstance(done, Done)
    reply = done.reply
    answer = [e.text for e in events if isinstance(e, AnswerDelta)]
    thinking = [e.text for e in events if isinstance(e, ThinkingDelta)]
    if reply.thinking is None and thinking:
        # Thinking that never closed was the answer after all: the last delta carries it whole.
        assert answer[-1] == reply.text
    else:
        assert ("".join(answer), "".join(thinking) or None) == (reply.text, reply.thinking)
    return reply


@pytest.mark.parametrize("relative_path", recorded_chat_files())
def test_recorded_call_replays_as_the_oracle_says(
    server: ScriptedServer, relative_path: str
) -> None:
    """If a recorded call is replayed, then the reply or error is what the recording holds."""
    with Client(base_url=server.base_url, retry=RetryPolicy(max_attempts=1)) as client:
        for position, exchange in enumerate(load_exchanges(relative_path)):
            oracle = oracle_for(exchange)
            server.queue(exchange.step)

            if oracle.error is None:
                _check_reply(_replay(client, exchange), oracle)
                continue
            with pytest.raises(oracle.error) as caught:
                _replay(client, exchange)
            assert oracle.error is StreamInterrupted or _quotes(
                caught.value.message, oracle.error_words
            ), f"exchange {position}"
