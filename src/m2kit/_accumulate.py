"""Turning chat-completion chunks, or a whole completion, into events and one `Reply`. No I/O.

Providers behind the router vary widely, so payloads are read defensively: a field of an
unexpected type is ignored, never a crash.

A reply that is complete but has no finish reason (a stream that ended with `[DONE]`, a whole
completion with `finish_reason: null`) splits as a normal stop; `Reply.finish_reason` stays None,
as received. Only a partial reply splits as a dropped stream.

When the request offered tools, MiniMax-M2's native tool-call blocks in the content (servers
started without a tool parser pass them through as text) become standard tool calls: taken out
of the content that goes back as history, kept in `Reply.raw`. So do blocks in a reasoning
field: when the model forgets `</think>`, a server's reasoning parser files the call as thinking
(MiniMax-M2.1#10).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._errors import StreamErrorEvent, StreamInterrupted, redact
from ._native_tools import NativeToolStream, new_call_id, parse_native
from ._thinking import StreamSplitter, history_content, split_reply
from ._types import (
    AnswerDelta,
    Message,
    Reply,
    StreamEvent,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._profiles import Profile
    from ._thinking import Split

    # A tool's name to its JSON Schema parameters, as the request offered them.
    ToolSchemas = Mapping[str, Mapping[str, Any]]


def reasoning_text(part: Mapping[str, Any]) -> str | None:
    """The thinking in a message or delta's separate field, if any.

    `reasoning_content` (DeepSeek, novita, fireworks-ai, SGLang, older vLLM), `reasoning` (vLLM,
    Groq, OpenRouter), or a `reasoning_details` list of `{type, text}` (novita, OpenRouter).
    OpenRouter sends the same text under `reasoning` and `reasoning_details`: the first one wins.
    """
    for key in ("reasoning_content", "reasoning"):
        value = part.get(key)
        if isinstance(value, str) and value:
            return value

    details = part.get("reasoning_details")
    if not isinstance(details, list):
        return None
    text = "".join(
        d["text"] for d in details if isinstance(d, dict) and isinstance(d.get("text"), str)
    )
    return text or None


def usage_from(data: Mapping[str, Any]) -> Usage | None:
    """Usage from a chunk or completion: top-level `usage`, or Groq's `x_groq.usage`."""
    raw = data.get("usage")
    if not isinstance(raw, dict):
        groq = data.get("x_groq")
        raw = groq.get("usage") if isinstance(groq, dict) else None
    if not isinstance(raw, dict):
        return None

    details = raw.get("completion_tokens_details")
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return Usage(
        prompt_tokens=_int(raw.get("prompt_tokens")),
        completion_tokens=_int(raw.get("completion_tokens")),
        total_tokens=_int(raw.get("total_tokens")),
        reasoning_tokens=_int(reasoning),
    )


def stream_error(
    error: object, *, partial: Reply | None, secret: str | None = None
) -> StreamErrorEvent:
    """The exception for an error a server sent with status 200, with `secret` redacted.

    `error` is the `error` object of a chunk or completion, or text: the data of an `event: error`
    (JSON with an `error` object, or plain) or a message of our own.
    """
    if isinstance(error, str):
        try:
            parsed = json.loads(error)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            error = parsed.get("error") or parsed

    message, code = str(error), None
    if isinstance(error, dict):
        text = error.get("message")
        message = text if isinstance(text, str) and text else json.dumps(error, default=str)
        code = error.get("code")
    if isinstance(code, str):
        code = redact(code, secret)
    return StreamErrorEvent(redact(message, secret), code=code, partial=partial)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _content_text(value: object) -> str:
    # Some servers send content as a list of parts, OpenAI's input form; only text parts count.
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return ""
    return "".join(
        part["text"]
        for part in value
        if isinstance(part, dict)
        and part.get("type", "text") == "text"
        and isinstance(part.get("text"), str)
    )


def _first_choice(choices: object) -> Mapping[str, Any] | None:
    # Only choice 0 makes the reply; a server may send others when asked for n > 1.
    if not isinstance(choices, list):
        return None
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


_REPEAT_TRIES = 16


def _without_repeated_start(arguments: str) -> str:
    """The arguments, or, when they are not JSON because a server sent the start of the object
    and then the whole object again (sglang#23071), the whole object."""
    if _is_json(arguments):
        return arguments
    # The start repeats, so the whole begins in the second half; a few tries are enough.
    at = arguments.find("{", 1)
    for _ in range(_REPEAT_TRIES):
        if at < 0 or at > len(arguments) // 2:
            break
        whole = arguments[at:]
        if whole.startswith(arguments[:at]) and _is_json(whole):
            return whole
        at = arguments.find("{", at + 1)
    return arguments


def decoded_arguments(text: str) -> dict[str, Any] | None:
    """A call's arguments as the object they spell: JSON, or a Python literal (some servers send
    a repr: mlx-openai-server#124); {} for none at all; None when they spell no object."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = _python_literal(text)
    return value if isinstance(value, dict) else None


def sendable_arguments(text: str) -> str:
    """Arguments as history can carry them back. Servers parse the calls they are sent and
    answer 400 to arguments that are not a JSON object (vllm#43995: the conversation is stuck
    from then on), so those go back as the object they spell, or as `{}`; the call's result
    already told the model what was wrong."""
    value = decoded_arguments(text)
    if value is None:
        return "{}"
    if _is_json(text):
        return text
    return json.dumps(value, ensure_ascii=False)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _python_literal(text: str) -> object:
    import ast

    try:
        return ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def tool_schemas(tools: object) -> dict[str, Mapping[str, Any]]:
    """The `tools` of a request body, as what `parse_native` takes; {} for none."""
    schemas: dict[str, Mapping[str, Any]] = {}
    for item in _tool_call_list(tools):
        function = item.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            parameters = function.get("parameters")
            schemas[function["name"]] = parameters if isinstance(parameters, dict) else {}
    return schemas


def _arguments(value: object) -> str:
    # Older TGI sends the arguments as a JSON object rather than a JSON string.
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _tool_call_list(value: object) -> list[dict[str, Any]]:
    # Older TGI sends `tool_calls` as one object rather than a list.
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


@dataclass
class _PendingCall:
    index: int
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    sent_id: str = ""  # the id the call goes by: the server's, unless missing or taken


class _ToolCalls:
    """Tool-call fragments joined into calls; the first non-empty id and name of each win.

    A fragment joins the latest call at its index, unless it brings both a function name and an id
    other than that call's: then it starts a new call. A fragment at an index not seen before
    that has neither a name nor an id cannot start a call: it continues the latest call.
    """

    def __init__(self) -> None:
        self._calls: list[_PendingCall] = []
        self._latest: dict[int, _PendingCall] = {}

    def _name_calls(self, calls: list[_PendingCall]) -> None:
        """Give each call, once, the id it goes by: the server's, or a fresh one when it sent
        none or one an earlier call has (the results are matched to calls by id)."""
        taken = {call.sent_id for call in calls if call.sent_id}
        for call in calls:
            if call.sent_id:
                continue
            call.sent_id = call.id if call.id and call.id not in taken else new_call_id()
            taken.add(call.sent_id)

    def feed(self, raw: object) -> list[ToolCallDelta]:
        deltas = []
        for position, item in enumerate(_tool_call_list(raw)):
            index = _int(item.get("index"))
            index = position if index is None else index
            call_id = item.get("id")
            call_id = str(call_id) if isinstance(call_id, (str, int)) else ""
            function = item.get("function")
            function = function if isinstance(function, dict) else {}
            name = _text(function.get("name")) or ""
            arguments = _arguments(function.get("arguments"))

            call = self._latest.get(index)
            if call is None and not (name or call_id) and self._calls:
                # SGLang's MiniMax-M2 parser can split one call in two, the second part with
                # no name or id at the next index (sglang#23071).
                call = self._latest[index] = self._calls[-1]
            # A new call needs a new id and its name: some servers send a fresh id on every
            # fragment of one call (poolsideai/pool#9), others run parallel calls at one index.
            if call is None or (name and call_id and call.id and call_id != call.id):
                call = self._latest[index] = _PendingCall(index)
                self._calls.append(call)
            call.id = call.id or call_id
            call.name = call.name or name
            call.arguments.append(arguments)
            deltas.append(ToolCallDelta(index, call_id, name, arguments))
        return deltas

    def result(self) -> tuple[ToolCall, ...]:
        # A call that never got a name or arguments (an item without `function`) says nothing.
        calls = [call for call in self._calls if call.name or any(call.arguments)]
        self._name_calls(calls)
        return tuple(
            ToolCall(
                id=call.sent_id,
                name=call.name,
                arguments=_without_repeated_start("".join(call.arguments)),
                index=call.index,
            )
            for call in sorted(calls, key=lambda call: call.index)
        )


class ChunkAccumulator:
    """Feeds streamed `chat.completion.chunk` objects in; events and finally one `Reply` come out.

    `started` turns True with the first thinking, answer or tool-call delta: from then on a failed
    stream must not be retried silently. `secret` (the API token) is redacted from the message of
    every `StreamErrorEvent` built here.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        model: str | None = None,
        provider: str | None = None,
        request_id: str | None = None,
        secret: str | None = None,
        tools: ToolSchemas | None = None,
    ) -> None:
        self._profile = profile
        self._splitter = StreamSplitter(profile)
        self._tools = _ToolCalls()
        # Only when tools were offered: a call to anything else stays text.
        self._native = NativeToolStream(tools) if tools else None
        self._native_thinking = NativeToolStream(tools) if tools else None
        self._offered = tools
        self._thinking_fed = False  # reasoning went into _native_thinking since it last ended
        self._native_calls: list[ToolCall] = []
        # A standard call's server index to the index it goes by (moved when a native call
        # had taken it), once native calls have come.
        self._index_map: dict[int, int] = {}
        self._raw: list[str] = []
        self._model = model
        self._provider = provider
        self._request_id = request_id
        self._secret = secret
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.started = False

    def feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        """Events for one chunk. An `error` object in the chunk raises `StreamErrorEvent`."""
        if chunk.get("error"):
            raise self.error_event(chunk["error"])

        events: list[StreamEvent] = []
        self._model = self._model or _text(chunk.get("model"))
        choice = _first_choice(chunk.get("choices"))
        if choice is not None:
            self._feed_choice(choice, events)

        usage = usage_from(chunk)
        if usage is not None:
            self.usage = usage
            events.append(UsageUpdate(usage))
        return events

    def _feed_choice(self, choice: Mapping[str, Any], events: list[StreamEvent]) -> None:
        delta = choice.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        reasoning = reasoning_text(delta)
        if reasoning and self._native_thinking is not None:
            self._thinking_fed = True
            step = self._native_thinking.feed(reasoning)
            reasoning = step.text
            self._take_native(step.calls, events)
        if reasoning:
            self._emit(self._splitter.feed_reasoning(reasoning), events)

        content = delta.get("content")
        content = content if isinstance(content, str) else _content_text(content)
        if content and self._thinking_fed:
            # The answer has begun, so the thinking is over: what its scanner held back (in case
            # it began a block) is settled now, before the answer, as a whole reply would be.
            self._end_native_thinking(events)
        if content and self._native is not None:
            self._raw.append(content)
            step = self._native.feed(content)
            content = step.text
            self._take_native(step.calls, events)
        if content:
            self._emit(self._splitter.feed_content(content), events)

        if delta.get("tool_calls"):
            tool_deltas = self._tools.feed(self._structured(delta["tool_calls"]))
            events.extend(tool_deltas)
            self.started = self.started or bool(tool_deltas)

        self.finish_reason = _text(choice.get("finish_reason")) or self.finish_reason

    def _structured(self, raw: object) -> object:
        """Standard tool-call fragments, each server index kept unless a native call took it
        first: then it moves past every call so far, so that two calls never share an index."""
        if not self._native_calls and not self._index_map:
            return raw
        renumbered = []
        for position, item in enumerate(_tool_call_list(raw)):
            index = _int(item.get("index"))
            given = position if index is None else index
            if given not in self._index_map:
                native = {call.index for call in self._native_calls}
                ours = given if given not in native else self._next_free()
                self._index_map[given] = ours
            renumbered.append(item | {"index": self._index_map[given]})
        return renumbered

    def _next_free(self) -> int:
        used = [*self._native_calls, *self._tools.result()]
        return max([call.index for call in used] + list(self._index_map.values()), default=-1) + 1

    def _end_native_thinking(self, events: list[StreamEvent]) -> None:
        """Settle what the reasoning's block scanner held back: calls, or thinking after all."""
        assert self._native_thinking is not None
        assert self._offered
        step = self._native_thinking.finish()
        self._native_thinking = NativeToolStream(self._offered)
        self._thinking_fed = False
        self._take_native(step.calls, events)
        if step.text:
            self._emit(self._splitter.feed_reasoning(step.text), events)

    def _take_native(self, calls: tuple[ToolCall, ...], events: list[StreamEvent]) -> None:
        """Number native calls after every call so far, and pass each on as one whole delta."""
        for call in calls:
            index = _next_index(self._tools.result() + tuple(self._native_calls))
            call = dataclasses.replace(call, index=index)
            self._native_calls.append(call)
            events.append(ToolCallDelta(index, call.id, call.name, call.arguments))
            self.started = True

    def _emit(self, deltas: tuple[str, str], events: list[StreamEvent]) -> None:
        thinking, answer = deltas
        if thinking:
            events.append(ThinkingDelta(thinking))
        if answer:
            events.append(AnswerDelta(answer))
        self.started = self.started or bool(thinking or answer)

    def error_event(self, error: object) -> StreamErrorEvent:
        """The exception for an error the server sent inside the stream; see `stream_error`."""
        return stream_error(error, partial=self.partial(), secret=self._secret)

    def finish(self, *, done: bool) -> tuple[list[StreamEvent], Reply]:
        """The last deltas and the complete reply, once the stream has ended.

        `done` says whether `data: [DONE]` arrived.

        A stream that ended with neither `[DONE]` nor a finish reason was cut off: that raises
        `StreamInterrupted`, carrying the partial reply.
        """
        if self.finish_reason is None and not done:
            raise StreamInterrupted(
                "the connection closed before the reply was complete", partial=self.partial()
            )
        events: list[StreamEvent] = []
        if self._thinking_fed:
            self._end_native_thinking(events)
        if self._native is not None:
            step = self._native.finish()
            self._take_native(step.calls, events)
            if step.text:
                self._emit(self._splitter.feed_content(step.text), events)
        thinking, answer, split = self._splitter.finish(self.finish_reason or "stop")
        self._emit((thinking, answer), events)
        return events, self._reply(split)

    def partial(self) -> Reply:
        """What has arrived so far, as a reply (never a complete answer)."""
        return self._reply(self._splitter.split(None))

    def _reply(self, split: Split) -> Reply:
        content = self._splitter.content
        return _build_reply(
            split,
            self._profile,
            content=content,
            raw="".join(self._raw) if self._native is not None else content,
            tool_calls=self._tools.result() + tuple(self._native_calls),
            model=self._model,
            provider=self._provider,
            finish_reason=self.finish_reason,
            usage=self.usage,
            request_id=self._request_id,
        )


def reply_from_completion(
    data: Mapping[str, Any],
    profile: Profile,
    *,
    provider: str | None = None,
    request_id: str | None = None,
    secret: str | None = None,
    tools: ToolSchemas | None = None,
) -> Reply:
    """The reply in a whole (non-streamed) `chat.completion` object.

    An `error` object raises `StreamErrorEvent`, with `secret` (the API token) redacted.
    `tools`: the request's tool schemas, for native tool-call blocks in the content.
    """
    if data.get("error"):
        raise stream_error(data["error"], partial=None, secret=secret)

    choice = _first_choice(data.get("choices")) or {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    content = _content_text(message.get("content"))
    reasoning = reasoning_text(message) or ""
    finish_reason = _text(choice.get("finish_reason"))

    calls = _ToolCalls()
    calls.feed(message.get("tool_calls"))
    found = calls.result()
    raw = content
    if tools:
        in_thinking = parse_native(reasoning, tools)
        in_content = parse_native(content, tools)
        reasoning, content = in_thinking.content, in_content.content
        start = _next_index(found)
        native = in_thinking.calls + in_content.calls
        found += tuple(
            dataclasses.replace(call, index=start + at) for at, call in enumerate(native)
        )
    split = split_reply(content, reasoning, profile, finish_reason or "stop")
    return _build_reply(
        split,
        profile,
        content=content,
        raw=raw,
        tool_calls=found,
        model=_text(data.get("model")),
        provider=provider,
        finish_reason=finish_reason,
        usage=usage_from(data),
        request_id=request_id,
    )


def _next_index(calls: tuple[ToolCall, ...]) -> int:
    """The index after every call's: servers may number from 1 (TGI), so not their count."""
    return max((call.index for call in calls), default=-1) + 1


def _build_reply(
    split: Split,
    profile: Profile,
    *,
    content: str,
    raw: str,
    tool_calls: tuple[ToolCall, ...],
    model: str | None,
    provider: str | None,
    finish_reason: str | None,
    usage: Usage | None,
    request_id: str | None,
) -> Reply:
    return Reply(
        text=split.answer,
        thinking=split.thinking,
        raw=raw,
        message=_assistant_message(split, profile, content, tool_calls),
        model=model,
        provider=provider,
        finish_reason=finish_reason,
        usage=usage,
        tool_calls=tool_calls,
        request_id=request_id,
        thinking_source=split.source,
        cut_while_thinking=split.cut_while_thinking,
    )


def _assistant_message(
    split: Split,
    profile: Profile,
    content: str,
    tool_calls: tuple[ToolCall, ...],
) -> Message:
    message: Message = {"role": "assistant", "content": history_content(split, content, profile)}

    if tool_calls:
        message["tool_calls"] = [
            dataclasses.replace(call, arguments=sendable_arguments(call.arguments)).to_message()
            for call in tool_calls
        ]
        if not message["content"]:
            message["content"] = None
    return message
