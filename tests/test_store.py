"""Tests for m2kit._store: real SQLite files in temporary folders, real processes at once."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs
import pytest

from _server import chunk, completion, error_step, json_step, stream_step
from _store_worker import MODEL, PARTIAL, Chat, answer, complete
from m2kit import BadRequestError, Client, ConfigError, RetryPolicy, StreamInterrupted
from m2kit._agent import ToolStep
from m2kit._conversation import Conversation, Turn
from m2kit._migrations import MIGRATIONS, latest_version
from m2kit._store import Store, default_db_path, migrate
from m2kit._store_rows import DIED
from m2kit._tool_runs import ToolResult
from m2kit._types import Reply, ToolCall, Usage

if TYPE_CHECKING:
    from collections.abc import Iterator

    from _server import ScriptedServer

WORKER = Path(__file__).with_name("_store_worker.py")
Spawn = Callable[..., list[subprocess.Popen[str]]]

# The SQL of every released migration. Never change an entry: add the next migration instead.
RELEASED = {1: "139e1071b71e1f848a63482a33c0cd22", 2: "f9f731d9a205d78e9fbf2aeecf79c07b"}

# Rows as migration 1 wrote them, to check that later migrations keep them.
V1_ROWS = """
INSERT INTO conversations (id, created_at, updated_at, title, system, model, params)
VALUES ('v1', 100.0, 101.0, 'Hi', 'Be brief.', 'MiniMaxAI/MiniMax-M2', '{"temperature": 1.0}');
INSERT INTO messages (conversation_id, turn, role, content, status, pid, created_at)
VALUES ('v1', 0, 'user', 'Hi', 'complete', 1, 100.0);
INSERT INTO messages (conversation_id, turn, role, content, thinking, answer, finish_reason, status,
                      pid, created_at, message, model, reply_model, provider, thinking_source)
VALUES ('v1', 0, 'assistant', 'Hm.</think>Hello.', 'Hm.', 'Hello.', 'stop', 'complete', 1, 100.0,
        '{"role": "assistant", "content": "Hm.</think>Hello."}', 'MiniMaxAI/MiniMax-M2',
        'MiniMaxAI/MiniMax-M2', 'novita', 'inline');
INSERT INTO usage (created_at, conversation_id, message_id, model, provider, prompt_tokens,
                   completion_tokens, total_tokens, latency, first_token, outcome, retries)
VALUES (100.0, 'v1', 2, 'MiniMaxAI/MiniMax-M2', 'novita', 3, 4, 7, 2.0, 0.5, 'complete', 1);
"""
V1_TURN = Turn(
    user="Hi",
    reply=Reply(
        text="Hello.",
        thinking="Hm.",
        raw="Hm.</think>Hello.",
        message={"role": "assistant", "content": "Hm.</think>Hello."},
        model=MODEL,
        provider="novita",
        finish_reason="stop",
        usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7),
        thinking_source="inline",
        attempts=2,
    ),
    status="complete",
    started_at=100.0,
    latency=2.0,
    first_token=0.5,
    model=MODEL,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "m2.db") as opened:
        yield opened


def write(store: Store, chat: Chat, *turns: Turn) -> None:
    for turn in turns:
        key = store.start_turn(chat, turn.user)
        store.end_turn(chat, key, turn)


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start workers (see _store_worker.py) and wait until each has opened the store; any still
    running at the end of the test are killed."""
    started: list[subprocess.Popen[str]] = []

    def start(path: Path, *args: list[str]) -> list[subprocess.Popen[str]]:
        workers = [
            subprocess.Popen(
                [sys.executable, str(WORKER), str(path), *given],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for given in args
        ]
        started.extend(workers)
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline() == "ready\n", worker.communicate(timeout=10)[1]
        return workers

    yield start
    for worker in started:
        if worker.poll() is None:
            worker.kill()
        worker.communicate(timeout=10)


def go(worker: subprocess.Popen[str]) -> None:
    assert worker.stdin is not None
    worker.stdin.write("go\n")
    worker.stdin.flush()


def test_turns_come_back_as_they_were_written(store: Store) -> None:
    """If complete, interrupted and failed turns are written, then load gives each back intact."""
    chat = Chat("c1")
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    tools = Reply(
        text="",
        thinking="The user wants weather.",
        raw="",
        message={
            "role": "assistant",
            "content": "",
            "reasoning_content": "The user wants weather.",
            "tool_calls": [call.to_message()],
        },
        model=MODEL,
        provider="fireworks-ai",
        finish_reason="tool_calls",
        tool_calls=(call,),
        thinking_source="field",
        attempts=3,
    )
    partial = Reply(
        text="Par",
        thinking="Half a thought",
        raw="Half a thought</think>\n\nPar",
        message={"role": "assistant", "content": "Half a thought</think>\n\nPar"},
        thinking_source="inline",
    )
    turns = [
        complete("Weather in Paris?", tools, started_at=1000.0),
        Turn("Go on", partial, "interrupted", 1010.0, 3.5, 0.25, "the connection dropped", MODEL),
        Turn("Again", None, "failed", 1020.0, 0.1, None, "429: slow down", MODEL),
        complete("Thanks", answer("You're welcome.", thinking="<think>\nPolite."), started_at=1030),
    ]

    write(store, chat, *turns)

    loaded = store.load("c1")
    assert loaded.turns == turns
    assert (loaded.id, loaded.title, loaded.system) == ("c1", "Weather in Paris?", "Be brief.")
    assert (loaded.model, loaded.params) == (MODEL, {"model": MODEL, "temperature": 1.0})
    assert loaded.created_at == chat.created_at


def test_every_call_leaves_a_usage_row(store: Store) -> None:
    """If turns end in any way, then each leaves one usage row with its outcome and retries."""
    chat = Chat("c1")
    write(
        store,
        chat,
        complete("one", answer("1", attempts=3), started_at=1000.0),
        Turn("two", None, "failed", 2000.0, 0.5, None, "503", "other/model"),
    )

    rows = store.usage()

    assert [(row.created_at, row.outcome, row.retries) for row in rows] == [
        (1000.0, "complete", 2),
        (2000.0, "failed", None),
    ]
    first, second = rows
    assert (first.model, first.provider, first.conversation_id) == (MODEL, "novita", "c1")
    assert (first.prompt_tokens, first.completion_tokens, first.total_tokens) == (12, 30, 42)
    assert (first.reasoning_tokens, first.latency, first.first_token) == (9, 1.25, 0.5)
    assert (second.model, second.provider, second.total_tokens) == ("other/model", None, None)


def test_usage_since_leaves_out_older_calls(store: Store) -> None:
    """If usage is asked for since a time, then only calls made at or after it come back."""
    write(store, Chat("c1"), *(complete(f"q{n}", started_at=1000.0 * n) for n in (1, 2, 3)))

    assert [row.created_at for row in store.usage(since=2000.0)] == [2000.0, 3000.0]
    assert len(store.usage(since=None)) == 3
    assert store.usage(since=time.time() + 60) == []


def test_a_turn_still_being_written_is_left_out(store: Store) -> None:
    """If a live process has started a turn and not ended it, then load leaves that turn out."""
    chat = Chat("c1")
    write(store, chat, complete("first"))
    key = store.start_turn(chat, "second")

    assert [turn.user for turn in store.load("c1").turns] == ["first"]

    store.end_turn(chat, key, complete("second"))
    assert [turn.user for turn in store.load("c1").turns] == ["first", "second"]


def test_a_turn_ends_once(store: Store) -> None:
    """If end_turn is called twice with one key, or with a key start_turn never gave, then it
    raises ConfigError."""
    chat = Chat("c1")
    key = store.start_turn(chat, "hi")
    store.end_turn(chat, key, complete("hi"))

    with pytest.raises(ConfigError, match="not waiting to end"):
        store.end_turn(chat, key, complete("hi"))
    with pytest.raises(ConfigError, match="not a key"):
        store.end_turn(chat, "nonsense", complete("hi"))
    assert len(store.usage()) == 1


def test_the_first_prompt_names_a_conversation(store: Store) -> None:
    """If a conversation has no title, then its first prompt, cut to 80 characters with "…", is
    the title, and a title given later replaces it."""
    chat = Chat("c1")
    write(store, chat, complete("x" * 100), complete("second prompt"))
    assert store.load("c1").title == "x" * 79 + "…"

    chat.title = "Named"
    write(store, chat, complete("third"))
    assert store.load("c1").title == "Named"


def test_conversations_are_listed_latest_first(store: Store) -> None:
    """If conversations were written to, then the list shows the latest first, with turns and
    tokens, up to the limit."""
    assert store.list_conversations() == []
    assert store.latest_conversation_id() is None

    write(store, Chat("older"), complete("a"), complete("b"))
    write(store, Chat("newer", params={}), complete("c"))
    store.start_turn(Chat("pending"), "d")

    listed = store.list_conversations()
    assert [(entry.id, entry.turns, entry.tokens) for entry in listed] == [
        ("pending", 1, 0),
        ("newer", 1, 42),
        ("older", 2, 84),
    ]
    assert listed[1].model == MODEL
    assert listed[1].title == "c"
    assert [entry.id for entry in store.list_conversations(limit=1)] == ["pending"]
    assert store.latest_conversation_id() == "pending"

    write(store, Chat("older"), complete("e"))
    assert store.latest_conversation_id() == "older"


def test_search_finds_user_text_and_answers(store: Store) -> None:
    """If a phrase is searched for, then user text and answers with it come back, thinking not."""
    chat = Chat("c1")
    write(
        store,
        chat,
        complete("How do herons fish?", answer("Herons stand still and strike.", thinking="Birds")),
    )

    assert sorted(hit.role for hit in store.search("herons")) == ["assistant", "user"]
    assert [hit.role for hit in store.search("stand still")] == ["assistant"]
    assert store.search("still stand") == []
    assert store.search("Birds") == []
    assert store.search("   ") == []
    (hit,) = store.search("strike")
    assert hit.conversation_id == "c1"
    assert "**strike**" in hit.snippet


@pytest.mark.parametrize(
    "query",
    ['said "hello', "AND NOT", "goodbye*", "NEAR(x", '"', "col:umn", "^start", "a OR b -c"],
)
def test_search_text_is_never_query_syntax(store: Store, query: str) -> None:
    """If the search text holds quotes or FTS5 operators, then it is matched as plain words and
    never raises."""
    text = 'she said "hello" AND NOT goodbye* NEAR(x) col:umn ^start'
    write(store, Chat("c1"), complete(text, answer("Noted.")))

    hits = store.search(query)

    expected = 0 if query in ('"', "a OR b -c") else 1
    assert len(hits) == expected


def test_two_processes_write_at_once(tmp_path: Path, spawn: Spawn) -> None:
    """If two processes each write 50 turns to one new file at once, then all 100 are there and
    neither saw "database is locked"."""
    path = tmp_path / "m2.db"
    workers = spawn(path, ["one", "50"], ["two", "50"])

    for worker in workers:
        go(worker)
    results = [worker.communicate(timeout=50) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0], results
    with Store(path) as store:
        for name in ("one", "two"):
            turns = store.load(name).turns
            assert [turn.user for turn in turns] == [f"{name} turn {n}" for n in range(50)]
            assert {turn.status for turn in turns} == {"complete"}
        assert len(store.usage()) == 100


def test_processes_opening_a_new_file_at_once_all_succeed(tmp_path: Path, spawn: Spawn) -> None:
    """If eight processes open one new file at once, then each opens it and it is migrated once."""
    workers = spawn(tmp_path / "m2.db", *([f"w{n}", "0"] for n in range(8)))

    for worker in workers:
        go(worker)
        assert worker.communicate(timeout=30)[0] == "done\n"

    with sqlite3.connect(tmp_path / "m2.db") as db:
        assert db.execute("SELECT count(*) FROM migrations").fetchone() == (len(MIGRATIONS),)
    db.close()


def test_two_processes_write_to_one_conversation(tmp_path: Path, spawn: Spawn) -> None:
    """If two processes write turns to the same conversation at once, then every turn is kept,
    each with its own place."""
    path = tmp_path / "m2.db"
    workers = spawn(path, ["shared", "30"], ["shared", "30"])

    for worker in workers:
        go(worker)
    results = [worker.communicate(timeout=50) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0], results
    with Store(path) as store:
        turns = store.load("shared").turns
    assert sorted(turn.user for turn in turns) == sorted(
        [f"shared turn {n}" for n in range(30)] * 2
    )


def test_a_killed_writer_leaves_an_interrupted_turn(tmp_path: Path, spawn: Spawn) -> None:
    """If a process is killed between start_turn and end_turn, then the file opens and that turn
    reads as interrupted, with the other turns intact."""
    path = tmp_path / "m2.db"
    with Store(path) as store:
        write(store, Chat("other"), complete("unrelated"))
    (worker,) = spawn(path, ["victim", "2", "--hang"])
    go(worker)
    assert worker.stdout is not None
    assert worker.stdout.readline() == "started\n"

    worker.kill()
    # Reaped, so that its pid is gone rather than a zombie's.
    worker.communicate(timeout=10)

    with Store(path) as store:
        turns = store.load("victim").turns
        assert [(turn.user, turn.status) for turn in turns] == [
            ("victim turn 0", "complete"),
            ("victim turn 1", "complete"),
            ("cut off", "interrupted"),
        ]
        assert (turns[-1].reply, turns[-1].error) == (None, DIED)
        assert [turn.user for turn in store.load("other").turns] == ["unrelated"]
        assert store.search("cut off")[0].role == "user"


def test_a_killed_writer_leaves_what_had_arrived(tmp_path: Path, spawn: Spawn) -> None:
    """If a process is killed after save_partial, then its turn reads as interrupted with the
    partial reply, thinking and raw content as they were saved."""
    path = tmp_path / "m2.db"
    (worker,) = spawn(path, ["victim", "0", "--hang", "--partial"])
    go(worker)
    assert worker.stdout is not None
    assert worker.stdout.readline() == "started\n"

    worker.kill()
    worker.communicate(timeout=10)

    with Store(path) as store:
        (turn,) = store.load("victim").turns
    assert (turn.user, turn.status, turn.error) == ("cut off", "interrupted", DIED)
    assert turn.reply is not None
    assert (turn.reply.text, turn.reply.thinking, turn.reply.raw) == (
        PARTIAL.text,
        PARTIAL.thinking,
        PARTIAL.raw,
    )
    assert turn.reply.message == PARTIAL.message


def test_a_pending_row_with_our_pid_from_an_earlier_process_is_interrupted(store: Store) -> None:
    """If a pending row carries this process's pid but this process did not start it (in a
    container every run is PID 1), then it reads as interrupted, not as still being written."""
    chat = Chat("c1")
    key = store.start_turn(chat, "left by an earlier run")
    other = Store(store.path)
    try:
        # Seen from the process that writes it, the turn is in progress...
        assert other.load("c1").turns == []
    finally:
        other.close()

    # ...and once this process no longer counts it as its own (as after a restart), it is not.
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE messages SET id = id + 1000 WHERE id = ?", (key,))
    db.close()
    (turn,) = store.load("c1").turns
    assert (turn.user, turn.status, turn.error) == ("left by an earlier run", "interrupted", DIED)


def test_a_run_cut_short_keeps_its_steps(store: Store) -> None:
    """If a run's process dies after a step was saved, then the turn reads as interrupted with
    that step: the reply that asked for the tool and the tool's result."""
    chat = Chat("c1")
    call = ToolCall("call_1", "add", '{"a": 2, "b": 3}')
    asked = dataclasses.replace(answer(""), tool_calls=(call,), finish_reason="tool_calls")
    step = ToolStep(asked, (ToolResult(call, "5", error=False, elapsed=0.01),), 0.5, 0.1)
    key = store.start_turn(chat, "What is 2 + 3?")

    store.save_partial(chat, key, None, (step,))
    with sqlite3.connect(store.path) as db:  # as if this process had restarted: not its row
        db.execute("UPDATE messages SET id = id + 1000 WHERE id = ?", (key,))
    db.close()

    (turn,) = store.load("c1").turns
    assert (turn.status, turn.reply, turn.error) == ("interrupted", None, DIED)
    assert turn.steps == (step,)


def test_save_partial_leaves_an_ended_turn_alone(store: Store) -> None:
    """If save_partial comes after end_turn, then the ended turn keeps its whole reply."""
    chat = Chat("c1")
    key = store.start_turn(chat, "hi")
    store.end_turn(chat, key, complete("hi"))

    store.save_partial(chat, key, PARTIAL)

    (turn,) = store.load("c1").turns
    assert turn.reply is not None
    assert turn.reply.text == "An answer to hi."


def test_a_conversation_records_into_the_store(store: Store, server: ScriptedServer) -> None:
    """If a Conversation records into the store, then loading it gives back the same turns:
    complete, failed and cut-off streams."""
    server.queue(
        json_step(completion("Hm.</think>\n\nHello.", usage={"prompt_tokens": 5})),
        error_step(400, {"error": {"message": "bad request"}}),
        stream_step([chunk("Thinking"), chunk("</think>\n\nPart"), chunk(" more")], drop_after=2),
    )
    with Client(MODEL, server.base_url, "key-123456", retry=RetryPolicy(max_attempts=1)) as client:
        conversation = Conversation(client, "Be brief.", recorder=store, temperature=0.5)
        conversation.send("Hi")
        with pytest.raises(BadRequestError):
            conversation.send("Again")
        with pytest.raises(StreamInterrupted), conversation.stream("Stream it") as events:
            list(events)

    loaded = store.load(conversation.id)

    assert [turn.status for turn in loaded.turns] == ["complete", "failed", "interrupted"]
    assert loaded.turns == conversation.turns
    assert (loaded.system, loaded.params) == ("Be brief.", {"temperature": 0.5})


def test_no_token_reaches_the_file(tmp_path: Path, server: ScriptedServer) -> None:
    """If a turn is written whose client had an API key, then the key is nowhere in the files."""
    token = "hf_storeTokenAbcdef123456"
    server.queue(json_step(completion("Thinking.</think>\n\nHello.")))
    with Client(MODEL, server.base_url, token, retry=RetryPolicy(max_attempts=1)) as client:
        started = time.time()
        reply = client.chat("Hi")
    chat = Chat("c1", params={"extra_headers": {"Authorization": f"Bearer {token}"}})
    path = tmp_path / "m2.db"

    with Store(path) as store:
        write(store, chat, Turn("Hi", reply, "complete", started, 0.1, None, f"echo {token}"))
        assert store.load("c1").params == {}
    files = [path, *path.parent.glob("m2.db-*")]

    assert b"Hello." in path.read_bytes()
    assert all(token.encode() not in file.read_bytes() for file in files)


def test_an_empty_file_gets_every_migration(tmp_path: Path) -> None:
    """If the store opens a new file, then every migration is applied and recorded, in order."""
    path = tmp_path / "deep" / "er" / "m2.db"

    with Store(path) as store:
        assert store.schema_version == latest_version()
    with sqlite3.connect(path) as db:
        recorded = db.execute("SELECT version, name FROM migrations ORDER BY version").fetchall()
        (mode,) = db.execute("PRAGMA journal_mode").fetchone()

    assert recorded == [(migration.version, migration.name) for migration in MIGRATIONS]
    assert mode == "wal"
    if sys.platform != "win32":
        assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("applied", range(1, len(MIGRATIONS) + 1))
def test_data_survives_every_later_migration(tmp_path: Path, applied: int) -> None:
    """If a file holds data at any earlier schema version, then opening it migrates it to the
    latest and the data reads back unchanged."""
    path = tmp_path / "m2.db"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, MIGRATIONS[:applied])
    db.executescript(V1_ROWS)
    db.close()

    with Store(path) as store:
        assert store.schema_version == latest_version()
        assert store.load("v1").turns == [V1_TURN]
        assert store.search("hello")[0].conversation_id == "v1"
        write(store, Chat("v1"), complete("Next"))
        assert [turn.user for turn in store.load("v1").turns] == ["Hi", "Next"]


def test_migrations_are_numbered_and_never_edited() -> None:
    """If a released migration's SQL is edited, or the numbers skip, then this test fails."""
    assert [migration.version for migration in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))

    digests = {
        migration.version: hashlib.sha256(migration.sql.encode()).hexdigest()[:32]
        for migration in MIGRATIONS
    }

    assert {version: digests[version] for version in RELEASED} == RELEASED


def test_a_file_from_a_newer_m2kit_is_refused(tmp_path: Path) -> None:
    """If the file's schema is newer than this code knows, then opening it raises ConfigError
    saying to upgrade, and leaves the file as it was."""
    path = tmp_path / "m2.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO migrations VALUES (?, 'from the future', 0)", (latest_version() + 1,)
        )
    db.close()
    before = path.read_bytes()

    with pytest.raises(ConfigError, match="newer") as raised:
        Store(path)

    assert "Upgrade m2kit" in raised.value.hint
    assert str(path) in str(raised.value)
    assert path.read_bytes() == before


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    """If the file is not an SQLite database, then opening it raises ConfigError naming the path,
    and leaves the file as it was."""
    path = tmp_path / "m2.db"
    path.write_bytes(b"These are my notes, not a database.\n" * 200)

    with pytest.raises(ConfigError, match="is not an m2 database") as raised:
        Store(path)

    assert str(path) in str(raised.value)
    assert path.read_bytes() == b"These are my notes, not a database.\n" * 200


def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    """If the file is some other program's SQLite database, then opening it raises ConfigError
    and adds no tables to it."""
    path = tmp_path / "notes.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    db.close()

    with pytest.raises(ConfigError, match="not one of m2's"):
        Store(path)

    with sqlite3.connect(path) as db:
        tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    db.close()
    assert tables == [("notes",)]


def test_the_database_lives_in_m2_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """If M2_HOME is set, then the database is m2.db in it; otherwise in the user data dir."""
    assert default_db_path() == Path(platformdirs.user_data_dir("m2kit", appauthor=False)) / "m2.db"

    monkeypatch.setenv("M2_HOME", str(tmp_path / "home"))
    assert default_db_path() == tmp_path / "home" / "m2.db"


def test_the_pid_of_a_writer_is_kept(store: Store, tmp_path: Path) -> None:
    """If a turn starts, then its pending row carries this process's pid."""
    store.start_turn(Chat("c1"), "hi")

    with sqlite3.connect(tmp_path / "m2.db") as db:
        rows = db.execute("SELECT role, status, pid FROM messages ORDER BY id").fetchall()
    db.close()

    assert rows == [("user", "complete", os.getpid()), ("assistant", "pending", os.getpid())]


def test_a_retried_turn_is_superseded_not_lost(tmp_path: Path, server: ScriptedServer) -> None:
    """If a turn is retried, then the store keeps the old one but no longer loads it."""
    server.queue(
        stream_step([chunk(content="a</think>\n\nfirst"), chunk(finish_reason="stop")]),
        stream_step([chunk(content="b</think>\n\nsecond"), chunk(finish_reason="stop")]),
    )
    with Store(tmp_path / "m2.db") as store, Client(base_url=server.base_url) as client:
        conversation = Conversation(client, recorder=store)
        conversation.send("Hi")
        conversation.retry()
        turns = store.load(conversation.id).turns
        kept = store._read("SELECT count(*) AS n FROM messages WHERE superseded = 1")

    assert [turn.reply.text for turn in turns if turn.reply] == ["second"]
    assert kept[0]["n"] == 2


def test_search_skips_superseded_turns(tmp_path: Path, server: ScriptedServer) -> None:
    """If a turn was retried, then search no longer finds its old answer."""
    server.queue(
        stream_step([chunk(content="a</think>\n\nzebra"), chunk(finish_reason="stop")]),
        stream_step([chunk(content="b</think>\n\nquokka"), chunk(finish_reason="stop")]),
    )
    with Store(tmp_path / "m2.db") as store, Client(base_url=server.base_url) as client:
        conversation = Conversation(client, recorder=store)
        conversation.send("Name an animal")
        conversation.retry()

        assert store.search("zebra") == []
        assert len(store.search("quokka")) == 1
