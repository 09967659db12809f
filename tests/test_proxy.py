"""The client honours HTTP_PROXY and NO_PROXY, seen through a real forward proxy on 127.0.0.1."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from _server import completion, json_step
from m2kit import Client, ConnectionFailed, RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Iterator

    from _server import ScriptedServer

# A name that never resolves (RFC 6761), so only the proxy can reach it.
UNRESOLVABLE = "http://m2kit.test/v1"
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class ForwardProxy(ThreadingHTTPServer):
    """Records each absolute-form request line and forwards the request to one upstream port."""

    daemon_threads = True

    def __init__(self, upstream_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream_port = upstream_port
        self.request_lines: list[str] = []
        self.authorizations: list[str | None] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ForwardProxy

    def _forward(self) -> None:
        self.server.request_lines.append(self.requestline)
        self.server.authorizations.append(self.headers.get("authorization"))
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        target = urlsplit(self.path)

        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream.request(self.command, target.path, body=body, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        upstream.close()

        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_GET = _forward

    def do_CONNECT(self) -> None:
        # An https tunnel: record it, then refuse, since there is no TLS upstream to reach.
        self.server.request_lines.append(self.requestline)
        self.send_response(502)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet, like the scripted server."""


@pytest.fixture
def proxy(server: ScriptedServer) -> Iterator[ForwardProxy]:
    upstream_port = urlsplit(server.base_url).port
    assert upstream_port is not None
    proxy = ForwardProxy(upstream_port)
    thread = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()
    thread.join()


def test_http_proxy_carries_the_request(
    server: ScriptedServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If HTTP_PROXY is set, then the request goes through it, without the local HF token."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("HF_TOKEN", "hf_localtokenabcdef")
    server.queue(json_step(completion("Plan.</think>Hi")))

    with Client(base_url=UNRESOLVABLE, retry=RetryPolicy(max_attempts=1)) as client:
        reply = client.chat("Hi")

    assert reply.text == "Hi"
    assert proxy.request_lines == ["POST http://m2kit.test/v1/chat/completions HTTP/1.1"]
    assert proxy.authorizations == [None]
    assert server.requests[0].path == "/v1/chat/completions"


def test_no_proxy_host_goes_direct(
    server: ScriptedServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If NO_PROXY covers the host, then the proxy is bypassed: the name must resolve on its own."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "m2kit.test")

    with (
        Client(base_url=UNRESOLVABLE, retry=RetryPolicy(max_attempts=1)) as client,
        pytest.raises(ConnectionFailed, match=r"m2kit\.test"),
    ):
        client.chat("Hi")

    assert proxy.request_lines == []


def test_no_proxy_loopback_reaches_the_server_directly(
    server: ScriptedServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If NO_PROXY covers the server's address, then it answers and the proxy sees nothing."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    server.queue(json_step(completion("Plan.</think>Hi")))

    with Client(base_url=server.base_url) as client:
        assert client.chat("Hi").text == "Hi"

    assert proxy.request_lines == []
    assert len(server.requests) == 1


def test_https_proxy_carries_https_requests(
    proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If HTTPS_PROXY is set, then an https base URL is tunnelled through it with CONNECT."""
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY")

    with (
        Client(base_url="https://m2kit.test/v1", retry=RetryPolicy(max_attempts=1)) as client,
        pytest.raises(ConnectionFailed),
    ):
        client.chat("Hi")

    assert proxy.request_lines == ["CONNECT m2kit.test:443 HTTP/1.1"]
