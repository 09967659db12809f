"""What the store hands back, and the mapping between its rows and m2kit's objects. No I/O.

Times are seconds since the epoch (`time.time()`); durations are seconds.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, cast

from ._agent import ToolStep, step_from_json, steps_json
from ._conversation import (
    Turn,
    conversation_json,
    conversation_markdown,
    reply_from_json,
    reply_to_json,
    saved_params,
)
from ._errors import redact
from ._types import Reply, ToolCall, Usage

if TYPE_CHECKING:
    import sqlite3

    from ._conversation import TurnStatus
    from ._request import ChatParams

# A pid may be reused long after its writer died (after a reboot, say); no reply takes a day.
STALE_AFTER = 24 * 3600.0
DIED = "the process writing this turn ended before the reply was complete"


@dataclass(frozen=True, slots=True)
class StoredConversation:
    """A conversation read back from the store; `turns` in order, each rebuilt as a `Turn`."""

    id: str
    created_at: float
    updated_at: float
    title: str | None
    system: str | None
    model: str | None
    params: ChatParams
    turns: list[Turn]

    def to_json(self) -> dict[str, Any]:
        """As `Conversation.to_json` writes it: `Conversation.from_json` takes it back."""
        return conversation_json(self)

    def to_markdown(self, *, thinking: bool = True) -> str:
        """As `Conversation.to_markdown` writes it."""
        return conversation_markdown(self, thinking=thinking)


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """One line of `m2 logs`: `turns` counts user messages, `tokens` sums every call's tokens."""

    id: str
    created_at: float
    updated_at: float
    model: str | None
    title: str | None
    turns: int
    tokens: int


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message that matched: `snippet` is a few words around the match, each match in `**`."""

    conversation_id: str
    turn: int
    role: str
    created_at: float
    snippet: str


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One call: `model` is the model asked for (else the one the server named); `retries` is
    None when the call failed before a reply said how many attempts it took."""

    created_at: float
    conversation_id: str | None
    model: str | None
    provider: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int | None
    total_tokens: int | None
    latency: float | None
    first_token: float | None
    outcome: TurnStatus
    retries: int | None


def params_json(params: Mapping[str, object]) -> str:
    return json.dumps(saved_params(params), ensure_ascii=False, sort_keys=True, default=_plain)


def params_from_json(text: str) -> ChatParams:
    return cast("ChatParams", json.loads(text))


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (Sequence, Set)) and not isinstance(value, (str, bytes)):
        return list(value)
    return str(value)


def reply_columns(turn: Turn) -> dict[str, object]:
    """The assistant row's columns for a turn that ended."""
    reply = turn.reply
    columns: dict[str, object] = {
        "status": turn.status,
        "created_at": turn.started_at,
        "model": turn.model,
        "error": redact(turn.error) if turn.error else None,
        "steps": steps_json(turn.steps, reply_to_json),
    }
    if reply is None:
        return columns
    return columns | partial_columns(reply)


def partial_columns(reply: Reply) -> dict[str, object]:
    """The assistant row's reply columns: for a whole reply, or for what has arrived of one."""
    calls = [
        {"id": call.id, "name": call.name, "arguments": call.arguments, "index": call.index}
        for call in reply.tool_calls
    ]
    return {
        "content": reply.raw,
        "thinking": reply.thinking,
        "answer": reply.text,
        "tool_calls": json.dumps(calls, ensure_ascii=False) if calls else None,
        "finish_reason": reply.finish_reason,
        "message": json.dumps(reply.message, ensure_ascii=False),
        "reply_model": reply.model,
        "provider": reply.provider,
        # A header a server chose: redacted like error text, in case one echoes a key.
        "request_id": redact(reply.request_id) if reply.request_id else None,
        "thinking_source": reply.thinking_source,
        "cut_while_thinking": int(reply.cut_while_thinking),
    }


def usage_columns(turn: Turn) -> dict[str, object]:
    """The usage row's columns for the call a turn made."""
    reply = turn.reply
    usage = (reply.usage if reply else None) or Usage()
    return {
        "created_at": turn.started_at,
        "model": turn.model or (reply.model if reply else None),
        "provider": reply.provider if reply else None,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "total_tokens": usage.total_tokens,
        "latency": turn.latency,
        "first_token": turn.first_token,
        "outcome": turn.status,
        "retries": reply.attempts - 1 if reply else None,
    }


def step_usage_columns(turn: Turn, step: ToolStep) -> dict[str, object]:
    """The usage row's columns for the call of one step of a run (it completed: it had tools)."""
    usage = step.reply.usage or Usage()
    return {
        "created_at": turn.started_at,
        "model": turn.model or step.reply.model,
        "provider": step.reply.provider,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "total_tokens": usage.total_tokens,
        "latency": step.latency,
        "first_token": step.first_token,
        "outcome": "complete",
        "retries": step.reply.attempts - 1,
    }


def turn_from_row(row: sqlite3.Row, *, now: float, writing: Set[int]) -> Turn | None:
    """The turn an assistant row (joined with its user row and usage) holds, or None while a live
    process is still writing it. `writing`: the rows this process has yet to end."""
    status: TurnStatus
    error: str | None = row["error"]
    if row["status"] != "pending":
        status = row["status"]
    elif _in_progress(row, now, writing):
        return None
    else:
        status, error = "interrupted", DIED

    return Turn(
        user=row["user_text"],
        reply=_reply_from_row(row),
        status=status,
        started_at=row["created_at"],
        latency=row["latency"],
        first_token=row["first_token"],
        error=error,
        model=row["model"],
        steps=tuple(
            step_from_json(step, reply_from_json) for step in json.loads(row["steps"] or "[]")
        ),
    )


def _reply_from_row(row: sqlite3.Row) -> Reply | None:
    if row["message"] is None:
        return None

    message: dict[str, Any] = json.loads(row["message"])
    calls = json.loads(row["tool_calls"]) if row["tool_calls"] else []
    return Reply(
        text=row["answer"] or "",
        thinking=row["thinking"],
        raw=row["content"] or "",
        message=message,
        model=row["reply_model"],
        provider=row["provider"],
        finish_reason=row["finish_reason"],
        usage=_usage_from_row(row),
        tool_calls=tuple(ToolCall(**call) for call in calls),
        request_id=row["request_id"],
        thinking_source=row["thinking_source"],
        cut_while_thinking=bool(row["cut_while_thinking"]),
        attempts=(row["retries"] or 0) + 1,
    )


def _usage_from_row(row: sqlite3.Row) -> Usage | None:
    counts = [row[field.name] for field in fields(Usage)]
    return None if all(count is None for count in counts) else Usage(*counts)


def usage_from_row(row: sqlite3.Row) -> UsageRow:
    return UsageRow(**{field.name: row[field.name] for field in fields(UsageRow)})


def _in_progress(row: sqlite3.Row, now: float, writing: Set[int]) -> bool:
    pid: int | None = row["pid"]
    if pid == os.getpid():
        # Our own pid on a row we are not writing: an earlier process had it. In a container
        # every run is PID 1, so this is the common case of reuse, not a rare one.
        return row["id"] in writing
    return pid is not None and now - row["created_at"] < STALE_AFTER and process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether a process with this id is running (on this machine)."""
    if sys.platform == "win32":
        # os.kill(pid, 0) on Windows sends CTRL_C_EVENT instead of probing: assume it is gone.
        return False

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # It exists, under another user.
        return True
    return True
