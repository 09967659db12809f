"""Tests for m2kit._request: the body and headers of a chat request, built and on the wire."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from _server import completion, json_step
from m2kit import Client, ConfigError, ParameterDropped
from m2kit._request import ChatParams, ChatRequest, build_request

if TYPE_CHECKING:
    from _server import ScriptedServer
    from m2kit import Notice

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]


def build(
    params: ChatParams | None = None,
    *,
    stream: bool = False,
    is_router: bool = False,
    token: str | None = None,
    messages: Any = "Hi",
) -> ChatRequest:
    return build_request(
        base_url="http://127.0.0.1:8000/v1/",
        model="MiniMaxAI/MiniMax-M2",
        messages=messages,
        params=params or {},
        stream=stream,
        token=token,
        is_router=is_router,
        user_agent="m2kit/test",
    )


def test_defaults_are_m2s_recommended_sampling() -> None:
    """If no sampling is given, then temperature 1.0 and top_p 0.95 are sent, and no top_k."""
    request = build()

    assert request.body == {
        "model": "MiniMaxAI/MiniMax-M2",
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 1.0,
        "top_p": 0.95,
    }
    assert request.url == "http://127.0.0.1:8000/v1/chat/completions"


def test_none_means_not_sent() -> None:
    """If temperature and top_p are None, then neither is in the body."""
    body = build({"temperature": None, "top_p": None, "max_tokens": None}).body

    assert {"temperature", "top_p", "max_tokens"}.isdisjoint(body)


def test_top_k_goes_to_a_self_hosted_server() -> None:
    """If top_k is given for a self-hosted server, then it is sent and nothing is dropped."""
    request = build({"top_k": 40})

    assert (request.body["top_k"], request.notices) == (40, ())


def test_top_k_is_dropped_for_the_router_with_a_notice() -> None:
    """If top_k is given for the router, then it is not sent and a ParameterDropped says why."""
    request = build({"top_k": 40}, is_router=True)

    assert "top_k" not in request.body
    [notice] = request.notices
    assert isinstance(notice, ParameterDropped)
    assert notice.name == "top_k"
    assert "router" in notice.reason


def test_stream_asks_for_usage() -> None:
    """If the request streams, then it asks for SSE and for the usage chunk."""
    request = build(stream=True)

    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.headers["accept"] == "text/event-stream"
    assert "stream" not in build().body


def test_token_is_a_bearer_header_only_when_given() -> None:
    """If a token is given, then it is sent as Bearer; without one, no Authorization at all."""
    assert build(token="tok-1").headers["authorization"] == "Bearer tok-1"
    assert "authorization" not in build().headers


def test_extra_headers_replace_ours_whatever_their_case() -> None:
    """If an extra header differs from ours only in case, then it replaces ours: one is sent."""
    headers = build({"extra_headers": {"User-Agent": "mine/1", "X-HF-Bill-To": "org"}}).headers

    assert headers["user-agent"] == "mine/1"
    assert [name for name in headers if name.lower() == "user-agent"] == ["user-agent"]
    assert headers["x-hf-bill-to"] == "org"


def test_extra_body_is_merged_last() -> None:
    """If extra_body repeats a parameter, then extra_body's value is the one sent."""
    body = build(
        {"temperature": 0.2, "extra_body": {"temperature": 0.7, "repetition_penalty": 1.1}}
    ).body

    assert (body["temperature"], body["repetition_penalty"]) == (0.7, 1.1)


@pytest.mark.parametrize("stop", [("a", "b"), ["a", "b"]])
def test_stop_sequence_becomes_a_list(stop: Any) -> None:
    """If stop is any sequence of strings, then a JSON list is sent; a lone string stays one."""
    assert build({"stop": stop}).body["stop"] == ["a", "b"]
    assert build({"stop": "END"}).body["stop"] == "END"


def test_unknown_parameter_is_refused() -> None:
    """If a parameter is not a known one, then ConfigError names it."""
    with pytest.raises(ConfigError, match="temprature"):
        build({"temprature": 1.0})  # type: ignore[arg-type]  # the typo is the test


@pytest.mark.parametrize("messages", [[], [{"content": "no role"}], ["just text"]])
def test_bad_messages_are_refused(messages: Any) -> None:
    """If messages are empty or not role-carrying dicts, then ConfigError says so."""
    with pytest.raises(ConfigError, match="message"):
        build(messages=messages)


def test_message_list_is_copied() -> None:
    """If a message list is given, then later changes to it do not change the request."""
    messages = [{"role": "user", "content": "Hi"}]
    request = build(messages=messages)

    messages[0]["content"] = "changed"

    assert request.body["messages"] == [{"role": "user", "content": "Hi"}]


def test_every_parameter_reaches_the_server(server: ScriptedServer) -> None:
    """If every parameter is given, then the server receives each in the body and headers."""
    server.queue(json_step(completion("Plan.</think>Hi")))
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}

    with Client(base_url=server.base_url, headers={"X-Client": "c"}) as client:
        client.chat(
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            max_tokens=64,
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            stop=["END", "STOP"],
            seed=7,
            tools=TOOLS,
            tool_choice="auto",
            response_format=response_format,
            extra_body={"repetition_penalty": 1.05},
            extra_headers={"X-HF-Bill-To": "my-org"},
        )

    [request] = server.requests
    assert request.json() == {
        "model": "MiniMaxAI/MiniMax-M2",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "max_tokens": 64,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "stop": ["END", "STOP"],
        "seed": 7,
        "tools": TOOLS,
        "tool_choice": "auto",
        "response_format": response_format,
        "repetition_penalty": 1.05,
    }
    assert (request.headers["x-hf-bill-to"], request.headers["x-client"]) == ("my-org", "c")


def test_per_call_model_overrides_the_clients(server: ScriptedServer) -> None:
    """If a call passes model=, then that model is sent instead of the client's."""
    server.queue(json_step(completion("Hi")))

    with Client(model="a/one", base_url=server.base_url) as client:
        client.chat("Hi", model="b/two")

    assert server.requests[0].json()["model"] == "b/two"


def test_router_client_tells_on_notice_that_top_k_is_dropped() -> None:
    """If a router client is asked for top_k, then on_notice hears it before any request."""
    notices: list[Notice] = []

    with Client(api_key="tok-1", on_notice=notices.append) as client:
        client.stream("Hi", top_k=40)  # built at once; never iterated, so never sent

    assert notices == [ParameterDropped("top_k", "the Hugging Face router does not accept it")]
