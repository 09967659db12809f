"""`m2 models` end to end: a subprocess against the scripted server's GET /v1/models."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from _server import Recorded, ScriptedServer

M2 = str(Path(sys.executable).with_name("m2"))

MINIMAX_M2: dict[str, Any] = {
    "id": "MiniMaxAI/MiniMax-M2",
    "object": "model",
    "created": 1761000000,
    "owned_by": "MiniMaxAI",
    "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
    "providers": [
        {
            "provider": "novita",
            "status": "live",
            "context_length": 204800,
            "pricing": {"input": 0.3, "output": 1.0},
            "supports_tools": True,
            "supports_structured_output": False,
            "first_token_latency_ms": 850,
            "throughput": 62.5,
            "is_model_author": False,
        },
        {
            "provider": "fireworks-ai",
            "status": "live",
            "context_length": 196608,
            "pricing": {"input": 0.3, "output": 1.2},
            "supports_tools": True,
            "supports_structured_output": True,
            "first_token_latency_ms": 420,
            "throughput": 140.1,
            "is_model_author": False,
        },
        # Fastest and cheapest on paper, but its last probe failed: neither policy picks it.
        {
            "provider": "together",
            "status": "error",
            "context_length": 196608,
            "pricing": {"input": 0.1, "output": 0.5},
            "throughput": 300.0,
        },
        {"provider": "nscale", "status": "live", "supports_tools": False},
    ],
}
# The router's shape (REFERENCE.md): a sibling id that contains "MiniMax-M2", a model with one
# provider and few figures, and one that no provider serves.
ROUTER: dict[str, Any] = {
    "object": "list",
    "data": [
        MINIMAX_M2,
        {
            "id": "MiniMaxAI/MiniMax-M2.1",
            "object": "model",
            "owned_by": "MiniMaxAI",
            "providers": [
                {"provider": "novita", "status": "live", "pricing": {"input": 0.3, "output": 1.2}}
            ],
        },
        {
            "id": "deepseek-ai/DeepSeek-R1",
            "object": "model",
            "owned_by": "deepseek-ai",
            "providers": [
                {
                    "provider": "together",
                    "status": "live",
                    "context_length": 163840,
                    "pricing": {"input": 3.0, "output": 7.0},
                }
            ],
        },
        {"id": "Qwen/Qwen3-Coder-480B-A35B-Instruct", "object": "model", "providers": []},
    ],
}
# What vLLM answers: the served models, with no providers.
SELF_HOSTED: dict[str, Any] = {
    "object": "list",
    "data": [
        {
            "id": "MiniMaxAI/MiniMax-M2",
            "object": "model",
            "created": 1761000000,
            "owned_by": "vllm",
            "root": "/models/MiniMax-M2",
            "max_model_len": 196608,
        },
        {"id": "qwen3-coder", "object": "model", "owned_by": "vllm"},
    ],
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "m2home"


def m2(
    server: ScriptedServer, home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "M2_HOME": str(home), "M2_BASE_URL": server.base_url, **(env or {})}
    return subprocess.run(
        [M2, *args], env=full_env, capture_output=True, text=True, timeout=30, check=False
    )


def models_gets(server: ScriptedServer) -> list[Recorded]:
    return [r for r in server.requests if r.method == "GET" and r.path == "/v1/models"]


def pick_line(stdout: str, policy: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith(f":{policy} "))


def test_table_shows_every_provider_and_figure(server: ScriptedServer, home: Path) -> None:
    """If the router lists models, then the table shows each provider with its figures."""
    server.models(ROUTER)

    result = m2(server, home, "models")

    assert result.returncode == 0, result.stderr
    for text in ("MiniMaxAI/MiniMax-M2", "deepseek-ai/DeepSeek-R1", "fireworks-ai", "nscale"):
        assert text in result.stdout
    novita = next(line for line in result.stdout.splitlines() if line.startswith("novita "))
    figures = ["novita", "live", "204,800", "0.30", "1.00", "0.85", "s", "62", "yes", "no"]
    assert novita.split() == figures
    assert "error" in result.stdout
    assert "no provider serves it" in result.stdout
    assert result.stderr == ""


def test_piped_table_is_plain_text(server: ScriptedServer, home: Path) -> None:
    """If stdout is a pipe, then the table has no escape codes, no trailing spaces, no wrapping."""
    server.models(ROUTER)

    result = m2(server, home, "models", env={"COLUMNS": "40"})

    assert "\x1b[" not in result.stdout
    assert all(line == line.rstrip() for line in result.stdout.splitlines())
    row = next(line for line in result.stdout.splitlines() if line.startswith("fireworks-ai "))
    assert row.split()[-3:] == ["140", "yes", "yes"]


def test_query_keeps_the_matching_ids(server: ScriptedServer, home: Path) -> None:
    """If a query is given, then only models whose id contains it (any case) are listed."""
    server.models(ROUTER)

    result = m2(server, home, "models", "DEEPSEEK")

    assert "deepseek-ai/DeepSeek-R1" in result.stdout
    assert "MiniMax" not in result.stdout


def test_no_match_says_so(server: ScriptedServer, home: Path) -> None:
    """If no model id contains the query, then m2 says so in one line and exits 1."""
    server.models(ROUTER)

    result = m2(server, home, "models", "llama")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "'llama'" in result.stderr
    assert "4 models" in result.stderr


def test_second_run_comes_from_the_cache(server: ScriptedServer, home: Path) -> None:
    """If the list was fetched less than an hour ago, then the next run asks nothing and says so."""
    server.models(ROUTER)

    first = m2(server, home, "models")
    second = m2(server, home, "models")

    assert len(models_gets(server)) == 1
    assert first.stderr == ""
    assert second.stdout == first.stdout
    assert "from the cache" in second.stderr
    assert " s old" in second.stderr
    assert "--refresh" in second.stderr


def test_refresh_fetches_again(server: ScriptedServer, home: Path) -> None:
    """If --refresh is given, then the list is fetched although the cache is fresh."""
    server.models(ROUTER)
    m2(server, home, "models")
    server.models({"object": "list", "data": [MINIMAX_M2]})

    result = m2(server, home, "models", "--refresh")

    assert len(models_gets(server)) == 2
    assert "from the cache" not in result.stderr
    assert "DeepSeek" not in result.stdout


def test_json_is_the_raw_entries(server: ScriptedServer, home: Path) -> None:
    """If --json is given, then stdout is a JSON list of the entries exactly as the server sent."""
    server.models(ROUTER)

    every = m2(server, home, "models", "--json")
    some = m2(server, home, "models", "--json", "minimax")

    assert json.loads(every.stdout) == ROUTER["data"]
    assert json.loads(some.stdout) == ROUTER["data"][:2]
    assert every.returncode == 0


def test_json_of_an_exact_id_is_that_entry(server: ScriptedServer, home: Path) -> None:
    """If --json is given an exact id, then the list holds that entry alone, not its siblings."""
    server.models(ROUTER)

    result = m2(server, home, "models", "--json", "minimaxai/minimax-m2")

    assert json.loads(result.stdout) == [MINIMAX_M2]


def test_json_without_a_match_is_an_empty_list(server: ScriptedServer, home: Path) -> None:
    """If --json finds nothing, then stdout is [] and the exit code is 1."""
    server.models(ROUTER)

    result = m2(server, home, "models", "--json", "llama")

    assert json.loads(result.stdout) == []
    assert result.returncode == 1


def test_exact_id_shows_the_picks(server: ScriptedServer, home: Path) -> None:
    """If the query is a model id, then m2 shows which live provider each policy would pick."""
    server.models(ROUTER)

    result = m2(server, home, "models", "MiniMaxAI/MiniMax-M2")

    assert result.returncode == 0, result.stderr
    fastest, cheapest = pick_line(result.stdout, "fastest"), pick_line(result.stdout, "cheapest")
    assert "→ fireworks-ai: 140 tokens/s" in fastest
    assert "highest throughput among 2 live providers" in fastest
    assert "→ novita: $1.00 per million output tokens" in cheapest
    assert "together" not in fastest + cheapest
    assert "the router decides on its own" in result.stdout
    assert "MiniMax-M2.1" not in result.stdout


def test_picks_without_figures_say_why(server: ScriptedServer, home: Path) -> None:
    """If no live provider reports a figure, then the pick line says none, and why."""
    server.models(ROUTER)

    result = m2(server, home, "models", "MiniMaxAI/MiniMax-M2.1")

    assert "→ none: no live provider reports its throughput" in pick_line(result.stdout, "fastest")
    assert "→ novita: $1.20" in pick_line(result.stdout, "cheapest")


def test_model_no_provider_serves(server: ScriptedServer, home: Path) -> None:
    """If the exact model has no provider on the router, then m2 says so instead of picking."""
    server.models(ROUTER)

    result = m2(server, home, "models", "Qwen/Qwen3-Coder-480B-A35B-Instruct")

    assert result.returncode == 0
    assert "no provider serves it" in result.stdout
    assert ":fastest" not in result.stdout


def test_self_hosted_ids_are_plain(server: ScriptedServer, home: Path) -> None:
    """If the server lists models without providers (vLLM, SGLang), then the ids print plainly."""
    server.models(SELF_HOSTED)

    every = m2(server, home, "models")
    exact = m2(server, home, "models", "MiniMaxAI/MiniMax-M2", "--refresh")

    assert every.stdout == "MiniMaxAI/MiniMax-M2\nqwen3-coder\n"
    assert exact.stdout == "MiniMaxAI/MiniMax-M2\n"
    assert exact.returncode == 0


def test_hf_token_never_goes_to_another_server(server: ScriptedServer, home: Path) -> None:
    """If HF_TOKEN is set and the base URL is not Hugging Face's, then no token is sent."""
    server.models(SELF_HOSTED)

    m2(server, home, "models", env={"HF_TOKEN": "hf_localtokenabcdef123"})

    assert "authorization" not in models_gets(server)[0].headers


def test_api_key_is_sent(server: ScriptedServer, home: Path) -> None:
    """If --api-key is given, then the request carries it as a bearer token."""
    server.models(SELF_HOSTED)

    m2(server, home, "models", "--api-key", "sk-local-key-123456")

    assert models_gets(server)[0].headers["authorization"] == "Bearer sk-local-key-123456"


def test_base_url_from_the_config_file(server: ScriptedServer, home: Path) -> None:
    """If only the config file names the base URL, then the list is fetched from there."""
    server.models(SELF_HOSTED)
    m2(server, home, "config", "set", "base_url", server.base_url)

    result = m2(server, home, "models", env={"M2_BASE_URL": ""})

    assert result.stdout == "MiniMaxAI/MiniMax-M2\nqwen3-coder\n"
    assert len(models_gets(server)) == 1


def test_server_error_is_one_line(server: ScriptedServer, home: Path) -> None:
    """If GET /models fails, then m2 exits 1 with one line and no traceback."""
    result = m2(server, home, "models")  # nothing scripted: the server answers 500

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_bad_base_url_is_a_usage_error(server: ScriptedServer, home: Path) -> None:
    """If the base URL is malformed, then m2 exits 2 with an example of a good one."""
    result = m2(server, home, "models", "--base-url", "ftp://x.test/v1")

    assert result.returncode == 2
    assert "localhost:8000/v1" in result.stderr
    assert not server.requests


def _on_terminal(server: ScriptedServer, home: Path, *args: str, **env: str) -> str:
    import pexpect

    full_env = {
        **os.environ,
        "M2_HOME": str(home),
        "M2_BASE_URL": server.base_url,
        "TERM": "xterm",
        **env,
    }
    child = pexpect.spawn(
        M2, list(args), env=full_env, encoding="utf-8", timeout=20, dimensions=(40, 80)
    )
    output = str(child.read())
    child.close()
    assert child.exitstatus == 0, output
    return output


def test_terminal_gets_colour_within_its_width(server: ScriptedServer, home: Path) -> None:
    """If stdout is an 80-column terminal, then statuses are coloured and rows fit the width."""
    server.models(ROUTER)

    screen = _on_terminal(server, home, "models", "MiniMaxAI/MiniMax-M2")

    assert "\x1b[32mlive" in screen
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in screen.split("\r\n")]
    table = [line for line in lines if line.startswith(("novita ", "fireworks-ai "))]
    assert len(table) == 2
    assert all(len(line) <= 80 for line in table)


def test_no_color_means_no_escape_codes(server: ScriptedServer, home: Path) -> None:
    """If NO_COLOR is set, then the terminal gets no escape codes at all."""
    server.models(ROUTER)

    screen = _on_terminal(server, home, "models", "MiniMaxAI/MiniMax-M2", NO_COLOR="1")

    assert "\x1b[" not in screen
    assert "fireworks-ai" in screen


def test_help_loads_neither_rich_nor_the_http_stack() -> None:
    """If `m2 models --help` or `m2 config --help` runs, then rich and httpx2 stay unloaded."""
    code = (
        "import sys, m2kit.cli\n"
        "for args in (['models', '--help'], ['config', 'set', '--help']):\n"
        "    try:\n        m2kit.cli.app(args)\n    except SystemExit:\n        pass\n"
        "print(sorted(m for m in ('httpx2', 'rich', 'huggingface_hub') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )

    assert result.stdout.strip().endswith("[]"), result.stdout + result.stderr
