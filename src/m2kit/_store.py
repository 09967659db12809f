"""The local store: conversations, their turns and every call's usage, in one SQLite file.

Safe with several `m2` processes at once: WAL mode lets readers run beside a writer, writers take
the lock up front (`BEGIN IMMEDIATE`) and wait up to 10 s for each other. Nothing is lost if a
process dies mid-reply: `start_turn` has already committed the user message and a 'pending' reply
row carrying the writer's pid, `save_partial` keeps what has arrived in that row as the reply
streams, and a pending row whose process is gone reads as an interrupted turn with that partial.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ._agent import steps_json
from ._conversation import reply_to_json, title_of
from ._errors import ConfigError
from ._migrations import MIGRATIONS, MIGRATIONS_TABLE, SEARCH_INDEX, Migration
from ._store_rows import (
    ConversationSummary,
    SearchHit,
    StoredConversation,
    UsageRow,
    params_from_json,
    params_json,
    partial_columns,
    reply_columns,
    step_usage_columns,
    turn_from_row,
    usage_columns,
    usage_from_row,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from types import TracebackType

    from ._agent import ToolStep
    from ._conversation import Turn
    from ._types import Reply

DB_NAME = "m2.db"
BUSY_TIMEOUT = 10.0
_WHERE_TO = "Point --db or M2_HOME at another file, or move this one away."

# The pending rows this process has started and not yet ended, by database file: a row of ours
# that is not here was left by an earlier process that had our pid.
_WRITING: dict[Path, set[int]] = {}
_WRITING_LOCK = threading.Lock()

_TURNS = """
SELECT a.*, u.content AS user_text, g.latency, g.first_token, g.retries,
       g.prompt_tokens, g.completion_tokens, g.total_tokens, g.reasoning_tokens
FROM messages AS a
JOIN messages AS u ON u.conversation_id = a.conversation_id AND u.turn = a.turn AND u.role = 'user'
LEFT JOIN usage AS g ON g.message_id = a.id AND g.step IS NULL
WHERE a.conversation_id = ? AND a.role = 'assistant' AND a.superseded = 0
ORDER BY a.turn
"""

_SUMMARIES = """
SELECT c.id, c.created_at, c.updated_at, c.model, c.title,
       (SELECT count(*) FROM messages AS m
        WHERE m.conversation_id = c.id AND m.role = 'user' AND m.superseded = 0)
           AS turns,
       (SELECT coalesce(sum(coalesce(g.total_tokens, g.prompt_tokens + g.completion_tokens)), 0)
        FROM usage AS g WHERE g.conversation_id = c.id) AS tokens
FROM conversations AS c
ORDER BY c.updated_at DESC, c.id
LIMIT ?
"""

_SEARCH = """
SELECT m.conversation_id, m.turn, m.role, m.created_at,
       snippet(messages_fts, 0, '**', '**', '…', 16) AS snippet
FROM messages_fts JOIN messages AS m ON m.id = messages_fts.rowid
WHERE messages_fts MATCH ? AND m.superseded = 0
ORDER BY rank
LIMIT ?
"""


def default_db_path() -> Path:
    """`$M2_HOME/m2.db` when `M2_HOME` is set, else `m2.db` in the platform's user data dir."""
    if home := os.environ.get("M2_HOME"):
        return Path(home).expanduser() / DB_NAME

    # Imported here so that `m2 --help` does not pay for it.
    import platformdirs

    return Path(platformdirs.user_data_dir("m2kit", appauthor=False)) / DB_NAME


class ConversationInfo(Protocol):
    """What the store reads from a conversation (`ConversationBase` has all of it)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str | None: ...
    @property
    def system(self) -> str | None: ...
    @property
    def params(self) -> Mapping[str, Any]: ...
    @property
    def created_at(self) -> float: ...


class Store:
    """The SQLite store at `path`: creates its folder, applies pending migrations, and records
    turns (it is a `Recorder`). Only message text and reply fields go in: never a token or header.

    Raises ConfigError when the file is not an m2 database, or was written by a newer m2kit. One
    Store may be shared between threads. Use it as a context manager, or call `close()`.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._db = _connect(self.path)
        self._file = self.path.resolve()
        try:
            migrate(self._db, MIGRATIONS, path=self.path)
            self._searchable = _has_fts5(self._db)
            if self._searchable:
                self._create_search_index()
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The version of the last migration applied to this file."""
        with self._lock:
            return _version(self._db, self.path)

    def start_turn(self, conversation: ConversationInfo, user: str) -> int:
        """Record, before the request goes out, the user's message and a pending reply.

        Returns the key to pass to `end_turn`. The conversation's row is created or updated.
        """
        now = time.time()
        with self._transaction() as db:
            _save_conversation(db, conversation, first=user, now=now)
            (turn,) = db.execute(
                "SELECT coalesce(max(turn), -1) + 1 FROM messages WHERE conversation_id = ?",
                (conversation.id,),
            ).fetchone()

            row = {
                "conversation_id": conversation.id,
                "turn": turn,
                "created_at": now,
                "pid": os.getpid(),
            }
            asked = {"role": "user", "content": user, "status": "complete"}
            user_id = _insert(db, "messages", row | asked)
            key = _insert(db, "messages", row | {"role": "assistant", "status": "pending"})
            if self._searchable:
                _index(db, user_id, user)
        with _WRITING_LOCK:
            _WRITING.setdefault(self._file, set()).add(key)
        return key

    def save_partial(
        self,
        conversation: ConversationInfo,
        key: object,
        partial: Reply | None,
        steps: tuple[ToolStep, ...] = (),
    ) -> None:
        """Keep what has arrived of a reply, and a run's steps so far, in its pending row, so
        that a process killed before `end_turn` leaves them behind. A row that has ended is not
        touched."""
        columns = partial_columns(partial) if partial is not None else {}
        columns["steps"] = steps_json(steps, reply_to_json)
        assignments = ", ".join(f"{name} = :{name}" for name in columns)
        with self._transaction() as db:
            db.execute(
                f"UPDATE messages SET {assignments}"
                " WHERE id = :key AND conversation_id = :cid AND status = 'pending'",
                columns | {"key": key, "cid": conversation.id},
            )

    def drop_last_turn(self, conversation: ConversationInfo) -> None:
        """Mark the conversation's last turn superseded: kept in the file, no longer loaded."""
        with self._transaction() as db:
            db.execute(
                "UPDATE messages SET superseded = 1 WHERE conversation_id = ? AND turn = ("
                " SELECT max(turn) FROM messages WHERE conversation_id = ? AND superseded = 0)",
                (conversation.id, conversation.id),
            )

    def end_turn(self, conversation: ConversationInfo, key: object, turn: Turn) -> None:
        """Record, in one transaction, how a turn ended: its reply row and its usage row.

        `key` is what `start_turn` returned; each key ends once.
        """
        if isinstance(key, bool) or not isinstance(key, int):
            raise ConfigError(f"{key!r} is not a key from this store's start_turn")

        with _WRITING_LOCK:
            _WRITING.get(self._file, set()).discard(key)

        columns = reply_columns(turn)
        assignments = ", ".join(f"{name} = :{name}" for name in columns)
        with self._transaction() as db:
            # Only the row start_turn left pending may change: a turn ends once.
            updated = db.execute(
                f"UPDATE messages SET {assignments}"
                " WHERE id = :key AND conversation_id = :cid AND status = 'pending'",
                columns | {"key": key, "cid": conversation.id},
            ).rowcount
            if updated != 1:
                raise ConfigError(
                    f"turn {key} of conversation {conversation.id} is not waiting to end:"
                    " end_turn is called once for each start_turn"
                )

            where = {"conversation_id": conversation.id, "message_id": key}
            for number, step in enumerate(turn.steps):
                _insert(db, "usage", step_usage_columns(turn, step) | where | {"step": number})
            usage = usage_columns(turn) | where
            _insert(db, "usage", usage)
            db.execute(
                "UPDATE conversations SET updated_at = ?, model = coalesce(?, model) WHERE id = ?",
                (time.time(), usage["model"], conversation.id),
            )
            if self._searchable:
                _index(db, key, turn.reply.text if turn.reply else None)

    def latest_conversation_id(self) -> str | None:
        """The conversation written to last, or None when there is none."""
        rows = self._read("SELECT id FROM conversations ORDER BY updated_at DESC, id LIMIT 1")
        return rows[0]["id"] if rows else None

    def find_conversation(self, id_or_prefix: str) -> str | None:
        """The full id of the one conversation whose id starts with `id_or_prefix`, or None.

        A prefix that fits several raises ConfigError listing a few, so the user can say more.
        """
        prefix = id_or_prefix.strip().lower()
        if not prefix:
            return None
        # Escape LIKE's wildcards: ids are hex, but the prefix is whatever the user typed.
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._read(
            "SELECT id FROM conversations WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 6",
            (pattern,),
        )
        if len(rows) > 1:
            shown = ", ".join(row["id"][:12] for row in rows[:5])
            more = ", …" if len(rows) > 5 else ""
            raise ConfigError(
                f"the id {id_or_prefix!r} fits several conversations ({shown}{more})",
                hint="Give more of the id (m2 logs lists them).",
            )
        return rows[0]["id"] if rows else None

    def conversation_ids(self) -> list[str]:
        """Every conversation's id, sorted: what a short id must stay unique among."""
        return [row["id"] for row in self._read("SELECT id FROM conversations ORDER BY id")]

    def load(self, conversation_id: str) -> StoredConversation:
        """A conversation and its turns, oldest first. Raises ConfigError when there is none.

        A reply that is pending and whose process is gone reads as interrupted; one that another
        live process is still writing is left out.
        """
        found = self._read("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        if not found:
            raise ConfigError(
                f"no conversation {conversation_id!r} in {self.path}",
                hint="List them with `m2 logs`.",
            )

        now = time.time()
        rows = self._read(_TURNS, (conversation_id,))
        with _WRITING_LOCK:
            writing = set(_WRITING.get(self._file, ()))
        turns = [
            turn
            for row in rows
            if (turn := turn_from_row(row, now=now, writing=writing)) is not None
        ]
        conversation = found[0]
        return StoredConversation(
            id=conversation["id"],
            created_at=conversation["created_at"],
            updated_at=conversation["updated_at"],
            title=conversation["title"],
            system=conversation["system"],
            model=conversation["model"],
            params=params_from_json(conversation["params"]),
            turns=turns,
        )

    def list_conversations(self, limit: int = 20) -> list[ConversationSummary]:
        """The `limit` conversations written to last, latest first."""
        return [ConversationSummary(**dict(row)) for row in self._read(_SUMMARIES, (limit,))]

    def search(self, text: str, limit: int = 20) -> list[SearchHit]:
        """Messages (user text and answers) containing `text` as a phrase, best match first.

        `text` is matched as words in order, never as FTS5 query syntax. Raises ConfigError when
        this Python's SQLite lacks FTS5.
        """
        if not self._searchable:
            raise ConfigError(
                f"search needs SQLite's FTS5 module, and this Python's SQLite"
                f" {sqlite3.sqlite_version} was built without it",
                hint="Use a Python whose sqlite3 has FTS5 (the python.org and Debian builds do).",
            )
        if not text.strip():
            return []

        self._index_backlog()
        phrase = '"' + text.replace('"', '""') + '"'
        return [SearchHit(**dict(row)) for row in self._read(_SEARCH, (phrase, limit))]

    def usage(self, since: float | None = None) -> list[UsageRow]:
        """Every call made at or after `since` (seconds since the epoch; None for all), oldest
        first."""
        rows = self._read(
            "SELECT * FROM usage WHERE created_at >= ? ORDER BY created_at, id",
            (since if since is not None else float("-inf"),),
        )
        return [usage_from_row(row) for row in rows]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _transaction(self._db):
            yield self._db

    def _read(self, sql: str, parameters: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, parameters).fetchall()

    def _create_search_index(self) -> None:
        exists = self._read("SELECT 1 FROM sqlite_master WHERE name = 'messages_fts'")
        if not exists:
            with self._transaction() as db:
                db.execute(SEARCH_INDEX)

    def _index_backlog(self) -> None:
        # Rows written by a Python whose SQLite lacked FTS5 join the index at the next search.
        waiting = "FROM messages WHERE indexed = 0 AND status != 'pending'"
        if not self._read(f"SELECT 1 {waiting} LIMIT 1"):
            return

        with self._transaction() as db:
            rows = db.execute(f"SELECT id, role, content, answer {waiting}").fetchall()
            for row in rows:
                _index(db, row["id"], row["content"] if row["role"] == "user" else row["answer"])


def migrate(
    db: sqlite3.Connection, migrations: Sequence[Migration], *, path: Path | str = "the database"
) -> None:
    """Apply, in order, each of `migrations` that `db` lacks, one transaction each.

    Raises ConfigError when `db` is newer than `migrations`, or is some other program's database.
    """
    known = migrations[-1].version if migrations else 0
    version = _version(db, path)
    if version > known:
        raise ConfigError(
            f"the m2 database at {path} has schema version {version}, newer than this m2kit"
            f" knows ({known}): it was written by a newer m2kit",
            hint=f"Upgrade m2kit (`pip install -U m2kit`). {_WHERE_TO}",
        )

    for migration in migrations:
        if migration.version <= version:
            continue
        with _transaction(db):
            # Another process may have applied it while this one waited for the lock.
            if _version(db, path) >= migration.version:
                continue
            db.execute(MIGRATIONS_TABLE)
            for statement in _statements(migration.sql):
                db.execute(statement)
            db.execute(
                "INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock at BEGIN, where the busy timeout applies; a deferred
    # transaction that upgrades to writing can fail with "database is locked" at once.
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        # SQLite has already rolled back after some errors (a full disk, say).
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The file holds private conversations; SQLite gives its -wal and -shm files this mode too.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    except OSError as exc:
        raise ConfigError(
            f"cannot open or create the m2 database at {path}: {exc.strerror}", hint=_WHERE_TO
        ) from exc

    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    try:
        _use_wal(db)
        # With WAL, NORMAL loses no committed data on a crash; only a power cut can undo the last.
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        db.close()
        if isinstance(exc, sqlite3.OperationalError):
            raise ConfigError(f"cannot open the m2 database at {path}: {exc}") from exc
        raise ConfigError(f"{path} is not an m2 database ({exc})", hint=_WHERE_TO) from exc
    return db


def _use_wal(db: sqlite3.Connection) -> None:
    # Switching a new file to WAL needs it to itself, and SQLite does not wait for that: when
    # two processes open a new file at once, one is told "database is locked" at once.
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
        else:
            return


def _version(db: sqlite3.Connection, path: Path | str) -> int:
    tables = {
        name
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not name.startswith("sqlite_")
    }
    if "migrations" in tables:
        (version,) = db.execute("SELECT coalesce(max(version), 0) FROM migrations").fetchone()
        return int(version)
    if tables:
        raise ConfigError(
            f"{path} is an SQLite database, but not one of m2's (it has no migrations table)",
            hint=_WHERE_TO,
        )
    return 0


def _statements(script: str) -> Iterator[str]:
    # Split by hand: executescript() would commit the open transaction first.
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip().strip(";").strip():
                yield pending
            pending = ""


def _has_fts5(db: sqlite3.Connection) -> bool:
    (used,) = db.execute("SELECT sqlite_compileoption_used('ENABLE_FTS5')").fetchone()
    return bool(used)


def _save_conversation(
    db: sqlite3.Connection, conversation: ConversationInfo, *, first: str, now: float
) -> None:
    db.execute(
        """
        INSERT INTO conversations (id, created_at, updated_at, title, system, model, params)
        VALUES (:id, :created_at, :now, coalesce(:title, :first), :system, :model, :params)
        ON CONFLICT (id) DO UPDATE SET
            updated_at = excluded.updated_at,
            title = coalesce(:title, title),
            system = excluded.system,
            model = coalesce(excluded.model, model),
            params = excluded.params
        """,
        {
            "id": conversation.id,
            "created_at": conversation.created_at,
            "now": now,
            "title": conversation.title,
            "first": title_of(first),
            "system": conversation.system,
            "model": conversation.params.get("model"),
            "params": params_json(conversation.params),
        },
    )


def _insert(db: sqlite3.Connection, table: str, row: Mapping[str, object]) -> int:
    names = ", ".join(row)
    values = ", ".join(f":{name}" for name in row)
    cursor = db.execute(f"INSERT INTO {table} ({names}) VALUES ({values})", row)
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _index(db: sqlite3.Connection, message_id: int, text: str | None) -> None:
    if text:
        db.execute("INSERT INTO messages_fts (rowid, text) VALUES (?, ?)", (message_id, text))
    db.execute("UPDATE messages SET indexed = 1 WHERE id = ?", (message_id,))
