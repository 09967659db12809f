"""`m2 ask` with the local store: every turn kept, -c and --cid continuing with the thinking."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from _server import chunk, stream_step
from m2kit._store import Store

if TYPE_CHECKING:
    from _server import ScriptedServer

M2 = str(Path(sys.executable).with_name("m2"))
FIRST = [chunk(content="Think about primes.</think>\n\n2 is prime."), chunk(finish_reason="stop")]
SECOND = [chunk(content="Odd ones.</think>\n\n3 is prime too."), chunk(finish_reason="stop")]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("M2_HOME", str(tmp_path / "m2home"))
    return tmp_path / "m2home"


def m2(server: ScriptedServer, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "M2_BASE_URL": server.base_url, **env}
    return subprocess.run(
        [M2, *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_a_turn_is_kept_in_the_store(server: ScriptedServer, home: Path) -> None:
    """If m2 ask answers, then the store holds the turn with its raw content and thinking."""
    server.queue(stream_step(FIRST))

    assert m2(server, "ask", "Name a prime.").returncode == 0

    with Store(home / "m2.db") as store:
        found = store.latest_conversation_id()
        assert found is not None
        turns = store.load(found).turns
    assert [turn.user for turn in turns] == ["Name a prime."]
    reply = turns[0].reply
    assert reply is not None
    assert reply.raw == "Think about primes.</think>\n\n2 is prime."
    assert reply.thinking == "Think about primes."


def test_continue_sends_the_thinking_back(server: ScriptedServer, home: Path) -> None:
    """If m2 ask -c follows an answer, then the request carries the first turn, thinking intact."""
    server.queue(stream_step(FIRST), stream_step(SECOND))

    m2(server, "ask", "Name a prime.")
    result = m2(server, "ask", "-c", "Another?")

    assert result.stdout == "3 is prime too.\n"
    assert server.requests[1].json()["messages"] == [
        {"role": "user", "content": "Name a prime."},
        {"role": "assistant", "content": "Think about primes.</think>\n\n2 is prime."},
        {"role": "user", "content": "Another?"},
    ]


def test_cid_prefix_picks_the_conversation(server: ScriptedServer, home: Path) -> None:
    """If --cid names a conversation by a prefix of its id, then that one is continued."""
    server.queue(stream_step(FIRST), stream_step(FIRST), stream_step(SECOND))
    m2(server, "ask", "Name a prime.")
    with Store(home / "m2.db") as store:
        first = store.latest_conversation_id()
    assert first is not None
    m2(server, "ask", "Something else.")

    m2(server, "ask", "--cid", first[:8], "Another?")

    assert server.requests[2].json()["messages"][0] == {"role": "user", "content": "Name a prime."}


@pytest.mark.parametrize("how", ["flag", "env"])
def test_no_log_keeps_nothing(server: ScriptedServer, home: Path, how: str) -> None:
    """If --no-log or M2_NO_LOG=1 is given, then no store is written."""
    server.queue(stream_step(FIRST))

    if how == "flag":
        result = m2(server, "ask", "--no-log", "Name a prime.")
    else:
        result = m2(server, "ask", "Name a prime.", M2_NO_LOG="1")

    assert result.returncode == 0
    assert not (home / "m2.db").exists()


def test_continue_with_nothing_to_continue(server: ScriptedServer, home: Path) -> None:
    """If -c is given before any conversation, then m2 exits 2 saying how to start one."""
    result = m2(server, "ask", "-c", "Another?")

    assert result.returncode == 2
    assert "no earlier conversation" in result.stderr
    assert not server.requests


def test_interrupted_turn_is_kept_but_not_sent_back(server: ScriptedServer, home: Path) -> None:
    """If a stream drops, then the store marks the turn interrupted and -c does not resend it."""
    cut = [chunk(content="Half a thought</think>\n\nhalf")]
    server.queue(stream_step(cut, done=False, drop_after=1), stream_step(SECOND))

    assert m2(server, "ask", "Name a prime.").returncode == 1
    m2(server, "ask", "-c", "Try again?")

    with Store(home / "m2.db") as store:
        found = store.latest_conversation_id()
        assert found is not None
        statuses = [turn.status for turn in store.load(found).turns]
    assert statuses == ["interrupted", "complete"]
    assert server.requests[1].json()["messages"] == [{"role": "user", "content": "Try again?"}]


def test_config_file_sets_defaults_and_flags_win(server: ScriptedServer, home: Path) -> None:
    """If the config file sets temperature, then m2 ask uses it, unless a flag says otherwise."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("temperature = 0.3\nmax_tokens = 99\n", encoding="utf-8")
    server.queue(stream_step(FIRST), stream_step(FIRST))

    m2(server, "ask", "hi")
    m2(server, "ask", "--temperature", "0.9", "hi")

    first, second = (request.json() for request in server.requests)
    assert (first["temperature"], first["max_tokens"]) == (0.3, 99)
    assert (second["temperature"], second["max_tokens"]) == (0.9, 99)


def test_continue_keeps_the_conversations_settings_unless_given(
    server: ScriptedServer, home: Path
) -> None:
    """If -c continues a conversation, then its own settings stay, and only given flags win."""
    server.queue(stream_step(FIRST), stream_step(SECOND), stream_step(SECOND))

    m2(server, "ask", "--temperature", "0.2", "--max-tokens", "50", "Name a prime.")
    m2(server, "ask", "-c", "Another?")
    m2(server, "ask", "-c", "-m", "MiniMaxAI/MiniMax-M2:cheapest", "--max-tokens", "70", "More?")

    second, third = (request.json() for request in server.requests[1:])
    assert (second["temperature"], second["max_tokens"]) == (0.2, 50)
    assert second["model"] == "MiniMaxAI/MiniMax-M2"
    assert (third["temperature"], third["max_tokens"]) == (0.2, 70)
    assert third["model"] == "MiniMaxAI/MiniMax-M2:cheapest"


def test_include_interrupted_sends_the_partial_back(server: ScriptedServer, home: Path) -> None:
    """If -c is given --include-interrupted, then the interrupted turn's partial goes back too."""
    cut = [chunk(content="Half a thought</think>\n\nhalf")]
    server.queue(stream_step(cut, done=False, drop_after=1), stream_step(SECOND))

    m2(server, "ask", "Name a prime.")
    m2(server, "ask", "-c", "--include-interrupted", "Go on?")

    assert server.requests[1].json()["messages"] == [
        {"role": "user", "content": "Name a prime."},
        {"role": "assistant", "content": "Half a thought</think>\n\nhalf"},
        {"role": "user", "content": "Go on?"},
    ]


def test_environment_beats_the_config_file(server: ScriptedServer, home: Path) -> None:
    """If M2_MODEL and the config file both name a model, then the environment's wins."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text('model = "org/from-config"\n', encoding="utf-8")
    server.queue(stream_step(FIRST), stream_step(FIRST))

    m2(server, "ask", "hi")
    m2(server, "ask", "hi", M2_MODEL="org/from-env")

    first, second = (request.json() for request in server.requests)
    assert first["model"] == "org/from-config"
    assert second["model"] == "org/from-env"


def _pending_content(path: Path) -> str | None:
    """The raw content kept so far in the store's pending reply, read as another process would."""
    if not path.exists():
        return None
    try:
        with sqlite3.connect(path, timeout=10) as db:
            row = db.execute(
                "SELECT content FROM messages WHERE role = 'assistant' AND status = 'pending'"
            ).fetchone()
        db.close()
    except sqlite3.OperationalError:  # the file exists, its tables not yet
        return None
    return row[0] if row else None


def test_a_killed_m2_ask_leaves_what_had_arrived(server: ScriptedServer, home: Path) -> None:
    """If m2 ask is killed with SIGKILL mid-stream, then the store opens and holds the turn as
    interrupted, with the thinking and answer that had arrived."""
    first = chunk(content="Weighing it.</think>\n\nThe answer")
    rest = [chunk(content=" is") for _ in range(200)]
    server.queue(stream_step([first, *rest], chunk_delay=0.1))
    env = {**os.environ, "M2_BASE_URL": server.base_url}
    process = subprocess.Popen(
        [M2, "ask", "Name a prime."],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while "The answer is" not in (_pending_content(home / "m2.db") or ""):
            assert time.monotonic() < deadline, "the partial never reached the store"
            assert process.poll() is None
            time.sleep(0.05)
    finally:
        process.kill()
        process.communicate(timeout=10)

    with Store(home / "m2.db") as store:
        found = store.latest_conversation_id()
        assert found is not None
        (turn,) = store.load(found).turns
    assert (turn.user, turn.status) == ("Name a prime.", "interrupted")
    assert turn.reply is not None
    assert turn.reply.thinking == "Weighing it."
    assert turn.reply.text.startswith("The answer is")
    assert turn.reply.raw.startswith("Weighing it.</think>\n\nThe answer is")


def test_two_m2_processes_write_one_store_at_once(server: ScriptedServer, home: Path) -> None:
    """If two m2 ask run at the same time on one store, then both answer and both turns are kept."""
    slow = [chunk(content=f"Step {n}.") for n in range(10)]
    server.queue(
        stream_step([chunk(content="A.</think>\n\n"), *slow], chunk_delay=0.05),
        stream_step([chunk(content="B.</think>\n\n"), *slow], chunk_delay=0.05),
    )
    env = {**os.environ, "M2_BASE_URL": server.base_url}
    processes = [
        subprocess.Popen(
            [M2, "ask", prompt],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prompt in ("First?", "Second?")
    ]
    results = [process.communicate(timeout=30) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], results
    assert all(out.endswith("Step 9.\n") for out, _ in results)
    with Store(home / "m2.db") as store:
        summaries = store.list_conversations()
        turns = [turn for s in summaries for turn in store.load(s.id).turns]
    assert sorted(turn.user for turn in turns) == ["First?", "Second?"]
    assert [turn.status for turn in turns] == ["complete", "complete"]


def test_a_store_that_fails_to_record_costs_no_answer(server: ScriptedServer, home: Path) -> None:
    """If the store refuses to record the turn, then the answer still prints and one m2 warning
    line says why."""
    server.queue(stream_step(FIRST), stream_step(FIRST))
    assert m2(server, "ask", "Name a prime.").returncode == 0
    with sqlite3.connect(home / "m2.db") as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'disk quota"
            " exceeded'); END"
        )
    db.close()

    result = m2(server, "ask", "Another?")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "2 is prime.\n"
    (warning,) = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warning.startswith("m2: warning: the conversation recorder failed in start_turn")
    assert "disk quota exceeded" in warning
