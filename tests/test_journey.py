"""Issue 3's journey as a user takes it: chat, leave, continue, find it, see the spend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from _server import chunk, stream_step

if TYPE_CHECKING:
    from _server import ScriptedServer

M2 = str(Path(sys.executable).with_name("m2"))
PRICES = {"input": 0.3, "output": 1.2}
CATALOG = {
    "data": [
        {
            "id": "MiniMaxAI/MiniMax-M2",
            "providers": [{"provider": "novita", "status": "live", "pricing": PRICES}],
        }
    ]
}


def turn(thinking: str, answer: str) -> list[dict[str, object]]:
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    return [
        chunk(content=f"{thinking}</think>\n\n{answer}"),
        chunk(finish_reason="stop"),
        chunk(choices=False, usage=usage),
    ]


def m2(
    server: ScriptedServer, home: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "M2_BASE_URL": server.base_url, "M2_HOME": str(home)}
    return subprocess.run(
        [M2, *args], input=stdin, env=env, capture_output=True, text=True, timeout=60
    )


def test_chat_then_continue_then_logs_then_usage(server: ScriptedServer, tmp_path: Path) -> None:
    """If a user chats, leaves, continues with m2 ask -c, then logs and usage show it all."""
    served = {"x-inference-provider": "novita"}
    server.queue(
        stream_step(turn("Small primes first.", "2 is prime."), headers=served),
        stream_step(turn("Next odd one.", "3 is prime."), headers=served),
        stream_step(turn("Keep going.", "5 is prime."), headers=served),
    )
    server.models(CATALOG)

    chat = m2(server, tmp_path, "chat", stdin="Name a prime.\nAnother?\n")
    again = m2(server, tmp_path, "ask", "-c", "One more?")
    logs = m2(server, tmp_path, "logs", "--json")
    usage = m2(server, tmp_path, "usage", "--json")

    assert chat.returncode == 0, chat.stderr
    assert "2 is prime." in chat.stdout
    assert "3 is prime." in chat.stdout
    assert again.stdout == "5 is prime.\n"
    assert server.requests[2].json()["messages"] == [
        {"role": "user", "content": "Name a prime."},
        {"role": "assistant", "content": "Small primes first.</think>\n\n2 is prime."},
        {"role": "user", "content": "Another?"},
        {"role": "assistant", "content": "Next odd one.</think>\n\n3 is prime."},
        {"role": "user", "content": "One more?"},
    ]
    (listed,) = json.loads(logs.stdout)
    assert listed["turns"] == 3
    totals = json.loads(usage.stdout)["totals"]
    # 3 calls of 1,000 prompt tokens at $0.30/M and 500 completion tokens at $1.20/M
    assert (totals["calls"], totals["total_tokens"]) == (3, 4500)
    assert abs(totals["usd"] - 3 * (1000 * 0.3 + 500 * 1.2) / 1e6) < 1e-9
