"""The values the client hands back: replies, usage, tool calls, stream events and notices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts for one reply, as the server reported them.

    `reasoning_tokens` comes from `completion_tokens_details` when the server sends it; it is part
    of `completion_tokens`, not added to it.
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One complete tool call. `arguments` is the JSON text exactly as the model wrote it."""

    id: str
    name: str
    arguments: str
    index: int = 0

    def to_message(self) -> Message:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete assistant reply.

    - `text`: the answer, without thinking. Empty when the output was cut while thinking.
    - `thinking`: the model's reasoning, or None when it sent none.
    - `raw`: the `content` exactly as received, tags included.
    - `message`: the assistant message to append to history; it never loses the thinking. Inline
      thinking stays exactly as received; thinking from a separate field is rebuilt inline for
      models whose template reads it there (MiniMax-M2 and other tag families), and otherwise
      goes back in the field it came in.
    - `thinking_source`: "inline" when the thinking came inside `content`, "field" when it came in a
      separate field (`reasoning_content`, `reasoning`, `reasoning_details`), None without thinking.
    - `cut_while_thinking`: True when the output hit its token limit before the thinking ended;
      raise `max_tokens` to get an answer.
    - `provider`: the provider that served the reply (router header `x-inference-provider`).
    - `attempts`: how many requests it took, retries included.
    """

    text: str
    thinking: str | None
    raw: str
    message: Message
    model: str | None = None
    provider: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    request_id: str | None = None
    thinking_source: Literal["inline", "field"] | None = None
    cut_while_thinking: bool = False
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    """A piece of the model's thinking, streamed."""

    text: str


@dataclass(frozen=True, slots=True)
class AnswerDelta:
    """A piece of the answer, streamed.

    When a model whose output starts inside its thinking never closes it and stops normally, what
    was streamed as thinking was the answer after all: one last `AnswerDelta` then carries it whole.
    """

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call: `index` says which call; `id` and `name` may be empty on
    follow-up fragments."""

    index: int
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class UsageUpdate:
    """Token counts so far (servers send them once at the end, or as a running total)."""

    usage: Usage


@dataclass(frozen=True, slots=True)
class Done:
    """The last event of a stream: the complete reply."""

    reply: Reply


StreamEvent = ThinkingDelta | AnswerDelta | ToolCallDelta | UsageUpdate | Done


@dataclass(frozen=True, slots=True)
class Wait:
    """The client is waiting before trying again.

    `reason` is a short human phrase ("rate limited (429)", "model is loading"); `seconds` the wait;
    `attempt` the number of the attempt that failed (1-based); `source` says where the length came
    from: "server" (Retry-After, retry-after-ms, estimated_time) or "backoff" (our own schedule).
    """

    reason: str
    seconds: float
    attempt: int
    source: Literal["server", "backoff"]


@dataclass(frozen=True, slots=True)
class ParameterDropped:
    """A parameter was not sent, because the server would reject it."""

    name: str
    reason: str


Notice = Wait | ParameterDropped
