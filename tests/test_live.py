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


@m2kit.tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def test_router_runs_a_tool_loop(live_token: str) -> None:
    """If the real router's MiniMax-M2 is given a tool, then it calls it and answers with the
    result, its thinking kept in the step that went back."""
    with m2kit.Client(api_key=live_token) as client:
        conversation = client.conversation()
        result = conversation.run(
            "What is 1234 + 4321? Use the add tool.", tools=[add], max_steps=4, max_tokens=2048
        )

    assert result.stopped == "answer"
    assert result.steps
    assert result.steps[0].results[0].content == "5555"
    assert "5555" in result.text.replace(",", "")


def test_router_parses_structured_output(live_token: str) -> None:
    """If the real router is asked for a schema, then parse returns a validated object."""
    import pydantic

    class Capital(pydantic.BaseModel):
        country: str
        city: str

    with m2kit.Client(api_key=live_token) as client:
        found = client.parse("The capital of France, as JSON.", schema=Capital, max_tokens=2048)

    assert found.city.lower() == "paris"
