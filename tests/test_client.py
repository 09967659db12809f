"""Tests for m2kit._client: Client and AsyncClient against the scripted server, on real sockets."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from _server import Step, chunk, completion, error_step, json_step, stream_step
from m2kit import (
    AnswerDelta,
    APIError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    ConfigError,
    ConnectionFailed,
    CreditsExhaustedError,
    Done,
    ModelNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Reply,
    RetryPolicy,
    StreamErrorEvent,
    StreamInterrupted,
    ThinkingDelta,
    Usage,
    UsageUpdate,
    Wait,
)

if TYPE_CHECKING:
    from _server import ScriptedServer
    from m2kit import Notice, StreamEvent

FAST = RetryPolicy(initial_wait=0.01, max_wait=0.05)
ONCE = RetryPolicy(max_attempts=1)
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
TOKEN = "tok-abcdef123456"


@dataclass
class Run:
    """One call through Client (`sync`) or AsyncClient (`async`), pointed at the scripted server."""

    mode: str
    server: ScriptedServer
    notices: list[Notice] = field(default_factory=list)

    def options(self, given: dict[str, Any]) -> dict[str, Any]:
        base = {"base_url": self.server.base_url, "retry": FAST, "on_notice": self.notices.append}
        return base | given

    def chat(self, messages: Any = "Hi", *, options: Any = None, **params: Any) -> Reply:
        kw = self.options(options or {})
        if self.mode == "sync":
            with Client(**kw) as client:
                return client.chat(messages, **params)

        async def chat() -> Reply:
            async with AsyncClient(**kw) as client:
                return await client.chat(messages, **params)

        return anyio.run(chat)

    def stream(
        self, messages: Any = "Hi", *, options: Any = None, **params: Any
    ) -> list[StreamEvent]:
        kw = self.options(options or {})
        if self.mode == "sync":
            with Client(**kw) as client:
                return list(client.stream(messages, **params))

        async def stream() -> list[StreamEvent]:
            async with AsyncClient(**kw) as client:
                return [event async for event in client.stream(messages, **params)]

        return anyio.run(stream)

    def streamed_reply(self, **kw: Any) -> Reply:
        done = self.stream(**kw)[-1]
        assert isinstance(done, Done)
        return done.reply

    def waits(self) -> list[Wait]:
        return [notice for notice in self.notices if isinstance(notice, Wait)]


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest, server: ScriptedServer) -> Run:
    return Run(request.param, server)


def ok_stream(*contents: str, **kw: Any) -> Step:
    return stream_step([*(chunk(text) for text in contents), chunk(finish_reason="stop")], **kw)


def texts(events: list[StreamEvent], kind: type[ThinkingDelta | AnswerDelta]) -> str:
    return "".join(event.text for event in events if isinstance(event, kind))


# Thinking, in every shape, streamed and whole.

PLAIN_MODEL = "meta-llama/Llama-3.3-70B-Instruct"
REBUILT = "<think>\nGreet them.\n</think>\n\nHello!"


@dataclass(frozen=True)
class Shape:
    content: list[str]
    expected: tuple[str, str | None, str]  # text, thinking, history content
    reasoning_field: str | None = None
    reasoning: tuple[str, ...] = ()
    finish: str = "stop"
    model: str = "MiniMaxAI/MiniMax-M2"

    def fields(self, text: str) -> dict[str, Any]:
        if self.reasoning_field == "reasoning_details":
            return {"reasoning_details": [{"type": "reasoning.text", "text": text}]}
        return {self.reasoning_field: text} if self.reasoning_field else {}

    def steps(self) -> tuple[Step, Step]:
        chunks = [chunk(**self.fields(part)) for part in self.reasoning]
        chunks += [chunk(part) for part in self.content]
        chunks.append(chunk(finish_reason=self.finish, usage=USAGE))
        whole = completion(
            "".join(self.content),
            **self.fields("".join(self.reasoning)),
            finish_reason=self.finish,
            usage=USAGE,
        )
        return stream_step(chunks), json_step(whole)


SHAPES = {
    "inline-no-open-tag": Shape(
        ["Greet them.", "</think>\n\n", "Hello!"],
        ("Hello!", "Greet them.", "Greet them.</think>\n\nHello!"),
    ),
    "leading-open-tag": Shape(
        ["<think>\nGreet them.", "\n</think>\n\nHello!"],
        ("Hello!", "Greet them.", "<think>\nGreet them.\n</think>\n\nHello!"),
    ),
    "close-tag-split": Shape(
        ["Greet them.</thi", "nk>\n\nHello!"],
        ("Hello!", "Greet them.", "Greet them.</think>\n\nHello!"),
    ),
    "reasoning_content": Shape(
        ["Hello!"], ("Hello!", "Greet them.", REBUILT), "reasoning_content", ("Greet ", "them.")
    ),
    "reasoning": Shape(
        ["Hello!"], ("Hello!", "Greet them.", REBUILT), "reasoning", ("Greet ", "them.")
    ),
    "reasoning_details": Shape(
        ["Hello!"], ("Hello!", "Greet them.", REBUILT), "reasoning_details", ("Greet ", "them.")
    ),
    "none": Shape(["Hel", "lo!"], ("Hello!", None, "Hello!"), model=PLAIN_MODEL),
    "cut-while-thinking": Shape(
        ["Greet", " them and"], ("", "Greet them and", "Greet them and"), finish="length"
    ),
    "never-closed-stop": Shape(["Hel", "lo!"], ("Hello!", None, "Hello!")),
}


@pytest.mark.parametrize("name", SHAPES)
def test_thinking_shape_is_split_alike_streamed_and_whole(run: Run, name: str) -> None:
    """If a thinking shape is served streamed and whole, then both replies are equal and split."""
    shape = SHAPES[name]
    run.server.queue(*shape.steps())

    events = run.stream(model=shape.model)
    whole = run.chat(model=shape.model)

    streamed = events[-1]
    assert isinstance(streamed, Done)
    assert streamed.reply == whole
    assert (whole.text, whole.thinking, whole.message["content"]) == shape.expected
    assert whole.cut_while_thinking == (shape.finish == "length")
    if whole.thinking is None and texts(events, ThinkingDelta):
        # What streamed as thinking was the answer all along: the last delta carries it whole.
        assert events[-2] == AnswerDelta(whole.text)
    else:
        assert texts(events, AnswerDelta) == whole.text
        assert texts(events, ThinkingDelta) == (whole.thinking or "")


# Usage placements.


def _total(tokens: int) -> dict[str, int]:
    return {"prompt_tokens": 10, "completion_tokens": tokens - 10, "total_tokens": tokens}


USAGE_STREAMS = {
    "final-empty-choices": [chunk("Hi", finish_reason="stop"), chunk(choices=False, usage=USAGE)],
    "last-content-chunk": [chunk("H"), chunk("i", finish_reason="stop", usage=USAGE)],
    "running-total": [chunk("H", usage=_total(11)), chunk("i", finish_reason="stop", usage=USAGE)],
    "groq-x_groq": [chunk("Hi", finish_reason="stop") | {"x_groq": {"usage": USAGE}}],
}


@pytest.mark.parametrize("placement", USAGE_STREAMS)
def test_stream_usage_is_right_wherever_it_comes(run: Run, placement: str) -> None:
    """If usage comes last, with content, as a running total or in x_groq, then it is right."""
    run.server.queue(stream_step(USAGE_STREAMS[placement]))

    events = run.stream(model=PLAIN_MODEL)

    assert [e for e in events if isinstance(e, UsageUpdate)][-1].usage == Usage(10, 5, 15)
    reply = events[-1]
    assert isinstance(reply, Done)
    assert reply.reply.usage == Usage(10, 5, 15)


# How streams end.


def test_finish_reason_without_done_is_complete(run: Run) -> None:
    """If a stream ends without [DONE] but with a finish reason (cerebras), then it is complete."""
    run.server.queue(ok_stream("Plan.</think>", "Hi", done=False))

    reply = run.streamed_reply()

    assert (reply.text, reply.finish_reason) == ("Hi", "stop")


def test_drop_after_the_finish_reason_is_complete(run: Run) -> None:
    """If the connection drops after the finish reason but before [DONE], then the reply stands."""
    run.server.queue(ok_stream("Plan.</think>", "Hi", drop_after=3))

    assert run.streamed_reply().text == "Hi"


@pytest.mark.parametrize(
    "ending",
    [
        {"drop_after": 2},  # the connection drops mid-body
        {"done": False},  # the body ends cleanly, with no finish reason and no [DONE]
    ],
    ids=["dropped", "clean-end"],
)
def test_stream_cut_short_is_interrupted_not_a_reply(run: Run, ending: dict[str, Any]) -> None:
    """If a stream ends with no finish reason and no [DONE], then it is interrupted, not retried."""
    chunks = [chunk("Plan.</think>"), chunk("Hel"), chunk("lo")]
    run.server.queue(stream_step(chunks, **ending), ok_stream("again"))

    with pytest.raises(StreamInterrupted) as caught:
        run.stream()

    assert caught.value.partial is not None
    assert caught.value.partial.text.startswith("Hel")
    assert len(run.server.requests) == 1


@pytest.mark.parametrize(
    "error_event",
    [
        {"choices": [], "error": {"code": 502, "message": "Upstream went away"}},
        'event: error\ndata: {"error": {"message": "Upstream went away"}}\n\n',
    ],
    ids=["data-error-object", "event-error"],
)
def test_error_inside_the_stream_raises_its_message(run: Run, error_event: Any) -> None:
    """If the server sends an error inside a 200 stream, then StreamErrorEvent has its message."""
    run.server.queue(stream_step([chunk("Plan.</think>Par"), error_event], done=False))

    with pytest.raises(StreamErrorEvent) as caught:
        run.stream()

    assert caught.value.message == "Upstream went away"
    assert caught.value.partial is not None
    assert caught.value.partial.text == "Par"
    assert len(run.server.requests) == 1


def test_comment_lines_are_ignored(run: Run) -> None:
    """If the stream carries `: keep-alive` comments (OpenRouter), then they change nothing."""
    comment = ": OPENROUTER PROCESSING\n\n"
    run.server.queue(
        stream_step(
            [comment, chunk("Plan.</think>"), comment, chunk("Hi"), chunk(finish_reason="stop")]
        )
    )

    assert run.streamed_reply().text == "Hi"


def test_events_split_anywhere_on_the_wire_are_read(run: Run) -> None:
    """If network chunks cut an event, a line and a UTF-8 character, then the reply is intact."""
    whole = b"".join(ok_stream("Plan.</think>", "Caf\u00e9 \u2615").chunks or [])
    cut = whole.index("\u2615".encode()) + 1
    run.server.queue(
        Step(
            headers={"content-type": "text/event-stream"},
            chunks=[whole[:7], whole[7:cut], whole[cut:]],
        )
    )

    assert run.streamed_reply().text == "Caf\u00e9 \u2615"


def test_provider_and_request_id_come_from_headers(run: Run) -> None:
    """If the router names the provider and a request id, then the reply carries both."""
    headers = {"x-inference-provider": "novita", "x-request-id": "req-7"}
    run.server.queue(json_step(completion("Plan.</think>Hi"), headers=headers))

    reply = run.chat()

    assert (reply.provider, reply.request_id, reply.model) == (
        "novita",
        "req-7",
        "MiniMaxAI/MiniMax-M2",
    )


def test_history_gets_the_reply_message_back_unchanged(run: Run) -> None:
    """If reply.message goes back as history, then the server gets it unchanged, thinking too."""
    run.server.queue(
        stream_step([chunk(reasoning_content="Greet."), chunk("Hi!", finish_reason="stop")]),
        json_step(completion("Fine.</think>Good.")),
    )
    first = run.streamed_reply()

    run.chat([{"role": "user", "content": "Hi"}, first.message, {"role": "user", "content": "?"}])

    sent = run.server.requests[1].json()["messages"][1]
    assert (
        sent
        == first.message
        == {"role": "assistant", "content": "<think>\nGreet.\n</think>\n\nHi!"}
    )


def test_streamed_tool_call_becomes_a_history_message(run: Run) -> None:
    """If a tool call streams after thinking, then history keeps both the thinking and the call."""
    fragments = [
        {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": ""}},
        {"index": 0, "id": "", "function": {"arguments": '{"city": '}},
        {"index": 0, "function": {"arguments": '"Paris"}'}},
    ]
    chunks = [chunk("Need weather.</think>\n\n")]
    chunks += [chunk(tool_calls=[fragment]) for fragment in fragments]
    run.server.queue(stream_step([*chunks, chunk(finish_reason="tool_calls")]))

    reply = run.streamed_reply()

    [call] = reply.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_1", "get_weather", '{"city": "Paris"}')
    assert reply.message["content"] == "Need weather.</think>\n\n"
    assert reply.message["tool_calls"] == [call.to_message()]
    assert (reply.text, reply.thinking, reply.finish_reason) == ("", "Need weather.", "tool_calls")


def test_one_log_line_per_upstream_call_without_secrets(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    """If a call is retried, then one INFO line per attempt, with no token, prompt or reply."""
    caplog.set_level(logging.DEBUG, logger="m2kit")
    run.server.queue(error_step(429, {"error": "slow down"}), ok_stream("Plan.</think>", "Bonjour"))

    run.stream("Secret prompt", options={"api_key": TOKEN})

    lines = [r.getMessage() for r in caplog.records if r.name == "m2kit"]
    assert [line.split()[:3] for line in lines] == [
        ["POST", "127.0.0.1", "429"],
        ["POST", "127.0.0.1", "200"],
    ]
    for line in lines:
        assert TOKEN not in line
        assert "Secret" not in line
        assert "Bonjour" not in line


# Error statuses that are not retried.

BODIES: dict[str, str | dict[str, Any]] = {
    "error-text": {"error": "The server says no."},
    "error-object": {"error": {"message": "The server says no.", "type": "invalid_request_error"}},
    "plain-text": "The server says no.",
}
REFUSALS = [
    (401, AuthenticationError, "M2_API_KEY"),
    (402, CreditsExhaustedError, "pre-paid credits"),
    (403, PermissionDeniedError, "Make calls to Inference Providers"),
    (404, ModelNotFoundError, "model name"),
    (400, BadRequestError, "server's message"),
    (422, BadRequestError, "server's message"),
]


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize(("status", "kind", "hint"), REFUSALS)
def test_refusal_is_not_retried_and_explained(
    run: Run, status: int, kind: type[APIError], hint: str, body: str
) -> None:
    """If 401/402/403/404/400/422 comes, then no retry, and the error says what and how to fix."""
    run.server.queue(
        error_step(status, BODIES[body], headers={"x-request-id": "req-42"}), ok_stream("Hi")
    )

    with pytest.raises(kind) as caught:
        run.chat()

    error = caught.value
    assert (error.status, error.message, error.request_id) == (
        status,
        "The server says no.",
        "req-42",
    )
    assert hint in error.hint
    assert len(run.server.requests) == 1
    assert run.waits() == []


@pytest.mark.parametrize("status", [400, 401, 500])
def test_token_never_shows_in_an_error(run: Run, status: int) -> None:
    """If the server echoes the key back, then neither str(error), its body nor its hint has it."""
    run.server.queue(error_step(status, {"error": f"Bad key {TOKEN} (hf_abcdefghijkl)"}))

    with pytest.raises(APIError) as caught:
        run.chat(options={"api_key": TOKEN, "retry": ONCE})

    error = caught.value
    for text in (str(error), repr(error), error.body, error.hint, error.message):
        assert TOKEN not in text
        assert "hf_abcdefghijkl" not in text
    assert run.server.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_redirect_is_not_followed_and_names_the_address(run: Run) -> None:
    """If the server redirects, then no second request is made and the hint names the address."""
    run.server.queue(
        Step(status=307, headers={"location": "https://example.test/v1/chat/completions"})
    )

    with pytest.raises(APIError) as caught:
        run.chat()

    assert caught.value.status == 307
    assert "https://example.test/v1/chat/completions" in caught.value.hint
    assert len(run.server.requests) == 1


@pytest.mark.parametrize(
    "step",
    [
        json_step(["not", "a", "completion"]),
        Step(headers={"content-type": "application/json"}, body=b"<html>proxy</html>"),
    ],
    ids=["json-list", "html"],
)
def test_a_200_that_is_no_completion_is_an_m2_error(run: Run, step: Step) -> None:
    """If a 200 body is not a completion object, then the error is an M2Error, not a crash."""
    run.server.queue(step)

    with pytest.raises(StreamErrorEvent, match="JSON"):
        run.chat()


def test_undecodable_body_is_a_connection_failure(run: Run) -> None:
    """If the body cannot be decoded (bad gzip), then ConnectionFailed is raised, not httpx2's."""
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    run.server.queue(Step(headers=headers, body=b"not gzip"))

    with pytest.raises(ConnectionFailed):
        run.chat(options={"retry": ONCE})


# Retries.

LOADING = {"error": "Model MiniMaxAI/MiniMax-M2 is currently loading", "estimated_time": 0.05}
PAST = format_datetime(datetime.now(timezone.utc) - timedelta(hours=1), usegmt=True)


@pytest.mark.parametrize(
    ("failure", "reason", "source", "seconds"),
    [
        (error_step(429, {"error": "slow down"}), "rate limited (429)", "backoff", None),
        (error_step(429, "slow", {"retry-after-ms": "50"}), "rate limited (429)", "server", 0.05),
        (error_step(429, "slow", {"retry-after": "1"}), "rate limited (429)", "server", 1.0),
        (error_step(429, "slow", {"retry-after": PAST}), "rate limited (429)", "server", 0.0),
        (error_step(503, LOADING), "model is loading (503)", "server", 0.05),
        (error_step(500, "boom"), "server error (500)", "backoff", None),
        (error_step(502, "bad gateway"), "server error (502)", "backoff", None),
        (error_step(504, "gateway timeout"), "server error (504)", "backoff", None),
        (error_step(408, "too slow"), "request timeout (408)", "backoff", None),
        (Step(hang_up=True), "the server hung up", "backoff", None),
    ],
    ids=[
        "429",
        "429-ms",
        "429-seconds",
        "429-date",
        "503-loading",
        "500",
        "502",
        "504",
        "408",
        "hang-up",
    ],
)
def test_retryable_failure_waits_then_succeeds(
    run: Run, failure: Step, reason: str, source: str, seconds: float | None
) -> None:
    """If an attempt fails in a retryable way, then a Wait says why and how long, then a reply."""
    run.server.queue(failure, ok_stream("Plan.</think>", "Hi"))

    reply = run.streamed_reply()

    assert reply.text == "Hi"
    [wait] = run.waits()
    assert (wait.reason, wait.source, wait.attempt) == (reason, source, 1)
    if seconds is None:
        assert 0 < wait.seconds <= FAST.initial_wait
    else:
        assert wait.seconds == pytest.approx(seconds, abs=1e-6)
    assert len(run.server.requests) == 2


@pytest.mark.parametrize(
    "retry_after",
    ["3600", format_datetime(datetime.now(timezone.utc) + timedelta(hours=1), usegmt=True)],
    ids=["seconds", "http-date"],
)
def test_retry_after_beyond_the_budget_fails_at_once(run: Run, retry_after: str) -> None:
    """If the server asks for a wait beyond the retry budget, then it fails at once and says so."""
    run.server.queue(error_step(429, {"error": "slow down"}, {"retry-after": retry_after}))

    with pytest.raises(RateLimitError) as caught:
        run.chat()

    assert "the server asked to wait" in caught.value.retry_summary
    assert "retry budget" in caught.value.retry_summary
    assert run.waits() == []
    assert len(run.server.requests) == 1


def test_max_attempts_reached_gives_up_with_a_summary(run: Run) -> None:
    """If every attempt is rate limited, then after max_attempts the error says so."""
    policy = RetryPolicy(max_attempts=3, initial_wait=0.01)
    run.server.queue(*(error_step(429, {"error": "slow down"}) for _ in range(4)))

    with pytest.raises(RateLimitError) as caught:
        run.chat(options={"retry": policy})

    assert "reached the limit of 3 attempts" in caught.value.retry_summary
    assert [wait.attempt for wait in run.waits()] == [1, 2]
    assert len(run.server.requests) == 3


def test_stall_past_the_timeout_is_a_connection_failure(run: Run) -> None:
    """If the server stalls past `timeout`, then ConnectionFailed is raised and names the host."""
    run.server.queue(Step(delay=0.5))

    with pytest.raises(ConnectionFailed, match=r"127\.0\.0\.1"):
        run.chat(options={"timeout": 0.1, "retry": ONCE})


def test_stall_is_retried_per_policy(run: Run) -> None:
    """If the first attempt stalls past `timeout`, then it is retried and the retry answers."""
    run.server.queue(Step(delay=0.5), json_step(completion("Plan.</think>Hi")))

    reply = run.chat(options={"timeout": 0.2})

    assert reply.text == "Hi"
    assert [wait.reason for wait in run.waits()] == ["no reply within the timeout"]


# Tokens and settings from the environment.


def test_hf_token_never_goes_to_a_self_hosted_server(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If HF_TOKEN is set, then a request to a non-Hugging Face server carries no Authorization."""
    monkeypatch.setenv("HF_TOKEN", "hf_localtokenabcdef")
    run.server.queue(ok_stream("Hi"))

    run.stream()

    assert "authorization" not in run.server.requests[0].headers


@pytest.mark.parametrize("where", ["env", "argument"])
def test_api_key_is_sent_as_bearer(run: Run, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """If M2_API_KEY or api_key= is given, then the request carries `Bearer <key>`."""
    options = {"api_key": TOKEN} if where == "argument" else {}
    if where == "env":
        monkeypatch.setenv("M2_API_KEY", TOKEN)
    run.server.queue(ok_stream("Hi"))

    run.stream(options=options)

    assert run.server.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_env_model_and_base_url_are_the_defaults(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """If M2_MODEL and M2_BASE_URL are set, then a client built without them uses both."""
    monkeypatch.setenv("M2_MODEL", "my-org/my-model")
    monkeypatch.setenv("M2_BASE_URL", run.server.base_url)
    run.server.queue(ok_stream("Hi"))

    run.stream(options={"base_url": None})

    assert run.server.requests[0].path == "/v1/chat/completions"
    assert run.server.requests[0].json()["model"] == "my-org/my-model"


@pytest.mark.parametrize("kind", [Client, AsyncClient])
def test_routing_suffix_typo_fails_before_any_request(kind: type[Client | AsyncClient]) -> None:
    """If the model's routing suffix is a typo on the router, then ConfigError lists the choices."""
    with pytest.raises(ConfigError, match="did you mean :fastest"):
        kind(model="MiniMaxAI/MiniMax-M2:fastets")


def test_non_http_base_url_is_refused() -> None:
    """If the base URL is not http(s), then ConfigError gives an example of a good one."""
    with pytest.raises(ConfigError, match="localhost:8000"):
        Client(base_url="ftp://example.test/v1")


def test_async_stream_is_an_async_iterator(server: ScriptedServer) -> None:
    """If AsyncClient.stream is iterated with `async for`, then events arrive as they stream."""
    server.queue(ok_stream("Plan.</think>", "Hi"))

    async def first_answer() -> str:
        async with AsyncClient(base_url=server.base_url) as client:
            async for event in client.stream("Hi"):
                if isinstance(event, AnswerDelta):
                    return event.text
        return ""

    assert anyio.run(first_answer) == "Hi"


def test_leaving_a_stream_early_closes_it(server: ScriptedServer) -> None:
    """If a `with` block leaves a stream early, then it is closed and the client stays usable."""
    server.queue(ok_stream("Plan.</think>", *["word "] * 50, chunk_delay=0.01), ok_stream("x"))

    with Client(base_url=server.base_url) as client:
        with client.stream("Hi") as events:
            first = next(events)
        rest = list(events)
        again = client.chat("Again")

    assert isinstance(first, ThinkingDelta)
    assert rest == []
    assert again.text == "x"


def test_leaving_an_async_stream_early_closes_it(server: ScriptedServer) -> None:
    """If an `async with` block leaves a stream early, then iterating it again ends at once."""
    server.queue(ok_stream("Plan.</think>", *["word "] * 50, chunk_delay=0.01))

    async def leave_early() -> list[StreamEvent]:
        async with AsyncClient(base_url=server.base_url) as client:
            async with client.stream("Hi") as events:
                await events.__anext__()
            return [event async for event in events]

    assert anyio.run(leave_early) == []


@pytest.mark.parametrize("kind", [Client, AsyncClient])
def test_router_without_a_token_says_how_to_get_one(kind: type[Client | AsyncClient]) -> None:
    """If no Hugging Face token is found for the router, then the error names HF_TOKEN and login."""
    client = kind()

    with pytest.raises(ConfigError, match="no Hugging Face token") as caught:
        client.stream("Hi")

    assert "HF_TOKEN" in caught.value.hint
    assert "hf auth login" in caught.value.hint
    assert "settings/tokens" in caught.value.hint


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"api_key": "sk-explicit-123456"}, "--api-key"),
        ({"env": "sk-from-env-123456"}, "M2_API_KEY"),
        ({}, "HF_TOKEN"),
    ],
)
def test_router_401_hint_names_the_token_source(
    monkeypatch: pytest.MonkeyPatch, source: dict[str, str], expected: str
) -> None:
    """If the router refuses the token, then the hint names where that token came from."""
    monkeypatch.setenv("HF_TOKEN", "hf_hubtoken1234567890")
    if "env" in source:
        monkeypatch.setenv("M2_API_KEY", source["env"])

    client = Client(api_key=source.get("api_key"))

    assert expected in client._refused_key_hint()


@pytest.mark.parametrize(
    "events",
    [
        [chunk(content="a"), {"error": {"message": f"upstream saw {TOKEN}"}}],
        [chunk(content="a"), f"event: error\ndata: bad key {TOKEN}\n\n"],
        [chunk(content="a"), f"data: {{not json {TOKEN}\n\n"],
    ],
    ids=["error-object", "error-event", "unreadable"],
)
def test_token_never_shows_in_a_stream_error(run: Run, events: list[Any]) -> None:
    """If the server echoes the key inside a stream, then the stream error does not show it."""
    run.server.queue(stream_step(events, done=False))

    with pytest.raises(StreamErrorEvent) as caught:
        run.stream(options={"api_key": TOKEN})

    assert TOKEN not in str(caught.value)
    assert TOKEN[4:] not in str(caught.value)


def test_reply_counts_its_attempts(run: Run) -> None:
    """If a reply took a retry, then Reply.attempts says how many requests it took."""
    run.server.queue(error_step(503, {"error": "busy"}), ok_stream("Plan.</think>", "Hi"))

    assert run.streamed_reply().attempts == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_streams_that_end_with_done_reuse_one_connection(mode: str, server: ScriptedServer) -> None:
    """If three streamed calls each end with [DONE], then they share one connection (an agent's
    steps and a chat's turns need no new handshake each), and each reply is whole."""
    pieces = [chunk(content="Plan.</think>\n\nHi"), chunk(finish_reason="stop")]
    server.queue(*(stream_step(pieces) for _ in range(3)))

    async def three_async() -> list[Reply]:
        async with AsyncClient(base_url=server.base_url) as client:
            replies = []
            for _ in range(3):
                events = [event async for event in client.stream("Hi")]
                assert isinstance(events[-1], Done)
                replies.append(events[-1].reply)
            return replies

    if mode == "sync":
        with Client(base_url=server.base_url) as client:
            replies = []
            for _ in range(3):
                events = list(client.stream("Hi"))
                assert isinstance(events[-1], Done)
                replies.append(events[-1].reply)
    else:
        replies = anyio.run(three_async)

    assert [reply.text for reply in replies] == ["Hi"] * 3
    assert len(server.requests) == 3
    assert server.connections == 1


def test_a_refused_tool_request_to_the_router_points_at_m2_models() -> None:
    """If the router answers 400 to a request with tools or a response format, then the hint
    says the provider may not support them, and how to find and pin one that does."""
    from m2kit._client import _refused_feature_hint

    body = {"model": "MiniMaxAI/MiniMax-M2:fastest", "tools": [{"type": "function"}]}
    hint = _refused_feature_hint(body)
    assert hint is not None
    assert "may not support tools" in hint
    assert "`m2 models MiniMaxAI/MiniMax-M2`" in hint
    both = _refused_feature_hint({**body, "response_format": {"type": "json_object"}})
    assert both is not None
    assert "tools or response_format" in both
    assert _refused_feature_hint({"model": "MiniMaxAI/MiniMax-M2"}) is None
