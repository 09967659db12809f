"""A real OpenAI-compatible HTTP server on 127.0.0.1 that answers scripted steps.

Tests queue `Step`s and point a client at `ScriptedServer.base_url`. Each POST to a path ending in
`/chat/completions` takes the next step; `GET /v1/models` answers the payload given to `models()`;
anything else gets a 404. Steps can stream, stall, drop the connection mid-body or hang up, so every
failure the client must survive is a real socket event, not a patched function.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import TracebackType

__all__ = [
    "DEFAULT_MODEL",
    "Recorded",
    "ScriptedServer",
    "Step",
    "chunk",
    "completion",
    "error_step",
    "json_step",
    "sse",
    "stream_step",
]

DEFAULT_MODEL = "MiniMaxAI/MiniMax-M2"
_CREATED = 1_700_000_000
_FRAMING = frozenset({"content-length", "transfer-encoding"})


@dataclass
class Step:
    """One scripted answer.

    - `body` goes whole with `Content-Length`; `chunks`, when set, go one by one with
      `Transfer-Encoding: chunked`, each written and flushed on its own after `chunk_delay`
      seconds. An empty chunk is skipped, since on the wire it would end the body.
    - `drop_after=N` closes the socket after N chunks, without the final zero-length chunk.
    - `hang_up` reads the request, then closes the connection without any response.
    - `truncate_body` sends the `Content-Length` of `body` but only its first half, then closes.
    - `delay` is how many seconds to wait before answering at all (or hanging up).

    The server owns the framing: `content-length` and `transfer-encoding` in `headers` are ignored.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[bytes] | None = None
    chunk_delay: float = 0.0
    drop_after: int | None = None
    hang_up: bool = False
    truncate_body: bool = False
    delay: float = 0.0


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it. Header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


_NOTHING_SCRIPTED = object()


class ScriptedServer:
    """A threaded HTTP/1.1 server bound to 127.0.0.1 on a free port, started on creation.

    `requests` lists every request received, in order, including those answered with an error;
    `connections` counts the connections accepted (a client that reuses one opens fewer).
    With no step left, a chat request gets 500 `{"error": {"message": "test server: no scripted
    step left"}}`; with no `models()` payload, `GET /v1/models` gets a 500 of the same kind.
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._steps: deque[Step] = deque()
        self._models: object = _NOTHING_SCRIPTED

        self._httpd = _HTTPServer(self)
        port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="scripted-server",
            daemon=True,
        )
        self._thread.start()

    def queue(self, *steps: Step) -> None:
        with self._lock:
            self._steps.extend(steps)

    def models(self, payload: object) -> None:
        with self._lock:
            self._models = payload

    def reset(self) -> None:
        with self._lock:
            self._steps.clear()
            self._models = _NOTHING_SCRIPTED
            self.requests.clear()
            self.connections = 0

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _answer(self, request: Recorded) -> Step:
        route = urlsplit(request.path).path
        with self._lock:
            self.requests.append(request)
            if request.method == "POST" and route.endswith("/chat/completions"):
                if not self._steps:
                    return _test_error("no scripted step left")
                return self._steps.popleft()
            if request.method == "GET" and route == "/v1/models":
                if self._models is _NOTHING_SCRIPTED:
                    return _test_error("no models payload scripted")
                return json_step(self._models)

        message = f"test server: no route for {request.method} {route}"
        return error_step(404, {"error": {"message": message}})


class _HTTPServer(ThreadingHTTPServer):
    block_on_close = False

    def __init__(self, script: ScriptedServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that leaves mid-answer (Ctrl-C, a closed pipe, a test that stops reading) is
        # what several tests do on purpose; anything else still gets its traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without it a chunk written after a small one can wait for a delayed ACK (~40 ms on Linux).
    disable_nagle_algorithm = True
    # Bounds how long an idle keep-alive connection holds a thread.
    timeout = 30
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.script._lock:
            self.server.script.connections += 1

    def _handle(self) -> None:
        body = self._read_body()
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value

        step = self.server.script._answer(Recorded(self.command, self.path, headers, body))
        try:
            self._play(step)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: pytest shows what matters, and the server's stderr is noise."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _read_chunked_body(self) -> bytes:
        parts: list[bytes] = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()

        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(parts)

    def _play(self, step: Step) -> None:
        if step.delay:
            time.sleep(step.delay)
        if step.hang_up:
            self.close_connection = True
            return

        self.send_response(step.status)
        for name, value in step.headers.items():
            if name.lower() not in _FRAMING:
                self.send_header(name, value)

        if step.chunks is None:
            self._send_whole(step)
        else:
            self._send_chunks(step, step.chunks)

    def _send_whole(self, step: Step) -> None:
        self.send_header("Content-Length", str(len(step.body)))
        self.end_headers()

        if step.truncate_body:
            self.wfile.write(step.body[: len(step.body) // 2])
            self._drop()
        else:
            self.wfile.write(step.body)

    def _send_chunks(self, step: Step, chunks: list[bytes]) -> None:
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        for piece in chunks if step.drop_after is None else chunks[: step.drop_after]:
            if step.chunk_delay:
                time.sleep(step.chunk_delay)
            if piece:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))

        if step.drop_after is None:
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._drop()

    def _drop(self) -> None:
        """Close mid-body: the client gets end-of-file before the body is complete."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def sse(*events: dict[str, Any] | str, done: bool = True) -> list[bytes]:
    """One `data: <json>` event per dict; str items are raw SSE text, passed through verbatim."""
    pieces = [
        event.encode() if isinstance(event, str) else b"data: " + _dumps(event) + b"\n\n"
        for event in events
    ]
    if done:
        pieces.append(b"data: [DONE]\n\n")
    return pieces


def chunk(
    content: str | None = None,
    reasoning_content: str | None = None,
    reasoning: str | None = None,
    reasoning_details: list[dict[str, Any]] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
    role: str | None = None,
    choices: bool = True,
    model: str = DEFAULT_MODEL,
) -> dict[str, Any]:
    """One `chat.completion.chunk`; delta fields left as None are omitted.

    `choices=False` gives `choices: []`, the shape of a usage-only last chunk.
    """
    delta = _present(
        role=role,
        content=content,
        reasoning_content=reasoning_content,
        reasoning=reasoning,
        reasoning_details=reasoning_details,
        tool_calls=tool_calls,
    )
    payload: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
        if choices
        else [],
    }
    return payload | _present(usage=usage)


def completion(
    content: str | None,
    reasoning_content: str | None = None,
    reasoning: str | None = None,
    reasoning_details: list[dict[str, Any]] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str | None = "stop",
    usage: dict[str, Any] | None = None,
    model: str = DEFAULT_MODEL,
) -> dict[str, Any]:
    """One whole `chat.completion`; `content` is always present, other message fields when given."""
    message = {"role": "assistant", "content": content} | _present(
        reasoning_content=reasoning_content,
        reasoning=reasoning,
        reasoning_details=reasoning_details,
        tool_calls=tool_calls,
    )
    payload: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": _CREATED,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
    }
    return payload | _present(usage=usage)


def stream_step(
    events: Iterable[dict[str, Any] | str],
    *,
    headers: dict[str, str] | None = None,
    done: bool = True,
    status: int = 200,
    chunk_delay: float = 0.0,
    drop_after: int | None = None,
) -> Step:
    """An SSE answer, one chunk per event (see `sse`), as `text/event-stream` unless overridden."""
    return Step(
        status=status,
        headers=_headers("text/event-stream", headers),
        chunks=sse(*events, done=done),
        chunk_delay=chunk_delay,
        drop_after=drop_after,
    )


def json_step(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Step:
    return Step(status=status, headers=_headers("application/json", headers), body=_dumps(payload))


def error_step(
    status: int, body: str | dict[str, Any], headers: dict[str, str] | None = None
) -> Step:
    """An error answer: dict bodies as JSON, str bodies as `text/plain`."""
    if isinstance(body, dict):
        return json_step(body, status, headers)
    return Step(
        status=status,
        headers=_headers("text/plain; charset=utf-8", headers),
        body=body.encode(),
    )


def _test_error(problem: str) -> Step:
    return error_step(500, {"error": {"message": f"test server: {problem}"}})


def _headers(content_type: str, extra: dict[str, str] | None) -> dict[str, str]:
    return {"content-type": content_type} | {k.lower(): v for k, v in (extra or {}).items()}


def _present(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def _dumps(payload: object) -> bytes:
    # Compact and UTF-8, as the OpenAI-compatible servers in the recordings send it.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
