"""`m2 ask` with tools (-T, --functions), run as a subprocess against the scripted server, and
the built-in tools themselves (m2kit.cli._builtin_tools)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pexpect
import pytest

from _server import chunk, stream_step
from m2kit._errors import ConfigError
from m2kit._store import Store
from m2kit._tool_runs import run_sync
from m2kit._types import ToolCall
from m2kit.cli._ask_tools import load_functions, load_tools
from m2kit.cli._builtin_tools import (
    BUILTINS,
    CUT,
    MAX_OUTPUT,
    list_dir,
    read_file,
    run_code,
    run_python,
)

if TYPE_CHECKING:
    from _server import ScriptedServer, Step

M2 = str(Path(sys.executable).with_name("m2"))
DENIED = "Error: this call was not allowed"


def m2(server: ScriptedServer, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "M2_BASE_URL": server.base_url, "COLUMNS": "100"}
    return subprocess.run(
        [M2, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def calls(
    name: str,
    arguments: dict[str, Any],
    call_id: str = "call_1",
    usage: dict[str, int] | None = None,
) -> Step:
    """A streamed reply that thinks, then calls one tool (then sends `usage`, when given)."""
    call = {
        "index": 0,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }
    return stream_step(
        [
            chunk(content="I need a tool.</think>\n\n"),
            chunk(tool_calls=[call]),
            chunk(finish_reason="tool_calls"),
            *([chunk(choices=False, usage=usage)] if usage else []),
        ]
    )


def answers(text: str, usage: dict[str, int] | None = None) -> Step:
    return stream_step(
        [
            chunk(content=f"Got it.</think>\n\n{text}"),
            chunk(finish_reason="stop"),
            *([chunk(choices=False, usage=usage)] if usage else []),
        ]
    )


def tool_message(server: ScriptedServer, number: int = 1) -> dict[str, Any]:
    """The last message of request `number`, which should be a tool result."""
    message: dict[str, Any] = server.requests[number].json()["messages"][-1]
    assert message["role"] == "tool"
    return message


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A working directory with a notes file, next to a secret one outside it."""
    (tmp_path / "secret.txt").write_text("the password\n", encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("hello\nworld\n", encoding="utf-8")
    return work


def test_a_two_step_run_with_read_file(server: ScriptedServer, folder: Path) -> None:
    """If the model calls read_file and then answers, then stderr shows the call and its result,
    stdout only the answer, and the second request carries the result for the call's id."""
    server.queue(calls("read_file", {"path": "notes.txt"}), answers("The notes say hello."))

    result = m2(server, folder, "ask", "-T", "read_file", "What do the notes say?")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "The notes say hello.\n"
    assert '→ read_file(path="notes.txt")' in result.stderr
    assert "← 1 hello (+1 lines)" in result.stderr
    assert "\x1b[" not in result.stderr

    first = server.requests[0].json()
    assert [tool["function"]["name"] for tool in first["tools"]] == ["read_file"]
    message = tool_message(server)
    assert message["tool_call_id"] == "call_1"
    assert "hello" in message["content"]
    assert server.requests[1].json()["messages"][1]["tool_calls"][0]["id"] == "call_1"


def test_json_of_a_run_has_its_steps_and_every_calls_tokens(
    server: ScriptedServer, folder: Path
) -> None:
    """If --json is given to a tool run, then the JSON holds each step with its calls and
    results, and total_usage adds up the tokens of every call."""
    usage = {"prompt_tokens": 30, "completion_tokens": 12}
    server.queue(calls("list_dir", {}, usage=usage), answers("One file.", usage=usage))

    result = m2(server, folder, "ask", "--json", "-T", "list_dir", "What is here?")

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["answer"] == "One file."
    (step,) = data["steps"]
    assert step["tool_calls"][0]["function"]["name"] == "list_dir"
    assert step["results"][0]["tool_call_id"] == "call_1"
    assert "notes.txt" in step["results"][0]["content"]
    assert data["usage"]["prompt_tokens"] == 30
    assert data["total_usage"]["prompt_tokens"] == 60
    assert data["total_usage"]["completion_tokens"] == 24


def test_the_run_is_one_turn_in_the_store(server: ScriptedServer, folder: Path) -> None:
    """If a run takes two steps with the store on, then the store holds one turn."""
    server.queue(calls("list_dir", {}), answers("One file."))

    assert m2(server, folder, "ask", "-T", "list_dir", "What is here?").returncode == 0

    data = Path(os.environ["XDG_DATA_HOME"])
    with Store(next(data.rglob("*.db"))) as store:
        found = store.latest_conversation_id()
        assert found is not None
        turns = store.load(found).turns
    assert [turn.user for turn in turns] == ["What is here?"]
    assert turns[0].reply is not None
    assert turns[0].reply.text == "One file."


def test_read_file_outside_the_cwd_is_refused(server: ScriptedServer, folder: Path) -> None:
    """If the model asks for a file outside the current directory, then it gets an error."""
    server.queue(calls("read_file", {"path": "../secret.txt"}), answers("I may not."))

    result = m2(server, folder, "ask", "-T", "all", "Read the secret.")

    assert result.returncode == 0, result.stderr
    content = tool_message(server)["content"]
    assert "outside the current directory" in content
    assert "password" not in content
    assert "← error: PermissionError: ../secret.txt is outside" in result.stderr


def test_run_python_is_denied_without_a_terminal(server: ScriptedServer, folder: Path) -> None:
    """If run_python is called without --yes and with no terminal, then it does not run and the
    model is told it was not allowed."""
    code = "open('made.txt', 'w').write('x')"
    server.queue(calls("run_python", {"code": code}), answers("It was not allowed."))

    result = m2(server, folder, "ask", "-T", "run_python", "Make a file.")

    assert result.returncode == 0, result.stderr
    assert not (folder / "made.txt").exists()
    assert tool_message(server)["content"].startswith(DENIED)
    assert "← denied: no terminal to ask on (--yes lets run_python run)" in result.stderr
    assert result.stderr.count("←") == 1


def test_run_python_runs_with_yes(server: ScriptedServer, folder: Path) -> None:
    """If --yes is given, then run_python runs in the current directory without asking, and
    stderr shows what the code printed."""
    code = "open('made.txt', 'w').write('x'); print(6 * 7)"
    server.queue(calls("run_python", {"code": code}), answers("It printed 42."))

    result = m2(server, folder, "ask", "-T", "run_python", "--yes", "Make a file.")

    assert result.returncode == 0, result.stderr
    assert (folder / "made.txt").read_text() == "x"
    content = tool_message(server)["content"]
    assert content.startswith("exit code: 0\nstdout:\n42\n")
    assert "← 42\n" in result.stderr


def test_a_failing_run_python_shows_its_exit_code_and_error(
    server: ScriptedServer, folder: Path
) -> None:
    """If the code fails, then stderr shows the exit code and the first line of its errors."""
    code = "import sys; sys.exit('no luck')"
    server.queue(calls("run_python", {"code": code}), answers("It failed."))

    result = m2(server, folder, "ask", "-T", "run_python", "--yes", "Try.")

    assert result.returncode == 0, result.stderr
    assert "← exit code 1: no luck" in result.stderr


def test_run_python_asks_on_a_terminal(server: ScriptedServer, folder: Path) -> None:
    """If m2 runs on a terminal, then run_python shows the code, asks, and runs on "y"."""
    code = "open('made.txt', 'w').write('y')"
    server.queue(calls("run_python", {"code": code}), answers("Done."))
    env = {**os.environ, "M2_BASE_URL": server.base_url, "TERM": "dumb", "NO_COLOR": "1"}

    child = pexpect.spawn(
        M2,
        ["ask", "-T", "run_python", "Make a file."],
        cwd=str(folder),
        env=env,
        timeout=20,
        encoding="utf-8",
    )
    child.expect_exact("run this Python? [y/N]")
    assert code in str(child.before)
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()

    assert child.exitstatus == 0
    assert (folder / "made.txt").read_text() == "y"


def test_functions_file_with_a_typed_function(server: ScriptedServer, folder: Path) -> None:
    """If --functions names a file of typed functions, then each public one is offered with its
    schema and runs when called."""
    (folder / "mine.py").write_text(
        "import os\n\n"
        "def add(a: int, b: int = 1) -> int:\n"
        '    """Add two numbers."""\n'
        "    return a + b\n\n"
        "def _hidden(x: int) -> int:\n"
        "    return x\n",
        encoding="utf-8",
    )
    server.queue(calls("add", {"a": 2, "b": 3}), answers("5."))

    result = m2(server, folder, "ask", "--functions", "mine.py", "2+3?")

    assert result.returncode == 0, result.stderr
    offered = server.requests[0].json()["tools"]
    assert [tool["function"]["name"] for tool in offered] == ["add"]
    assert offered[0]["function"]["description"] == "Add two numbers."
    assert offered[0]["function"]["parameters"]["required"] == ["a"]
    assert tool_message(server)["content"] == "5"
    assert "→ add(a=2, b=3)" in result.stderr


@pytest.mark.parametrize("kind", ["def", "async def"])
def test_what_a_tool_prints_stays_off_stdout(
    server: ScriptedServer, folder: Path, kind: str
) -> None:
    """If a tool prints, then its output goes to stderr, and --json's stdout is still one JSON
    object."""
    (folder / "loud.py").write_text(
        f"{kind} shout(word: str) -> str:\n"
        '    """Shout a word."""\n'
        "    print('DEBUG: shouting', word)\n"
        "    return word.upper()\n",
        encoding="utf-8",
    )
    server.queue(calls("shout", {"word": "hey"}), answers("HEY."))

    result = m2(server, folder, "ask", "--json", "--functions", "loud.py", "Shout hey.")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["answer"] == "HEY."
    assert "DEBUG: shouting hey" in result.stderr
    assert tool_message(server)["content"] == "HEY"


def test_a_function_that_calls_sys_exit(server: ScriptedServer, folder: Path) -> None:
    """If a --functions tool calls sys.exit(0), then the model is told so, and m2 goes on to its
    answer instead of exiting with none."""
    (folder / "leave.py").write_text(
        'import sys\n\ndef leave() -> str:\n    """Leave at once."""\n    sys.exit(0)\n',
        encoding="utf-8",
    )
    server.queue(calls("leave", {}), answers("It left."))

    result = m2(server, folder, "ask", "--functions", "leave.py", "Leave.")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "It left.\n"
    assert tool_message(server)["content"] == "Error: the tool called sys.exit(0)"
    assert "the tool called sys.exit(0)" in result.stderr


def test_tools_that_print_at_once_leave_stdout_to_the_answer(
    server: ScriptedServer, folder: Path
) -> None:
    """If two tools of one reply print while they run in parallel, one ending before the other,
    then both prints go to stderr and the answer still reaches stdout."""
    (folder / "loud.py").write_text(
        "import threading, time\n"
        "BOTH = threading.Barrier(2, timeout=10)\n\n"
        "def first(word: str) -> str:\n"
        '    """Say a word first."""\n'
        "    BOTH.wait(); print('first says', word)\n"
        "    return word\n\n"
        "def second(word: str) -> str:\n"
        '    """Say a word second, after the first has finished."""\n'
        "    BOTH.wait(); time.sleep(0.3); print('second says', word)\n"
        "    return word\n",
        encoding="utf-8",
    )
    both = [
        {"index": n, "id": f"c{n}", "function": {"name": name, "arguments": '{"word": "hi"}'}}
        for n, name in enumerate(["first", "second"])
    ]
    server.queue(
        stream_step([chunk(tool_calls=both), chunk(finish_reason="tool_calls")]),
        answers("Both spoke."),
    )

    result = m2(server, folder, "ask", "--functions", "loud.py", "Speak.")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Both spoke.\n"
    assert "first says hi" in result.stderr
    assert "second says hi" in result.stderr


def test_a_broken_functions_file(server: ScriptedServer, folder: Path) -> None:
    """If the functions file fails to import, then m2 exits 2 with one line, before any request."""
    (folder / "broken.py").write_text("import no_such_module_here\n", encoding="utf-8")

    result = m2(server, folder, "ask", "--functions", "broken.py", "hi")

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "broken.py does not load: ModuleNotFoundError" in result.stderr
    assert not server.requests


def test_max_steps(server: ScriptedServer, folder: Path) -> None:
    """If the model still calls tools at --max-steps, then m2 says so and exits 1."""
    server.queue(calls("list_dir", {}), calls("list_dir", {}, call_id="call_2"))

    result = m2(server, folder, "ask", "-T", "list_dir", "--max-steps", "2", "Look around.")

    assert result.returncode == 1
    assert result.stdout == ""
    assert "m2: stopped after 2 steps without an answer (raise --max-steps)" in result.stderr
    assert len(server.requests) == 2


def test_unknown_tool_name(server: ScriptedServer, folder: Path) -> None:
    """If -T names no built-in tool, then m2 exits 2 listing the choices."""
    result = m2(server, folder, "ask", "-T", "rm_rf", "hi")

    assert result.returncode == 2
    assert "read_file, list_dir, run_python" in result.stderr
    assert not server.requests


def test_plain_ask_does_not_load_tools(server: ScriptedServer) -> None:
    """If m2 ask runs without tools or a schema, then pydantic and the tool modules stay out."""
    server.queue(answers("Hi."))
    code = (
        "import sys, m2kit.cli\n"
        "try:\n    m2kit.cli.app(['ask', 'hi'])\nexcept SystemExit:\n    pass\n"
        "names = ('pydantic', 'm2kit.cli._ask_tools', 'm2kit.cli._builtin_tools')\n"
        "print(sorted(name for name in names if name in sys.modules))"
    )
    env = {**os.environ, "M2_BASE_URL": server.base_url}

    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )

    assert result.stdout.endswith("Hi.\n[]\n"), result.stdout + result.stderr


def test_load_tools_names() -> None:
    """If -T is "all" or a comma list, then those built-ins come once each, in order."""
    assert load_tools(["all"], None) == list(BUILTINS.values())
    assert load_tools(["list_dir,read_file", "list_dir"], None) == [list_dir, read_file]


def test_functions_file_with_tools(tmp_path: Path) -> None:
    """If a functions file defines @tool objects, then only they are loaded, named as given."""
    path = tmp_path / "tools.py"
    path.write_text(
        "from m2kit._tools import tool\n\n"
        "@tool(name='shout')\n"
        "def loud(text: str) -> str:\n"
        "    return text.upper()\n\n"
        "def helper(x: int) -> int:\n"
        "    return x\n",
        encoding="utf-8",
    )

    assert [found.name for found in load_functions(str(path))] == ["shout"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def f(x):\n    return x\n", "parameter 'x' has no type hint"),
        ("X = 1\n", "defines no tools"),
        ("def f(:\n", "does not load: SyntaxError"),
        ("import sys\nsys.exit(3)\n", "does not load: SystemExit: 3"),
    ],
)
def test_functions_file_errors(tmp_path: Path, source: str, message: str) -> None:
    """If a functions file cannot give tools, then a one-line ConfigError says why."""
    path = tmp_path / "bad.py"
    path.write_text(source, encoding="utf-8")

    with pytest.raises(ConfigError, match=message) as caught:
        load_functions(str(path))
    assert "\n" not in str(caught.value)


def test_functions_file_must_be_python(tmp_path: Path) -> None:
    """If --functions names a file that is not .py, then ConfigError says it takes Python."""
    schema = tmp_path / "tools.json"
    schema.write_text('{"name": "f"}', encoding="utf-8")

    with pytest.raises(ConfigError, match=r"takes a Python file \(FILE.py\)"):
        load_tools([], str(schema))


def test_a_tool_name_clash(tmp_path: Path) -> None:
    """If a functions file defines a tool named like a chosen built-in, then it is refused."""
    path = tmp_path / "mine.py"
    path.write_text("def read_file(path: str) -> str:\n    return path\n", encoding="utf-8")

    with pytest.raises(ConfigError, match="two tools are named read_file"):
        load_tools(["read_file"], str(path))


def test_read_file_numbers_lines_in_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If read_file is given start_line and max_lines, then it returns those lines, numbered,
    and says where to go on."""
    monkeypatch.chdir(tmp_path)
    Path("five.txt").write_text("".join(f"line {n}\n" for n in range(1, 6)), encoding="utf-8")

    assert read_file("five.txt", start_line=2, max_lines=2) == (
        "     2\tline 2\n     3\tline 3\n… (more lines follow: read again with start_line=4)"
    )
    assert read_file("five.txt", start_line=5).endswith("\tline 5")
    assert read_file("five.txt", start_line=9) == "(five.txt has fewer than 9 lines)"


def test_read_file_output_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If a file's lines come to more than the cap, then the output stops at the last whole line
    that fits and says which line to read on from."""
    monkeypatch.chdir(tmp_path)
    Path("big.txt").write_text(("x" * 100 + "\n") * 300, encoding="utf-8")

    text = read_file("big.txt")

    # Each line takes 108 characters with its number, tab and newline: 185 fit in 20,000.
    *lines, note = text.split("\n")
    assert len(lines) == 185
    assert lines[-1] == "   185\t" + "x" * 100
    assert note == "… (cut at 20,000 characters: read again with start_line=186)"
    assert read_file("big.txt", start_line=186).startswith("   186\tx")


def test_read_file_cuts_a_line_without_newlines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a file of megabytes has no newline, then its one line is cut at the cap, and the note
    says so and where the next line starts, when there is one."""
    monkeypatch.chdir(tmp_path)
    Path("one.txt").write_text("x" * 4_000_000, encoding="utf-8")
    Path("two.txt").write_text("x" * 4_000_000 + "\nsecond\n", encoding="utf-8")

    line, note = read_file("one.txt").split("\n")
    assert line == "     1\t" + "x" * (MAX_OUTPUT - 7) + CUT
    assert note == "… (line 1 is longer than 20,000 characters; the file ends after it)"

    note = read_file("two.txt").split("\n")[-1]
    assert note == "… (line 1 is longer than 20,000 characters: read again with start_line=2)"
    assert read_file("two.txt", start_line=2) == "     2\tsecond"


def test_read_file_with_huge_max_lines_stops_at_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If max_lines is 10**9 on a file of megabytes, then the output still stops at the cap and
    says where to read on."""
    monkeypatch.chdir(tmp_path)
    Path("many.txt").write_text(("y" * 99 + "\n") * 40_000, encoding="utf-8")

    text = read_file("many.txt", max_lines=10**9)

    assert len(text) <= MAX_OUTPUT + 100
    assert text.endswith("… (cut at 20,000 characters: read again with start_line=187)")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="makes a FIFO")
@pytest.mark.parametrize("name", ["pipe", "link"])
def test_read_file_refuses_a_fifo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """If read_file is pointed at a FIFO, itself or through a link, then it refuses at once
    instead of waiting for a writer."""
    monkeypatch.chdir(tmp_path)
    os.mkfifo("pipe")
    Path("link").symlink_to("pipe")
    call = ToolCall("call_1", "read_file", json.dumps({"path": name}))

    result = run_sync(read_file, call, timeout=5)

    assert result.error
    assert result.content == (
        f"Error: ValueError: {name} is a FIFO, not a regular file: read_file reads only those"
    )
    assert result.elapsed < 4


@pytest.mark.parametrize("where", ["../outside.txt", "/etc/hostname", "link.txt"])
def test_paths_outside_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """If a path resolves outside the current directory, links included, then it is refused."""
    (tmp_path / "outside.txt").write_text("no", encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    (work / "link.txt").symlink_to(tmp_path / "outside.txt")
    monkeypatch.chdir(work)

    with pytest.raises(PermissionError, match="outside the current directory"):
        read_file(where)
    with pytest.raises(PermissionError, match="outside the current directory"):
        list_dir("..")


def test_read_file_refuses_folders_and_binaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If read_file is given a folder or a binary file, then the error says what it is."""
    monkeypatch.chdir(tmp_path)
    Path("sub").mkdir()
    Path("blob.bin").write_bytes(b"\x00\x01\x02")

    with pytest.raises(IsADirectoryError, match="use list_dir"):
        read_file("sub")
    with pytest.raises(ValueError, match="binary file"):
        read_file("blob.bin")


def test_list_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If list_dir is called, then folders end in "/" and files show their size, sorted."""
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    Path("b.txt").write_text("abc", encoding="utf-8")
    Path("a").mkdir()
    Path("a", "inner.txt").write_text("", encoding="utf-8")

    assert list_dir() == "a/\nb.txt  (3 bytes)"
    assert list_dir("a") == "inner.txt  (0 bytes)"
    with pytest.raises(NotADirectoryError):
        list_dir("b.txt")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="makes a FIFO")
def test_list_dir_says_what_is_not_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If a folder holds a FIFO, then list_dir says it is one rather than give it a size."""
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    os.mkfifo("pipe")

    assert list_dir() == "pipe  (a FIFO)"


def test_run_code_reports_exit_code_and_both_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the code fails, then the result has its exit code, stdout and stderr, run in the cwd."""
    monkeypatch.chdir(tmp_path)
    code = "import os, sys; print(os.getcwd()); sys.exit('bad')"

    text = run_code(code, timeout=10)

    assert text.startswith(f"exit code: 1\nstdout:\n{tmp_path.resolve()}\n")
    assert text.endswith("stderr:\nbad\n")


def test_run_code_output_is_capped() -> None:
    """If the code prints more than the cap, then its output is cut and says how much was."""
    text = run_code("print('x' * 50_000)", timeout=10)

    assert text == (
        f"exit code: 0\nstdout:\n{'x' * 10_000}… (cut: 40,001 more characters)\nstderr:\n(nothing)"
    )


def test_run_code_drains_both_streams_past_the_cap() -> None:
    """If the code writes megabytes to both streams, then both are read to their end, so the code
    is not stuck on a full pipe, and each keeps its first half of the cap."""
    code = "import sys; sys.stderr.write('e' * 3_000_000); sys.stdout.write('o' * 3_000_000)"

    text = run_code(code, timeout=20)

    assert text == (
        f"exit code: 0\nstdout:\n{'o' * 10_000}… (cut: 2,990,000 more characters)\n"
        f"stderr:\n{'e' * 10_000}… (cut: 2,990,000 more characters)"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="starts a session of its own")
def test_run_code_timeout_with_a_grandchild_holding_the_pipes(tmp_path: Path) -> None:
    """If the code ends but leaves a process of its own session holding its output open, then
    run_code still stops at its time limit instead of waiting for that process."""
    code = (
        "import subprocess, sys\n"
        "sleeper = [sys.executable, '-c', 'import time; time.sleep(30)']\n"
        "child = subprocess.Popen(sleeper, start_new_session=True)\n"
        f"open({str(tmp_path / 'pid')!r}, 'w').write(str(child.pid))\n"
    )
    started = time.monotonic()

    try:
        with pytest.raises(TimeoutError, match=r"did not finish within 1 s"):
            run_code(code, timeout=1)
        assert time.monotonic() - started < 10
    finally:
        os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)


def test_run_code_timeout() -> None:
    """If the code outlasts its time limit, then it is killed and a TimeoutError says so."""
    started = time.monotonic()

    with pytest.raises(TimeoutError, match=r"did not finish within 0\.5 s"):
        run_code("import time; time.sleep(30)", timeout=0.5)
    assert time.monotonic() - started < 10


def test_run_python_as_a_tool() -> None:
    """If run_python is called as a tool, then it runs in an isolated interpreter."""
    call = ToolCall(
        "call_1", "run_python", json.dumps({"code": "import sys; print(sys.flags.isolated)"})
    )

    result = run_sync(run_python, call)

    assert not result.error
    assert "stdout:\n1\n" in result.content


def test_builtin_descriptions() -> None:
    """If the built-ins are offered, then each has a description and documented parameters."""
    for found in BUILTINS.values():
        assert found.description
        for prop in found.parameters.get("properties", {}).values():
            assert prop["description"]


def gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie waiting for its reaper counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_ctrl_c_during_run_python_stops_the_code_too(server: ScriptedServer, folder: Path) -> None:
    """If m2 is interrupted while run_python's code runs, then that code is stopped as well,
    not left running on its own (it runs in a session of its own, out of Ctrl-C's reach)."""
    code = "import os, time; open('pid', 'w').write(str(os.getpid())); time.sleep(60)"
    server.queue(calls("run_python", {"code": code}), answers("Unused."))
    env = {**os.environ, "M2_BASE_URL": server.base_url}
    process = subprocess.Popen(
        [M2, "ask", "-T", "run_python", "--yes", "Sleep."],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file = folder / "pid"
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, "the code never started"
        time.sleep(0.05)
    child = int(pid_file.read_text())

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 130

    deadline = time.monotonic() + 10
    while not gone(child):
        assert time.monotonic() < deadline, "run_python's code outlived m2"
        time.sleep(0.05)


def test_a_call_with_absurdly_nested_arguments_is_shown_not_a_traceback(
    server: ScriptedServer, folder: Path
) -> None:
    """If a call's arguments nest a thousand levels deep, then m2 shows the call and its error
    result, and answers; nothing raises."""
    server.queue(
        stream_step(
            [
                chunk(
                    tool_calls=[
                        {
                            "index": 0,
                            "id": "call_1",
                            "function": {"name": "list_dir", "arguments": "[" * 1000},
                        }
                    ]
                ),
                chunk(finish_reason="tool_calls"),
            ]
        ),
        answers("Sorry."),
    )

    result = m2(server, folder, "ask", "-T", "list_dir", "What is here?")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Sorry.\n"
    assert "← error:" in result.stderr
    assert "Traceback" not in result.stderr
    assert (
        server.requests[1].json()["messages"][1]["tool_calls"][0]["function"]["arguments"] == "{}"
    )
