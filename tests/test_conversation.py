"""Tests for m2kit._conversation: multi-turn history, thinking, recording, JSON and Markdown.

Every conversation runs against the scripted server, through Client or AsyncClient alike.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import stat
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from _server import Step, chunk, completion, error_step, json_step, stream_step
from m2kit import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConfigError,
    Done,
    M2Error,
    Reply,
    RetryPolicy,
    StreamInterrupted,
    ThinkingDelta,
    Usage,
)
from m2kit._conversation import AsyncConversation, Conversation, ConversationBase, Turn

if TYPE_CHECKING:
    from pathlib import Path

    from _server import ScriptedServer
    from m2kit import Message
    from m2kit._agent import ToolStep

M2 = "MiniMaxAI/MiniMax-M2"
PLAIN = "meta-llama/Llama-3.3-70B-Instruct"
ONCE = RetryPolicy(max_attempts=1)
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
REBUILT = "<think>\nGreet them.\n</think>\n\nHello!"


def user(text: str) -> Message:
    return {"role": "user", "content": text}


def assistant(content: str | None, **extra: Any) -> Message:
    return {"role": "assistant", "content": content, **extra}


def ok(content: str, *, streamed: bool = False, **kw: Any) -> Step:
    if streamed:
        return stream_step([chunk(content), chunk(finish_reason="stop")], **kw)
    return json_step(completion(content))


def dropped() -> Step:
    """A stream that drops after "Plan.</think>Hel", with no finish reason."""
    chunks = [chunk("Plan."), chunk("</think>Hel"), chunk("lo"), chunk(finish_reason="stop")]
    return stream_step(chunks, drop_after=2)


def long_stream() -> Step:
    return stream_step([chunk("Plan."), *(chunk("word ") for _ in range(50))], chunk_delay=0.01)


@dataclass(frozen=True)
class Do:
    """One thing to do with a conversation: send, stream, leave (read one event, then close),
    retry or retry_stream."""

    action: str
    text: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Chat:
    """Plays `Do`s on a Conversation (`sync`) or an AsyncConversation (`async`).

    Each result is the Reply, the list of streamed events, or the M2Error raised.
    """

    mode: str
    server: ScriptedServer

    def play(self, *steps: Do, **options: Any) -> tuple[ConversationBase, list[Any]]:
        if self.mode == "sync":
            with Client(base_url=self.server.base_url, retry=ONCE) as client:
                conversation = Conversation(client, **options)
                return conversation, [_play(conversation, step) for step in steps]

        async def play() -> tuple[ConversationBase, list[Any]]:
            async with AsyncClient(base_url=self.server.base_url, retry=ONCE) as client:
                conversation = AsyncConversation(client, **options)
                return conversation, [await _aplay(conversation, step) for step in steps]

        return anyio.run(play)

    def messages(self, request: int) -> list[Message]:
        messages: list[Message] = self.server.requests[request].json()["messages"]
        return messages


def _play(conversation: Conversation, step: Do) -> Any:
    try:
        if step.action == "send":
            return conversation.send(step.text, **step.params)
        if step.action == "stream":
            return list(conversation.stream(step.text, **step.params))
        if step.action == "leave":
            with conversation.stream(step.text, **step.params) as events:
                return [next(events)]
        if step.action == "retry":
            return conversation.retry(**step.params)
        return list(conversation.retry_stream(**step.params))
    except M2Error as exc:
        return exc


async def _aplay(conversation: AsyncConversation, step: Do) -> Any:
    try:
        if step.action == "send":
            return await conversation.send(step.text, **step.params)
        if step.action == "stream":
            return [event async for event in conversation.stream(step.text, **step.params)]
        if step.action == "leave":
            async with conversation.stream(step.text, **step.params) as events:
                return [await events.__anext__()]
        if step.action == "retry":
            return await conversation.retry(**step.params)
        return [event async for event in conversation.retry_stream(**step.params)]
    except M2Error as exc:
        return exc


@pytest.fixture(params=["sync", "async"])
def chat(request: pytest.FixtureRequest, server: ScriptedServer) -> Chat:
    return Chat(request.param, server)


# The first turn's thinking goes back in the second request, in every shape.


@dataclass(frozen=True)
class Shape:
    content: tuple[str, ...]
    expected: Message  # the assistant message of the second request
    reasoning_field: str | None = None
    model: str = M2

    def fields(self, text: str) -> dict[str, Any]:
        if self.reasoning_field == "reasoning_details":
            return {"reasoning_details": [{"type": "reasoning.text", "text": text}]}
        return {self.reasoning_field: text} if self.reasoning_field else {}

    def step(self, *, streamed: bool) -> Step:
        reasoning = ("Greet ", "them.") if self.reasoning_field else ()
        if not streamed:
            whole = completion("".join(self.content), **self.fields("".join(reasoning)))
            return json_step(whole)
        chunks = [chunk(**self.fields(part)) for part in reasoning]
        chunks += [chunk(part) for part in self.content]
        return stream_step([*chunks, chunk(finish_reason="stop", usage=USAGE)])


SHAPES = {
    "m2-inline-no-open-tag": Shape(
        ("Greet them.", "</think>\n\n", "Hello!"), assistant("Greet them.</think>\n\nHello!")
    ),
    "m2-inline-open-tag": Shape(
        ("<think>\nGreet them.", "\n</think>\n\nHello!"),
        assistant("<think>\nGreet them.\n</think>\n\nHello!"),
    ),
    "m2-reasoning_content": Shape(("Hello!",), assistant(REBUILT), "reasoning_content"),
    "m2-reasoning": Shape(("Hello!",), assistant(REBUILT), "reasoning"),
    "m2-reasoning_details": Shape(("Hello!",), assistant(REBUILT), "reasoning_details"),
    "plain-reasoning_content": Shape(
        ("Hello!",),
        assistant("Hello!"),
        "reasoning_content",
        PLAIN,
    ),
    "plain-reasoning": Shape(("Hello!",), assistant("Hello!"), "reasoning", PLAIN),
    "plain-reasoning_details": Shape(
        ("Hello!",),
        assistant("Hello!"),
        "reasoning_details",
        PLAIN,
    ),
}


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("name", SHAPES)
def test_second_request_carries_the_first_turns_thinking(
    chat: Chat, name: str, streamed: bool
) -> None:
    """If a first reply thinks in any shape, then the second request carries that thinking."""
    shape = SHAPES[name]
    chat.server.queue(shape.step(streamed=streamed), ok("Fine.", streamed=streamed))
    action = "stream" if streamed else "send"

    conversation, _ = chat.play(Do(action, "Hi"), Do(action, "Again"), model=shape.model)

    assert chat.messages(1) == [user("Hi"), shape.expected, user("Again")]
    first = conversation.turns[0].reply
    assert first is not None
    assert first.thinking == "Greet them."
    assert first.message == shape.expected
    assert [turn.status for turn in conversation.turns] == ["complete", "complete"]


def test_system_prompt_and_params_go_with_every_turn(chat: Chat) -> None:
    """If a conversation has a system prompt and params, then every turn sends them."""
    chat.server.queue(ok("One."), ok("Two."), ok("Three."))

    chat.play(
        Do("send", "A"),
        Do("send", "B", {"max_tokens": 9, "temperature": None}),
        Do("send", "C"),
        system="Be brief.",
        max_tokens=64,
    )

    bodies = [request.json() for request in chat.server.requests]
    assert [body["messages"][0] for body in bodies] == [
        {"role": "system", "content": "Be brief."}
    ] * 3
    assert [body["max_tokens"] for body in bodies] == [64, 9, 64]
    assert ["temperature" in body for body in bodies] == [True, False, True]
    assert bodies[2]["messages"][1:] == [
        user("A"),
        assistant("One."),
        user("B"),
        assistant("Two."),
        user("C"),
    ]


# Trimming old thinking.


def test_trim_thinking_drops_older_thinking_from_requests_only(chat: Chat) -> None:
    """If trim_thinking is on, then older assistant turns lose their thinking in requests only."""
    chat.server.queue(
        json_step(completion("Plan A.</think>\n\nFirst.")),
        json_step(completion("<think>\nPlan B.\n</think>\n\nSecond.")),
        json_step(completion("Third.", reasoning_content="Plan C.")),
        json_step(completion("Fourth.", reasoning="Plan D.")),
        json_step(completion("Use </think> to close.")),
        json_step(completion("Plan F.</think>\n\nSixth.")),
    )
    plain = {"model": PLAIN}

    conversation, _ = chat.play(
        Do("send", "1"),
        Do("send", "2"),
        Do("send", "3"),
        Do("send", "4", plain),
        Do("send", "5", plain),
        Do("send", "6"),
        trim_thinking=True,
    )

    assert chat.messages(5) == [
        user("1"),
        assistant("First."),
        user("2"),
        assistant("Second."),
        user("3"),
        assistant("Third."),
        user("4"),
        assistant("Fourth."),
        user("5"),
        assistant("Use </think> to close."),
        user("6"),
    ]
    kept = [turn.reply.message for turn in conversation.turns if turn.reply]
    assert kept == [
        assistant("Plan A.</think>\n\nFirst."),
        assistant("<think>\nPlan B.\n</think>\n\nSecond."),
        assistant("<think>\nPlan C.\n</think>\n\nThird."),
        assistant("Fourth."),
        assistant("Use </think> to close."),
        assistant("Plan F.</think>\n\nSixth."),
    ]
    assert conversation.history()[-1] == assistant("Plan F.</think>\n\nSixth.")
    assert conversation.history()[-3] == assistant("Use </think> to close.")


def test_history_is_a_copy(chat: Chat) -> None:
    """If the caller changes the messages history() returned, then the turns stay as they were."""
    chat.server.queue(ok("Plan.</think>Hi."))
    conversation, _ = chat.play(Do("send", "Hi"))

    for message in conversation.history():
        message["content"] = "changed"

    assert conversation.history()[1] == assistant("Plan.</think>Hi.")


# Interrupted and failed turns.


@pytest.mark.parametrize("include", [False, True], ids=["default", "include_interrupted"])
def test_interrupted_stream_is_recorded_and_left_out(chat: Chat, include: bool) -> None:
    """If a stream drops, then its partial is kept, and sent back only with include_interrupted."""
    chat.server.queue(dropped(), ok("Fine."))

    conversation, results = chat.play(
        Do("stream", "Hi"), Do("send", "Again"), include_interrupted=include
    )

    error = results[0]
    assert isinstance(error, StreamInterrupted)
    turn = conversation.turns[0]
    assert (turn.status, turn.reply, turn.error) == ("interrupted", error.partial, str(error))
    assert turn.reply is not None
    assert turn.reply.text == "Hel"
    sent_back = [user("Hi"), assistant("Plan.</think>Hel")] if include else []
    assert chat.messages(1) == [*sent_back, user("Again")]


@pytest.mark.parametrize("action", ["send", "stream"])
def test_failed_turn_is_recorded_and_left_out(chat: Chat, action: str) -> None:
    """If the server refuses a turn (401), then it is failed, raised, and left out of history."""
    chat.server.queue(
        error_step(401, {"error": "Invalid credentials in Authorization header"}), ok("Fine.")
    )

    conversation, results = chat.play(Do(action, "Hi"), Do("send", "Again"))

    assert isinstance(results[0], AuthenticationError)
    turn = conversation.turns[0]
    assert (turn.status, turn.reply) == ("failed", None)
    assert turn.error == "401: Invalid credentials in Authorization header"
    assert chat.messages(1) == [user("Again")]
    assert conversation.turns[1].status == "complete"


def test_stream_closed_early_is_interrupted(chat: Chat) -> None:
    """If the caller closes a stream before it ends, then the turn is interrupted with what had
    arrived, and left out of the next request."""
    chat.server.queue(long_stream(), ok("Fine."))

    conversation, results = chat.play(Do("leave", "Hi"), Do("send", "Again"))

    assert results[0] == [ThinkingDelta("Plan.")]
    turn = conversation.turns[0]
    assert turn.status == "interrupted"
    assert turn.reply is not None
    assert (turn.reply.raw, turn.reply.thinking, turn.reply.text) == ("Plan.", "Plan.", "")
    assert turn.error == "the stream was closed before the reply ended"
    assert chat.messages(1) == [user("Again")]


def test_ctrl_c_during_a_request_is_interrupted(server: ScriptedServer) -> None:
    """If a real SIGINT strikes while waiting for a reply, then the turn is interrupted, raised."""
    server.queue(Step(delay=3.0, headers={"content-type": "application/json"}, body=b"{}"))
    ctrl_c = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))

    with Client(base_url=server.base_url, retry=ONCE) as client:
        conversation = Conversation(client)
        ctrl_c.start()
        with pytest.raises(KeyboardInterrupt):
            conversation.send("Hi")
    ctrl_c.join()

    turn = conversation.turns[0]
    assert (turn.status, turn.reply, turn.error) == ("interrupted", None, "Ctrl-C")
    assert turn.latency is not None
    assert 0.2 <= turn.latency < 3.0


# Recorders.


@dataclass
class ListRecorder:
    """Keeps every hook call; raises from the hook named in `fail_in`."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    fail_in: str | None = None

    def start_turn(self, conversation: ConversationBase, user: str) -> object:
        self.calls.append(("start", user, len(conversation.turns), conversation.title))
        if self.fail_in == "start_turn":
            raise RuntimeError("disk full")
        return f"key-{len(self.calls)}"

    def save_partial(
        self,
        conversation: ConversationBase,
        key: object,
        partial: Reply | None,
        steps: tuple[ToolStep, ...],
    ) -> None:
        assert partial is not None  # only a run saves steps alone
        self.calls.append(("partial", key, partial.raw))
        if self.fail_in == "save_partial":
            raise RuntimeError("disk full")

    def end_turn(self, conversation: ConversationBase, key: object, turn: Turn) -> None:
        self.calls.append(("end", key, turn, conversation.turns[-1] is turn))
        if self.fail_in == "end_turn":
            raise RuntimeError("disk full")

    def drop_last_turn(self, conversation: ConversationBase) -> None:
        self.calls.append(("drop", len(conversation.turns)))


def test_recorder_sees_each_turn_start_and_end_once(chat: Chat) -> None:
    """If a conversation has a recorder, then each turn starts, then ends once with its timings."""
    chat.server.queue(
        stream_step(
            [chunk("Plan.</think>"), chunk("Hi"), chunk(finish_reason="stop")], chunk_delay=0.05
        ),
        ok("Fine."),
        error_step(401, {"error": "Invalid credentials"}),
    )
    recorder = ListRecorder()
    before = time.time()

    conversation, _ = chat.play(
        Do("stream", "Hi"), Do("send", "Again"), Do("send", "Bad"), recorder=recorder
    )

    turns = conversation.turns
    assert recorder.calls == [
        ("start", "Hi", 0, "Hi"),
        ("partial", "key-1", "Plan.</think>"),
        ("end", "key-1", turns[0], True),
        ("start", "Again", 1, "Hi"),
        ("end", "key-4", turns[1], True),
        ("start", "Bad", 2, "Hi"),
        ("end", "key-6", turns[2], True),
    ]
    assert [turn.status for turn in turns] == ["complete", "complete", "failed"]
    assert [turn.model for turn in turns] == [M2] * 3
    assert before <= turns[0].started_at <= turns[1].started_at <= time.time()
    streamed, whole = turns[0], turns[1]
    assert streamed.first_token is not None
    assert streamed.latency is not None
    assert 0.05 <= streamed.first_token <= streamed.latency
    assert whole.first_token is None
    assert whole.latency is not None
    assert whole.latency > 0


def test_stream_left_after_done_is_complete_and_ends_once(server: ScriptedServer) -> None:
    """If the caller leaves a stream right after Done, then the turn is complete, ended once."""
    server.queue(ok("Plan.</think>Hi", streamed=True))
    recorder = ListRecorder()

    with Client(base_url=server.base_url) as client:
        conversation = Conversation(client, recorder=recorder)
        with conversation.stream("Hi") as events:
            for event in events:
                if isinstance(event, Done):
                    assert conversation.turns[-1].reply is event.reply
                    break

    assert [call[0] for call in recorder.calls] == ["start", "partial", "end"]
    assert conversation.turns[0].status == "complete"


def test_partials_reach_the_recorder_once_a_second(chat: Chat) -> None:
    """If a reply streams for over a second, then the recorder gets what has arrived at the
    first delta and again a second later, never after the turn ended."""
    chat.server.queue(
        stream_step(
            [chunk("Plan.</think>"), chunk("One"), chunk(" two"), chunk(" three"), chunk(" four")],
            chunk_delay=0.3,
        )
    )
    recorder = ListRecorder()

    began = time.monotonic()
    chat.play(Do("stream", "Hi"), recorder=recorder)
    took = time.monotonic() - began

    kinds = [call[0] for call in recorder.calls]
    partials = [call[2] for call in recorder.calls if call[0] == "partial"]
    assert (kinds[0], kinds[-1]) == ("start", "end")
    # At the first delta, then at most once a second of the stream.
    assert 2 <= len(partials) <= 1 + int(took)
    assert partials[0] == "Plan.</think>"
    assert partials[1].startswith("Plan.</think>One")
    assert all(len(a) < len(b) for a, b in itertools.pairwise(partials))


@pytest.mark.parametrize("fail_in", ["start_turn", "save_partial", "end_turn"])
def test_raising_recorder_does_not_lose_the_reply(
    chat: Chat, fail_in: str, caplog: pytest.LogCaptureFixture
) -> None:
    """If the recorder raises, then the reply and the turn are kept and a warning is logged."""
    chat.server.queue(ok("Plan.</think>Hi", streamed=True))
    recorder = ListRecorder(fail_in=fail_in)

    with caplog.at_level(logging.WARNING, logger="m2kit"):
        conversation, results = chat.play(Do("stream", "Hi"), recorder=recorder)

    assert isinstance(results[0][-1], Done)
    assert conversation.turns[0].reply == results[0][-1].reply
    assert [call[0] for call in recorder.calls] == (
        ["start"] if fail_in == "start_turn" else ["start", "partial", "end"]
    )
    warnings = [r for r in caplog.records if r.name == "m2kit" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert fail_in in warnings[0].getMessage()
    assert "disk full" in warnings[0].getMessage()


# Saving, loading and exporting.


def _saved_conversation(server: ScriptedServer, client: Client) -> Conversation:
    """A conversation with a field-thinking reply, a tool call, an interrupted and a failed turn."""
    tool_call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    server.queue(
        Shape(("Hello!",), assistant(REBUILT), "reasoning_content").step(streamed=True),
        json_step(completion(None, tool_calls=[tool_call], finish_reason="tool_calls")),
        dropped(),
        error_step(401, {"error": "Invalid credentials"}),
    )
    conversation = Conversation(
        client, system="Sois bref. Grüße ✓", include_interrupted=True, max_tokens=64
    )
    list(conversation.stream("Bonjour, ça va ?"))
    conversation.send("Call f")
    with pytest.raises(StreamInterrupted):
        list(conversation.stream("Plan"))
    with pytest.raises(AuthenticationError):
        conversation.send("Bad")
    return conversation


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_saved_and_loaded_conversation_sends_the_same_next_request(
    server: ScriptedServer, tmp_path: Path, mode: str
) -> None:
    """If a conversation is saved and loaded, then its turns and next request are identical."""
    path = tmp_path / "conversation.json"
    with Client(base_url=server.base_url, retry=ONCE) as client:
        original = _saved_conversation(server, client)
        original.save(path)
        server.queue(ok("Next."))
        original.send("Next")
    expected = server.requests[-1].body

    server.queue(ok("Next."))
    if mode == "sync":
        with Client(base_url=server.base_url) as client:
            conversation = Conversation.load(path, client)
            before = list(conversation.turns)
            conversation.send("Next")
        loaded: ConversationBase = conversation
    else:

        async def load_and_send() -> tuple[ConversationBase, list[Turn]]:
            async with AsyncClient(base_url=server.base_url) as client:
                conversation = AsyncConversation.load(path, client)
                turns = list(conversation.turns)
                await conversation.send("Next")
                return conversation, turns

        loaded, before = anyio.run(load_and_send)

    assert server.requests[-1].body == expected
    assert before == original.turns[:4]
    assert (loaded.id, loaded.title, loaded.system, loaded.created_at) == (
        original.id,
        original.title,
        original.system,
        original.created_at,
    )
    assert (loaded.params, loaded.include_interrupted, loaded.trim_thinking) == (
        {"max_tokens": 64},
        True,
        False,
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_saved_file_is_private_even_over_an_open_one(tmp_path: Path) -> None:
    """If a conversation is saved over a world-readable file, then the file is left 0600."""
    path = tmp_path / "conversation.json"
    path.write_text("{}", encoding="utf-8")
    path.chmod(0o644)
    (tmp_path / "conversation.json.tmp").write_text("", encoding="utf-8")

    with Client(base_url="http://127.0.0.1:9/v1") as client:
        Conversation(client).save(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text(encoding="utf-8"))["format"] == 1


def test_saved_file_is_utf8_json_with_a_format(server: ScriptedServer, tmp_path: Path) -> None:
    """If a conversation is saved, then the file is UTF-8 JSON, format 1, with every field."""
    path = tmp_path / "conversation.json"
    with Client(base_url=server.base_url, retry=ONCE) as client:
        _saved_conversation(server, client).save(path)

    text = path.read_bytes().decode("utf-8")
    assert "Grüße ✓" in text
    saved = json.loads(text)
    assert saved["format"] == 1
    turn = saved["turns"][0]
    assert set(turn) == {f.name for f in fields(Turn)}
    assert set(turn["reply"]) == {f.name for f in fields(Reply)}
    assert set(turn["reply"]["usage"]) == {f.name for f in fields(Usage)}
    assert set(saved["turns"][1]["reply"]["tool_calls"][0]) == {"id", "name", "arguments", "index"}


def test_loading_an_unknown_format_is_a_config_error(
    server: ScriptedServer, tmp_path: Path
) -> None:
    """If a file has another format, or is not a conversation, then loading raises ConfigError."""
    path = tmp_path / "conversation.json"
    path.write_text('{"format": 2, "turns": []}', encoding="utf-8")

    with Client(base_url=server.base_url) as client:
        with pytest.raises(ConfigError, match="format 2"):
            Conversation.load(path, client)
        with pytest.raises(ConfigError, match="not a saved conversation"):
            Conversation.from_json({"format": 1, "turns": []}, client)
        path.write_text("not json", encoding="utf-8")
        with pytest.raises(ConfigError, match="not a saved conversation"):
            Conversation.load(path, client)


def test_markdown_folds_thinking_and_marks_unfinished_turns(server: ScriptedServer) -> None:
    """If a conversation becomes Markdown, then thinking is folded and unfinished turns marked."""
    with Client(base_url=server.base_url, retry=ONCE) as client:
        markdown = _saved_conversation(server, client)
        text = markdown.to_markdown()
        bare = markdown.to_markdown(thinking=False)

    assert text.startswith("# Bonjour, ça va ?\n\n**System:**\n\n> Sois bref. Grüße ✓\n\n")
    thought = "<details><summary>Thinking</summary>\n\nGreet them.\n\n</details>"
    assert f"---\n\n> Bonjour, ça va ?\n\n{thought}\n\nHello!\n\n---" in text
    assert "Tool call `f`:\n\n```json\n{}\n```" in text
    assert (
        "> Plan\n\n<details><summary>Thinking</summary>\n\nPlan.\n\n</details>\n\nHel\n\n" in text
    )
    assert "*Interrupted: the connection" in text
    assert "> Bad\n\n*Failed: 401: Invalid credentials*" in text
    assert "<details>" not in bare
    assert "Hello!" in bare


# Retrying and titles.


@pytest.mark.parametrize("action", ["retry", "retry_stream"])
def test_retry_drops_the_last_turn_and_resends_it(chat: Chat, action: str) -> None:
    """If the last turn failed and is retried, then the same request goes again, replacing it."""
    chat.server.queue(ok("One."), error_step(500, {"error": "boom"}), ok("Two.", streamed=True))

    conversation, results = chat.play(Do("send", "A"), Do("send", "B"), Do(action))

    assert chat.messages(2) == chat.messages(1) == [user("A"), assistant("One."), user("B")]
    assert [(turn.user, turn.status) for turn in conversation.turns] == [
        ("A", "complete"),
        ("B", "complete"),
    ]
    reply = results[2] if action == "retry" else results[2][-1].reply
    assert reply.text == "Two."


def test_retry_with_no_turns_is_a_config_error(server: ScriptedServer) -> None:
    """If retry() is called before any turn, then ConfigError says there is nothing to retry."""
    with Client(base_url=server.base_url) as client, pytest.raises(ConfigError, match="nothing"):
        Conversation(client).retry()

    assert server.requests == []


def test_title_is_the_first_prompt_on_one_line(server: ScriptedServer) -> None:
    """If the first prompt is long and has several lines, then the title is one line of 80."""
    server.queue(ok("One."), ok("Two."))

    with Client(base_url=server.base_url) as client:
        conversation = Conversation(client)
        conversation.send("Explain\n\nthis:  " + "word " * 40)
        conversation.send("Something else")

    assert conversation.title is not None
    assert len(conversation.title) == 80
    assert conversation.title.startswith("Explain this: word word")
    assert conversation.title.endswith("…")


def test_a_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    """If the save target is a directory, then saving fails and leaves no temporary file."""
    target = tmp_path / "saves" / "taken"
    target.mkdir(parents=True)
    with Client(base_url="http://127.0.0.1:9/v1") as client:
        conversation = Conversation(client)
        with pytest.raises(IsADirectoryError):
            conversation.save(target)

    assert [path.name for path in target.parent.iterdir()] == ["taken"]


def test_a_lone_surrogate_in_a_reply_does_not_break_the_next_turn(server: ScriptedServer) -> None:
    """If a server's reply holds half a surrogate pair (JSON "\\ud83d"), then the next turn still
    goes out, carrying it back as the same escape."""
    # As a server writes it: the escape, which Python reads back as a lone surrogate.
    escaped = json.dumps(completion("ok</think>half \ud83d emoji"), ensure_ascii=True).encode()
    server.queue(
        Step(headers={"content-type": "application/json"}, body=escaped),
        json_step(completion("ok</think>Fine.")),
    )

    with Client(base_url=server.base_url, retry=ONCE) as client:
        conversation = Conversation(client)
        conversation.send("one")
        reply = conversation.send("two")

    assert reply.text == "Fine."
    assert b"half \\ud83d emoji" in server.requests[1].body
    assert server.requests[1].json()["messages"][1]["content"] == "ok</think>half \ud83d emoji"


def test_nan_in_the_parameters_is_a_config_error(server: ScriptedServer) -> None:
    """If a parameter is NaN, then ConfigError says the request cannot be JSON; nothing is sent."""
    with (
        Client(base_url=server.base_url, retry=ONCE) as client,
        pytest.raises(ConfigError, match="cannot be sent as JSON"),
    ):
        client.chat("Hi", temperature=float("nan"))

    assert server.requests == []
