"""The README stays true: its Python example runs, and CI runs its test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from _server import chunk, completion, json_step, stream_step

if TYPE_CHECKING:
    from _server import ScriptedServer

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_python_example_runs(server: ScriptedServer, tmp_path: Path) -> None:
    """If the README's Python example is run against a server, then it works and sends history."""
    code = re.search(r"```python\n(.*?)```", README, re.DOTALL)
    assert code is not None
    script = tmp_path / "example.py"
    script.write_text(code.group(1), encoding="utf-8")
    server.queue(
        json_step(completion("Recursion.</think>\n\ndef fact(n): ...")),
        stream_step([chunk(content="Loops.</think>\n\nfor"), chunk(finish_reason="stop")]),
    )

    env = {"M2_BASE_URL": server.base_url, "PATH": "", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 0, result.stderr
    assert "def fact(n): ..." in result.stdout
    assert result.stdout.endswith("for\n[stop]\n")
    history = server.requests[1].json()["messages"]
    assert history[1]["content"] == "Recursion.</think>\n\ndef fact(n): ..."


def test_tools_example_runs(server: ScriptedServer, tmp_path: Path) -> None:
    """If the README's tools example is run against a server, then the tool runs, its result and
    the step's thinking go back, and parse returns the model."""
    blocks = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    assert len(blocks) == 2
    script = tmp_path / "tools_example.py"
    script.write_text(blocks[1], encoding="utf-8")
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    city = '{"name": "Tokyo", "country": "Japan", "population": 37000000}'
    server.queue(
        json_step(completion("Check the sky.</think>\n\n", tool_calls=[call])),
        json_step(completion("Clear.</think>\n\nNo umbrella needed.")),
        json_step(completion(f"Tokyo.</think>\n\n```json\n{city}\n```")),
    )

    env = {"M2_BASE_URL": server.base_url, "PATH": "", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "No umbrella needed. answer\n"
        '[\'get_weather\'] [\'{"city": "Paris", "days": 1, "sky": "clear"}\']\n'
        "Tokyo 37000000\n"
    )
    second = server.requests[1].json()["messages"]
    assert second[1]["content"] == "Check the sky.</think>\n\n"
    assert second[2]["role"] == "tool"
    assert second[2]["tool_call_id"] == "call_1"
    assert '"sky": "clear"' in second[2]["content"]


def test_ci_runs_the_readme_test_command() -> None:
    """If the README's test command changes, then .ci/run must run the same one."""
    commands = re.findall(r"```console\n\$ (uv run pytest[^\n]*)\n```", README)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")

    assert commands == ["uv run pytest"]
    assert "\nuv run pytest\n" in ci
