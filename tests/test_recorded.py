"""The recorded-traffic loader turns every fixture format into steps that match SOURCES.md."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx2
import pytest
import yaml

from _recorded import FIXTURES, load_exchanges, load_steps, recorded_chat_files

if TYPE_CHECKING:
    from _server import ScriptedServer

HUB = "huggingface_hub"
PYDANTIC = "pydantic-ai"
TGI = "text-generation-inference"
CEREBRAS_STREAM = (
    f"{HUB}/TestInferenceClient.test_chat_completion_with_stream[cerebras,conversational].yaml"
)


def _events(chunks: list[bytes] | None) -> list[bytes]:
    assert chunks is not None
    return chunks


@pytest.mark.parametrize("relative_path", recorded_chat_files())
def test_every_chat_file_gives_well_formed_steps(relative_path: str) -> None:
    """If a recorded chat file is loaded, then each step has a status and a body or event chunks."""
    steps = load_steps(relative_path)

    assert steps
    for step in steps:
        assert 200 <= step.status < 600
        assert "content-type" in step.headers
        if step.headers["content-type"].startswith("text/event-stream"):
            assert step.chunks
            assert all(step.chunks)
            assert all(piece.endswith(b"\n\n") for piece in step.chunks[:-1])
        else:
            assert step.chunks is None
            assert step.body


def test_only_non_chat_files_are_left_out() -> None:
    """If the fixtures are listed, then only SOURCES.md and the two non-chat cassettes are out."""
    every_file = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*") if p.is_file()}

    left_out = every_file - set(recorded_chat_files())

    assert left_out == {
        "SOURCES.md",
        f"{HUB}/TestInferenceClient.test_text_classification[hf-inference,text-classification].yaml",
        f"{HUB}/TestTextGenerationClientVCR.test_generate_validation_error.yaml",
    }


def test_cassettes_load_with_safe_load() -> None:
    """If every cassette is read with yaml.safe_load, then none uses a tag it refuses."""
    for path in FIXTURES.rglob("*.yaml"):
        assert "interactions" in yaml.safe_load(path.read_text(encoding="utf-8"))


def test_unknown_format_is_refused() -> None:
    """If a file is not one of the recorded formats, then loading it says so."""
    with pytest.raises(ValueError, match="not a recorded format"):
        load_steps("SOURCES.md")


def test_hub_401_cassette_gives_one_401_step() -> None:
    """If the huggingface_hub 401 cassette is loaded, then its model lookup is skipped: one 401."""
    [step] = load_steps(f"{HUB}/TestInferenceClient.test_chat_completion_unprocessable_entity.yaml")

    assert step.status == 401
    assert json.loads(step.body) == {"error": "Invalid username or password."}
    assert step.headers["x-error-message"] == "Invalid username or password."
    assert step.headers["x-request-id"].startswith("Root=")


def test_tgi_422_cassette_has_a_plain_text_body() -> None:
    """If the older 422 cassette is loaded, then its body is TGI's plain-text message."""
    [step] = load_steps(
        f"{HUB}/at-a70b69d0/TestInferenceClient.test_chat_completion_unprocessable_entity.yaml"
    )

    assert step.status == 422
    assert step.headers["content-type"] == "text/plain; charset=utf-8"
    assert step.body.startswith(b"Failed to deserialize the JSON body into the target type")


def test_cerebras_stream_has_no_done() -> None:
    """If the cerebras stream is loaded, then it streams usage at the end and never sends [DONE]."""
    [step] = load_steps(CEREBRAS_STREAM)
    chunks = _events(step.chunks)

    assert not any(b"[DONE]" in piece for piece in chunks)
    assert b'"usage"' in chunks[-1]
    assert b'"time_info"' in chunks[-1]


def test_cassette_stream_is_cut_at_events_byte_for_byte() -> None:
    """If a cassette's SSE body is split, then the pieces are whole events that join to the body."""
    cassette = yaml.safe_load((FIXTURES / CEREBRAS_STREAM).read_text(encoding="utf-8"))
    recorded = cassette["interactions"][1]["response"]["body"]["string"].encode()

    [step] = load_steps(CEREBRAS_STREAM)
    chunks = _events(step.chunks)

    assert b"".join(chunks) == recorded
    assert all(piece.startswith(b"data: ") and piece.endswith(b"\n\n") for piece in chunks)


def test_cassette_exchange_keeps_the_request() -> None:
    """If a cassette exchange is loaded, then its request JSON and URL are as recorded."""
    [exchange] = load_exchanges(CEREBRAS_STREAM)

    assert exchange.url == "https://router.huggingface.co/cerebras/v1/chat/completions"
    assert exchange.request["model"] == "llama-3.3-70b"
    assert exchange.request["stream"] is True


def test_pydantic_parsed_body_is_reencoded_as_json() -> None:
    """If a pydantic-ai cassette keeps a parsed body, then the step sends it as JSON again."""
    [exchange] = load_exchanges(f"{PYDANTIC}/test_tool_regular_error.yaml")

    assert exchange.step.status == 404
    assert json.loads(exchange.step.body)["error"]["code"] == "model_not_found"
    assert exchange.request["model"] == "non-existent"


def test_together_500_keeps_retry_after() -> None:
    """If the together cassette is loaded, then it gives a 200, then a 500 with its Retry-After."""
    ok, failed = load_steps(f"{PYDANTIC}/test_together_500_on_tool_continuation.yaml")

    assert (ok.status, failed.status) == (200, 500)
    assert failed.headers["retry-after"] == "1"
    assert json.loads(failed.body)["error"]["type"] == "server_error"


def test_openrouter_429s_are_three_steps() -> None:
    """If the OpenRouter rate-limit cassette is loaded, then it gives three 429 steps."""
    steps = load_steps(f"{PYDANTIC}/test_openrouter_errors_raised.yaml")

    assert [step.status for step in steps] == [429, 429, 429]


def test_groq_mid_stream_error_has_no_done() -> None:
    """If the Groq tool_use_failed stream is loaded, then its first stream ends in event: error."""
    first, second, third = load_steps(f"{PYDANTIC}/test_tool_use_failed_error_streaming.yaml")
    chunks = _events(first.chunks)

    assert chunks[-1].startswith(b"event: error\n")
    assert not any(b"[DONE]" in piece for piece in chunks)
    assert _events(second.chunks)[-1] == _events(third.chunks)[-1] == b"data: [DONE]\n\n"


def test_non_chat_calls_in_a_cassette_are_skipped() -> None:
    """If a cassette mixes a chat call with text-generation calls, then only the chat 500 stays."""
    [exchange] = load_exchanges(f"{HUB}/test_async_chat_completion_not_tgi_no_stream.yaml")

    assert exchange.step.status == 500
    assert exchange.url is not None
    assert exchange.url.endswith("/v1/chat/completions")
    assert exchange.request is None


def test_vercel_chunk_lines_become_sse_with_done() -> None:
    """If a vercel-ai chunk file is loaded, then each line is a data event and [DONE] is added."""
    lines = (FIXTURES / "vercel-ai/groq-tool-call.chunks.txt").read_text().splitlines()

    [exchange] = load_exchanges("vercel-ai/groq-tool-call.chunks.txt")
    chunks = _events(exchange.step.chunks)

    assert chunks == [f"data: {line}\n\n".encode() for line in lines] + [b"data: [DONE]\n\n"]
    assert (exchange.url, exchange.request) == (None, None)


def test_raw_sse_file_is_replayed_verbatim() -> None:
    """If the raw .sse file is loaded, then its events join back to the file's exact bytes."""
    recorded = (FIXTURES / "vercel-ai/anthropic-fallback-tool-call.sse").read_bytes()

    [step] = load_steps("vercel-ai/anthropic-fallback-tool-call.sse")

    assert b"".join(_events(step.chunks)) == recorded
    assert step.headers["content-type"] == "text/event-stream"


def test_tgi_stream_snapshot_becomes_events() -> None:
    """If a TGI stream snapshot is loaded, then each parsed chunk is one event, then [DONE]."""
    relative = f"{TGI}/at-e898483d-tgi-2.2.1/test_flash_llama_grammar_tools_stream.json"
    parsed = json.loads((FIXTURES / relative).read_text())

    [step] = load_steps(relative)
    chunks = _events(step.chunks)

    assert [json.loads(piece.removeprefix(b"data: ")) for piece in chunks[:-1]] == parsed
    assert chunks[-1] == b"data: [DONE]\n\n"


def test_tgi_whole_snapshot_becomes_json() -> None:
    """If a TGI non-streaming snapshot is loaded, then the step's JSON body equals it."""
    relative = f"{TGI}/test_flash_llama_grammar_tools_auto_nostream.json"

    [step] = load_steps(relative)

    assert step.headers["content-type"] == "application/json"
    assert json.loads(step.body) == json.loads((FIXTURES / relative).read_text())


def test_tape_gives_its_chat_entries() -> None:
    """If the huggingface.js tape is loaded, then its 69 chat entries load, the 3 other 404s not."""
    exchanges = load_exchanges("huggingface.js/tapes.chat_completions.json")

    assert len(exchanges) == 69
    assert all(e.url is not None and e.url.endswith("/chat/completions") for e in exchanges)
    statuses = {e.step.status for e in exchanges}
    assert statuses == {200, 400, 401, 422}
    assert all(isinstance(e.request, dict) for e in exchanges)


def test_recorded_stream_replays_through_the_server(server: ScriptedServer) -> None:
    """If a recorded stream is queued, then a client reads back exactly the recorded events."""
    [step] = load_steps(CEREBRAS_STREAM)
    server.queue(step)

    with (
        httpx2.Client(timeout=10.0) as client,
        client.stream("POST", f"{server.base_url}/chat/completions", json={}) as response,
    ):
        received = b"".join(response.iter_raw())

    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert received == b"".join(_events(step.chunks))
