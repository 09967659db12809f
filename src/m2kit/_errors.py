"""Every error m2kit raises.

```
M2Error
├── ConfigError                  bad input on our side: a model id, a base URL, a parameter
├── ConnectionFailed             could not reach the server, or it stopped answering
├── APIError                     the server answered with an error status
│   ├── BadRequestError          400, 422: the server's message says what is wrong
│   ├── AuthenticationError      401: missing or invalid token
│   ├── CreditsExhaustedError    402: the monthly included credits are used up
│   ├── PermissionDeniedError    403: the token may not call Inference Providers
│   ├── ModelNotFoundError       404: no such model, or no provider serves it
│   ├── RequestTimeoutError      408
│   ├── RateLimitError           429
│   └── ServerError              5xx
│       └── ModelLoadingError    503 while the model loads (`estimated_time`)
├── StreamError                  a stream that started, then failed
│   ├── StreamInterrupted        the connection dropped before the reply was complete
│   └── StreamErrorEvent         the server sent an error object inside the stream
└── StructuredOutputError        parse(): no answer matched the schema, repairs included
```

`APIError` carries `status`, the server's `message` and the `request_id`; `StreamError` carries the
`partial` reply received before the failure, which is never a complete answer. `hint` on every
error is one line naming the fix. No message ever contains the API token.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._types import Reply

TOKENS_PAGE = "https://huggingface.co/settings/tokens"
BILLING_PAGE = "https://huggingface.co/settings/billing"

# Header names under which the router and the providers behind it return a request id.
_REQUEST_ID_HEADERS = ("x-request-id", "x-amzn-trace-id", "request-id", "x-trace-id", "cf-ray")

_MAX_MESSAGE = 300
_HTML = re.compile(r"\s*<(!doctype|html|head|body)\b", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>\s*(.*?)\s*</title>", re.IGNORECASE | re.DOTALL)

# Anything shaped like a Hugging Face or OpenAI-style secret, in case a server echoes one back.
_SECRET = re.compile(r"\b(hf_|sk-|gsk_|xai-)[A-Za-z0-9_\-]{6,}")


def redact(text: str, secret: str | None = None) -> str:
    """Hide tokens in `text`: the given secret, and anything shaped like one."""
    if secret:
        text = text.replace(secret, "[token]")
    return _SECRET.sub("[token]", text)


class M2Error(Exception):
    """Base of all m2kit errors. `hint` is one line saying how to fix it, or empty."""

    hint: str = ""
    #: Set when retries were tried and given up on: why, and after how many attempts.
    retry_summary: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        if hint:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(M2Error):
    """The request could not be built: a bad model id, base URL or parameter."""


class ConnectionFailed(M2Error):
    """The server could not be reached, or stopped answering before it replied.

    `retryable` is False when trying again cannot help, such as a host name that does not resolve;
    `reason` is a short phrase for wait notices ("could not connect", "the server hung up").
    """

    hint = "Check the network, the base URL (--base-url / M2_BASE_URL) and any proxy settings."

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        reason: str = "could not connect",
        hint: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.retryable = retryable
        self.reason = reason


class APIError(M2Error):
    """The server answered with an error status."""

    default_hint: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        request_id: str | None = None,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        hint: str = "",
    ) -> None:
        super().__init__(message, hint=hint or self.default_hint)
        self.status = status
        self.request_id = request_id
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


class BadRequestError(APIError):
    """400 or 422: the server refused the request; its message says why."""

    default_hint = "Check the request parameters against the server's message."


class AuthenticationError(APIError):
    """401: the token is missing or invalid."""

    default_hint = (
        f"Set HF_TOKEN or run `hf auth login`; create a token at {TOKENS_PAGE}"
        ' with the "Make calls to Inference Providers" permission.'
    )


class CreditsExhaustedError(APIError):
    """402: the monthly included credits are used up."""

    default_hint = (
        "Your monthly included Inference Providers credits are used up: add pre-paid credits"
        f" or upgrade to PRO at {BILLING_PAGE}."
    )


class PermissionDeniedError(APIError):
    """403: the token lacks the permission to call Inference Providers."""

    default_hint = (
        'Give the token the "Make calls to Inference Providers" permission, or create a'
        f" fine-grained token with it, at {TOKENS_PAGE}."
    )


class ModelNotFoundError(APIError):
    """404: the model does not exist, or no enabled provider serves it."""

    default_hint = (
        "Check the model id (-m / M2_MODEL); `:provider` suffixes must name a provider serving it."
    )


class RequestTimeoutError(APIError):
    """408: the server timed out waiting for the request."""


class RateLimitError(APIError):
    """429: too many requests; retried with a wait."""

    default_hint = "Wait a little and try again, or raise the retry budget (--retry-budget)."


class ServerError(APIError):
    """5xx: the server or the provider behind it failed; retried with a wait."""

    default_hint = "The provider is having trouble: try again later or pin another with :provider."


class ModelLoadingError(ServerError):
    """503 while the model is loading. `estimated_time` is the server's estimate in seconds."""

    default_hint = "The model is still loading: try again shortly, or raise --retry-budget."

    def __init__(self, message: str, *, estimated_time: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.estimated_time = estimated_time


class StreamError(M2Error):
    """A stream that began and then failed. `partial` is what arrived before the failure."""

    def __init__(self, message: str, *, partial: Reply | None = None, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.partial = partial


class StreamInterrupted(StreamError):
    """The connection dropped before the reply was complete (no finish reason, no [DONE])."""

    hint = "Try again: what arrived is not a full answer."


class StreamErrorEvent(StreamError):
    """The server sent an error inside the stream (`data: {"error": …}` or `event: error`)."""

    hint = "The provider failed mid-reply: try again, or pin another provider with :provider."

    def __init__(self, message: str, *, code: object = None, partial: Reply | None = None) -> None:
        super().__init__(message, partial=partial)
        self.code = code


class StructuredOutputError(M2Error):
    """`parse()` found no answer valid for the schema, after its repair rounds.

    `reply` is the last reply; `raw` is its content as received and `text` its answer; `errors` says
    in one line what was wrong with that answer (invalid JSON, or pydantic's errors).
    """

    hint = (
        "Raise repairs=, try another mode=, or use a model and provider that support structured"
        " output (`m2 models` shows which)."
    )

    def __init__(self, message: str, *, reply: Reply, errors: str, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.reply = reply
        self.errors = errors

    @property
    def raw(self) -> str:
        return self.reply.raw

    @property
    def text(self) -> str:
        return self.reply.text


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: CreditsExhaustedError,
    403: PermissionDeniedError,
    404: ModelNotFoundError,
    408: RequestTimeoutError,
    422: BadRequestError,
    429: RateLimitError,
}


def error_message(body: str) -> str:
    """The server's message from an error body of any known shape.

    Shapes seen: `{"error": "text"}`, `{"error": {"message": …}}`, `{"message": …}`,
    `{"detail": …}`, and plain text.
    """
    try:
        data = json.loads(body)
    except ValueError:
        return _one_line(body)
    return _one_line(_message_from(data) or body)


def _one_line(text: str) -> str:
    # Proxies and load balancers answer with whole HTML pages; a person needs one line.
    if _HTML.match(text):
        title = _TITLE.search(text)
        text = f"an HTML error page ({title.group(1)})" if title else "an HTML error page"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _message_from(data: object) -> str:
    if isinstance(data, str):
        return data.strip()
    if isinstance(data, list) and data:
        return _message_from(data[0])
    if not isinstance(data, dict):
        return ""
    for key in ("error", "message", "detail", "msg", "error_message"):
        if key in data and (found := _message_from(data[key])):
            return found
    return ""


def _estimated_time(body: str) -> float | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("estimated_time") if isinstance(data, dict) else None
    return float(value) if isinstance(value, (int, float)) and value >= 0 else None


def request_id_from(headers: Mapping[str, str]) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        if value := headers.get(name):
            return value
    return None


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: str,
    *,
    secret: str | None = None,
) -> APIError:
    """The error for a response with an error status; the token is redacted from every part."""
    body = redact(body, secret)
    message = error_message(body) or f"HTTP {status} with an empty body"
    kw: dict[str, Any] = {
        "status": status,
        "request_id": request_id_from(headers),
        "body": body,
        "headers": headers,
    }
    if status == 503 and (estimate := _estimated_time(body)) is not None:
        return ModelLoadingError(message, estimated_time=estimate, **kw)
    if status == 503 and "loading" in message.lower():
        return ModelLoadingError(message, **kw)
    if status in _BY_STATUS:
        return _BY_STATUS[status](message, **kw)
    if status >= 500:
        return ServerError(message, **kw)
    return APIError(message, **kw)
