"""Replay of the real chat-completions traffic recorded under tests/fixtures/recorded/.

SOURCES.md there names each file's origin and its format. Every chat-completions response becomes
a `Step` for the scripted server: status, the headers a client reads, and the body as recorded.
SSE bodies are cut at event boundaries so they stream. Other requests (the Hub's `GET
api/models` lookups, text-classification and text-generation calls) are skipped.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from _server import Step, json_step, stream_step

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["FIXTURES", "Exchange", "load_exchanges", "load_steps", "recorded_chat_files"]

FIXTURES = Path(__file__).parent / "fixtures" / "recorded"

# What a client reads; the Hub also names errors in x-error-code and x-error-message.
_KEPT_HEADERS = (
    "content-type",
    "x-error-code",
    "x-error-message",
    "x-inference-provider",
    "x-request-id",
)
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
# The C loader builds the same plain objects as yaml.safe_load, about fifteen times faster.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Exchange:
    """One recorded chat-completions call.

    `url` and `request` (the JSON body sent) are None where the recording has no request:
    vercel-ai chunk files and TGI snapshots. A cassette may also have recorded no request body.
    """

    url: str | None
    request: Any
    step: Step


def load_exchanges(relative_path: str) -> list[Exchange]:
    """Each chat-completions call in the file, in recorded order."""
    path = FIXTURES / relative_path
    reader = _reader(path)
    if reader is None:
        raise ValueError(f"{relative_path}: not a recorded format described in SOURCES.md")
    return reader(path)


def load_steps(relative_path: str) -> list[Step]:
    """Each chat-completions response in the file, ready for `ScriptedServer.queue`."""
    return [exchange.step for exchange in load_exchanges(relative_path)]


def recorded_chat_files() -> list[str]:
    """Paths, relative to FIXTURES, of the files holding at least one chat-completions call."""
    return list(_chat_files())


@functools.cache
def _chat_files() -> tuple[str, ...]:
    found = (
        path.relative_to(FIXTURES).as_posix()
        for path in sorted(FIXTURES.rglob("*"))
        if path.is_file() and _reader(path) is not None
    )
    return tuple(name for name in found if load_exchanges(name))


def _reader(path: Path) -> Callable[[Path], list[Exchange]] | None:
    if path.suffix == ".yaml":
        return _from_cassette
    if path.name.endswith(".chunks.txt"):
        return _from_chunk_lines
    if path.suffix == ".sse":
        return _from_raw_sse
    if path.suffix == ".json" and path.parent.name == "huggingface.js":
        return _from_tape
    if path.suffix == ".json" and FIXTURES / "text-generation-inference" in path.parents:
        return _from_snapshot
    return None


def _from_cassette(path: Path) -> list[Exchange]:
    """vcrpy cassettes; pydantic-ai's keep JSON bodies decoded under `parsed_body`."""
    cassette = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    exchanges = []
    for interaction in cassette["interactions"]:
        request, response = interaction["request"], interaction["response"]
        if not _is_chat(request["method"], request["uri"]):
            continue

        headers = {name: ", ".join(values) for name, values in response["headers"].items()}
        if "parsed_body" in response:
            body = json.dumps(response["parsed_body"]).encode()
        else:
            body = _as_bytes(response["body"]["string"])
        step = _step(response["status"]["code"], headers, body)
        exchanges.append(Exchange(request["uri"], _cassette_request(request), step))
    return exchanges


def _cassette_request(request: Mapping[str, Any]) -> Any:
    if "parsed_body" in request:
        return request["parsed_body"]

    body = request.get("body")
    if isinstance(body, dict) and set(body) == {"string"}:
        body = body["string"]
    return json.loads(body) if isinstance(body, (str, bytes)) else body


def _from_tape(path: Path) -> list[Exchange]:
    """huggingface.js tapes: `{sha256: {url, init, response}}`, raw response text."""
    tape = json.loads(path.read_text(encoding="utf-8"))
    exchanges = []
    for entry in tape.values():
        init, response = entry["init"], entry["response"]
        if not _is_chat(init.get("method", "GET"), entry["url"]):
            continue

        body = init.get("body")
        step = _step(response["status"], response["headers"], response["body"].encode())
        exchanges.append(Exchange(entry["url"], json.loads(body) if body else None, step))
    return exchanges


def _from_chunk_lines(path: Path) -> list[Exchange]:
    """vercel-ai `*.chunks.txt`: one chunk's JSON per line, `data: ` and `[DONE]` removed."""
    lines = path.read_text(encoding="utf-8").splitlines()
    events = [f"data: {line}\n\n" for line in lines if line.strip()]
    return [Exchange(None, None, stream_step(events))]


def _from_raw_sse(path: Path) -> list[Exchange]:
    step = _step(200, {"content-type": "text/event-stream"}, path.read_bytes())
    return [Exchange(None, None, step)]


def _from_snapshot(path: Path) -> list[Exchange]:
    """TGI syrupy snapshots: parsed objects, a list of chunks for a stream.

    Snapshots keep no `[DONE]`; the replay adds it, since TGI sends it from 2.2 on
    (text-generation-inference#2221) and both snapshot versions here are later.
    """
    snapshot = json.loads(path.read_text(encoding="utf-8"))
    step = stream_step(snapshot) if isinstance(snapshot, list) else json_step(snapshot)
    return [Exchange(None, None, step)]


def _is_chat(method: str, url: str) -> bool:
    return method.upper() == "POST" and urlsplit(url).path.rstrip("/").endswith("/chat/completions")


def _step(status: int, headers: Mapping[str, str], body: bytes) -> Step:
    kept = {
        name.lower(): value
        for name, value in headers.items()
        if name.lower() in _KEPT_HEADERS or name.lower().startswith("retry-after")
    }
    if kept.get("content-type", "").lower().startswith("text/event-stream"):
        return Step(status=status, headers=kept, chunks=_split_events(body))
    return Step(status=status, headers=kept, body=body)


def _split_events(body: bytes) -> list[bytes]:
    """Cut after each blank line; what trails the last one (if anything) is the final piece."""
    pieces = []
    start = 0
    for end in _EVENT_END.finditer(body):
        pieces.append(body[start : end.end()])
        start = end.end()

    if start < len(body):
        pieces.append(body[start:])
    return pieces


def _as_bytes(body: str | bytes) -> bytes:
    # vcrpy stores binary bodies as `!!binary`, which safe_load already turns into bytes.
    return body if isinstance(body, bytes) else body.encode()
