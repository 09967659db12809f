"""The scripted test server behaves as the other tests rely on, seen through a real HTTP client."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import httpx2
import pytest

from _server import ScriptedServer, Step, chunk, completion, error_step, json_step, sse, stream_step

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def client() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=10.0) as client:
        yield client


def _chat_url(server: ScriptedServer) -> str:
    return f"{server.base_url}/chat/completions"


def test_base_url_is_loopback_v1(server: ScriptedServer) -> None:
    """If the server is running, then its base URL is an http loopback URL ending in /v1."""
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.base_url.endswith("/v1")


def test_steps_answer_in_order(server: ScriptedServer, client: httpx2.Client) -> None:
    """If two steps are queued, then two chat requests get them in order."""
    server.queue(json_step({"n": 1}), json_step({"n": 2}, status=201))

    first = client.post(_chat_url(server), json={})
    second = client.post(_chat_url(server), json={})

    assert (first.status_code, first.json()) == (200, {"n": 1})
    assert (second.status_code, second.json()) == (201, {"n": 2})


def test_empty_queue_answers_500(server: ScriptedServer, client: httpx2.Client) -> None:
    """If no step is left, then a chat request gets a 500 that says so."""
    response = client.post(_chat_url(server), json={})

    assert response.status_code == 500
    assert response.json() == {"error": {"message": "test server: no scripted step left"}}


def test_any_chat_completions_path_takes_a_step(
    server: ScriptedServer, client: httpx2.Client
) -> None:
    """If a POST goes to a provider-style path ending in /chat/completions, then it takes a step."""
    server.queue(json_step({"ok": True}))

    response = client.post(f"{server.base_url}/novita/v3/openai/chat/completions", json={})

    assert response.json() == {"ok": True}


def test_whole_body_has_headers_and_length(server: ScriptedServer, client: httpx2.Client) -> None:
    """If a step has a body, then it comes whole, with its headers and a Content-Length."""
    headers = {"x-inference-provider": "novita", "retry-after": "2", "x-request-id": "req-1"}
    server.queue(error_step(429, {"error": "slow down"}, headers=headers))

    response = client.post(_chat_url(server), json={})

    assert response.status_code == 429
    assert response.headers["x-inference-provider"] == "novita"
    assert response.headers["retry-after"] == "2"
    assert response.headers["x-request-id"] == "req-1"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))
    assert response.json() == {"error": "slow down"}


def test_text_error_is_plain_text(server: ScriptedServer, client: httpx2.Client) -> None:
    """If an error body is a str, then it is sent as text/plain, unchanged."""
    server.queue(error_step(422, "Failed to deserialize the JSON body"))

    response = client.post(_chat_url(server), json={})

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Failed to deserialize the JSON body"


def test_framing_headers_in_a_step_are_ignored(
    server: ScriptedServer, client: httpx2.Client
) -> None:
    """If a step names its own Content-Length, then the server's true length is sent instead."""
    server.queue(Step(headers={"Content-Length": "999"}, body=b"abc"))

    response = client.post(_chat_url(server), json={})

    assert response.headers.get_list("content-length") == ["3"]
    assert response.content == b"abc"


def test_chunks_arrive_separately(server: ScriptedServer, client: httpx2.Client) -> None:
    """If a step streams chunks with a delay, then the client reads each chunk on its own."""
    events = [chunk(role="assistant", content=""), chunk("Hel"), chunk("lo", finish_reason="stop")]
    server.queue(stream_step(events, chunk_delay=0.05))

    started = time.monotonic()
    with client.stream("POST", _chat_url(server), json={"stream": True}) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.headers["content-type"] == "text/event-stream"
        pieces = list(response.iter_raw())

    assert pieces == sse(*events)
    assert time.monotonic() - started >= 0.05 * len(pieces)


def test_drop_after_gives_incomplete_body(server: ScriptedServer, client: httpx2.Client) -> None:
    """If a stream drops after one chunk, then the client gets that chunk, then a protocol error."""
    server.queue(stream_step([chunk("a"), chunk("b")], drop_after=1))
    received: list[bytes] = []

    with (
        pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"),
        client.stream("POST", _chat_url(server), json={}) as response,
    ):
        received.extend(response.iter_raw())

    assert received == sse(chunk("a"), done=False)


def test_drop_after_every_chunk_still_omits_the_end(
    server: ScriptedServer, client: httpx2.Client
) -> None:
    """If drop_after equals the number of chunks, then the final zero-length chunk never comes."""
    server.queue(Step(chunks=[b"data: 1\n\n"], drop_after=1))

    with pytest.raises(httpx2.RemoteProtocolError):
        client.post(_chat_url(server), json={})


def test_hang_up_gives_connection_error(server: ScriptedServer, client: httpx2.Client) -> None:
    """If a step hangs up, then the client gets no response at all, and the request is recorded."""
    server.queue(Step(hang_up=True))

    with pytest.raises(httpx2.RemoteProtocolError, match="without sending a response"):
        client.post(_chat_url(server), json={"n": 1})

    assert [request.json() for request in server.requests] == [{"n": 1}]


def test_truncated_body_gives_incomplete_body(
    server: ScriptedServer, client: httpx2.Client
) -> None:
    """If a step truncates its body, then the client sees fewer bytes than Content-Length said."""
    step = json_step(completion("Hello there"))
    step.truncate_body = True
    server.queue(step)

    with pytest.raises(httpx2.RemoteProtocolError, match="expected"):
        client.post(_chat_url(server), json={})


def test_connection_survives_a_broken_step(server: ScriptedServer, client: httpx2.Client) -> None:
    """If one step hangs up, then the same client's next request is answered normally."""
    server.queue(Step(hang_up=True), json_step({"ok": True}))

    with pytest.raises(httpx2.RemoteProtocolError):
        client.post(_chat_url(server), json={})
    response = client.post(_chat_url(server), json={})

    assert response.json() == {"ok": True}


def test_delay_holds_back_the_whole_answer(server: ScriptedServer) -> None:
    """If a step has a delay longer than the client's read timeout, then the client times out."""
    server.queue(Step(delay=0.5, body=b"late"))

    with (
        httpx2.Client(timeout=httpx2.Timeout(5.0, read=0.1)) as client,
        pytest.raises(httpx2.ReadTimeout),
    ):
        client.post(_chat_url(server), json={})


def test_requests_are_recorded(server: ScriptedServer, client: httpx2.Client) -> None:
    """If a request comes in, then its method, path, lower-cased headers and body are recorded."""
    server.queue(json_step(completion("hi")))

    client.post(
        f"{_chat_url(server)}?x=1",
        json={"model": "m", "messages": []},
        headers={"Authorization": "Bearer hf_test", "X-HF-Bill-To": "org"},
    )

    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions?x=1")
    assert request.headers["authorization"] == "Bearer hf_test"
    assert request.headers["x-hf-bill-to"] == "org"
    assert request.json() == {"model": "m", "messages": []}
    assert request.body == json.dumps(request.json(), separators=(",", ":")).encode()


def test_chunked_request_body_is_read(server: ScriptedServer, client: httpx2.Client) -> None:
    """If the client sends its body chunked, then the recorded body is the whole of it."""
    server.queue(json_step({}))

    client.post(_chat_url(server), content=iter([b'{"a":', b"1}"]))

    assert server.requests[0].headers["transfer-encoding"] == "chunked"
    assert server.requests[0].json() == {"a": 1}


def test_models_answers_the_payload(server: ScriptedServer, client: httpx2.Client) -> None:
    """If a models payload is set, then GET /v1/models answers it as JSON."""
    payload = {"data": [{"id": "MiniMaxAI/MiniMax-M2", "providers": [{"provider": "novita"}]}]}
    server.models(payload)

    response = client.get(f"{server.base_url}/models")

    assert response.status_code == 200
    assert response.json() == payload


def test_models_unset_answers_500(server: ScriptedServer, client: httpx2.Client) -> None:
    """If no models payload is set, then GET /v1/models gets a 500 that says so."""
    response = client.get(f"{server.base_url}/models")

    assert response.status_code == 500
    assert "no models payload" in response.json()["error"]["message"]


def test_other_paths_get_404(server: ScriptedServer, client: httpx2.Client) -> None:
    """If a request goes to an unknown path, then it gets a JSON 404 and takes no step."""
    server.queue(json_step({"unused": True}))

    response = client.post(f"{server.base_url}/completions", json={})

    assert response.status_code == 404
    assert "POST /v1/completions" in response.json()["error"]["message"]
    assert client.post(_chat_url(server), json={}).json() == {"unused": True}


def test_reset_forgets_everything(server: ScriptedServer, client: httpx2.Client) -> None:
    """If the server is reset, then queued steps, the models payload and requests are gone."""
    server.queue(json_step({"stale": True}))
    server.models({"data": []})
    client.get(f"{server.base_url}/models")

    server.reset()

    assert server.requests == []
    assert client.post(_chat_url(server), json={}).status_code == 500
    assert client.get(f"{server.base_url}/models").status_code == 500


def test_sse_passes_text_through_and_ends_with_done() -> None:
    """If sse gets dicts and raw text, then dicts become data lines, text stays as is, DONE ends."""
    pieces = sse({"a": 1}, ": keep-alive\n\n", "event: error\ndata: {}\n\n")

    assert pieces == [
        b'data: {"a":1}\n\n',
        b": keep-alive\n\n",
        b"event: error\ndata: {}\n\n",
        b"data: [DONE]\n\n",
    ]
    assert sse({"a": 1}, done=False) == [b'data: {"a":1}\n\n']


def test_chunk_holds_only_given_delta_fields() -> None:
    """If a chunk is built with some fields, then only those appear in its delta."""
    built = chunk(reasoning_content="hmm", finish_reason="stop")

    assert built["object"] == "chat.completion.chunk"
    assert built["model"] == "MiniMaxAI/MiniMax-M2"
    assert built["choices"] == [
        {"index": 0, "delta": {"reasoning_content": "hmm"}, "finish_reason": "stop"}
    ]
    assert "usage" not in built


def test_usage_only_chunk_has_no_choices() -> None:
    """If choices=False, then the chunk has an empty choices list and carries the usage."""
    usage = {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}

    built = chunk(usage=usage, choices=False)

    assert built["choices"] == []
    assert built["usage"] == usage


def test_completion_keeps_null_content() -> None:
    """If a completion has tool calls and no content, then content is an explicit null."""
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}

    built = completion(
        None, reasoning_content="think", tool_calls=[call], finish_reason="tool_calls"
    )

    [choice] = built["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "reasoning_content": "think",
        "tool_calls": [call],
    }
    assert choice["finish_reason"] == "tool_calls"
    assert built["object"] == "chat.completion"


def test_stream_step_headers_override_content_type() -> None:
    """If stream_step gets headers, then they join the defaults, and a given content type wins."""
    step = stream_step([], headers={"Content-Type": "text/plain", "x-inference-provider": "novita"})

    assert step.headers == {"content-type": "text/plain", "x-inference-provider": "novita"}
    assert step.chunks == [b"data: [DONE]\n\n"]
