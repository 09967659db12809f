"""Conversations: a history that keeps the model's thinking, turn by turn, saved and exported.

`ConversationBase` holds every piece of logic (history, trimming, turn bookkeeping, JSON and
Markdown) and does no I/O; `Conversation` and `AsyncConversation` only call their client.

What goes back to the model: the system prompt, then for each complete turn the user's text and
`Reply.message` exactly as the client built it, thinking included. Interrupted and failed turns
stay in `turns` but are not sent back, except that `include_interrupted=True` sends an
interrupted turn's partial reply.

`run(text, tools)` is the agent loop (see `_agent`): one turn whose `steps` hold each reply that
asked for tools and the results sent back; every step goes back in history with its thinking.

`trim_thinking` (default False) removes the thinking of assistant messages before the last user
message: inline, the text up to and including the first `</think>` (with any leading `<think>`)
and the whitespace after it; in a field, the field. MiniMax-M2's template drops that thinking
itself, so trimming only saves prompt tokens; assistant messages after the last user message
(inside a tool loop) are never touched, nor are the stored turns.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, cast

from ._agent import (
    DEFAULT_MAX_STEPS,
    DEFAULT_TOOL_TIMEOUT,
    AgentRun,
    RunResult,
    in_call_order,
    step_from_json,
    step_to_json,
)
from ._errors import ConfigError, StreamError
from ._request import offered_tools
from ._stream import AsyncChatStream, ChatStream
from ._types import (
    AnswerDelta,
    Done,
    Message,
    Reply,
    StreamEvent,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Generator, Sequence

    from typing_extensions import Self, Unpack

    # Named in strings in the base classes of Conversation and AsyncConversation.
    from ._agent import AfterStep, BeforeTool, RunEvent, ToolStep
    from ._client import AsyncClient, Client, _BaseClient  # noqa: F401
    from ._tool_runs import ToolResult

    _Partial = Callable[[], Reply | None]
    from ._request import ChatParams
    from ._store_rows import StoredConversation

logger = logging.getLogger("m2kit")

TurnStatus = Literal["complete", "interrupted", "failed"]
ThinkingSource = Literal["inline", "field"] | None

#: The version of the JSON that `to_json` writes; `from_json` refuses any other.
FORMAT = 1

#: Seconds between `Recorder.save_partial` calls while a reply streams.
PARTIAL_EVERY = 1.0

_STATUSES: tuple[TurnStatus, ...] = ("complete", "interrupted", "failed")
_SOURCES: tuple[ThinkingSource, ...] = ("inline", "field", None)
_OPEN_TAG = "<think>"
_CLOSE_TAG = "</think>"
_REASONING_FIELDS = ("reasoning_content", "reasoning", "reasoning_details")
_TITLE_LENGTH = 80
# Headers may carry credentials (an Authorization override, a billing org): never written out.
_UNSAVED_PARAMS = ("extra_headers",)


@dataclass(frozen=True, slots=True)
class Turn:
    """One user message and what came back.

    - `reply`: the complete reply; for an interrupted turn the partial one that arrived
      (`StreamError.partial`), or None when nothing did or the caller left the stream early.
    - `status`: "complete", "interrupted" (the stream dropped or failed, Ctrl-C, the caller
      closed it) or "failed" (any other error; no reply).
    - `started_at`: `time.time()` when the request was sent.
    - `latency`: seconds from sending to the end of the reply (or to the failure); for a run,
      of its last call (each step has its own).
    - `first_token`: seconds from sending to the first thinking, answer or tool-call delta;
      streams only; for a run, of its last call.
    - `error`: the error's one-line text for failed and interrupted turns.
    - `model`: the model id asked for.
    - `steps`: for a turn of `run()`, each reply that asked for tools, with the results sent
      back, before `reply` (the answer).
    """

    user: str
    reply: Reply | None
    status: TurnStatus
    started_at: float
    latency: float | None
    first_token: float | None
    error: str | None = None
    model: str | None = None
    steps: tuple[ToolStep, ...] = ()


class Recorder(Protocol):
    """Where turns are kept as they happen (the SQLite store is one).

    `start_turn` is called before each request and returns a key of the recorder's choosing;
    `save_partial` is called with that key at most once a second while a reply streams, with
    what has arrived (so a process killed mid-reply can leave it behind), and in a run after
    each step, with the steps so far and no reply; `end_turn` is called
    once with the key when the turn has ended, whatever the outcome. A hook that raises is logged
    as a warning and never costs the caller the reply; when `start_turn` raised, the others are
    not called for that turn, and when `save_partial` raised, it is not called again for it.
    """

    def start_turn(self, conversation: ConversationBase, user: str) -> object: ...

    def save_partial(
        self,
        conversation: ConversationBase,
        key: object,
        partial: Reply | None,
        steps: tuple[ToolStep, ...],
    ) -> None: ...

    def end_turn(self, conversation: ConversationBase, key: object, turn: Turn) -> None: ...

    def drop_last_turn(self, conversation: ConversationBase) -> None: ...  # retry replaces it


@dataclass
class _Pending:
    """A turn in flight: what was sent, and when."""

    user: str
    params: ChatParams
    messages: list[Message]
    model: str | None
    recorder: Recorder | None
    key: object
    started_at: float
    began: float
    first_token: float | None = None
    ended: bool = False
    partial_saved: float = 0.0  # time.monotonic() of the last save_partial; inf to stop
    steps: list[ToolStep] = field(default_factory=list)
    # What has arrived of the reply in progress, for a turn cut short (run() sets it).
    partial: _Partial | None = None


class ConversationBase:
    """The state and logic shared by `Conversation` and `AsyncConversation`; no I/O.

    - `id`: a uuid4 hex, fixed at creation (or loaded); `title`: the first prompt, one line of
      at most 80 characters; `created_at`: `time.time()` at creation.
    - `system`: the system prompt, sent first when set; `params`: the `ChatParams` of every
      turn, which a call's own parameters override.
    - `trim_thinking`, `include_interrupted`: see the module docstring.
    - `turns`: every turn so far, in order; `recorder`: told of each turn, or None.
    """

    client: _BaseClient

    def __init__(
        self,
        client: _BaseClient,
        system: str | None,
        *,
        recorder: Recorder | None,
        trim_thinking: bool,
        include_interrupted: bool,
        params: ChatParams,
    ) -> None:
        self.client = client
        self.id = uuid.uuid4().hex
        self.title: str | None = None
        self.system = system
        self.params = params
        self.trim_thinking = trim_thinking
        self.include_interrupted = include_interrupted
        self.recorder = recorder
        self.turns: list[Turn] = []
        self.created_at = time.time()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, turns={len(self.turns)})"

    def history(self) -> list[Message]:
        """The messages the next request would carry before its user message (new dicts)."""
        return self._messages(None)

    def _messages(self, text: str | None) -> list[Message]:
        entries: list[tuple[Message, ThinkingSource]] = []
        if self.system:
            entries.append(({"role": "system", "content": self.system}, None))
        for turn in self.turns:
            entries.extend(self._turn_sent(turn))
        if text is not None:
            entries.append(({"role": "user", "content": text}, None))

        if not self.trim_thinking:
            return [dict(message) for message, _ in entries]
        users = [at for at, (message, _) in enumerate(entries) if message["role"] == "user"]
        last_user = users[-1] if users else -1
        return [
            _without_thinking(message, source) if at < last_user else dict(message)
            for at, (message, source) in enumerate(entries)
        ]

    def _turn_sent(self, turn: Turn) -> list[tuple[Message, ThinkingSource]]:
        """The messages a turn puts in history (with each one's thinking source); [] when the
        turn is left out."""
        answer = self._answer_sent(turn)
        if answer is None:
            return []
        entries: list[tuple[Message, ThinkingSource]] = [
            ({"role": "user", "content": turn.user}, None)
        ]
        for step in turn.steps:
            entries.append((dict(step.reply.message), step.reply.thinking_source))
            entries.extend((result.to_message(), None) for result in step.results)
        entries.append(answer)
        return entries

    def _answer_sent(self, turn: Turn) -> tuple[Message, ThinkingSource] | None:
        """The last assistant message a turn puts in history, or None when the turn is left out.

        Tool calls on it have no results (a run stopped at max_steps, a partial reply, a reply
        to `send` with tools): servers refuse such calls, so they are left out of the message.
        """
        reply = turn.reply
        if reply is None:
            return None
        if turn.status != "complete":
            if turn.status != "interrupted" or not self.include_interrupted:
                return None
            if not (reply.raw.strip() or reply.thinking or turn.steps):
                return None
        if not reply.tool_calls and turn.status == "complete":
            return reply.message, reply.thinking_source

        message = {key: value for key, value in reply.message.items() if key != "tool_calls"}
        message["content"] = message.get("content") or ""
        return message, reply.thinking_source

    def _begin(self, text: str, params: ChatParams) -> _Pending:
        """Everything before the request: the messages, the title, the recorder's start."""
        merged = self.params.copy()
        merged.update(params)
        messages = self._messages(text)
        if self.title is None:
            self.title = title_of(text)

        recorder, key = self.recorder, None
        if recorder is not None:
            try:
                key = recorder.start_turn(self, text)
            except Exception as exc:
                _recorder_failed("start_turn", exc)
                recorder = None

        return _Pending(
            user=text,
            params=merged,
            messages=messages,
            model=merged.get("model") or self.client.model,
            recorder=recorder,
            key=key,
            started_at=time.time(),
            began=time.monotonic(),
        )

    def _seen(self, pending: _Pending, event: StreamEvent) -> None:
        """Note a streamed event: the first delta's time, and the turn's end at `Done`."""
        _first_token(pending, event)
        if isinstance(event, Done):
            self._end(pending, "complete", event.reply)

    def _keep_partial(self, pending: _Pending, partial: _Partial | None) -> None:
        """Hand the recorder what has arrived, when a second has passed since it last had it;
        with no `partial`, at once: a run's steps so far."""
        if pending.recorder is None or pending.ended:
            return
        now = time.monotonic()
        if partial is not None and now - pending.partial_saved < PARTIAL_EVERY:
            return

        reply = None
        if partial is not None:
            pending.partial_saved = now
            reply = partial()
            if reply is None:
                return
        try:
            pending.recorder.save_partial(self, pending.key, reply, tuple(pending.steps))
        except Exception as exc:
            _recorder_failed("save_partial", exc)
            pending.partial_saved = math.inf

    def _start_run(
        self,
        text: str,
        max_steps: int,
        parallel: bool,
        tool_timeout: float | None,
        params: ChatParams,
    ) -> tuple[AgentRun, _Pending]:
        tools = params.get("tools") or self.params.get("tools") or ()
        agent = AgentRun(tools, max_steps=max_steps, parallel=parallel, tool_timeout=tool_timeout)
        offered = params.copy()
        offered["tools"] = agent.offered()
        return agent, self._begin(text, offered)

    @staticmethod
    def _tools_start(pending: _Pending, reply: Reply) -> tuple[float, float | None]:
        """Before a step's tools run: the timings of the call that asked for them (the turn's
        own are the last call's), and that reply as what a cut-short turn keeps."""
        timings = (time.monotonic() - pending.began, pending.first_token)
        pending.first_token = None
        pending.partial = _already(reply)
        return timings

    def _tools_done(
        self,
        agent: AgentRun,
        pending: _Pending,
        reply: Reply,
        results: list[ToolResult],
        timings: tuple[float, float | None],
        on_event: Callable[[RunEvent], None] | None,
    ) -> ToolStep:
        """After a step's tools ran: the step recorded, kept by the recorder, results shown."""
        step = agent.add_step(reply, results, *timings)
        pending.steps.append(step)
        pending.partial = None
        self._keep_partial(pending, None)
        pending.began = time.monotonic()
        if on_event is not None:
            for result in results:
                on_event(result)
        return step

    def _step_seen(self, pending: _Pending, event: StreamEvent, partial: _Partial) -> None:
        """Note an event of a run's step: its first delta's time, and what has arrived."""
        _first_token(pending, event)
        self._keep_partial(pending, partial)

    def _end_with(
        self, pending: _Pending, exc: BaseException, partial: Reply | None = None
    ) -> None:
        """End the turn for an exception that left the client call (unless it had ended).

        `partial` is what had arrived when the caller stopped the stream (Ctrl-C, closing it).
        """
        if isinstance(exc, StreamError):
            self._end(pending, "interrupted", exc.partial, _one_line(exc))
        elif isinstance(exc, Exception):
            self._end(pending, "failed", None, _one_line(exc))
        elif isinstance(exc, GeneratorExit):
            self._end(
                pending, "interrupted", partial, "the stream was closed before the reply ended"
            )
        elif isinstance(exc, KeyboardInterrupt):
            self._end(pending, "interrupted", partial, "Ctrl-C")
        else:
            # Cancellation (asyncio, trio), SystemExit.
            error = f"stopped before the reply ended ({type(exc).__name__})"
            self._end(pending, "interrupted", partial, error)

    def _end(
        self, pending: _Pending, status: TurnStatus, reply: Reply | None, error: str | None = None
    ) -> None:
        if pending.ended:
            return
        pending.ended = True
        turn = Turn(
            user=pending.user,
            reply=reply,
            status=status,
            started_at=pending.started_at,
            latency=time.monotonic() - pending.began,
            first_token=pending.first_token,
            error=error,
            model=pending.model,
            steps=tuple(pending.steps),
        )
        self.turns.append(turn)

        if pending.recorder is not None:
            try:
                pending.recorder.end_turn(self, pending.key, turn)
            except Exception as exc:
                _recorder_failed("end_turn", exc)

    def drop_last(self) -> str:
        """Remove the last turn, whatever its status, and return its user text; the recorder
        keeps it, marked superseded. `conversation.run(conversation.drop_last(), tools=...)`
        retries a turn of `run()`, which `retry()` would send again without tools."""
        if not self.turns:
            raise ConfigError("nothing to retry: the conversation has no turns yet")
        if self.recorder is not None:
            try:
                self.recorder.drop_last_turn(self)
            except Exception as exc:  # the reply matters more than the record of it
                _recorder_failed("drop_last_turn", exc)
        return self.turns.pop().user

    def to_json(self) -> dict[str, Any]:
        """Everything needed to rebuild the conversation, as JSON-ready data (`"format": 1`)."""
        return conversation_json(
            self, trim_thinking=self.trim_thinking, include_interrupted=self.include_interrupted
        )

    def _restore(self, data: Mapping[str, Any]) -> None:
        """Take the state written by `to_json`; ConfigError for another format or bad data."""
        found = data.get("format") if isinstance(data, Mapping) else None
        if found != FORMAT:
            raise ConfigError(
                f"unknown conversation format {found!r}: this m2kit reads format {FORMAT}",
                hint="Upgrade m2kit to read conversations saved by a newer version.",
            )
        try:
            self.id = str(data["id"])
            self.title = data["title"]
            self.created_at = float(data["created_at"])
            self.system = data["system"]
            self.params = _params_from_json(data["params"])
            self.trim_thinking = bool(data["trim_thinking"])
            self.include_interrupted = bool(data["include_interrupted"])
            self.turns = [_turn_from_json(turn) for turn in data["turns"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"not a saved conversation: {exc!r}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write `to_json` to `path` as UTF-8 JSON, replacing the file in one step. The file is
        readable by its owner only, like the store: it holds the whole conversation."""
        target = Path(path)
        text = json.dumps(self.to_json(), ensure_ascii=False, indent=2)
        partial = target.with_name(target.name + ".tmp")
        partial.unlink(missing_ok=True)  # so that the mode below applies: O_EXCL creates anew
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(descriptor, "w", encoding="utf-8") as file:
            file.write(text + "\n")
        try:
            os.replace(partial, target)
        except OSError:
            partial.unlink(missing_ok=True)  # a directory in the way, say: leave nothing behind
            raise

    def to_markdown(self, *, thinking: bool = True) -> str:
        """The conversation as Markdown: prompts as blockquotes, answers as written, thinking
        (unless `thinking=False`) folded in `<details>` blocks, unfinished turns marked."""
        return conversation_markdown(self, thinking=thinking)


_ClientT = TypeVar("_ClientT", bound="_BaseClient")


class _ClientConversation(ConversationBase, Generic[_ClientT]):
    """Types the client, and builds or loads a conversation for it."""

    client: _ClientT

    def __init__(
        self,
        client: _ClientT,
        system: str | None = None,
        *,
        recorder: Recorder | None = None,
        trim_thinking: bool = False,
        include_interrupted: bool = False,
        **params: Unpack[ChatParams],
    ) -> None:
        super().__init__(
            client,
            system,
            recorder=recorder,
            trim_thinking=trim_thinking,
            include_interrupted=include_interrupted,
            params=params,
        )

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], client: _ClientT, *, recorder: Recorder | None = None
    ) -> Self:
        """The conversation `to_json` wrote, on `client`; ConfigError for an unknown format."""
        conversation = cls(client, recorder=recorder)
        conversation._restore(data)
        return conversation

    @classmethod
    def resume(
        cls,
        stored: StoredConversation,
        client: _ClientT,
        *,
        recorder: Recorder | None = None,
        trim_thinking: bool = False,
        include_interrupted: bool = False,
    ) -> Self:
        """Go on with a conversation read back from the store (`Store.load`).

        The store keeps what the conversation is (system prompt, parameters, turns), not how a
        session held it: `trim_thinking` and `include_interrupted` are this session's choice.
        """
        conversation = cls(
            client,
            stored.system,
            recorder=recorder,
            trim_thinking=trim_thinking,
            include_interrupted=include_interrupted,
            **stored.params,
        )
        conversation.id = stored.id
        conversation.title = stored.title
        conversation.created_at = stored.created_at
        conversation.turns = list(stored.turns)
        return conversation

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], client: _ClientT, *, recorder: Recorder | None = None
    ) -> Self:
        """The conversation `save` wrote to `path`, on `client`."""
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path} is not a saved conversation: {exc}") from None
        return cls.from_json(data, client, recorder=recorder)


class Conversation(_ClientConversation["Client"]):
    """A multi-turn conversation on a `Client`: each turn sends the history, and joins it.

    `Conversation(client, system=None, *, recorder=None, trim_thinking=False,
    include_interrupted=False, **params)`:

    - `system`: the system prompt, sent first; `params`: `ChatParams` for every turn.
    - `recorder`: told when each turn starts and ends (see `Recorder`).
    - `trim_thinking` (default False): leave the thinking of assistant turns before the last
      user message out of requests. MiniMax-M2's template drops it itself, so this only saves
      prompt tokens; the turns keep it.
    - `include_interrupted` (default False): send interrupted turns' partial replies back.

    Errors reach the caller after the turn is recorded. `Conversation.load(path, client)` and
    `Conversation.from_json(data, client)` bring back a saved one.
    """

    def send(self, text: str, **params: Unpack[ChatParams]) -> Reply:
        """Send `text` with the history and return the whole reply, now part of the history."""
        pending = self._begin(text, params)
        try:
            reply = self.client.chat(pending.messages, **pending.params)
        except BaseException as exc:
            self._end_with(pending, exc)
            raise
        self._end(pending, "complete", reply)
        return reply

    def stream(self, text: str, **params: Unpack[ChatParams]) -> ChatStream:
        """Stream the reply to `text`, as `Client.stream` does; the turn is recorded when it ends.

        It is complete once `Done` is read, and interrupted when the stream fails, Ctrl-C
        strikes or the caller closes it first; use it in a `with` block so that leaving early
        records the turn at once.
        """
        return ChatStream(self._events(text, params))

    def _events(self, text: str, params: ChatParams) -> Generator[StreamEvent, None, None]:
        pending = self._begin(text, params)
        stream = self.client.stream(pending.messages, **pending.params)
        try:
            with stream as events:
                for event in events:
                    self._seen(pending, event)
                    self._keep_partial(pending, stream.partial)
                    yield event
        except BaseException as exc:
            self._end_with(pending, exc, stream.partial())
            raise

    def retry(self, **params: Unpack[ChatParams]) -> Reply:
        """Drop the last turn, whatever its status, and send its text again with `send` (for a
        turn of `run()`, see `drop_last`)."""
        return self.send(self.drop_last(), **params)

    def run(
        self,
        text: str,
        *,
        max_steps: int = DEFAULT_MAX_STEPS,
        parallel: bool = True,
        tool_timeout: float | None = DEFAULT_TOOL_TIMEOUT,
        before_tool: BeforeTool | None = None,
        after_step: AfterStep | None = None,
        on_event: Callable[[RunEvent], None] | None = None,
        **params: Unpack[ChatParams],
    ) -> RunResult:
        """Send `text` with `tools` offered and run the tools the model calls, until it answers.

        - `tools` (in `params`, or the conversation's): `@tool` functions (a plain typed
          function is made one), with different names. Each call's result goes back as a
          `tool` message; a tool that raises, gets invalid arguments or outlasts its timeout
          (its own, else `tool_timeout` seconds) sends the error back instead, so the model
          can recover.
        - `max_steps` (default 10): model calls at most; a run that reaches it with tools still
          asked for ends with `stopped == "max_steps"`.
        - `parallel` (default True): the calls of one reply run at once, in threads.
        - `before_tool(call)`: True runs it, False refuses it (the model is told), a `ToolCall`
          runs that instead (edited arguments). Asked one call at a time, before any runs.
        - `after_step(step)`: told of each `ToolStep` once its tools have run.
        - `on_event(event)`: when given, every step streams and each event reaches it, then
          each `ToolResult`.

        The whole run is one turn: its `steps`, then the answer. Errors reach the caller after
        the turn is recorded, with the steps that were taken.
        """
        agent, pending = self._start_run(text, max_steps, parallel, tool_timeout, params)
        try:
            while True:
                reply = self._step(pending, agent.messages(pending.messages), on_event)
                if not agent.wants_tools(reply):
                    break
                timings = self._tools_start(pending, reply)
                results = self._run_tools(agent, reply.tool_calls, before_tool)
                step = self._tools_done(agent, pending, reply, results, timings, on_event)
                if after_step is not None:
                    after_step(step)
        except BaseException as exc:
            self._end_with(pending, exc, _arrived(pending))
            raise
        self._end(pending, "complete", reply)
        return agent.result(reply)

    def _step(
        self,
        pending: _Pending,
        messages: list[Message],
        on_event: Callable[[RunEvent], None] | None,
    ) -> Reply:
        if on_event is None:
            return self.client.chat(messages, **pending.params)

        stream = self.client.stream(messages, **pending.params)
        pending.partial = stream.partial
        reply: Reply | None = None
        with stream as events:
            for event in events:
                self._step_seen(pending, event, stream.partial)
                on_event(event)
                if isinstance(event, Done):
                    reply = event.reply
        assert reply is not None  # a stream that ends without Done raises
        return reply

    def _run_tools(
        self, agent: AgentRun, calls: Sequence[ToolCall], before_tool: BeforeTool | None
    ) -> list[ToolResult]:
        from ._tool_runs import run_many_sync

        planned = [
            agent.decided(call, before_tool(call) if before_tool is not None else True)
            for call in calls
        ]
        ran = run_many_sync(
            [call for call in planned if call is not None],
            agent.tools,
            parallel=agent.parallel,
            timeout=agent.tool_timeout,
        )
        return in_call_order(calls, planned, ran)

    def retry_stream(self, **params: Unpack[ChatParams]) -> ChatStream:
        """Drop the last turn now, and stream its text again with `stream`."""
        return self.stream(self.drop_last(), **params)


class AsyncConversation(_ClientConversation["AsyncClient"]):
    """The asynchronous twin of `Conversation`, on an `AsyncClient`, with the same parameters."""

    async def send(self, text: str, **params: Unpack[ChatParams]) -> Reply:
        """Send `text` with the history and return the whole reply, now part of the history."""
        pending = self._begin(text, params)
        try:
            reply = await self.client.chat(pending.messages, **pending.params)
        except BaseException as exc:
            self._end_with(pending, exc)
            raise
        self._end(pending, "complete", reply)
        return reply

    def stream(self, text: str, **params: Unpack[ChatParams]) -> AsyncChatStream:
        """Stream the reply to `text`; use `async with` so that leaving early records the turn."""
        return AsyncChatStream(self._events(text, params))

    async def _events(self, text: str, params: ChatParams) -> AsyncGenerator[StreamEvent, None]:
        pending = self._begin(text, params)
        stream = self.client.stream(pending.messages, **pending.params)
        try:
            async with stream as events:
                async for event in events:
                    self._seen(pending, event)
                    self._keep_partial(pending, stream.partial)
                    yield event
        except BaseException as exc:
            self._end_with(pending, exc, stream.partial())
            raise

    async def retry(self, **params: Unpack[ChatParams]) -> Reply:
        """Drop the last turn, whatever its status, and send its text again with `send` (for a
        turn of `run()`, see `drop_last`)."""
        return await self.send(self.drop_last(), **params)

    async def run(
        self,
        text: str,
        *,
        max_steps: int = DEFAULT_MAX_STEPS,
        parallel: bool = True,
        tool_timeout: float | None = DEFAULT_TOOL_TIMEOUT,
        before_tool: BeforeTool | None = None,
        after_step: AfterStep | None = None,
        on_event: Callable[[RunEvent], None] | None = None,
        **params: Unpack[ChatParams],
    ) -> RunResult:
        """`Conversation.run`, awaited: tools run as tasks (sync ones in threads), and
        `before_tool` and `after_step` may be coroutine functions."""
        agent, pending = self._start_run(text, max_steps, parallel, tool_timeout, params)
        try:
            while True:
                reply = await self._step(pending, agent.messages(pending.messages), on_event)
                if not agent.wants_tools(reply):
                    break
                timings = self._tools_start(pending, reply)
                results = await self._run_tools(agent, reply.tool_calls, before_tool)
                step = self._tools_done(agent, pending, reply, results, timings, on_event)
                if after_step is not None:
                    observed = after_step(step)
                    if inspect.isawaitable(observed):
                        await observed
        except BaseException as exc:
            self._end_with(pending, exc, _arrived(pending))
            raise
        self._end(pending, "complete", reply)
        return agent.result(reply)

    async def _step(
        self,
        pending: _Pending,
        messages: list[Message],
        on_event: Callable[[RunEvent], None] | None,
    ) -> Reply:
        if on_event is None:
            return await self.client.chat(messages, **pending.params)

        stream = self.client.stream(messages, **pending.params)
        pending.partial = stream.partial
        reply: Reply | None = None
        async with stream as events:
            async for event in events:
                self._step_seen(pending, event, stream.partial)
                on_event(event)
                if isinstance(event, Done):
                    reply = event.reply
        assert reply is not None  # a stream that ends without Done raises
        return reply

    async def _run_tools(
        self, agent: AgentRun, calls: Sequence[ToolCall], before_tool: BeforeTool | None
    ) -> list[ToolResult]:
        from ._tool_runs import run_many_async

        planned = []
        for call in calls:
            decision = before_tool(call) if before_tool is not None else True
            if inspect.isawaitable(decision):
                decision = await decision
            planned.append(agent.decided(call, decision))
        ran = await run_many_async(
            [call for call in planned if call is not None],
            agent.tools,
            parallel=agent.parallel,
            timeout=agent.tool_timeout,
        )
        return in_call_order(calls, planned, ran)

    def retry_stream(self, **params: Unpack[ChatParams]) -> AsyncChatStream:
        """Drop the last turn now, and stream its text again with `stream`."""
        return self.stream(self.drop_last(), **params)


def _already(reply: Reply) -> _Partial:
    return lambda: reply


def _arrived(pending: _Pending) -> Reply | None:
    """What had arrived when a run was cut short: the reply in progress, or the one whose tools
    were running."""
    return pending.partial() if pending.partial is not None else None


def _first_token(pending: _Pending, event: StreamEvent) -> None:
    if pending.first_token is None and isinstance(
        event, (ThinkingDelta, AnswerDelta, ToolCallDelta)
    ):
        pending.first_token = time.monotonic() - pending.began


def saved_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as a file or the store keeps them: no headers (where a key would go), and
    tools as their schemas (a function cannot be written down; `run` takes tools again)."""
    kept = {name: value for name, value in params.items() if name not in _UNSAVED_PARAMS}
    if kept.get("tools"):
        kept["tools"] = offered_tools(kept["tools"])
    return kept


class Written(Protocol):
    """What a conversation's JSON and Markdown are made of (a stored one has it too)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str | None: ...
    @property
    def created_at(self) -> float: ...
    @property
    def system(self) -> str | None: ...
    @property
    def params(self) -> Mapping[str, Any]: ...
    @property
    def turns(self) -> Sequence[Turn]: ...


def conversation_json(
    conversation: Written, *, trim_thinking: bool = False, include_interrupted: bool = False
) -> dict[str, Any]:
    """A conversation as the JSON `from_json` reads (`"format": 1`)."""
    params = saved_params(conversation.params)
    return {
        "format": FORMAT,
        "id": conversation.id,
        "title": conversation.title,
        "created_at": conversation.created_at,
        "system": conversation.system,
        "params": copy.deepcopy(params),
        "trim_thinking": trim_thinking,
        "include_interrupted": include_interrupted,
        "turns": [_turn_to_json(turn) for turn in conversation.turns],
    }


def conversation_markdown(conversation: Written, *, thinking: bool = True) -> str:
    """A conversation as Markdown; see `ConversationBase.to_markdown`."""
    parts = [f"# {conversation.title or 'Conversation'}"]
    if conversation.system:
        parts.append(f"**System:**\n\n{_quoted(conversation.system)}")
    for turn in conversation.turns:
        parts.append("---")
        parts.append(_quoted(turn.user))
        parts.extend(_answer_markdown(turn, thinking=thinking))
    return "\n\n".join(parts) + "\n"


def _recorder_failed(hook: str, exc: Exception) -> None:
    logger.warning("the conversation recorder failed in %s: %s: %s", hook, type(exc).__name__, exc)


def title_of(text: str) -> str:
    """A prompt as a title: one line of at most 80 characters, cut with "…"."""
    line = " ".join(text.split())
    return line if len(line) <= _TITLE_LENGTH else line[: _TITLE_LENGTH - 1] + "…"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _without_thinking(message: Message, source: ThinkingSource) -> Message:
    """A copy of an assistant message without its thinking; other messages are copied as is."""
    if message.get("role") != "assistant" or source is None:
        return dict(message)
    trimmed = {key: value for key, value in message.items() if key not in _REASONING_FIELDS}

    # Field thinking rebuilt inline starts with the open tag; a plain answer that merely
    # mentions a close tag must stay whole.
    content = trimmed.get("content")
    if isinstance(content, str) and (source == "inline" or content.lstrip().startswith(_OPEN_TAG)):
        end = content.find(_CLOSE_TAG)
        # Inline thinking that never closed (cut at the token limit) is all thinking.
        trimmed["content"] = content[end + len(_CLOSE_TAG) :].lstrip() if end >= 0 else ""
    return trimmed


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines() or [""])


def _answer_markdown(turn: Turn, *, thinking: bool) -> list[str]:
    blocks = []
    for step in turn.steps:
        blocks.extend(_reply_markdown(step.reply, thinking=thinking))
        for result in step.results:
            label = "Error from" if result.error else "Result of"
            blocks.append(f"{label} `{result.call.name}`:\n\n```\n{result.content}\n```")
    if turn.reply is not None:
        blocks.extend(_reply_markdown(turn.reply, thinking=thinking))

    if turn.status != "complete":
        label = turn.status.capitalize()
        blocks.append(f"*{label}: {turn.error}*" if turn.error else f"*{label}.*")
    return blocks


def _reply_markdown(reply: Reply, *, thinking: bool) -> list[str]:
    blocks = []
    if thinking and reply.thinking:
        blocks.append(f"<details><summary>Thinking</summary>\n\n{reply.thinking}\n\n</details>")
    if reply.text:
        blocks.append(reply.text)
    for call in reply.tool_calls:
        blocks.append(f"Tool call `{call.name}`:\n\n```json\n{call.arguments}\n```")
    if reply.cut_while_thinking:
        blocks.append("*Cut off while thinking: raise max_tokens for an answer.*")
    return blocks


def _turn_to_json(turn: Turn) -> dict[str, Any]:
    return {
        "user": turn.user,
        "reply": None if turn.reply is None else reply_to_json(turn.reply),
        "status": turn.status,
        "started_at": turn.started_at,
        "latency": turn.latency,
        "first_token": turn.first_token,
        "error": turn.error,
        "model": turn.model,
        "steps": [step_to_json(step, reply_to_json) for step in turn.steps],
    }


def _turn_from_json(data: Mapping[str, Any]) -> Turn:
    return Turn(
        user=str(data["user"]),
        reply=None if data["reply"] is None else reply_from_json(data["reply"]),
        status=_checked(data["status"], _STATUSES, "status"),
        started_at=float(data["started_at"]),
        latency=_seconds(data["latency"]),
        first_token=_seconds(data["first_token"]),
        error=data["error"],
        model=data["model"],
        # Absent from files saved before agent runs existed.
        steps=tuple(step_from_json(step, reply_from_json) for step in data.get("steps", ())),
    )


def reply_to_json(reply: Reply) -> dict[str, Any]:
    return {
        "text": reply.text,
        "thinking": reply.thinking,
        "raw": reply.raw,
        "message": copy.deepcopy(reply.message),
        "model": reply.model,
        "provider": reply.provider,
        "finish_reason": reply.finish_reason,
        "usage": None if reply.usage is None else _usage_to_json(reply.usage),
        "tool_calls": [_tool_call_to_json(call) for call in reply.tool_calls],
        "request_id": reply.request_id,
        "thinking_source": reply.thinking_source,
        "cut_while_thinking": reply.cut_while_thinking,
        "attempts": reply.attempts,
    }


def reply_from_json(data: Mapping[str, Any]) -> Reply:
    return Reply(
        text=str(data["text"]),
        thinking=data["thinking"],
        raw=str(data["raw"]),
        message=dict(data["message"]),
        model=data["model"],
        provider=data["provider"],
        finish_reason=data["finish_reason"],
        usage=None if data["usage"] is None else _usage_from_json(data["usage"]),
        tool_calls=tuple(_tool_call_from_json(call) for call in data["tool_calls"]),
        request_id=data["request_id"],
        thinking_source=_checked(data["thinking_source"], _SOURCES, "thinking_source"),
        cut_while_thinking=bool(data["cut_while_thinking"]),
        attempts=int(data["attempts"]),
    )


def _usage_to_json(usage: Usage) -> dict[str, int | None]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def _usage_from_json(data: Mapping[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=data["prompt_tokens"],
        completion_tokens=data["completion_tokens"],
        total_tokens=data["total_tokens"],
        reasoning_tokens=data["reasoning_tokens"],
    )


def _tool_call_to_json(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": call.arguments, "index": call.index}


def _tool_call_from_json(data: Mapping[str, Any]) -> ToolCall:
    return ToolCall(
        id=str(data["id"]),
        name=str(data["name"]),
        arguments=str(data["arguments"]),
        index=int(data["index"]),
    )


_V = TypeVar("_V")


def _checked(value: object, allowed: tuple[_V, ...], name: str) -> _V:
    for choice in allowed:
        if value == choice:
            return choice
    raise ValueError(f"{name} {value!r} is not one of {allowed}")


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def _params_from_json(value: Any) -> ChatParams:
    if not isinstance(value, dict):
        raise TypeError(f"params must be an object, not {type(value).__name__}")
    return cast("ChatParams", copy.deepcopy(value))
