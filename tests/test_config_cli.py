"""`m2 config path|show|set|unset` end to end, and `m2 ask` reading what they wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from _server import chunk, stream_step
from m2kit._config import CONFIG_KEYS, load_config

if TYPE_CHECKING:
    from _server import ScriptedServer

M2 = str(Path(sys.executable).with_name("m2"))
ANSWER = [chunk(content="ok</think>\n\nHello."), chunk(finish_reason="stop")]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "m2home"


def m2(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "M2_HOME": str(home), **(env or {})}
    return subprocess.run(
        [M2, *args], env=full_env, capture_output=True, text=True, timeout=30, check=False
    )


def shown(home: Path) -> dict[str, dict[str, object]]:
    result = m2(home, "config", "show", "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, dict[str, object]] = json.loads(result.stdout)
    return data


def test_path_is_in_m2_home(home: Path) -> None:
    """If M2_HOME is set, then `config path` prints M2_HOME/config.toml and notes it is absent."""
    result = m2(home, "config", "path")

    assert result.returncode == 0
    assert result.stdout == f"{home / 'config.toml'}\n"
    assert "does not exist yet" in result.stderr


def test_show_lists_every_key_with_its_default(home: Path) -> None:
    """If there is no config file, then `config show` lists every key with "default"."""
    result = m2(home, "config", "show")

    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[2:] if line}
    for key in CONFIG_KEYS:
        assert rows[key][-1] == "default"
    assert rows["model"] == ["MiniMaxAI/MiniMax-M2", "default"]
    assert rows["max_tokens"] == ["none", "default"]
    assert "\x1b[" not in result.stdout


def test_show_json_has_values_and_sources(home: Path) -> None:
    """If --json is given, then every key maps to its value and source, typed as in the file."""
    data = shown(home)

    assert list(data) == list(CONFIG_KEYS)
    assert data["temperature"] == {"value": 1.0, "source": "default"}
    assert data["max_tokens"] == {"value": None, "source": "default"}


def test_set_then_unset_round_trips(home: Path) -> None:
    """If a key is set then unset, then the file, `show` and the message follow each step."""
    set_result = m2(home, "config", "set", "temperature", "0.7")

    assert set_result.returncode == 0, set_result.stderr
    assert set_result.stdout == "temperature = 0.7\n"
    assert load_config(home / "config.toml").temperature == 0.7
    assert shown(home)["temperature"] == {"value": 0.7, "source": "file"}

    unset_result = m2(home, "config", "unset", "temperature")

    assert unset_result.stdout == "temperature unset; the default applies: 1.0\n"
    assert load_config(home / "config.toml").temperature is None
    assert shown(home)["temperature"] == {"value": 1.0, "source": "default"}


def test_set_none_is_unset(home: Path) -> None:
    """If VALUE is "none", then the key is removed, as with `config unset`."""
    m2(home, "config", "set", "max_tokens", "4096")

    result = m2(home, "config", "set", "max_tokens", "none")

    assert result.stdout == "max_tokens unset; the default applies: none\n"
    assert "max_tokens" not in load_config(home / "config.toml").from_file


def test_set_keeps_text_tables_and_prices(home: Path) -> None:
    """If text, a credits key and a price are set, then all three are kept and shown."""
    m2(home, "config", "set", "model", "MiniMaxAI/MiniMax-M2:cheapest")
    m2(home, "config", "set", "credits.monthly_usd", "2.00")
    price = m2(home, "config", "set", "prices.novita.output", "1.2")

    assert price.stdout == "prices.novita.output = 1.2\n"
    data = shown(home)
    assert data["model"] == {"value": "MiniMaxAI/MiniMax-M2:cheapest", "source": "file"}
    assert data["credits.monthly_usd"] == {"value": 2.0, "source": "file"}
    assert data["prices.novita.output"] == {"value": 1.2, "source": "file"}

    removed = m2(home, "config", "unset", "prices.novita.output")

    assert removed.stdout == "prices.novita.output unset\n"
    assert "prices.novita.output" not in shown(home)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("set", "temprature", "0.5"), "Did you mean temperature?"),
        (("unset", "colour"), "unknown config key 'colour'"),
        (("set", "max_tokens", "1.5"), "a whole number"),
        (("set", "temperature", "hot"), "For example: m2 config set temperature"),
        (("set", "top_p", "2"), "a number from 0 to 1"),
    ],
    ids=["typo", "unknown", "not-an-int", "not-a-number", "out-of-range"],
)
def test_bad_key_or_value_exits_2(home: Path, args: tuple[str, ...], expected: str) -> None:
    """If the key is unknown or the value of the wrong type, then one line, exit 2, no file."""
    result = m2(home, "config", *args)

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (home / "config.toml").exists()


def test_broken_file_is_named(home: Path) -> None:
    """If the config file holds a wrong type, then `show` exits 2 with one line naming the file."""
    home.mkdir()
    (home / "config.toml").write_text('temperature = "hot"\n', encoding="utf-8")

    result = m2(home, "config", "show")

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert str(home / "config.toml") in result.stderr


def test_set_repairs_a_broken_file(home: Path) -> None:
    """If the broken key is the one being set, then `set` fixes the file."""
    home.mkdir()
    (home / "config.toml").write_text('temperature = "hot"\n', encoding="utf-8")

    result = m2(home, "config", "set", "temperature", "0.5")

    assert result.returncode == 0, result.stderr
    assert shown(home)["temperature"] == {"value": 0.5, "source": "file"}


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's read-only /proc")
def test_unwritable_folder_is_one_line(tmp_path: Path) -> None:
    """If the config folder cannot be written, then `set` exits 1 with one line, no traceback."""
    # /proc refuses new files even to root, for whom a read-only permission bit means nothing.
    result = m2(Path("/proc/self/m2kit-test"), "config", "set", "temperature", "0.5")

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "cannot write the config file" in result.stderr


def test_ask_uses_the_config_file(server: ScriptedServer, home: Path) -> None:
    """If the config sets sampling and a model, then `m2 ask` sends them; a flag still wins."""
    m2(home, "config", "set", "temperature", "0.3")
    m2(home, "config", "set", "max_tokens", "77")
    m2(home, "config", "set", "model", "my-served-model")
    server.queue(stream_step(ANSWER), stream_step(ANSWER))
    env = {"M2_BASE_URL": server.base_url}

    from_config = m2(home, "ask", "--no-log", "hi", env=env)
    flag_wins = m2(home, "ask", "--no-log", "--temperature", "0.9", "hi", env=env)

    assert from_config.returncode == 0, from_config.stderr
    first, second = (request.json() for request in server.requests)
    assert (first["temperature"], first["max_tokens"], first["model"]) == (
        0.3,
        77,
        "my-served-model",
    )
    assert flag_wins.returncode == 0, flag_wins.stderr
    assert second["temperature"] == 0.9
    assert second["max_tokens"] == 77


def test_ask_uses_the_config_base_url(server: ScriptedServer, home: Path) -> None:
    """If only the config file names the base URL, then `m2 ask` goes there."""
    m2(home, "config", "set", "base_url", server.base_url)
    server.queue(stream_step(ANSWER))

    result = m2(home, "ask", "--no-log", "hi")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello.\n"
    assert len(server.requests) == 1
