"""`m2 chat` with tools (-T, --functions): fed line by line from a pipe, and typed into on a real
pseudo-terminal, against the scripted server. Each test runs in a folder of its own, which the
tools see as the current directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pexpect
import pytest

from _server import chunk, stream_step
from test_ask_tools import DENIED, answers, calls, gone, tool_message
from test_chat import M2, Terminal, chat_lines, sent, stored

if TYPE_CHECKING:
    from pathlib import Path

    from _server import ScriptedServer


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "m2home"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory of the test and of the m2 it starts, with one notes file."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("hello\nworld\n", encoding="utf-8")
    monkeypatch.chdir(work)
    return work


def test_a_tool_turn_in_line_mode(server: ScriptedServer, home: Path, folder: Path) -> None:
    """If the first reply calls list_dir and the second answers, then stdout has only the answer,
    stderr the call and its result, and the second request carries the result."""
    server.queue(calls("list_dir", {"path": "."}), answers("One file: notes.txt."))

    result = chat_lines(server, home, "What is here?\n", "-T", "list_dir")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "One file: notes.txt.\n"
    assert '→ list_dir(path=".")' in result.stderr
    assert "← notes.txt (12 bytes)" in result.stderr
    offered = server.requests[0].json()["tools"]
    assert [tool["function"]["name"] for tool in offered] == ["list_dir"]
    message = tool_message(server)
    assert message["tool_call_id"] == "call_1"
    assert message["content"] == "notes.txt  (12 bytes)"


def test_run_python_is_refused_in_line_mode(
    server: ScriptedServer, home: Path, folder: Path
) -> None:
    """If run_python is called in line mode without --yes, then it does not run and the model is
    told it was not allowed."""
    code = "open('made.txt', 'w').write('x')"
    server.queue(calls("run_python", {"code": code}), answers("It was not allowed."))

    result = chat_lines(server, home, "Make a file.\n", "-T", "run_python")

    assert result.returncode == 0, result.stderr
    assert not (folder / "made.txt").exists()
    assert tool_message(server)["content"].startswith(DENIED)
    assert "← denied: no terminal to ask on (--yes lets run_python run)" in result.stderr
    assert result.stderr.count("←") == 1
    assert result.stdout == "It was not allowed.\n"


def test_run_python_runs_with_yes_in_line_mode(
    server: ScriptedServer, home: Path, folder: Path
) -> None:
    """If --yes is given, then run_python runs in line mode and stderr shows what it printed."""
    code = "open('made.txt', 'w').write('x'); print(6 * 7)"
    server.queue(calls("run_python", {"code": code}), answers("It printed 42."))

    result = chat_lines(server, home, "Make a file.\n", "-T", "run_python", "--yes")

    assert result.returncode == 0, result.stderr
    assert (folder / "made.txt").read_text() == "x"
    assert tool_message(server)["content"].startswith("exit code: 0\nstdout:\n42\n")
    assert "← 42\n" in result.stderr


def test_max_steps_is_an_error_and_the_session_goes_on(
    server: ScriptedServer, home: Path, folder: Path
) -> None:
    """If the model still calls tools at --max-steps, then one line says so, the next message is
    answered, and m2 exits 1."""
    server.queue(
        calls("list_dir", {}), calls("list_dir", {}, call_id="call_2"), answers("Hello there.")
    )

    result = chat_lines(server, home, "Look around.\nHi!\n", "-T", "list_dir", "--max-steps", "2")

    assert result.returncode == 1
    assert "m2: stopped after 2 steps without an answer (raise --max-steps)" in result.stderr
    assert result.stdout == "Hello there.\n"
    assert len(server.requests) == 3
    assert sent(server, 2)[-1] == {"role": "user", "content": "Hi!"}


def test_the_next_message_carries_the_steps(
    server: ScriptedServer, home: Path, folder: Path
) -> None:
    """If a second message follows a tool turn, then its history holds the call with its
    thinking and the result, and the store holds one turn per message."""
    server.queue(calls("list_dir", {}), answers("One file."), answers("Still one."))

    result = chat_lines(server, home, "What is here?\nAnd now?\n", "-T", "list_dir")

    assert result.returncode == 0, result.stderr
    history = sent(server, 2)
    roles = [message["role"] for message in history]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert history[1]["tool_calls"][0]["id"] == history[2]["tool_call_id"] == "call_1"
    assert "I need a tool." in json.dumps(history[1])
    assert history[3]["content"].endswith("One file.")
    turns = stored(home).turns
    assert [turn.user for turn in turns] == ["What is here?", "And now?"]
    assert [len(turn.steps) for turn in turns] == [1, 0]


def test_a_broken_functions_file_exits_2(server: ScriptedServer, home: Path, folder: Path) -> None:
    """If the functions file fails to import, then m2 chat exits 2 with one line, before any
    request."""
    (folder / "broken.py").write_text("import no_such_module_here\n", encoding="utf-8")

    result = chat_lines(server, home, "hi\n", "--functions", "broken.py")

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "broken.py does not load: ModuleNotFoundError" in result.stderr
    assert not server.requests


def test_plain_chat_does_not_load_tools(server: ScriptedServer, home: Path) -> None:
    """If m2 chat runs without tools, then pydantic and the tool modules stay out."""
    server.queue(answers("Hi."))
    code = (
        "import sys, m2kit.cli\n"
        "try:\n    m2kit.cli.app(['chat'])\nexcept SystemExit:\n    pass\n"
        "names = ('pydantic', 'm2kit.cli._ask_tools', 'm2kit.cli._builtin_tools')\n"
        "print(sorted(name for name in names if name in sys.modules))"
    )
    env = {**os.environ, "M2_BASE_URL": server.base_url, "M2_HOME": str(home)}

    result = subprocess.run(
        [sys.executable, "-c", code],
        input="hi\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.stdout.endswith("Hi.\n[]\n"), result.stdout + result.stderr


def test_a_tool_turn_on_the_terminal(server: ScriptedServer, home: Path, folder: Path) -> None:
    """If a typed message gets a list_dir call and then an answer, then the screen shows the call,
    its result and the answer, in that order."""
    server.queue(calls("list_dir", {}), answers("One **file**."))
    term = Terminal(server, home, "-T", "list_dir")

    term.type("What is here?")

    screen = term.screen
    assert screen.index("→ list_dir()") < screen.index("← notes.txt") < screen.index("One file.")
    assert "2 calls" in screen
    assert term.leave() == 0


def test_run_python_asks_on_the_terminal(server: ScriptedServer, home: Path, folder: Path) -> None:
    """If run_python is called on a terminal, then the code is shown, m2 asks, and "y" runs it."""
    code = "open('made.txt', 'w').write('y'); print('made')"
    server.queue(calls("run_python", {"code": code}), answers("Made it."))
    term = Terminal(server, home, "-T", "run_python")

    term.child.send("Make a file.\r")
    term.wait_for("run this Python? [y/N]")
    term.type("y")

    assert code in term.screen
    assert "← made" in term.screen
    assert "Made it." in term.screen
    assert (folder / "made.txt").read_text() == "y"
    assert term.leave() == 0


def test_run_python_refused_on_the_terminal(
    server: ScriptedServer, home: Path, folder: Path
) -> None:
    """If the answer to "run this Python?" is not y, then the code does not run and the model is
    told it was not allowed."""
    code = "open('made.txt', 'w').write('n')"
    server.queue(calls("run_python", {"code": code}), answers("Not allowed, then."))
    term = Terminal(server, home, "-T", "run_python")

    term.child.send("Make a file.\r")
    term.wait_for("run this Python? [y/N]")
    term.type("")

    assert "← denied by you" in term.screen
    assert not (folder / "made.txt").exists()
    assert tool_message(server)["content"].startswith(DENIED)
    assert term.leave() == 0


def test_run_python_asks_on_a_dumb_terminal(
    server: ScriptedServer, home: Path, folder: Path
) -> None:
    """If TERM is dumb (plain output on a terminal), then run_python still asks, and "y" runs it."""
    code = "open('made.txt', 'w').write('d')"
    server.queue(calls("run_python", {"code": code}), answers("Made it."))
    env = {**os.environ, "M2_BASE_URL": server.base_url, "M2_HOME": str(home), "TERM": "dumb"}
    child = pexpect.spawn(M2, ["chat", "-T", "run_python"], env=env, encoding="utf-8", timeout=20)

    child.expect_exact("> ")
    child.send("Make a file.\r")
    child.expect_exact("run this Python? [y/N]")
    shown = str(child.before)
    child.send("y\r")
    child.expect_exact("Made it.")
    child.close()

    assert f"    {code}" in shown
    assert (folder / "made.txt").read_text() == "d"


def test_slash_tools_lists_the_tools(server: ScriptedServer, home: Path, folder: Path) -> None:
    """If /tools is typed, then each tool on is listed with its description's first sentence;
    without tools it says how to turn them on, and /help names it."""
    term = Terminal(server, home, "-T", "read_file,list_dir")

    term.type("/tools")
    term.type("/help")

    assert "read_file  Read a text file in the current directory tree;" in term.screen
    assert "list_dir   List a folder in the current directory tree:" in term.screen
    assert "/tools           the tools the model may call" in term.screen
    assert term.leave() == 0

    result = chat_lines(server, home, "/tools\n")
    assert "m2: no tools: start m2 chat with -T NAME" in result.stderr


def test_retry_runs_a_tool_turn_again(server: ScriptedServer, home: Path, folder: Path) -> None:
    """If /retry follows a tool turn, then the message is run again with the tools offered, in
    its place."""
    server.queue(calls("list_dir", {}), answers("One."), calls("list_dir", {}), answers("Uno."))
    term = Terminal(server, home, "-T", "list_dir")

    term.type("What is here?")
    term.type("/retry")

    assert len(server.requests) == 4
    assert sent(server, 2) == sent(server, 0) == [{"role": "user", "content": "What is here?"}]
    assert "tools" in server.requests[2].json()
    assert tool_message(server, 3)["tool_call_id"] == "call_1"
    assert term.screen.count("→ list_dir()") == 2
    assert "Uno." in term.screen
    assert term.leave() == 0
    (turn,) = stored(home).turns
    assert turn.reply is not None
    assert turn.reply.text == "Uno."


def test_ctrl_c_stops_a_run_and_the_session_goes_on(
    server: ScriptedServer, home: Path, folder: Path
) -> None:
    """If Ctrl-C comes while a run's last step streams, then the prompt returns, the next message
    works without the stopped run, and the store keeps it marked interrupted."""
    slow = [chunk(content="hm</think>\n\nStarting"), *[chunk(content=" slowly")] * 100]
    server.queue(
        calls("list_dir", {}), stream_step(slow, chunk_delay=0.1), answers("Quick answer.")
    )
    term = Terminal(server, home, "-T", "list_dir")

    term.child.send("Take your time.\r")
    term.wait_for("Starting")
    term.child.sendintr()
    term.ready()
    term.type("Now quickly.")

    assert "stopped; that reply stays out of the history" in term.screen
    assert "Quick answer." in term.screen
    assert sent(server, 2) == [{"role": "user", "content": "Now quickly."}]
    assert term.leave() == 0
    assert [turn.status for turn in stored(home).turns] == ["interrupted", "complete"]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_ctrl_c_during_run_python_stops_the_code(
    server: ScriptedServer, home: Path, folder: Path
) -> None:
    """If Ctrl-C comes while run_python's code runs, then the code is stopped too, and the
    session goes on."""
    code = "import os, time; open('pid', 'w').write(str(os.getpid())); time.sleep(60)"
    server.queue(calls("run_python", {"code": code}), answers("Quick answer."))
    term = Terminal(server, home, "-T", "run_python", "--yes")

    term.child.send("Sleep a while.\r")
    pid_file = folder / "pid"
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, "the code never started"
        time.sleep(0.05)
    term.child.sendintr()
    term.ready()

    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while not gone(child):
        assert time.monotonic() < deadline, "run_python's code outlived the turn"
        time.sleep(0.05)
    assert term.leave() == 0
