"""`m2 logs`: list, show, export and search the conversations in the store.

Reading never creates the store: with no file yet there is nothing to list. Short ids are the
shortest prefix, of at least 8 characters, that tells every conversation in the store apart;
wherever an id is taken, any unique prefix of it will do. `existing_store`, `store_path` and
`when` serve `m2 usage` too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .._errors import ConfigError, M2Error
from ._common import open_store
from ._output import clean_text, guarded, line_table, say, stdout_console, write, write_json

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from rich.text import Text

    from .._conversation import Turn
    from .._store import Store
    from .._store_rows import StoredConversation
    from .._types import Reply

SHORT_ID = 8
_LIST_HINT = "List them with `m2 logs`."

_Row = TypeVar("_Row")


def store_path(db: str | None) -> Path:
    from .._store import default_db_path

    return Path(db).expanduser() if db else default_db_path()


@contextlib.contextmanager
def existing_store(path: Path) -> Iterator[Store | None]:
    """The store at `path`, or None when there is no file there yet. An SQLite error while it is
    open becomes an M2Error, so that `guarded` makes it one line."""
    if not path.exists():
        yield None
        return
    try:
        with open_store(str(path)) as store:
            yield store
    except sqlite3.Error as error:
        raise M2Error(f"the store could not be read: {error}") from error


def _read(path: Path, read: Callable[[Store], list[_Row]]) -> tuple[list[_Row], int]:
    """What `read` finds in the store at `path` (nothing when there is no store yet), and how
    many leading characters of an id tell the store's conversations apart."""
    with existing_store(path) as store:
        if store is None:
            return [], SHORT_ID
        return read(store), short_length(store.conversation_ids())


def short_length(ids: Sequence[str], minimum: int = SHORT_ID) -> int:
    """How many leading characters tell all of `ids` apart (ignoring case), at least `minimum`."""
    ordered = sorted(conversation_id.casefold() for conversation_id in ids)
    shared = [_shared_length(*pair) for pair in itertools.pairwise(ordered)]
    return max(minimum, max(shared, default=0) + 1)


def _shared_length(first: str, second: str) -> int:
    return next(
        (at for at, (a, b) in enumerate(zip(first, second, strict=False)) if a != b),
        min(len(first), len(second)),
    )


def when(seconds: float) -> str:
    """A time (seconds since the epoch) as local date and minute."""
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")


def list_logs(db: str | None, *, limit: int, json_output: bool) -> int:
    """`m2 logs`: the conversations written to last."""
    return guarded(lambda: _list(store_path(db), limit, json_output))


def show(db: str | None, conversation_id: str, *, think: bool, json_output: bool) -> int:
    """`m2 logs show ID`: one conversation, turn by turn."""
    return guarded(lambda: _show(store_path(db), clean_text(conversation_id), think, json_output))


def export(db: str | None, conversation_id: str, *, form: Literal["md", "json"]) -> int:
    """`m2 logs export ID`: one conversation as Markdown or as the JSON that `Conversation.load`
    reads."""
    return guarded(lambda: _export(store_path(db), clean_text(conversation_id), form))


def search(db: str | None, text: str, *, limit: int, json_output: bool) -> int:
    """`m2 logs search TEXT`: the messages that contain TEXT, best match first."""
    return guarded(lambda: _search(store_path(db), clean_text(text), limit, json_output))


def _list(path: Path, limit: int, json_output: bool) -> None:
    summaries, length = _read(path, lambda store: store.list_conversations(limit))

    if json_output:
        write_json([dataclasses.asdict(summary) for summary in summaries])
        return
    if not summaries:
        say(f"m2: no conversations in {path} yet.")
        return

    rows = [
        [
            summary.id[:length],
            when(summary.updated_at),
            _short_model(summary.model),
            summary.title or "",
            str(summary.turns),
            f"{summary.tokens:,}",
        ]
        for summary in summaries
    ]
    out = stdout_console()
    headers = ["ID", "Updated", "Model", "First prompt", "Turns", "Tokens"]
    out.print(line_table(out, headers, rows, flexible="First prompt", right={"Turns", "Tokens"}))


def _short_model(model: str | None) -> str:
    # The organisation adds little in a list; the JSON keeps the whole id.
    return (model or "").rpartition("/")[2]


def _load(path: Path, conversation_id: str) -> StoredConversation:
    with existing_store(path) as store:
        if store is None:
            raise ConfigError(f"no conversation {conversation_id!r}: there is no store at {path}")
        found = store.find_conversation(conversation_id)
        if found is None:
            raise ConfigError(f"no conversation {conversation_id!r} in {path}", hint=_LIST_HINT)
        return store.load(found)


def _export(path: Path, conversation_id: str, form: Literal["md", "json"]) -> None:
    conversation = _load(path, conversation_id)
    if form == "json":
        write_json(conversation.to_json())
    else:
        write(conversation.to_markdown())


def _show(path: Path, conversation_id: str, think: bool, json_output: bool) -> None:
    stored = _load(path, conversation_id)
    if json_output:
        write_json(stored.to_json())
        return

    from rich.text import Text

    out = stdout_console()
    out.print(Text(stored.title or "Conversation", style="bold"), soft_wrap=True)
    about = [stored.id, when(stored.created_at), stored.model or "unknown model"]
    out.print(Text(" · ".join(about), style="dim"))
    if stored.system:
        out.print(Text(f"System: {stored.system}", style="dim"), soft_wrap=True)
    if not stored.turns:
        out.print(Text("No turns yet.", style="dim"))

    for number, turn in enumerate(stored.turns, start=1):
        out.print()
        out.print(Text(f"You ({number})", style="bold cyan"))
        out.print(Text(turn.user), soft_wrap=True)
        out.print()
        out.print(Text(_reply_heading(turn), style="bold green"))
        for part in _reply_parts(turn, think=think, markdown=out.is_terminal):
            out.print(part, soft_wrap=True)


def _reply_heading(turn: Turn) -> str:
    """Who answered, and what the turn cost: every call of a run (its steps) counted."""
    reply = turn.reply
    parts = [(reply.model if reply else None) or turn.model or "Assistant"]
    if reply and reply.provider:
        parts[0] += f" via {reply.provider}"

    replies = [step.reply for step in turn.steps] + ([reply] if reply else [])
    counts = [r.usage.total_tokens for r in replies if r.usage and r.usage.total_tokens is not None]
    if counts:
        parts.append(f"{sum(counts):,} tokens")
    seconds = [step.latency for step in turn.steps] + [turn.latency]
    if turn.latency is not None:
        parts.append(f"{sum(s for s in seconds if s is not None):.1f} s")
    if turn.steps:
        parts.append(f"{len(replies)} calls")
    return " · ".join(parts)


def _reply_parts(turn: Turn, *, think: bool, markdown: bool) -> Iterator[Any]:
    """What to print for a turn's reply: each step of a run (its thinking, calls and their
    results), then the reply: thinking (dim), answer, tool calls, how it ended."""
    from rich.text import Text

    for step in turn.steps:
        yield from _one_reply(step.reply, think=think, markdown=markdown)
        for result in step.results:
            first = (result.content.strip().splitlines() or [""])[0]
            label = "error from" if result.error else "result of"
            yield Text(f"{label} {result.call.name}: {_cut(first)}", style="dim magenta")
    if turn.reply is not None:
        yield from _one_reply(turn.reply, think=think, markdown=markdown)

    if turn.status != "complete":
        why = f": {turn.error}" if turn.error else ""
        yield Text(f"[{turn.status}{why}]", style="bold yellow")


def _one_reply(reply: Reply, *, think: bool, markdown: bool) -> Iterator[Any]:
    from rich.markdown import Markdown
    from rich.text import Text

    if reply.thinking and think:
        yield Text(reply.thinking, style="dim")
    elif reply.thinking:
        yield Text("(thinking hidden: --think shows it)", style="dim")
    if reply.text:
        yield Markdown(reply.text) if markdown else Text(reply.text)
    for call in reply.tool_calls:
        yield Text(f"tool call {call.name}({call.arguments})", style="magenta")
    if reply.cut_while_thinking:
        yield Text("[cut off while thinking: no answer]", style="bold yellow")


def _cut(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _search(path: Path, text: str, limit: int, json_output: bool) -> None:
    hits, length = _read(path, lambda store: store.search(text, limit))

    if json_output:
        write_json([dataclasses.asdict(hit) for hit in hits])
        return
    if not hits:
        say(f"m2: no message contains {text!r}.")
        return

    out = stdout_console()
    styled = out.color_system is not None
    rows = [
        [
            hit.conversation_id[:length],
            when(hit.created_at),
            "you" if hit.role == "user" else "model",
            _snippet(hit.snippet, styled=styled),
        ]
        for hit in hits
    ]
    out.print(line_table(out, ["ID", "When", "Who", "Match"], rows, flexible="Match"))


def _snippet(snippet: str, *, styled: bool) -> Text:
    """A search snippet, its `**`-marked matches in bold where styles show (kept as `**` where
    they do not, so piped text still shows them)."""
    from rich.text import Text

    snippet = " ".join(snippet.split())  # one row per hit: a multi-line answer would spread
    if not styled:
        return Text(snippet)
    shown = Text()
    for at, piece in enumerate(snippet.split("**")):
        shown.append(piece, style="bold yellow" if at % 2 else "")
    return shown
