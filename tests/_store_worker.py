"""A separate process writing to a store, for the tests of m2kit._store that need several.

    python _store_worker.py DB CONVERSATION_ID TURNS [--hang]

It opens the store and prints "ready", waits for a line on standard input, writes TURNS complete
turns and prints "done". With --hang it then starts one more turn, prints "started" and sleeps
until it is killed; with --partial that turn first keeps a partial reply. The helpers here also
build the turns of test_store.py.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from m2kit._conversation import Turn
from m2kit._store import Store
from m2kit._types import Reply, Usage

MODEL = "MiniMaxAI/MiniMax-M2"


@dataclass
class Chat:
    """The parts of a conversation the store reads."""

    id: str
    title: str | None = None
    system: str | None = "Be brief."
    params: dict[str, Any] = field(default_factory=lambda: {"model": MODEL, "temperature": 1.0})
    created_at: float = field(default_factory=time.time)


def answer(text: str, *, thinking: str = "Let me think.", attempts: int = 1) -> Reply:
    """A complete reply whose thinking came inline, as MiniMax-M2 sends it through vLLM."""
    raw = f"{thinking}</think>\n\n{text}"
    return Reply(
        text=text,
        thinking=thinking,
        raw=raw,
        message={"role": "assistant", "content": raw},
        model=MODEL,
        provider="novita",
        finish_reason="stop",
        usage=Usage(prompt_tokens=12, completion_tokens=30, total_tokens=42, reasoning_tokens=9),
        request_id="req-1",
        thinking_source="inline",
        attempts=attempts,
    )


# What a stream had delivered when its process was killed: thinking done, the answer begun.
PARTIAL = Reply(
    text="The answer is",
    thinking="Let me think.",
    raw="Let me think.</think>\n\nThe answer is",
    message={"role": "assistant", "content": "Let me think.</think>\n\nThe answer is"},
    model=MODEL,
    provider="novita",
    finish_reason=None,
    usage=None,
    thinking_source="inline",
)


def complete(user: str, reply: Reply | None = None, *, started_at: float | None = None) -> Turn:
    return Turn(
        user=user,
        reply=reply or answer(f"An answer to {user}."),
        status="complete",
        started_at=time.time() if started_at is None else started_at,
        latency=1.25,
        first_token=0.5,
        model=MODEL,
    )


def main(argv: list[str]) -> None:
    path, conversation_id, turns = argv[1], argv[2], int(argv[3])
    chat = Chat(conversation_id)
    with Store(path) as store:
        print("ready", flush=True)
        sys.stdin.readline()

        for number in range(turns):
            text = f"{conversation_id} turn {number}"
            key = store.start_turn(chat, text)
            store.end_turn(chat, key, complete(text))
        if "--hang" in argv:
            key = store.start_turn(chat, "cut off")
            if "--partial" in argv:
                store.save_partial(chat, key, PARTIAL)
            print("started", flush=True)
            time.sleep(600)
        print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv)
