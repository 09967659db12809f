"""The benchmark's replies and the local server that streams them.

A reply is MiniMax-M2's raw output cut into stream pieces: it starts inside the thinking (the
chat template opened it), closes it with `</think>` as one token, then answers. The server is a
real HTTP/1.1 server on 127.0.0.1 that answers every chat request under `/<name>/v1` with the
reply called `name`, as vLLM streams it: one `chat.completion.chunk` per piece, a usage chunk
with `choices: []`, then `data: [DONE]`.

Encoding 20,000 chunks as JSON costs more than reading them, so each answer (status line,
headers and the chunked body) is encoded once, at start, and sent in a single write: the
server stays out of the clients' measured time.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

    from typing_extensions import Self

MODEL = "MiniMaxAI/MiniMax-M2"
PROMPT = "Write a Python function to calculate factorial."
CLOSE_TAG = "</think>"

_SMALL_THINKING = (
    "The user wants a factorial function in Python. A loop avoids the recursion limit for"
    " large n, and negative input should raise ValueError rather than return 1."
)
_SMALL_ANSWER = (
    "```python\n"
    "def factorial(n: int) -> int:\n"
    "    if n < 0:\n"
    '        raise ValueError("n must be >= 0")\n'
    "    result = 1\n"
    "    for k in range(2, n + 1):\n"
    "        result *= k\n"
    "    return result\n"
    "```"
)


def _vocabulary(tokens: str) -> tuple[str, ...]:
    return tuple(tokens.split("|"))


# Token-like pieces, separated by "|"; " <" makes the splitter hold text back as a possible start
# of `</think>`, and "…" and "≥" make the body non-ASCII, as real thinking often is.
_THINKING_TOKENS = _vocabulary(
    " the| factorial| of| n| is| the| product| 1| *| 2| *| …| *| n|.| For| k| <| 2| it| is| 1|;"
    "| recursion| would| hit| the| limit|,| so| loop| for| n| ≥| 2|.|\n"
)
_ANSWER_TOKENS = _vocabulary(
    "def| factorial|(n|:| int|)| ->| int|:|\n|   | result| =| 1|\n|   | for| k| in| range|(2|,"
    "| n| +| 1|):|\n|       | result| *=| k|\n|   | return| result|\n|#| 5|!| =| 120| …|\n"
)


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted reply: the content pieces, one per stream chunk."""

    name: str
    pieces: tuple[str, ...]
    usage: Mapping[str, int]

    @property
    def raw(self) -> str:
        return "".join(self.pieces)

    @property
    def thinking(self) -> str:
        return self.raw.split(CLOSE_TAG, 1)[0].strip()

    @property
    def answer(self) -> str:
        return self.raw.split(CLOSE_TAG, 1)[1].lstrip()

    @property
    def chunk_count(self) -> int:
        """How many chunks `chunks()` returns: the pieces, plus role, finish and usage chunks."""
        return len(self.pieces) + 3

    def chunks(self) -> list[dict[str, Any]]:
        """The `chat.completion.chunk` objects of the stream, in order."""
        first = [_chunk({"role": "assistant", "content": ""})]
        content = [_chunk({"content": piece}) for piece in self.pieces]
        last = [_chunk({}, finish_reason="stop"), {**_chunk(None), "usage": dict(self.usage)}]
        return first + content + last

    def sse_body(self) -> bytes:
        """The stream as server-sent events, one HTTP chunk per event."""
        events = [b"data: " + dumps(chunk) + b"\n\n" for chunk in self.chunks()]
        events.append(b"data: [DONE]\n\n")
        framed = [b"%x\r\n%s\r\n" % (len(event), event) for event in events]
        return b"".join(framed) + b"0\r\n\r\n"


def small_reply() -> ScriptedReply:
    """A short reply: a sentence of thinking, `</think>`, a few lines of code, usage."""
    pieces = [*_cut(_SMALL_THINKING, 12), CLOSE_TAG, "\n\n", *_cut(_SMALL_ANSWER, 8)]
    return ScriptedReply("small", tuple(pieces), _usage(len(pieces)))


def big_reply(chunks: int) -> ScriptedReply:
    """`chunks` pieces of a few tokens each: thinking for the first half, then the answer."""
    thinking = max(1, chunks // 2 - 1)
    answer = max(1, chunks - thinking - 2)
    pieces = [*_tokens(_THINKING_TOKENS, thinking), CLOSE_TAG, "\n\n"]
    pieces += _tokens(_ANSWER_TOKENS, answer)
    return ScriptedReply("big", tuple(pieces), _usage(len(pieces)))


def _cut(text: str, size: int) -> list[str]:
    return [text[at : at + size] for at in range(0, len(text), size)]


def _tokens(vocabulary: tuple[str, ...], count: int) -> list[str]:
    # One to three tokens per piece, walking the vocabulary so the text reads like a loop.
    pieces, at = [], 0
    for index in range(count):
        width = 1 + index % 3
        pieces.append("".join(vocabulary[(at + k) % len(vocabulary)] for k in range(width)))
        at += width
    return pieces


def _usage(completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": 42,
        "completion_tokens": completion_tokens,
        "total_tokens": 42 + completion_tokens,
    }


def _chunk(delta: dict[str, str] | None, finish_reason: str | None = None) -> dict[str, Any]:
    choices = [] if delta is None else [_choice(delta, finish_reason)]
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": choices,
    }


def _choice(delta: dict[str, str], finish_reason: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def dumps(payload: object) -> bytes:
    # Compact UTF-8 JSON, as vLLM and the router's providers send it.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def response(status: str, content_type: str, body: bytes, *, chunked: bool) -> bytes:
    framing = "transfer-encoding: chunked" if chunked else f"content-length: {len(body)}"
    head = f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{framing}\r\n\r\n"
    return head.encode() + body


class LocalServer:
    """A threaded HTTP/1.1 server on a free port of 127.0.0.1, started on creation; subclasses
    say what each POST gets (`answer`). `connections` counts the connections accepted. Use it
    as a context manager, or call `close()`."""

    def __init__(self, name: str) -> None:
        self.served = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._httpd = _HTTPServer(self)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=name, daemon=True)
        self._thread.start()

    def base_url(self, route: str) -> str:
        return f"http://127.0.0.1:{self._port}/{route}/v1"

    def answer(self, path: str, body: bytes) -> bytes:
        """The whole HTTP response, head and body, to a POST of `body` to `path`."""
        raise NotImplementedError

    def connected(self) -> None:
        with self._lock:
            self.connections += 1

    def count_served(self) -> None:
        with self._lock:
            self.served += 1

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class BenchServer(LocalServer):
    """A `LocalServer` whose `base_url(name)` streams the reply called `name`.

    A request for an unknown reply, or one that does not ask for a stream, gets a 400 with an
    OpenAI-style error body, so a misconfigured client fails instead of being timed. `served`
    counts the streams sent.
    """

    def __init__(self, *replies: ScriptedReply) -> None:
        self._answers = {
            reply.name: response("200 OK", "text/event-stream", reply.sse_body(), chunked=True)
            for reply in replies
        }
        super().__init__("bench-server")

    def answer(self, path: str, body: bytes) -> bytes:
        name, _, route = path.lstrip("/").partition("/")
        try:
            request = json.loads(body)
        except ValueError:
            request = None

        if name not in self._answers or route != "v1/chat/completions":
            return error_response(f"bench server: no reply at {path}")
        if not isinstance(request, dict) or request.get("stream") is not True:
            return error_response("bench server: only streamed chat requests are answered")

        self.count_served()
        return self._answers[name]


def error_response(message: str) -> bytes:
    body = dumps({"error": {"message": message, "type": "invalid_request_error"}})
    return response("400 Bad Request", "application/json", body, chunked=False)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: LocalServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner.connected()
        super().process_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # A small answer written after the request's ACK is due can otherwise wait ~40 ms on Linux.
    disable_nagle_algorithm = True
    timeout = 30
    server: _HTTPServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.wfile.write(self.server.owner.answer(self.path, body))

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the benchmark's table is the output."""
