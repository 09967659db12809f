"""The store's schema, as numbered migrations applied in order. No I/O.

`MIGRATIONS` is append-only: a released migration is never edited; a change to the schema is the
next migration. Each one runs inside its own transaction and is recorded in the `migrations` table
(version, name, applied_at). Times are seconds since the epoch (`time.time()`), as REAL.

The full-text index (`SEARCH_INDEX`) is not a migration: it is derived from `messages`, and the
FTS5 module it needs is missing from some SQLite builds, where the rest of the store still works.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: `sql` holds one or more statements, run in one transaction."""

    version: int
    name: str
    sql: str


MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at REAL NOT NULL
)
"""

_V1 = """
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    title TEXT,
    system TEXT,
    model TEXT,
    params TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX conversations_by_update ON conversations (updated_at);

-- One row per user message and one per reply. For a reply, `content` is the raw content as
-- received, `message` the assistant message (JSON) that goes back as history, and `status` is
-- 'pending' from the moment the request goes out until the turn ends. `indexed` is 1 once the
-- row's text is in the search index.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    turn INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT,
    thinking TEXT,
    answer TEXT,
    tool_calls TEXT,
    finish_reason TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'complete', 'interrupted', 'failed')),
    pid INTEGER,
    created_at REAL NOT NULL,
    message TEXT,
    model TEXT,
    reply_model TEXT,
    provider TEXT,
    request_id TEXT,
    thinking_source TEXT,
    cut_while_thinking INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    indexed INTEGER NOT NULL DEFAULT 0,
    UNIQUE (conversation_id, turn, role)
);
CREATE INDEX messages_to_index ON messages (indexed) WHERE indexed = 0;

-- One row per call. Kept when its conversation is deleted, since it is the spending record.
CREATE TABLE usage (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    conversation_id TEXT REFERENCES conversations (id) ON DELETE SET NULL,
    message_id INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    model TEXT,
    provider TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    reasoning_tokens INTEGER,
    total_tokens INTEGER,
    latency REAL,
    first_token REAL,
    outcome TEXT NOT NULL CHECK (outcome IN ('complete', 'interrupted', 'failed')),
    retries INTEGER
);
CREATE INDEX usage_by_time ON usage (created_at);
CREATE INDEX usage_by_conversation ON usage (conversation_id);
CREATE INDEX usage_by_message ON usage (message_id);
"""

# `/retry` and Conversation.retry replace the last turn: the old one stays, marked, for the
# record (its tokens were spent), and is no longer part of the conversation.
_V2 = """
ALTER TABLE messages ADD COLUMN superseded INTEGER NOT NULL DEFAULT 0;
"""

# Agent runs: a turn's reply row keeps, as JSON, the steps that called tools before the answer,
# and each of those calls has a usage row of its own, numbered by `step` (NULL: the last call).
_V3 = """
ALTER TABLE messages ADD COLUMN steps TEXT;
ALTER TABLE usage ADD COLUMN step INTEGER;
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "conversations, messages and usage", _V1),
    Migration(2, "superseded turns", _V2),
    Migration(3, "tool steps", _V3),
)

# The rowid of each entry is the id of its row in `messages`.
SEARCH_INDEX = """
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts
USING fts5 (text, tokenize = 'unicode61 remove_diacritics 2')
"""


def latest_version() -> int:
    """The schema version this code writes."""
    return MIGRATIONS[-1].version
