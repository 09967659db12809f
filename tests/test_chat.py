"""`m2 chat` end to end: typed into on a real pseudo-terminal, and fed line by line from a pipe.

Each test runs the installed `m2` against the scripted server, with M2_HOME in a temporary folder
so that the store and the prompt history land there.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pexpect
import pytest

from _server import chunk, error_step, stream_step
from m2kit._store import Store

if TYPE_CHECKING:
    from _server import ScriptedServer, Step
    from m2kit._store_rows import StoredConversation

M2 = str(Path(sys.executable).with_name("m2"))
# prompt_toolkit turns bracketed paste on as each prompt starts: the prompt is ready for keys.
PROMPT_READY = "\x1b[?2004h"
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|[\x08\r]")
USAGE = {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}


def reply(thinking: str, answer: str, *, chunk_delay: float = 0.0, pieces: int = 1) -> Step:
    """A MiniMax-M2 stream: inline thinking closed by </think>, the answer, usage."""
    size = max(1, len(answer) // pieces)
    words = [answer[at : at + size] for at in range(0, len(answer), size)]
    events = [
        chunk(role="assistant", content=""),
        chunk(content=f"{thinking}</think>\n\n"),
        *(chunk(content=word) for word in words),
        chunk(finish_reason="stop"),
        chunk(choices=False, usage=USAGE),
    ]
    return stream_step(events, chunk_delay=chunk_delay)


class Terminal:
    """`m2 chat` on a pseudo-terminal, with what it has drawn so far kept as plain text."""

    def __init__(
        self,
        server: ScriptedServer | None,
        home: Path,
        *args: str,
        env: dict[str, str] | None = None,
    ) -> None:
        full_env = {
            **os.environ,
            "M2_HOME": str(home),
            "TERM": "xterm",
            # A real terminal answers prompt_toolkit's cursor-position queries; a bare pty does not.
            "PROMPT_TOOLKIT_NO_CPR": "1",
            **({"M2_BASE_URL": server.base_url} if server else {}),
            **(env or {}),
        }
        self.child = pexpect.spawn(
            M2, ["chat", *args], env=full_env, encoding="utf-8", timeout=20, dimensions=(30, 100)
        )
        self._drawn: list[str] = []
        self.ready()

    def ready(self) -> None:
        """Wait until the prompt takes keys again."""
        self._expect(PROMPT_READY)

    def type(self, text: str) -> None:
        """Type `text` and press Enter, then wait for the prompt to come back."""
        self.child.send(f"{text}\r")
        self.ready()

    def wait_for(self, text: str) -> None:
        self._expect(text)

    def _expect(self, text: str) -> None:
        self.child.expect_exact(text)
        self._drawn.append(str(self.child.before) + str(self.child.after))

    @property
    def screen(self) -> str:
        """Everything drawn so far, without the escape sequences."""
        return _ESCAPES.sub("", "".join(self._drawn))

    def leave(self) -> int:
        """Press Ctrl-D at the prompt; returns the exit status."""
        self.child.sendeof()
        self._drawn.append(str(self.child.read()))
        self.child.close()
        assert self.child.exitstatus is not None, self.screen
        return self.child.exitstatus


def chat_lines(
    server: ScriptedServer, home: Path, stdin: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "M2_BASE_URL": server.base_url, "M2_HOME": str(home), **(env or {})}
    return subprocess.run(
        [M2, "chat", *args], input=stdin, env=full_env, capture_output=True, text=True, timeout=30
    )


def stored(home: Path) -> StoredConversation:
    with Store(home / "m2.db") as store:
        cid = store.latest_conversation_id()
        assert cid is not None
        return store.load(cid)


def sent(server: ScriptedServer, index: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = server.requests[index].json()["messages"]
    return messages


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "m2home"


def test_a_typed_message_gets_its_answer_on_screen(server: ScriptedServer, home: Path) -> None:
    """If the user types a message, then the answer is drawn as Markdown and the thinking folds."""
    server.queue(reply("The user greets me.", "Hello **there**, friend.", pieces=4))
    term = Terminal(server, home)

    term.type("Hi!")

    assert "Hello there, friend." in term.screen
    assert "thought for" in term.screen
    assert "The user greets me." not in term.screen
    assert "42 tokens" in term.screen
    assert term.leave() == 0
    assert sent(server, 0)[-1] == {"role": "user", "content": "Hi!"}


def test_the_welcome_line_names_the_keys(server: ScriptedServer, home: Path) -> None:
    """If a session starts, then its first line says how to send and how to add a line."""
    term = Terminal(server, home)

    assert "Enter sends" in term.screen
    assert "Alt-Enter (or Esc Enter): new line" in term.screen
    assert term.leave() == 0


def test_thinking_folds_behind_a_timer(server: ScriptedServer, home: Path) -> None:
    """If the model thinks for a while with /think off, then a timer stands in for the thinking."""
    thinking = [chunk(content=f"step {n}. ") for n in range(8)]
    events = [*thinking, chunk(content="</think>\n\nDone thinking."), chunk(finish_reason="stop")]
    server.queue(stream_step(events, chunk_delay=0.15))
    term = Terminal(server, home)

    term.type("Think hard.")

    assert "thinking… " in term.screen
    assert "step 3." not in term.screen
    assert "Done thinking." in term.screen
    assert term.leave() == 0


def test_think_shows_the_thinking(server: ScriptedServer, home: Path) -> None:
    """If /think is on, then the next reply's thinking is drawn above its answer."""
    server.queue(reply("Weighing the greeting.", "Hello."))
    term = Terminal(server, home)

    term.type("/think")
    term.type("Hi!")

    assert "thinking shown as it streams" in term.screen
    assert "Weighing the greeting." in term.screen
    assert term.screen.index("Weighing the greeting.") < term.screen.rindex("Hello.")
    assert term.leave() == 0


def test_model_changes_the_model_sent(server: ScriptedServer, home: Path) -> None:
    """If /model NAME is given, then the next request asks for that model."""
    server.queue(reply("ok", "Fine."))
    term = Terminal(server, home)

    term.type("/model acme/other-model")
    term.type("Hi!")

    assert server.requests[-1].json()["model"] == "acme/other-model"
    assert "model acme/other-model" in term.screen
    assert term.leave() == 0


def test_model_is_checked_like_the_flag(home: Path) -> None:
    """If /model names a router model with a misspelt suffix, then one line suggests the fix."""
    term = Terminal(None, home)  # the router: the check needs no network

    term.type("/model MiniMaxAI/MiniMax-M2:fastst")

    assert "did you mean :fastest?" in term.screen
    assert term.leave() == 0


def test_model_on_a_server_is_checked_against_its_list(server: ScriptedServer, home: Path) -> None:
    """If /model names a model a self-hosted server does not list, then one line names the ones
    it serves and the model stays; a listed one is used."""
    server.models({"object": "list", "data": [{"id": "served/one"}, {"id": "served/two"}]})
    server.queue(reply("ok", "Fine."))

    result = chat_lines(server, home, "/model served/typo\n/model served/two\nHi\n")

    assert result.returncode == 1  # line mode: a refused command counts as an error
    assert "does not serve 'served/typo'" in result.stderr
    assert "served/one, served/two" in result.stderr
    assert server.requests[-1].json()["model"] == "served/two"


def test_model_on_a_server_without_a_list_is_used(server: ScriptedServer, home: Path) -> None:
    """If a self-hosted server has no model list, then /model says it could not check, and uses
    the name."""
    server.queue(reply("ok", "Fine."))

    result = chat_lines(server, home, "/model acme/other\nHi\n")

    assert result.returncode == 0, result.stderr
    assert "could not check" in result.stderr
    assert server.requests[-1].json()["model"] == "acme/other"


def test_retry_resends_the_last_message(server: ScriptedServer, home: Path) -> None:
    """If /retry follows two turns, then the last message goes again with the first turn's
    thinking still in the history."""
    server.queue(reply("First thoughts.", "One."), reply("Second.", "Two."), reply("Again.", "2."))
    term = Terminal(server, home)

    term.type("Count to one.")
    term.type("And to two?")
    term.type("/retry")

    assert len(server.requests) == 3
    assert sent(server, 2) == sent(server, 1)
    assert sent(server, 2)[-1] == {"role": "user", "content": "And to two?"}
    assert "First thoughts." in json.dumps(sent(server, 2)[1])
    assert "again: And to two?" in term.screen
    assert term.leave() == 0
    assert [turn.user for turn in stored(home).turns] == ["Count to one.", "And to two?"]


def test_ctrl_c_stops_a_reply_and_the_session_goes_on(server: ScriptedServer, home: Path) -> None:
    """If Ctrl-C comes mid-reply, then the prompt returns, the next message works, and the store
    keeps the stopped turn marked interrupted."""
    slow = [chunk(content="hm</think>\n\nStarting"), *[chunk(content=" slowly")] * 100]
    server.queue(stream_step(slow, chunk_delay=0.1), reply("ok", "Quick answer."))
    term = Terminal(server, home)

    term.child.send("Take your time.\r")
    term.wait_for("Starting")
    term.child.sendintr()
    term.ready()
    term.type("Now quickly.")

    assert "stopped; that reply stays out of the history" in term.screen
    assert "Quick answer." in term.screen
    assert sent(server, 1) == [{"role": "user", "content": "Now quickly."}]
    assert term.leave() == 0
    assert [turn.status for turn in stored(home).turns] == ["interrupted", "complete"]


def test_keys_typed_during_a_reply_wait_for_the_prompt(server: ScriptedServer, home: Path) -> None:
    """If the user types while a reply streams, then the keys are not drawn into the reply and
    land in the next prompt."""
    slow = [chunk(content="hm</think>\n\nSlow"), *[chunk(content=" and steady")] * 8]
    server.queue(stream_step(slow, chunk_delay=0.1), reply("ok", "Next."))
    term = Terminal(server, home)

    term.child.send("Go slowly.\r")
    term.wait_for("Slow")
    drawn = len(term.screen)
    term.child.send("typed ahead")
    term.ready()
    assert "typed ahead" not in term.screen[drawn:]
    term.type("")

    assert sent(server, 1)[-1] == {"role": "user", "content": "typed ahead"}
    assert "and steady" in term.screen
    assert term.leave() == 0


def test_the_terminal_is_left_as_it_was(server: ScriptedServer, home: Path) -> None:
    """If the session ends, then the terminal echoes keys again and flushes at Ctrl-C again."""
    env = {**os.environ, "M2_HOME": str(home), "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn("sh", ["-c", f"{M2} chat; stty -a"], env=env, encoding="utf-8")
    child.expect_exact(PROMPT_READY, timeout=20)
    child.sendeof()
    modes = str(child.read()).split()
    child.close()

    assert "echo" in modes
    assert "-noflsh" in modes


def test_ctrl_c_at_the_prompt_is_harmless(server: ScriptedServer, home: Path) -> None:
    """If Ctrl-C is pressed at an empty prompt, then nothing is sent and the session goes on."""
    server.queue(reply("ok", "Still here."))
    term = Terminal(server, home)

    term.child.sendintr()
    term.ready()
    term.type("Are you there?")

    assert len(server.requests) == 1
    assert "Still here." in term.screen
    assert term.leave() == 0


def test_ctrl_d_leaves_and_the_store_has_the_turns(server: ScriptedServer, home: Path) -> None:
    """If the user chats and then presses Ctrl-D, then m2 exits 0 and the store has each turn
    with its thinking."""
    server.queue(reply("Thinking one.", "Answer one."), reply("Thinking two.", "Answer two."))
    term = Terminal(server, home)

    term.type("Question one")
    term.type("Question two")

    assert term.leave() == 0
    conversation = stored(home)
    assert [turn.user for turn in conversation.turns] == ["Question one", "Question two"]
    assert [turn.reply.thinking for turn in conversation.turns if turn.reply] == [
        "Thinking one.",
        "Thinking two.",
    ]
    assert conversation.model == "MiniMaxAI/MiniMax-M2"


def test_esc_enter_adds_a_line(server: ScriptedServer, home: Path) -> None:
    """If Esc then Enter is typed inside a message, then the message is sent with a new line."""
    server.queue(reply("ok", "Two lines seen."))
    term = Terminal(server, home)

    term.type("line one\x1b\rline two")

    assert sent(server, 0)[-1]["content"] == "line one\nline two"
    assert term.leave() == 0


def test_prompts_are_recalled_in_the_next_session(server: ScriptedServer, home: Path) -> None:
    """If a prompt was sent in one session, then Up recalls it in the next, from a private file."""
    server.queue(reply("ok", "First."), reply("ok", "Second."))
    first = Terminal(server, home)
    first.type("Remember this prompt")
    assert first.leave() == 0

    second = Terminal(server, home)
    second.type("\x1b[A")  # the Up arrow

    assert sent(server, 1)[-1]["content"] == "Remember this prompt"
    assert second.leave() == 0
    assert stat.S_IMODE((home / "chat_history").stat().st_mode) == 0o600


def test_errors_are_one_line_and_the_session_goes_on(server: ScriptedServer, home: Path) -> None:
    """If the server refuses a turn, then one line says so and the next message works."""
    server.queue(error_step(400, {"error": {"message": "bad things"}}), reply("ok", "Recovered."))
    term = Terminal(server, home)

    term.type("Break, please.")
    term.type("And now?")

    assert "m2: error:" in term.screen
    assert "bad things" in term.screen
    assert "Traceback" not in term.screen
    assert "Recovered." in term.screen
    assert term.leave() == 0


def test_an_unknown_model_points_at_slash_model(server: ScriptedServer, home: Path) -> None:
    """If the server does not serve the model, then the hint names /model, not a flag."""
    server.queue(error_step(404, {"error": {"message": "model not found"}}))

    result = chat_lines(server, home, "Hi\n", "-m", "acme/missing")

    assert result.returncode == 1
    assert "model not found" in result.stderr
    assert "/model NAME" in result.stderr
    assert "--base-url" not in result.stderr
    assert "-m " not in result.stderr


def test_save_writes_json_and_markdown(server: ScriptedServer, home: Path, tmp_path: Path) -> None:
    """If /save is given a .json and a .md path, then the first holds the conversation as JSON
    and the second as Markdown with the thinking folded."""
    server.queue(reply("Quiet thought.", "Saved answer."))
    term = Terminal(server, home)

    term.type("Save me.")
    term.type(f"/save {tmp_path / 'chat.json'}")
    term.type(f"/save {tmp_path / 'chat.md'}")

    assert term.leave() == 0
    saved = json.loads((tmp_path / "chat.json").read_text(encoding="utf-8"))
    assert saved["turns"][0]["user"] == "Save me."
    markdown = (tmp_path / "chat.md").read_text(encoding="utf-8")
    assert "<details><summary>Thinking</summary>" in markdown
    assert "Quiet thought." in markdown
    assert "Saved answer." in markdown


def test_new_usage_help_and_unknown_commands(server: ScriptedServer, home: Path) -> None:
    """If /usage, /new, /help and an unknown command are typed, then each answers in place and
    /new sends no earlier history."""
    server.queue(reply("a", "One."), reply("b", "Two."))
    term = Terminal(server, home)

    term.type("First")
    term.type("/usage")
    term.type("/new")
    term.type("Second")
    term.type("/help")
    term.type("/frobnicate")

    assert "this session: 1 call, 42 tokens: 12 prompt + 30 completion" in term.screen
    assert sent(server, 1) == [{"role": "user", "content": "Second"}]
    assert "/retry" in term.screen
    assert "unknown command /frobnicate" in term.screen
    assert term.leave() == 0


def test_line_mode_reads_one_turn_per_line(server: ScriptedServer, home: Path) -> None:
    """If standard input is a pipe, then each line is one turn and answers print plain."""
    server.queue(reply("Hidden.", "First **answer**."), reply("Shown.", "Second answer."))

    result = chat_lines(server, home, "first\n\n/think\nsecond\n")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "First **answer**.\nSecond answer.\n"
    assert "Shown." in result.stderr
    assert "Hidden." not in result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    assert "First **answer**." in json.dumps(sent(server, 1))
    assert [turn.user for turn in stored(home).turns] == ["first", "second"]


def test_line_mode_reports_a_failed_turn(server: ScriptedServer, home: Path) -> None:
    """If a turn fails in line mode, then one line says so, the next turn works, and m2 exits 1."""
    server.queue(error_step(400, {"error": {"message": "nope"}}), reply("ok", "Fine."))

    result = chat_lines(server, home, "one\ntwo\n")

    assert result.returncode == 1
    assert result.stdout == "Fine.\n"
    assert result.stderr.count("\n") == 1
    assert "nope" in result.stderr


def test_continue_resumes_the_latest_conversation(server: ScriptedServer, home: Path) -> None:
    """If -c is given, then the next turn carries the stored conversation with its thinking."""
    server.queue(reply("Earlier thinking.", "Earlier answer."), reply("ok", "Later answer."))
    first = chat_lines(server, home, "earlier\n")
    assert first.returncode == 0, first.stderr

    again = chat_lines(server, home, "later\n", "-c")

    assert again.returncode == 0, again.stderr
    assert "continuing “earlier”" in again.stderr
    history = sent(server, 1)
    assert [message["role"] for message in history] == ["user", "assistant", "user"]
    assert "Earlier thinking." in json.dumps(history[1])
    assert len(stored(home).turns) == 2


def test_continue_on_the_terminal_shows_the_last_turn(server: ScriptedServer, home: Path) -> None:
    """If -c is given on a terminal, then after the welcome line the last turn is shown again."""
    server.queue(reply("ok", "The **stored** answer."))
    assert chat_lines(server, home, "stored question\n").returncode == 0

    term = Terminal(server, home, "-c")

    screen = term.screen
    assert screen.index("Enter sends") < screen.index("continuing “stored question”, 1 turn")
    assert "The stored answer." in screen
    assert term.leave() == 0


def test_continue_with_a_model_uses_it_and_keeps_the_rest(
    server: ScriptedServer, home: Path
) -> None:
    """If -c is given with -m, then the next turn goes to that model with the stored settings."""
    server.queue(reply("a", "A."), reply("b", "B."))
    chat_lines(server, home, "alpha\n", "--temperature", "0.2")

    result = chat_lines(server, home, "beta\n", "-c", "-m", "MiniMaxAI/MiniMax-M2:cheapest")

    assert result.returncode == 0, result.stderr
    body = server.requests[1].json()
    assert (body["model"], body["temperature"]) == ("MiniMaxAI/MiniMax-M2:cheapest", 0.2)
    assert body["messages"][0]["content"] == "alpha"


@pytest.mark.parametrize("include", [False, True])
def test_interrupted_replies_go_back_only_when_asked(
    server: ScriptedServer, home: Path, include: bool
) -> None:
    """If a reply is cut off, then the next turn leaves it out, unless --include-interrupted."""
    cut = [chunk(content="Half a thought</think>\n\nhalf")]
    server.queue(stream_step(cut, done=False, drop_after=1), reply("ok", "Whole."))
    args = ["--include-interrupted"] if include else []
    first = chat_lines(server, home, "one\n", *args)
    assert first.returncode == 1

    again = chat_lines(server, home, "two\n", "-c", *args)

    assert again.returncode == 0, again.stderr
    contents = [message["content"] for message in sent(server, 1)]
    if include:
        assert contents == ["one", "Half a thought</think>\n\nhalf", "two"]
    else:
        assert contents == ["two"]


def test_cid_resumes_a_given_conversation(server: ScriptedServer, home: Path) -> None:
    """If --cid names a stored conversation, then it continues that one, not the latest."""
    server.queue(reply("a", "A."), reply("b", "B."), reply("c", "C."))
    chat_lines(server, home, "alpha\n")
    alpha = stored(home).id
    chat_lines(server, home, "beta\n")

    result = chat_lines(server, home, "gamma\n", "--cid", alpha)

    assert result.returncode == 0, result.stderr
    assert sent(server, 2)[0] == {"role": "user", "content": "alpha"}


def test_continue_with_an_empty_store_is_a_usage_error(server: ScriptedServer, home: Path) -> None:
    """If -c finds no stored conversation, then one line says so and m2 exits 2."""
    result = chat_lines(server, home, "hello\n", "-c")

    assert result.returncode == 2
    assert "no stored conversation to continue" in result.stderr
    assert not server.requests


def test_no_log_keeps_the_store_empty(server: ScriptedServer, home: Path) -> None:
    """If --no-log or M2_NO_LOG is set, then no store file is written."""
    server.queue(reply("ok", "One."), reply("ok", "Two."))

    flag = chat_lines(server, home, "hello\n", "--no-log")
    variable = chat_lines(server, home, "hello\n", env={"M2_NO_LOG": "1"})

    assert flag.returncode == variable.returncode == 0
    assert not (home / "m2.db").exists()


def test_cid_takes_the_short_id_m2_logs_shows(server: ScriptedServer, home: Path) -> None:
    """If --cid is a unique prefix (m2 logs shows 8 characters), then that conversation goes on,
    as with m2 ask --cid."""
    server.queue(reply("a", "A."), reply("b", "B."), reply("c", "C."))
    chat_lines(server, home, "alpha\n")
    alpha = stored(home).id
    chat_lines(server, home, "beta\n")

    result = chat_lines(server, home, "gamma\n", "--cid", alpha[:8])

    assert result.returncode == 0, result.stderr
    assert sent(server, 2)[0] == {"role": "user", "content": "alpha"}
