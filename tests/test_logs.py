"""`m2 logs` run as a user runs it, on real stores filled through the Store API (and `m2 ask`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from _server import chunk, completion, json_step, stream_step
from _store_worker import Chat, answer, complete
from m2kit import Client
from m2kit._conversation import Conversation, Turn
from m2kit._store import Store
from m2kit.cli._logs import short_length

if TYPE_CHECKING:
    from _server import ScriptedServer

M2 = str(Path(sys.executable).with_name("m2"))
FIRST = "5eed0001" + "a" * 24
SECOND = "5eed0002" + "b" * 24
THINKING = "Recursion is simplest."
FACTORIAL = "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("M2_HOME", str(tmp_path / "m2home"))
    monkeypatch.setenv("COLUMNS", "120")
    return tmp_path / "m2home"


def record(store: Store, chat: Chat, turn: Turn) -> None:
    store.end_turn(chat, store.start_turn(chat, turn.user), turn)


def fill(db: Path) -> None:
    """Two conversations: a factorial (a complete turn, then an interrupted one), then a search."""
    with Store(db) as store:
        first = Chat(FIRST)
        record(store, first, complete("Write a factorial.", answer(FACTORIAL, thinking=THINKING)))
        cut = Turn(
            user="Now in Rust.",
            reply=None,
            status="interrupted",
            started_at=time.time(),
            latency=0.5,
            first_token=None,
            error="interrupted by Ctrl-C",
            model="MiniMaxAI/MiniMax-M2",
        )
        record(store, first, cut)
        record(store, Chat(SECOND), complete("What is a binary search?"))


def m2(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [M2, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def data(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_list_json_has_every_conversation_latest_first(home: Path) -> None:
    """If two conversations are stored, then --json lists both, latest first, with their figures."""
    fill(home / "m2.db")

    listed = data(m2("logs", "--json"))

    assert [entry["id"] for entry in listed] == [SECOND, FIRST]
    assert listed[1]["title"] == "Write a factorial."
    assert listed[1]["turns"] == 2
    assert listed[1]["tokens"] == 42
    assert listed[1]["model"] == "MiniMaxAI/MiniMax-M2"


def test_limit_keeps_the_latest(home: Path) -> None:
    """If --limit 1 is given, then only the conversation written to last is listed."""
    fill(home / "m2.db")

    assert [entry["id"] for entry in data(m2("logs", "--limit", "1", "--json"))] == [SECOND]


def test_list_is_a_plain_table_when_piped(home: Path) -> None:
    """If stdout is a pipe, then the list is a plain table with short ids and no escape codes."""
    fill(home / "m2.db")

    result = m2("logs")

    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "Updated", "Model", "First", "prompt", "Turns", "Tokens"]
    assert lines[2].split()[0] == SECOND[:8]
    assert "MiniMax-M2" in lines[3]
    assert "Write a factorial." in lines[3]
    assert lines[3].split()[-2:] == ["2", "42"]
    assert FIRST not in result.stdout
    assert "\x1b[" not in result.stdout


def test_short_ids_grow_until_they_are_unique() -> None:
    """If ids share a long prefix, then the short ids are one character longer than it."""
    assert short_length(["abc", "abd"]) == 8
    assert short_length(["0123456789ab", "0123456789cd"]) == 11
    assert short_length(["ABCDEFGHIJ1", "abcdefghij2"]) == 11
    assert short_length([]) == 8


def test_no_store_lists_nothing_and_creates_nothing(home: Path) -> None:
    """If there is no store yet, then m2 logs says so, exits 0 and creates no file."""
    result = m2("logs")

    assert result.returncode == 0
    assert "no conversations" in result.stderr
    assert not (home / "m2.db").exists()
    assert data(m2("logs", "--json")) == []


def test_show_by_prefix_prints_the_turns(home: Path) -> None:
    """If show is given a unique prefix, then prompts and answers print, without the thinking."""
    fill(home / "m2.db")

    result = m2("logs", "show", FIRST[:8])

    assert result.returncode == 0, result.stderr
    assert "Write a factorial." in result.stdout
    assert FACTORIAL in result.stdout
    assert "via novita" in result.stdout
    assert THINKING not in result.stdout
    assert "--think shows it" in result.stdout


def test_show_marks_an_interrupted_turn(home: Path) -> None:
    """If a turn was interrupted, then show says so, with the reason."""
    fill(home / "m2.db")

    result = m2("logs", "show", FIRST)

    assert "Now in Rust." in result.stdout
    assert "[interrupted: interrupted by Ctrl-C]" in result.stdout


def test_show_think_includes_the_thinking(home: Path) -> None:
    """If --think is given, then the thinking is shown before the answer."""
    fill(home / "m2.db")

    result = m2("logs", "show", FIRST[:8], "--think")

    assert result.stdout.index(THINKING) < result.stdout.index(FACTORIAL)


def test_show_prints_each_step_of_a_tool_run(home: Path, server: ScriptedServer) -> None:
    """If a turn ran tools, then show prints each step's calls and results before the answer,
    with the thinking of every step under --think and the tokens of every call."""
    call = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2}'}}
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    server.queue(
        json_step(completion("Add them.</think>\n\n", tool_calls=[call], usage=usage)),
        json_step(completion("Got 5.</think>\n\nIt is 5.", usage=usage)),
    )

    def add(a: int) -> int:
        return a + 3

    with Store(home / "m2.db") as store, Client(base_url=server.base_url) as client:
        conversation = Conversation(client, recorder=store)
        conversation.run("What is 2 + 3?", tools=[add])

    result = m2("logs", "show", conversation.id, "--think")

    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert (
        out.index("Add them.")
        < out.index('tool call add({"a": 2})')
        < out.index("result of add: 5")
    )
    assert out.index("result of add: 5") < out.index("Got 5.") < out.index("It is 5.")
    assert "30 tokens" in out
    assert "2 calls" in out


def test_show_json_loads_back_as_a_conversation(home: Path, server: ScriptedServer) -> None:
    """If show --json is given, then its JSON is what Conversation.from_json reads, turns intact."""
    fill(home / "m2.db")

    shown = data(m2("logs", "show", FIRST[:8], "--json"))

    with Client(base_url=server.base_url) as client:
        conversation = Conversation.from_json(shown, client)
    assert conversation.id == FIRST
    assert conversation.system == "Be brief."
    assert [turn.status for turn in conversation.turns] == ["complete", "interrupted"]
    first = conversation.turns[0].reply
    assert first is not None
    assert first.thinking == THINKING
    assert first.raw == f"{THINKING}</think>\n\n{FACTORIAL}"


def test_export_json_is_the_same_as_show_json(home: Path) -> None:
    """If export --format json is asked, then it writes the same JSON as show --json."""
    fill(home / "m2.db")

    exported = data(m2("logs", "export", FIRST[:8], "--format", "json"))

    assert exported == data(m2("logs", "show", FIRST[:8], "--json"))
    assert exported["format"] == 1


def test_export_markdown_folds_the_thinking(home: Path) -> None:
    """If export is asked for Markdown, then prompts are quoted, thinking is folded and the
    interrupted turn is marked."""
    fill(home / "m2.db")

    result = m2("logs", "export", FIRST[:8], "--format", "md")

    assert result.returncode == 0
    markdown = result.stdout
    assert markdown.startswith("# Write a factorial.\n")
    assert "> Write a factorial." in markdown
    assert f"<details><summary>Thinking</summary>\n\n{THINKING}\n\n</details>" in markdown
    assert FACTORIAL in markdown
    assert "*Interrupted: interrupted by Ctrl-C*" in markdown


@pytest.mark.parametrize(
    "args",
    [
        ("show", "ffff"),
        ("export", "ffff"),
        ("show", "5eed"),
        ("export", "5eed", "--format", "json"),
    ],
    ids=["unknown-show", "unknown-export", "ambiguous-show", "ambiguous-export"],
)
def test_an_unknown_or_ambiguous_id_is_one_line_exit_2(home: Path, args: tuple[str, ...]) -> None:
    """If an id matches no conversation, or several, then m2 says so in one line and exits 2."""
    fill(home / "m2.db")

    result = m2("logs", *args)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("m2: error: ")
    assert "m2 logs" in result.stderr


def test_show_without_a_store_is_exit_2(home: Path) -> None:
    """If there is no store at all, then show names the missing file and exits 2."""
    result = m2("logs", "show", "abc")

    assert result.returncode == 2
    assert str(home / "m2.db") in result.stderr
    assert not (home / "m2.db").exists()


def test_search_finds_prompts_and_answers(home: Path) -> None:
    """If search is given words of an answer, then the hit names its conversation and role."""
    fill(home / "m2.db")

    hits = data(m2("logs", "search", "fact(n - 1)", "--json"))

    assert [(hit["conversation_id"], hit["role"]) for hit in hits] == [(FIRST, "assistant")]
    assert "**" in hits[0]["snippet"]


def test_search_table_shows_short_ids(home: Path) -> None:
    """If search runs piped, then each hit shows its short id, who wrote it and the snippet."""
    fill(home / "m2.db")

    result = m2("logs", "search", "binary search")

    assert result.returncode == 0, result.stderr
    row = result.stdout.splitlines()[2]
    assert row.startswith(SECOND[:8])
    assert " you " in row
    assert "**binary** **search**" in row or "**binary search**" in row


def test_search_without_a_match_says_so(home: Path) -> None:
    """If nothing matches, then search says so on stderr and --json gives an empty list."""
    fill(home / "m2.db")

    result = m2("logs", "search", "quicksort")

    assert result.returncode == 0
    assert "quicksort" in result.stderr
    assert data(m2("logs", "search", "quicksort", "--json")) == []


@pytest.mark.parametrize("where", ["group", "subcommand", "env"])
def test_db_is_taken_in_every_place(home: Path, tmp_path: Path, where: str) -> None:
    """If --db is given before or after the subcommand, or as M2_DB, then that store is read."""
    other = tmp_path / "elsewhere.db"
    fill(other)

    if where == "group":
        result = m2("logs", "--db", str(other), "show", FIRST[:8], "--json")
    elif where == "subcommand":
        result = m2("logs", "show", FIRST[:8], "--json", "--db", str(other))
    else:
        result = m2("logs", "show", FIRST[:8], "--json", env={"M2_DB": str(other)})

    assert data(result)["id"] == FIRST
    assert data(m2("logs", "--db", str(other), "--json"))[0]["id"] == SECOND


def test_a_flag_before_the_subcommand_beats_m2_db(home: Path, tmp_path: Path) -> None:
    """If --db is given before the subcommand and M2_DB names another file, then the flag wins."""
    other = tmp_path / "elsewhere.db"
    fill(other)
    empty = tmp_path / "empty.db"

    result = m2("logs", "--db", str(other), "show", FIRST[:8], "--json", env={"M2_DB": str(empty)})

    assert data(result)["id"] == FIRST


def test_what_m2_ask_kept_is_listed(home: Path, server: ScriptedServer) -> None:
    """If m2 ask answered a question, then m2 logs lists it with its model, turns and tokens."""
    usage = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    events = [
        chunk(content="Primes.</think>\n\n2 is prime."),
        chunk(finish_reason="stop"),
        chunk(choices=False, usage=usage),
    ]
    server.queue(stream_step(events, headers={"x-inference-provider": "novita"}))
    asked = m2("ask", "Name a prime.", env={"M2_BASE_URL": server.base_url})
    assert asked.returncode == 0, asked.stderr

    (entry,) = data(m2("logs", "--json"))

    assert entry["title"] == "Name a prime."
    assert entry["turns"] == 1
    assert entry["tokens"] == 12
    shown = m2("logs", "show", entry["id"][:8])
    assert "2 is prime." in shown.stdout
    assert "via novita" in shown.stdout


def _on_terminal(*args: str, env: dict[str, str] | None = None) -> str:
    """Run m2 on a real pseudo-terminal; return what it shows."""
    import pexpect

    full_env = {**os.environ, "TERM": "xterm", **(env or {})}
    child = pexpect.spawn(M2, list(args), env=full_env, encoding="utf-8", timeout=20)
    output = child.read()
    child.close()
    assert child.exitstatus == 0, output
    return str(output)


def test_terminal_dims_the_thinking(home: Path) -> None:
    """If show --think runs on a terminal, then the thinking is dimmed."""
    fill(home / "m2.db")

    screen = _on_terminal("logs", "show", FIRST[:8], "--think")

    assert f"\x1b[2m{THINKING}" in screen
    assert "fact(n - 1)" in screen


def test_terminal_honours_no_color(home: Path) -> None:
    """If NO_COLOR is set, then neither the list nor a conversation carries escape codes."""
    fill(home / "m2.db")

    screens = [
        _on_terminal("logs", env={"NO_COLOR": "1"}),
        _on_terminal("logs", "show", FIRST[:8], "--think", env={"NO_COLOR": "1"}),
    ]

    assert all("\x1b[" not in screen for screen in screens)
    assert THINKING in screens[1]


def test_search_hit_in_a_multi_line_answer_is_one_row(home: Path) -> None:
    """If a match sits in a multi-line answer, then the search table still gives it one row."""
    with Store(home / "m2.db") as store:
        record(store, Chat("ml"), complete("Poem?", answer("roses are red\n\nviolets are blue")))

    result = m2("logs", "search", "violets")

    rows = [line for line in result.stdout.splitlines() if "violets" in line]
    assert len(rows) == 1
    assert "roses are red violets" in rows[0].replace("*", "")
