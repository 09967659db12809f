"""Turning chat-completion chunks, or a whole completion, into events and one `Reply`. No I/O."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ._errors import StreamErrorEvent, StreamInterrupted
from ._thinking import Split, StreamSplitter, history_content, split_reply
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
    if isinstance(details, list):
        texts = [
            d["text"] for d in details if isinstance(d, dict) and isinstance(d.get("text"), str)
        ]
        return "".join(texts) or None
    return None


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


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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


def _assistant_message(content: str, tool_calls: tuple[ToolCall, ...]) -> Message:
    message: Message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [call.to_message() for call in tool_calls]
        if not content:
            message["content"] = None
    return message


class _ToolCalls:
    """Tool-call fragments joined per index; the first non-empty id and name win."""

    def __init__(self) -> None:
        self._calls: dict[int, list[Any]] = {}

    def feed(self, raw: object) -> list[ToolCallDelta]:
        deltas = []
        for position, item in enumerate(_tool_call_list(raw)):
            index = item.get("index")
            index = index if isinstance(index, int) else position
            function = item.get("function") or {}
            call_id = item.get("id")
            call_id = str(call_id) if call_id not in (None, "") else ""
            name = function.get("name") or ""
            arguments = _arguments(function.get("arguments"))

            entry = self._calls.setdefault(index, ["", "", []])
            entry[0] = entry[0] or call_id
            entry[1] = entry[1] or name
            entry[2].append(arguments)
            deltas.append(ToolCallDelta(index, call_id, name, arguments))
        return deltas

    def result(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(
                id=call_id or f"call_{index}", name=name, arguments="".join(parts), index=index
            )
            for index, (call_id, name, parts) in sorted(self._calls.items())
        )


class ChunkAccumulator:
    """Feeds streamed `chat.completion.chunk` objects in; events and finally one `Reply` come out.

    `started` turns True with the first thinking, answer or tool-call delta: from then on a failed
    stream must not be retried silently.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        model: str | None = None,
        provider: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self._profile = profile
        self._splitter = StreamSplitter(profile)
        self._tools = _ToolCalls()
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._model = model
        self._provider = provider
        self._request_id = request_id
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.started = False

    def feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        """Events for one chunk. An `error` object in the chunk raises `StreamErrorEvent`."""
        if chunk.get("error"):
            raise self.error_event(chunk["error"])

        events: list[StreamEvent] = []
        self._model = self._model or chunk.get("model") or None
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._feed_choice(choice, events)

        usage = usage_from(chunk)
        if usage is not None:
            self.usage = usage
            events.append(UsageUpdate(usage))
        return events

    def _feed_choice(self, choice: Mapping[str, Any], events: list[StreamEvent]) -> None:
        delta = choice.get("delta") or {}
        reasoning = reasoning_text(delta)
        if reasoning:
            self._reasoning.append(reasoning)
            self._emit(self._splitter.feed_reasoning(reasoning), events)

        content = delta.get("content")
        if isinstance(content, str) and content:
            self._content.append(content)
            self._emit(self._splitter.feed_content(content), events)

        if delta.get("tool_calls"):
            tool_deltas = self._tools.feed(delta["tool_calls"])
            events.extend(tool_deltas)
            self.started = self.started or bool(tool_deltas)

        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])

    def _emit(self, deltas: tuple[str, str], events: list[StreamEvent]) -> None:
        thinking, answer = deltas
        if thinking:
            events.append(ThinkingDelta(thinking))
        if answer:
            events.append(AnswerDelta(answer))
        self.started = self.started or bool(thinking or answer)

    def error_event(self, error: object) -> StreamErrorEvent:
        """The exception for an error the server sent inside the stream."""
        message, code = str(error), None
        if isinstance(error, dict):
            message = str(error.get("message") or error)
            code = error.get("code")
        elif isinstance(error, str):
            try:
                return self.error_event(json.loads(error)["error"])
            except (ValueError, KeyError, TypeError):
                pass
        return StreamErrorEvent(message, code=code, partial=self.partial())

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
        thinking, answer, split = self._splitter.finish(self.finish_reason or "stop")
        events: list[StreamEvent] = []
        self._emit((thinking, answer), events)
        return events, self._reply(split)

    def partial(self) -> Reply:
        """What has arrived so far, as a reply (never a complete answer)."""
        content = "".join(self._content)
        reasoning = "".join(self._reasoning) or None
        return self._reply(split_reply(content, reasoning, self._profile, None))

    def _reply(self, split: Split) -> Reply:
        raw = "".join(self._content)
        return build_reply(
            split,
            raw,
            self._profile,
            tool_calls=self._tools.result(),
            model=self._model,
            provider=self._provider,
            finish_reason=self.finish_reason,
            usage=self.usage,
            request_id=self._request_id,
        )


def build_reply(
    split: Split,
    raw: str,
    profile: Profile,
    *,
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
        message=_assistant_message(history_content(split, raw, profile), tool_calls),
        model=model,
        provider=provider,
        finish_reason=finish_reason,
        usage=usage,
        tool_calls=tool_calls,
        request_id=request_id,
        thinking_source=split.source,
        cut_while_thinking=split.cut_while_thinking,
    )


def reply_from_completion(
    data: Mapping[str, Any],
    profile: Profile,
    *,
    provider: str | None = None,
    request_id: str | None = None,
) -> Reply:
    """The reply in a whole (non-streamed) `chat.completion` object."""
    if data.get("error"):
        raise ChunkAccumulator(profile).error_event(data["error"])

    choices = data.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content = message.get("content")
    content = content if isinstance(content, str) else ""
    finish_reason = choice.get("finish_reason")
    finish_reason = str(finish_reason) if finish_reason else None

    tools = _ToolCalls()
    tools.feed(message.get("tool_calls"))
    split = split_reply(content, reasoning_text(message), profile, finish_reason)
    return build_reply(
        split,
        content,
        profile,
        tool_calls=tools.result(),
        model=data.get("model") or None,
        provider=provider,
        finish_reason=finish_reason,
        usage=usage_from(data),
        request_id=request_id,
    )
