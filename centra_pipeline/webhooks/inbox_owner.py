"""Which Centra store an inbox file belongs to (centra_pipeline/stores.py).

Each store has its own inbox file, and the file records its store, so that a misconfigured
data directory (two stores pointed at one directory) cannot mix their events:

- `meta.store` is recorded by the first open that names a store (`Inbox(path, store=...)`;
  the receiver always names one). It never changes afterwards, and an open that names
  another store is refused with `InboxStoreMismatch`. An open that names none (the sensor,
  the maintenance jobs, erasure) checks nothing and records nothing.
- `events.store` is each event's store, written inside the storing transaction from
  `meta.store` ('default' while the file records none: a single-store deployment's inbox).

Migration: an inbox file written before stores existed has neither. The first open of any
kind adds the column (its rows read 'default'); the first open naming a store records it
and labels the rows stored so far with it (they were stored in this store's inbox). Both
run in one write transaction, only when something is missing, so the usual open takes no
write lock. The change is found by its column rather than by a schema version.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from centra_pipeline.stores import DEFAULT_STORE
from centra_pipeline.webhooks.inbox_schema import write_transaction


class InboxStoreMismatch(RuntimeError):
    """The inbox file records another store than the one asked for."""


def recorded_store(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'store'").fetchone()
    return None if row is None else row[0]


def event_store(conn: sqlite3.Connection) -> str:
    """The store new events are stored under: the recorded one, else 'default'."""
    return recorded_store(conn) or DEFAULT_STORE


def _has_store_column(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "store" for row in conn.execute("PRAGMA table_info(events)"))


def _mismatch(path: Path, recorded: str, asked: str) -> InboxStoreMismatch:
    return InboxStoreMismatch(
        f"inbox {path} belongs to store {recorded!r}, not {asked!r}: each store keeps its "
        "own inbox (CENTRA_DATA_DIR/stores/<name>/webhooks/ with a stores file), so check "
        "CENTRA_DATA_DIR and CENTRA_STORES_FILE; nothing was written"
    )


def check_store(conn: sqlite3.Connection, path: Path, store: str | None) -> None:
    """Add the `store` column if missing; record `store`, or refuse a file of another one."""
    if store is not None and (not isinstance(store, str) or not store):
        raise ValueError(f"an inbox's store is a non-empty name, got {store!r}")
    recorded = recorded_store(conn)
    if store is not None and recorded is not None and recorded != store:
        raise _mismatch(path, recorded, store)
    if _has_store_column(conn) and (store is None or recorded == store):
        return  # the usual case: no write lock taken
    with write_transaction(conn):  # again inside: another process may have won the race
        if not _has_store_column(conn):
            conn.execute(
                f"ALTER TABLE events ADD COLUMN store TEXT NOT NULL DEFAULT '{DEFAULT_STORE}'"
            )
        if store is None:
            return
        recorded = recorded_store(conn)
        if recorded is None:
            conn.execute("INSERT INTO meta (key, value) VALUES ('store', ?)", (store,))
            conn.execute("UPDATE events SET store = ? WHERE store <> ?", (store, store))
        elif recorded != store:
            raise _mismatch(path, recorded, store)
