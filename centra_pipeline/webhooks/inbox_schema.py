"""The inbox file's tables, how they are created or checked on open, and its write
transactions (docs/webhooks.md describes the tables)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 2  # 2: `meta` with the inbox id

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS deliveries (
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        body_sha256       TEXT    NOT NULL UNIQUE,  -- hex SHA-256 of the raw request body
        signed_at         INTEGER NOT NULL,         -- the signature's t= (unix seconds)
        received_at       TEXT    NOT NULL,         -- first receipt, ISO 8601 UTC
        event_count       INTEGER NOT NULL,
        new_events        INTEGER NOT NULL,         -- events first stored by this delivery
        duplicate_events  INTEGER NOT NULL,         -- events already stored by another one
        redeliveries      INTEGER NOT NULL DEFAULT 0,  -- identical bodies received again
        last_received_at  TEXT    NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS events (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- the sensor's cursor and run key
        delivery_id  INTEGER NOT NULL REFERENCES deliveries (id),
        type         TEXT    NOT NULL,
        action       TEXT    NOT NULL,
        object_id    TEXT    NOT NULL,  -- Centra's `id`; the order number for `order`
        event_date   TEXT,              -- Centra's `date`, as sent (store-local, no offset)
        data         TEXT,              -- Centra's `data` as JSON, if the event had one
        received_at  TEXT    NOT NULL,
        UNIQUE (type, action, object_id, event_date)
    )
    """,
    "CREATE INDEX IF NOT EXISTS events_type_seq ON events (type, seq)",
    # `inbox_id` names this inbox file: a reader's cursor (a seq) is only meaningful for the
    # inbox it was read from; a new inbox starts its seqs at 1 again.
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """All or nothing, holding the write lock from the start so no other writer interleaves.

    The connection must be in autocommit mode (`isolation_level=None`).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _user_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def create_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Create the tables if missing; refuse an inbox written by a newer version."""
    if _user_version(conn) == SCHEMA_VERSION:
        return  # the usual case: no write lock taken, so opening never delays the writer
    with write_transaction(conn):
        version = _user_version(conn)  # again: another process may have won the race
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"inbox {path} has schema version {version}; this code knows "
                f"{SCHEMA_VERSION}. Upgrade centra-pipeline or point CENTRA_DATA_DIR "
                "elsewhere."
            )
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('inbox_id', ?)",
            (uuid.uuid4().hex,),
        )
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
