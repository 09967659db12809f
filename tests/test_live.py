"""The real Hugging Face router: runs only where HF_TOKEN is set and the router resolves."""

from __future__ import annotations

import pytest

import m2kit

pytestmark = pytest.mark.live


def test_router_answers_with_thinking_split(live_token: str) -> None:
    """If the real router answers MiniMax-M2, then answer, thinking and provider are there."""
    with m2kit.Client(api_key=live_token) as client:
        reply = client.chat("Reply with the single word: pong", max_tokens=1024)

    assert reply.provider
    assert "pong" in reply.text.lower()
    assert "</think>" not in reply.text
    assert reply.thinking
    assert "pong" in (reply.message["content"] or "").lower()


def test_router_streams(live_token: str) -> None:
    """If the real router streams MiniMax-M2, then the deltas add up to the reply, with usage."""
    with m2kit.Client(api_key=live_token) as client:
        events = list(client.stream("Count from 1 to 5, digits only.", max_tokens=1024))

    done = events[-1]
    assert isinstance(done, m2kit.Done)
    answer = "".join(e.text for e in events if isinstance(e, m2kit.AnswerDelta))
    assert answer == done.reply.text
    assert "5" in answer
    assert done.reply.usage is not None
