"""Building the chat-completions request: messages, parameters and their defaults. No I/O."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from ._errors import ConfigError
from ._types import Message, Notice, ParameterDropped

DEFAULT_MODEL = "MiniMaxAI/MiniMax-M2"
DEFAULT_BASE_URL = "https://router.huggingface.co/v1"
DEFAULT_TIMEOUT = 120.0
DEFAULT_CONNECT_TIMEOUT = 15.0
# MiniMax-M2's recommended sampling (model card); applied unless the caller says otherwise.
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 0.95

_BODY_PARAMS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "tools",
    "tool_choice",
    "response_format",
)


class ChatParams(TypedDict, total=False):
    """Parameters of one chat call. A parameter set to None is not sent at all.

    - `model`: overrides the client's model for this call.
    - `temperature` (default 1.0) and `top_p` (default 0.95): MiniMax-M2's recommended sampling.
    - `top_k`: sent only to self-hosted servers; the Hugging Face router rejects it, so there it
      is dropped and a `ParameterDropped` notice says so.
    - `stop`: a string or a list of strings.
    - `tools`: OpenAI tool schemas, `@tool` functions, or plain typed functions (made tools);
      `Conversation.run` runs the latter two.
    - `extra_body`: merged into the JSON body last; `extra_headers`: added to the HTTP headers.
    """

    model: str | None
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    top_k: int | None
    stop: str | Sequence[str] | None
    seed: int | None
    tools: Sequence[Mapping[str, Any] | Callable[..., Any]] | None
    tool_choice: str | Mapping[str, Any] | None
    response_format: Mapping[str, Any] | None
    extra_body: Mapping[str, Any] | None
    extra_headers: Mapping[str, str] | None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One request, ready to send: the URL, headers and JSON body (`content`: as sent)."""

    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    notices: tuple[Notice, ...]
    content: bytes = b""


def offered_tools(tools: Sequence[Mapping[str, Any] | Callable[..., Any]]) -> list[Any]:
    """A request's `tools`: schemas as given, tools and functions as their schemas."""
    if all(isinstance(item, Mapping) for item in tools):
        return list(tools)

    from ._tools import as_tool  # builds schemas with pydantic: only when asked to

    return [item if isinstance(item, Mapping) else as_tool(item).to_openai() for item in tools]


def normalize_messages(messages: str | Sequence[Mapping[str, Any]]) -> list[Message]:
    """A prompt string becomes one user message; a list is checked and copied."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]

    result = []
    for position, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ConfigError(
                f"message {position} is not a chat message: expected a dict with a 'role',"
                f" got {type(message).__name__}"
            )
        result.append(dict(message))
    if not result:
        raise ConfigError("no messages to send: give a prompt or at least one message")
    return result


def build_request(
    *,
    base_url: str,
    model: str,
    messages: str | Sequence[Mapping[str, Any]],
    params: ChatParams,
    stream: bool,
    token: str | None,
    is_router: bool,
    user_agent: str,
) -> ChatRequest:
    """The request for one chat call. `is_router` drops what the Hugging Face router refuses."""
    unknown = set(params) - set(ChatParams.__annotations__)
    if unknown:
        raise ConfigError(f"unknown parameter(s): {', '.join(sorted(unknown))}")

    values: dict[str, Any] = {"temperature": DEFAULT_TEMPERATURE, "top_p": DEFAULT_TOP_P}
    values.update(params)
    notices: list[Notice] = []
    if is_router and values.get("top_k") is not None:
        values["top_k"] = None
        notices.append(ParameterDropped("top_k", "the Hugging Face router does not accept it"))

    body: dict[str, Any] = {"model": model, "messages": normalize_messages(messages)}
    for name in _BODY_PARAMS:
        if values.get(name) is not None:
            body[name] = offered_tools(values[name]) if name == "tools" else values[name]
    if isinstance(body.get("stop"), Sequence) and not isinstance(body["stop"], str):
        body["stop"] = list(body["stop"])
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(values.get("extra_body") or {})

    headers = {"user-agent": user_agent, "content-type": "application/json"}
    headers["accept"] = "text/event-stream" if stream else "application/json"
    if token:
        headers["authorization"] = f"Bearer {token}"
    # Header names ignore case: a caller's `User-Agent` replaces ours instead of going beside it.
    for name, value in (values.get("extra_headers") or {}).items():
        headers[name.lower()] = value

    url = base_url.rstrip("/") + "/chat/completions"
    return ChatRequest(url, headers, body, tuple(notices), encoded(body))


def encoded(body: Mapping[str, Any]) -> bytes:
    """The JSON body as UTF-8. A lone surrogate (half an emoji some server sent, now in the
    history) cannot be UTF-8: it goes as its JSON escape, `\\ud83d`, which is what was received;
    raising instead would make every later turn of the conversation fail."""
    try:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise ConfigError(f"the request cannot be sent as JSON: {exc}") from None
    return text.encode("utf-8", errors="backslashreplace")
