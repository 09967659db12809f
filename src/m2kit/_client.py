"""`Client` and `AsyncClient`: one request path, with the I/O kept to thin sync and async shells.

Everything that is not I/O lives in `_Call` (one logical chat call) and the modules below it; the
two clients only send, read and sleep.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import httpx2

from ._accumulate import ChunkAccumulator, reply_from_completion, tool_schemas
from ._auth import find_token, is_huggingface_url
from ._errors import (
    TOKENS_PAGE,
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConnectionFailed,
    M2Error,
    ModelNotFoundError,
    StreamErrorEvent,
    StreamInterrupted,
    error_from_response,
    redact,
    request_id_from,
)
from ._profiles import Profile, profile_for, profile_named
from ._request import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
    ChatParams,
    ChatRequest,
    build_request,
)
from ._retry import RetryPolicy, RetrySchedule, is_retryable
from ._routing import parse_model
from ._stream import AsyncChatStream, ChatStream
from ._structured import StructuredCall
from ._types import Done, Notice, ParameterDropped, Reply, StreamEvent, Wait
from ._version import __version__

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._conversation import AsyncConversation, Conversation, Recorder
    from ._structured import Mode

logger = logging.getLogger("m2kit")


Messages = str | Sequence[Mapping[str, Any]]
NoticeHook = Callable[[Notice], None]
T = TypeVar("T")


def _log_notice(notice: Notice) -> None:
    if isinstance(notice, Wait):
        logger.info("waiting %.1f s: %s", notice.seconds, notice.reason)
    elif isinstance(notice, ParameterDropped):
        logger.warning("not sending %s: %s", notice.name, notice.reason)


class _Call:
    """One logical chat call: the request, and reading whatever the server answers. No I/O."""

    def __init__(self, client: _BaseClient, request: ChatRequest, profile: Profile) -> None:
        self.request = request
        self.profile = profile
        self._client = client
        self.attempt_started = time.monotonic()
        self.tools = tool_schemas(request.body.get("tools"))
        self.accumulator = ChunkAccumulator(self.profile, secret=client._token, tools=self.tools)
        self.done = False
        self.attempts = 0
        self.provider: str | None = None
        self.request_id: str | None = None
        self._answered = False

    def start_attempt(self) -> None:
        self.attempts += 1
        self.attempt_started = time.monotonic()
        self.provider = self.request_id = None
        self._answered = False
        self.accumulator = ChunkAccumulator(
            self.profile, secret=self._client._token, tools=self.tools
        )
        self.done = False

    def begin(self, response: httpx2.Response) -> bool:
        """Take in a response's status and headers; True when its body is an event stream.

        An error status raises nothing here: the caller reads the body and calls `error`.
        """
        self.provider = response.headers.get("x-inference-provider")
        self.request_id = request_id_from(response.headers)
        self._answered = True
        self.accumulator = ChunkAccumulator(
            self.profile,
            provider=self.provider,
            request_id=self.request_id,
            secret=self._client._token,
            tools=self.tools,
        )
        self._log(response.status_code)
        content_type = response.headers.get("content-type", "")
        return content_type.split(";")[0].strip().lower() == "text/event-stream"

    def _log(self, outcome: int | str) -> None:
        logger.info(
            "POST %s %s %.2fs provider=%s",
            httpx2.URL(self.request.url).host,
            outcome,
            time.monotonic() - self.attempt_started,
            self.provider or "-",
        )

    def error(self, response: httpx2.Response, body: bytes) -> APIError:
        text = body.decode("utf-8", errors="replace")
        error = error_from_response(
            response.status_code, response.headers, text, secret=self._client._token
        )
        if isinstance(error, AuthenticationError):
            error.hint = self._client._refused_key_hint()
        elif isinstance(error, ModelNotFoundError) and not self._client.is_router:
            error.hint = (
                "Check --base-url (it usually ends in /v1) and that the server serves this model"
                " name (GET /v1/models lists them)."
            )
        elif isinstance(error, BadRequestError) and self._client.is_router:
            error.hint = _refused_feature_hint(self.request.body) or error.hint
        elif 300 <= response.status_code < 400:
            # Redirects are not followed: a POST would be replayed as a GET, or the token carried
            # to another host.
            where = response.headers.get("location") or "another address"
            error.hint = f"The server redirects to {where}: use that address as the base URL."
        return error

    def connection_lost(self, exc: httpx2.RequestError) -> None:
        """Raise for a failed connection, read or body decoding, unless the reply had finished.

        Before the answer began the failure is retryable (`ConnectionFailed`), unless the host
        name does not resolve; after, it is an interruption. Once the finish reason has arrived
        the reply is whole (cerebras never sends `[DONE]` at all): only a usage chunk that might
        have followed is lost.
        """
        if self.accumulator.finish_reason is not None:
            return
        detail = redact(str(exc) or type(exc).__name__, self._client._token)
        if not self._answered:  # a response that began was logged with its status already
            self._log(type(exc).__name__)
        if self.accumulator.started:
            raise StreamInterrupted(
                f"the connection failed mid-reply ({detail})", partial=self.accumulator.partial()
            ) from exc

        host = httpx2.URL(self.request.url).host
        if _is_name_error(exc):
            raise ConnectionFailed(
                f"the host name {host!r} does not resolve ({detail})", retryable=False
            ) from exc
        raise ConnectionFailed(
            f"could not get a reply from {host}: {detail}", reason=_failure_reason(exc)
        ) from exc

    def on_sse(self, event: str, data: str) -> list[StreamEvent] | None:
        """Events for one server-sent event; None at `[DONE]`."""
        if data == "[DONE]":
            self.done = True
            return None
        if event == "error":
            raise self._hinted(self.accumulator.error_event(data))
        if not data:
            return []
        try:
            chunk = json.loads(data)
        except ValueError:
            raise self.accumulator.error_event(f"unreadable stream data: {data[:200]}") from None
        if not isinstance(chunk, dict):
            return []
        try:
            return self.accumulator.feed(chunk)
        except StreamErrorEvent as error:
            raise self._hinted(error) from None

    def _hinted(self, error: StreamErrorEvent) -> StreamErrorEvent:
        if not self._client.is_router:
            error.hint = "The server failed mid-reply: try again, and check its log."
        return error

    def partial(self) -> Reply | None:
        """What the current attempt has received, or None before its first delta."""
        return self.accumulator.partial() if self.accumulator.started else None

    def end(self) -> list[StreamEvent]:
        events, reply = self.accumulator.finish(done=self.done)
        events.append(Done(dataclasses.replace(reply, attempts=self.attempts)))
        return events

    def whole(self, body: bytes) -> list[StreamEvent]:
        """The events of a whole (non-streamed) completion, as if it had been streamed."""
        try:
            data = json.loads(body)
        except ValueError:
            raise self.accumulator.error_event("the server's reply is not JSON") from None
        if not isinstance(data, dict):
            raise self.accumulator.error_event("the server's reply is not a JSON object")
        reply = reply_from_completion(
            data,
            self.profile,
            provider=self.provider,
            request_id=self.request_id,
            secret=self._client._token,
            tools=self.tools,
        )
        return [Done(dataclasses.replace(reply, attempts=self.attempts))]


def _failure_reason(exc: httpx2.RequestError) -> str:
    if isinstance(exc, httpx2.ConnectTimeout):
        return "could not connect in time"
    if isinstance(exc, httpx2.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx2.TimeoutException):
        return "no reply within the timeout"
    if isinstance(exc, httpx2.RemoteProtocolError):
        return "the server hung up"
    return "the connection failed"


def _is_name_error(exc: BaseException) -> bool:
    # httpx2 wraps the resolver's socket.gaierror a layer or two down, as a cause or an argument.
    seen: BaseException | None = exc
    while seen is not None:
        for candidate in (seen, *seen.args):
            if isinstance(candidate, socket.gaierror) and candidate.errno in _NAME_ERRORS:
                return True
        seen = seen.__cause__ or seen.__context__
    return False


_NAME_ERRORS = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
_TOKEN_SOURCES = {
    "api_key": "the key given with --api-key / api_key",
    "M2_API_KEY": "the key in M2_API_KEY",
    "hub": "your Hugging Face token (HF_TOKEN or `hf auth login`)",
    "HUGGINGFACE_API": "the token in HUGGINGFACE_API",
}


class _BaseClient:
    """Settings and request building shared by both clients; see `Client` for the parameters."""

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retry: RetryPolicy | None = None,
        on_notice: NoticeHook | None = None,
        headers: Mapping[str, str] | None = None,
        profile: Profile | str | None = None,
    ) -> None:
        self.model = model or os.environ.get("M2_MODEL") or DEFAULT_MODEL
        self.base_url = _checked_base_url(base_url or os.environ.get("M2_BASE_URL"))
        self.is_router = is_huggingface_url(self.base_url)
        if self.is_router:
            parse_model(self.model)
        self._token, self._token_source = find_token(self.base_url, api_key)
        self.retry = retry or RetryPolicy()
        self.on_notice: NoticeHook = on_notice or _log_notice
        self._headers = dict(headers or {})
        self._profile = profile_named(profile) if isinstance(profile, str) else profile
        self._timeout = httpx2.Timeout(timeout, connect=connect_timeout)
        self._open()

    def _open(self) -> None:
        """Create the HTTP client: sync or async, per subclass."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    def _refused_key_hint(self) -> str:
        source = _TOKEN_SOURCES.get(self._token_source)
        if not self.is_router:
            if source is None:
                return (
                    "The server wants a key: pass --api-key (api_key= in Python) or set M2_API_KEY."
                )
            return f"The server refused {source}: check it, or pass another with --api-key."
        if self._token_source in ("api_key", "M2_API_KEY"):
            return f"The router refused {source}; unset it to use your Hugging Face token."
        return (
            f"The router refused {source}: create a new token at {TOKENS_PAGE} with the"
            ' "Make calls to Inference Providers" permission, then set HF_TOKEN or run'
            " `hf auth login`."
        )

    def _call(self, messages: Messages, params: ChatParams, *, stream: bool) -> _Call:
        if self.is_router and not self._token:
            raise ConfigError("no Hugging Face token found", hint=AuthenticationError.default_hint)
        params = params.copy()
        model = params.pop("model", None) or self.model
        if self.is_router:
            model = str(parse_model(model))
        params["extra_headers"] = {**self._headers, **(params.get("extra_headers") or {})}
        request = build_request(
            base_url=self.base_url,
            model=model,
            messages=messages,
            params=params,
            stream=stream,
            token=self._token,
            is_router=self.is_router,
            user_agent=f"m2kit/{__version__}",
        )
        for notice in request.notices:
            self.on_notice(notice)
        return _Call(self, request, self._profile or profile_for(model))

    def _next_wait(self, schedule: RetrySchedule, error: M2Error) -> float:
        """The seconds to wait before the next attempt, or raise `error` when it is time to stop."""
        wait = schedule.next_wait(error)
        if wait is None:
            if is_retryable(error):
                error.retry_summary = f"gave up {schedule.summary()}: {schedule.gave_up}"
            raise error
        self.on_notice(wait)
        return wait.seconds


def _checked_base_url(given: str | None) -> str:
    text = (given or DEFAULT_BASE_URL).strip()
    example = "e.g. http://localhost:8000/v1 for a local vLLM server"
    try:
        url = httpx2.URL(text)
        port = url.port
    except (httpx2.InvalidURL, ValueError) as exc:
        raise ConfigError(f"the base URL {text!r} is not a valid URL ({exc}); {example}") from None
    # httpx2 percent-encodes what a host may not hold ("exa mple", "[bad"): refuse those.
    if url.scheme not in ("http", "https") or not url.host or "%" in url.host:
        raise ConfigError(f"the base URL {text!r} is not an http(s) URL, {example}")
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"the base URL {text!r} has no valid port, {example}")
    return text.rstrip("/")


def _refused_feature_hint(body: Mapping[str, Any]) -> str | None:
    """For a 400 from the router to a request with tools or a response format: not every
    provider behind a model supports them, and `:fastest` may have picked one that does not."""
    wanted = [name for name in ("tools", "response_format") if body.get(name)]
    if not wanted:
        return None
    model = str(body.get("model", "")).partition(":")[0]
    return (
        f"The provider may not support {' or '.join(wanted)}: `m2 models {model}` shows which"
        " do; pin one with a :provider suffix."
    )


def _verify(base_url: str) -> bool:
    """Whether TLS certificates may need checking: False only when nothing will speak TLS (a
    plain-http base URL, with redirects not followed and no https:// proxy), which spares
    loading the CA bundle, about 40 ms of every `m2` run against a self-hosted server."""
    if not base_url.lower().startswith("http://"):
        return True
    proxies = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    return any(
        (os.environ.get(name) or os.environ.get(name.lower()) or "").lower().startswith("https:")
        for name in proxies
    )


def _finish_body(stream: Iterator[httpx2.ServerSentEvent]) -> None:
    """Read what follows `[DONE]` (the end of the body, as a rule), so that the connection goes
    back to the pool for the next call instead of being closed; the reply has been handed over
    already. Anything more is not read, and a failure here costs nothing."""
    with contextlib.suppress(httpx2.RequestError):
        for _ in stream:
            break


async def _afinish_body(stream: AsyncIterator[httpx2.ServerSentEvent]) -> None:
    with contextlib.suppress(httpx2.RequestError):
        async for _ in stream:
            break


def _reply(events: Sequence[StreamEvent]) -> Reply:
    done = events[-1]
    assert isinstance(done, Done)
    return done.reply


class Client(_BaseClient):
    """A client for the Hugging Face router or any OpenAI-compatible server.

    - `model`: default `MiniMaxAI/MiniMax-M2`, or env `M2_MODEL`. On the router it may carry a
      routing suffix: `:fastest` (default), `:cheapest`, `:preferred`, or `:<provider>`.
    - `base_url`: default `https://router.huggingface.co/v1`, or env `M2_BASE_URL`; plain
      `http://` is fine for self-hosted vLLM or SGLang servers.
    - `api_key`: else env `M2_API_KEY`; for Hugging Face URLs only, the Hub token (`HF_TOKEN`,
      `hf auth login`) or env `HUGGINGFACE_API`. The Hub token is never sent anywhere else.
    - `timeout`: seconds without a byte from the server before giving up (default 120);
      `connect_timeout` the same for connecting (default 15).
    - `retry`: the `RetryPolicy` for 408/429/5xx and connection failures; `on_notice` is called
      with each `Wait` and `ParameterDropped` notice (default: logged on the `m2kit` logger).
    - `headers`: sent with every request; a call's `extra_headers` win over them.
    - `profile`: how the model writes its thinking, a `Profile` or a name (`m2kit.PROFILE_NAMES`);
      default: looked up from the model id, which a self-hosted served name may hide.
    - Proxies come from `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`.
    """

    _http: httpx2.Client

    def _open(self) -> None:
        self._http = httpx2.Client(
            timeout=self._timeout, follow_redirects=False, verify=_verify(self.base_url)
        )

    def chat(self, messages: Messages, **params: Unpack[ChatParams]) -> Reply:
        """Send `messages` (a prompt, or a list of message dicts) and return the whole reply."""
        return _reply(list(self._run(self._call(messages, params, stream=False))))

    def parse(
        self,
        messages: Messages,
        schema: type[T],
        *,
        mode: Mode = "json_schema",
        repairs: int = 1,
        **params: Unpack[ChatParams],
    ) -> T:
        """Ask for an answer that is a JSON value valid for `schema`, and return it validated.

        - `schema`: a pydantic `BaseModel` subclass, or any type pydantic's `TypeAdapter` takes
          (`list[Model]`, a dataclass, a `TypedDict`).
        - `mode`: "json_schema" (default) sends the schema as `response_format`; "json_object"
          asks for any JSON object and puts the schema in the system prompt; None uses the
          prompt alone, for servers that take no `response_format`.
        - `repairs`: how many more rounds to ask, when an answer is not valid JSON or does not
          match, with the reply and what was wrong added to the history (default 1).
        - Raises `StructuredOutputError` (with the last reply) when no round gave a valid answer.
        """
        call = StructuredCall(schema, messages, mode=mode, repairs=repairs, params=params)
        while True:
            reply = self.chat(call.messages, **call.params)
            if call.take(reply):
                return call.value

    def conversation(
        self,
        system: str | None = None,
        *,
        recorder: Recorder | None = None,
        trim_thinking: bool = False,
        include_interrupted: bool = False,
        **params: Unpack[ChatParams],
    ) -> Conversation:
        """A multi-turn `Conversation` on this client; see `Conversation` for the options."""
        from ._conversation import Conversation

        return Conversation(
            self,
            system,
            recorder=recorder,
            trim_thinking=trim_thinking,
            include_interrupted=include_interrupted,
            **params,
        )

    def stream(self, messages: Messages, **params: Unpack[ChatParams]) -> ChatStream:
        """Stream the reply: thinking, answer, tool-call and usage events, then `Done(reply)`.

        Use it in a `with` block to close the connection as soon as you stop reading.
        """
        call = self._call(messages, params, stream=True)
        return ChatStream(self._run(call), call.partial)

    def _run(self, call: _Call) -> Generator[StreamEvent, None, None]:
        schedule = self.retry.schedule()
        while True:
            try:
                yield from self._attempt(call)
                return
            except (APIError, ConnectionFailed) as error:
                time.sleep(self._next_wait(schedule, error))

    def _attempt(self, call: _Call) -> Generator[StreamEvent, None, None]:
        call.start_attempt()
        request = call.request
        try:
            with self._http.stream(
                "POST", request.url, content=request.content, headers=request.headers
            ) as response:
                is_stream = call.begin(response)
                if response.status_code >= 300:
                    raise call.error(response, response.read())
                if not is_stream:
                    yield from call.whole(response.read())
                    return
                stream = iter(httpx2.EventSource(response))
                for sse in stream:
                    events = call.on_sse(sse.event, sse.data)
                    if events is None:
                        break
                    yield from events
                if call.done:
                    yield from call.end()
                    _finish_body(stream)
                    return
        except httpx2.RequestError as exc:
            call.connection_lost(exc)
        yield from call.end()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient(_BaseClient):
    """The asynchronous twin of `Client`, with the same parameters."""

    _http: httpx2.AsyncClient

    def _open(self) -> None:
        self._http = httpx2.AsyncClient(
            timeout=self._timeout, follow_redirects=False, verify=_verify(self.base_url)
        )

    async def chat(self, messages: Messages, **params: Unpack[ChatParams]) -> Reply:
        """Send `messages` and return the whole reply."""
        events = [event async for event in self._run(self._call(messages, params, stream=False))]
        return _reply(events)

    async def parse(
        self,
        messages: Messages,
        schema: type[T],
        *,
        mode: Mode = "json_schema",
        repairs: int = 1,
        **params: Unpack[ChatParams],
    ) -> T:
        """Ask for an answer valid for `schema` and return it validated; see `Client.parse`."""
        call = StructuredCall(schema, messages, mode=mode, repairs=repairs, params=params)
        while True:
            reply = await self.chat(call.messages, **call.params)
            if call.take(reply):
                return call.value

    def conversation(
        self,
        system: str | None = None,
        *,
        recorder: Recorder | None = None,
        trim_thinking: bool = False,
        include_interrupted: bool = False,
        **params: Unpack[ChatParams],
    ) -> AsyncConversation:
        """A multi-turn `AsyncConversation` on this client."""
        from ._conversation import AsyncConversation

        return AsyncConversation(
            self,
            system,
            recorder=recorder,
            trim_thinking=trim_thinking,
            include_interrupted=include_interrupted,
            **params,
        )

    def stream(self, messages: Messages, **params: Unpack[ChatParams]) -> AsyncChatStream:
        """Stream the reply: thinking, answer, tool-call and usage events, then `Done(reply)`."""
        call = self._call(messages, params, stream=True)
        return AsyncChatStream(self._run(call), call.partial)

    async def _run(self, call: _Call) -> AsyncGenerator[StreamEvent, None]:
        schedule = self.retry.schedule()
        while True:
            try:
                async for event in self._attempt(call):
                    yield event
                return
            except (APIError, ConnectionFailed) as error:
                await anyio.sleep(self._next_wait(schedule, error))

    async def _attempt(self, call: _Call) -> AsyncGenerator[StreamEvent, None]:
        call.start_attempt()
        request = call.request
        try:
            async with self._http.stream(
                "POST", request.url, content=request.content, headers=request.headers
            ) as response:
                is_stream = call.begin(response)
                if response.status_code >= 300:
                    raise call.error(response, await response.aread())
                if not is_stream:
                    for event in call.whole(await response.aread()):
                        yield event
                    return
                stream = aiter(httpx2.EventSource(response))
                async for sse in stream:
                    events = call.on_sse(sse.event, sse.data)
                    if events is None:
                        break
                    for event in events:
                        yield event
                if call.done:
                    for event in call.end():
                        yield event
                    await _afinish_body(stream)
                    return
        except httpx2.RequestError as exc:
            call.connection_lost(exc)
        for event in call.end():
            yield event

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
