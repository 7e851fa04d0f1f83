"""The durable webhook inbox: a SQLite file (WAL mode) between the receiver and the sensor.

The webhook receiver is the one writer; the Dagster sensor reads from another process.
Centra drops a webhook after at most three retries (docs/webhooks.md), so the receiver
answers 2xx only after `store()` has returned, and `store()` returns only after the
transaction is on disk (WAL, `synchronous=FULL`).

Two levels of de-duplication, because Centra re-sends and re-batches (docs/webhooks.md):

- a *delivery* is identified by the SHA-256 of its raw body. An identical re-delivery (a
  retry after a timeout, a replay inside the signature window) stores nothing new; it only
  bumps `deliveries.redeliveries`.
- an *event* is identified by `(type, action, object_id, event_date)`. The same event in a
  different batch is stored once. An event without a `date` cannot be told apart from a
  later, real change of the same object, so it is never treated as a duplicate (SQLite's
  UNIQUE lets NULLs differ): a spare refresh is cheap, a lost one is not.

`events.seq` is the sensor's cursor and run key. It only grows (AUTOINCREMENT never reuses a
value) and, because SQLite has one writer at a time and a seq is allocated inside the
writing transaction, a reader never sees seq N+1 committed before seq N. It has gaps: an
insert that hits a duplicate still consumes a value. So `events_after(cursor)` never skips
an event, and a cursor may point at a seq that does not exist.

One file per Centra store: the file records its store and each event carries it
(`InboxEvent.store`); opening a file of another store is refused (webhooks/inbox_owner.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from centra_pipeline.centra.webhook import WebhookEvent
from centra_pipeline.stores import DEFAULT_STORE
from centra_pipeline.webhooks import records
from centra_pipeline.webhooks.inbox_owner import (
    InboxStoreMismatch,
    check_store,
    event_store,
    recorded_store,
)
from centra_pipeline.webhooks.inbox_schema import create_schema, write_transaction
from centra_pipeline.webhooks.records import (
    DOCUMENTED_ACTIONS,
    ORDER_REFRESH_TYPES,
    Delivery,
    InboxCounts,
    StoreResult,
    is_documented,
)


@dataclass(frozen=True)
class InboxEvent(records.InboxEvent):
    """A stored event, and the Centra store whose inbox it was stored in."""

    store: str = DEFAULT_STORE


_EVENT_FIELDS = tuple(field.name for field in fields(InboxEvent))
_EVENT_COLUMNS = ", ".join(_EVENT_FIELDS)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class InboxBase:
    """What the SQLite inbox and the PostgreSQL one (webhooks/inbox_postgres.py) share: each
    keeps a connection per thread in `_connections`, and builds `store` and
    `oldest_pending` on its own `store_many` and `events_after`."""

    _lock: threading.Lock
    _closed: bool
    _connections: list[Any]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def store(
        self, raw_body_sha256: str, signed_at: int, events: Sequence[WebhookEvent]
    ) -> StoreResult:
        """Store one delivery in one transaction; durable when this returns."""
        return self.store_many([Delivery(raw_body_sha256, signed_at, events)])[0]

    def store_many(self, deliveries: Sequence[Delivery]) -> list[StoreResult]:
        raise NotImplementedError

    def events_after(
        self, seq: int, limit: int = 1000, types: Iterable[str] | None = None
    ) -> list[InboxEvent]:
        raise NotImplementedError

    def oldest_pending(
        self, after_seq: int, types: Iterable[str] | None = None
    ) -> InboxEvent | None:
        """The first event after the cursor; `now - .received_at` is the sensor's lag."""
        events = self.events_after(after_seq, limit=1, types=types)
        return events[0] if events else None


class Inbox(InboxBase):
    """The inbox file. Thread-safe: each thread gets its own SQLite connection.

    `readonly=True` is for the sensor: the schema is still created if missing (so a sensor
    that starts before the receiver sees an empty inbox, not an error), then the connection
    refuses writes. In WAL mode readers and the writer never block each other; the busy
    timeout covers the rare moments two writers (or a schema check) meet.

    `store` names the Centra store this inbox is for: the first open naming one records it in
    the file, and an open naming another raises InboxStoreMismatch. Without it (the sensor,
    maintenance, erasure) nothing is checked; `store_name` says what the file records.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        store: str | None = None,
        readonly: bool = False,
        busy_timeout_seconds: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._busy_timeout = busy_timeout_seconds
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._open()
        try:
            create_schema(conn, self.path)
            check_store(conn, self.path, store)
        except BaseException:
            self.close()
            raise
        self._local.conn = self._finish(conn)

    @property
    def location(self) -> str:
        """Where it is, for messages (the PostgreSQL inbox has one too)."""
        return str(self.path)

    # Connections ------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._finish(self._open())
        return conn

    def _open(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"inbox {self.path} is closed")
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,  # transactions are begun explicitly
                check_same_thread=False,  # close() may run on another thread
            )
            self._connections.append(conn)
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit is fsynced to the WAL before it returns, so the 2xx we answer
        # after store() survives a power cut, not only a process crash.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _finish(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        if self.readonly:
            conn.execute("PRAGMA query_only = ON")
        return conn

    # Writer -----------------------------------------------------------------------------
    def store_many(self, deliveries: Sequence[Delivery]) -> list[StoreResult]:
        """Store several deliveries in one transaction (one fsync): the receiver's group commit.

        All or nothing: if anything fails, no delivery of the batch is stored and the error
        propagates (the receiver then answers 503 to each of them and Centra retries).
        """
        conn = self._connection()
        received_at = _now()
        with write_transaction(conn):
            store = event_store(conn)  # read inside the transaction that writes it
            return [self._store_one(conn, delivery, received_at, store) for delivery in deliveries]

    @staticmethod
    def _store_one(
        conn: sqlite3.Connection, delivery: Delivery, received_at: str, store: str
    ) -> StoreResult:
        events = delivery.events
        row = conn.execute(
            "SELECT id FROM deliveries WHERE body_sha256 = ?", (delivery.body_sha256,)
        ).fetchone()
        if row is not None:
            conn.execute(
                "UPDATE deliveries SET redeliveries = redeliveries + 1, last_received_at = ? "
                "WHERE id = ?",
                (received_at, row[0]),
            )
            return StoreResult(row[0], 0, len(events), duplicate_delivery=True)
        delivery_id = conn.execute(
            "INSERT INTO deliveries (body_sha256, signed_at, received_at, event_count, "
            "new_events, duplicate_events, last_received_at) VALUES (?, ?, ?, ?, 0, 0, ?)",
            (delivery.body_sha256, delivery.signed_at, received_at, len(events), received_at),
        ).lastrowid
        assert delivery_id is not None
        new_events = _insert_events(conn, delivery_id, events, received_at, store) if events else 0
        duplicate_events = len(events) - new_events
        conn.execute(
            "UPDATE deliveries SET new_events = ?, duplicate_events = ? WHERE id = ?",
            (new_events, duplicate_events, delivery_id),
        )
        return StoreResult(delivery_id, new_events, duplicate_events, duplicate_delivery=False)

    def prune(self, applied_through: int, received_before: datetime) -> int:
        """Delete the events applied to the warehouse (seq <= `applied_through`) that arrived
        before `received_before`, and the deliveries left without events; returns events
        deleted. An event not applied yet is never deleted, nor the newest event, so
        `max_seq()` and the sensor's cursor keep their meaning."""
        conn = self._connection()
        cutoff = received_before.astimezone(UTC).isoformat(timespec="microseconds")
        with write_transaction(conn):
            deleted = conn.execute(
                "DELETE FROM events WHERE seq <= ? AND received_at < ? "
                "AND seq < (SELECT max(seq) FROM events)",
                (applied_through, cutoff),
            ).rowcount
            conn.execute(
                "DELETE FROM deliveries WHERE last_received_at < ? AND NOT EXISTS "
                "(SELECT 1 FROM events WHERE events.delivery_id = deliveries.id)",
                (cutoff,),
            )
        return deleted

    def clear_payloads(self, kind: str, object_ids: Sequence[str]) -> int:
        """Forget the `data` of the events of these objects (erasure: a payload may hold a
        person's data); the events themselves stay. Returns how many were cleared."""
        conn = self._connection()
        conn.execute("PRAGMA secure_delete = ON")  # overwrite, not just free, the old text
        with write_transaction(conn):
            cleared = conn.executemany(
                "UPDATE events SET data = NULL WHERE type = ? AND object_id = ? "
                "AND data IS NOT NULL",
                [(kind, object_id) for object_id in object_ids],
            ).rowcount
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # and no old copy left in the WAL
        return cleared

    # Readers (the sensor) -----------------------------------------------------------------
    def events_after(
        self, seq: int, limit: int = 1000, types: Iterable[str] | None = None
    ) -> list[InboxEvent]:
        """Up to `limit` events with a seq greater than `seq`, oldest first."""
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        where, params = _filter(seq, types)
        rows = self._connection().execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE {where} ORDER BY seq LIMIT ?",
            (*params, limit),
        )
        return [_event(row) for row in rows]

    @property
    def store_name(self) -> str:
        """The store this inbox file records ('default' if none: a single-store inbox).
        (`store` is taken: `store()` stores a delivery.)"""
        return recorded_store(self._connection()) or DEFAULT_STORE

    @property
    def inbox_id(self) -> str:
        """A random id fixed when this inbox file was created."""
        row = self._connection().execute("SELECT value FROM meta WHERE key = 'inbox_id'").fetchone()
        return row[0]

    def max_seq(self) -> int:
        """The highest seq stored, 0 for an empty inbox (a cursor that starts at the start)."""
        return self._connection().execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]

    def pending_count(self, after_seq: int, types: Iterable[str] | None = None) -> int:
        where, params = _filter(after_seq, types)
        query = f"SELECT count(*) FROM events WHERE {where}"
        return self._connection().execute(query, params).fetchone()[0]

    def counts(self) -> InboxCounts:
        conn = self._connection()
        conn.execute("BEGIN")  # one snapshot for all three queries
        try:
            by_type: dict[str, dict[str, int]] = {}
            total = unrecognised = 0
            for kind, action, count in conn.execute(
                "SELECT type, action, count(*) FROM events GROUP BY type, action"
            ):
                by_type.setdefault(kind, {})[action] = count
                total += count
                if not is_documented(kind, action):
                    unrecognised += count
            deliveries, redeliveries, duplicate_events, last_received_at = conn.execute(
                "SELECT count(*), coalesce(sum(redeliveries), 0), "
                "coalesce(sum(duplicate_events + redeliveries * event_count), 0), "
                "max(last_received_at) FROM deliveries"
            ).fetchone()
            max_seq = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        finally:
            conn.execute("COMMIT")
        return InboxCounts(
            events=total,
            by_type=by_type,
            unrecognised_events=unrecognised,
            deliveries=deliveries,
            duplicate_deliveries=redeliveries,
            duplicate_events=duplicate_events,
            max_seq=max_seq,
            last_received_at=last_received_at,
        )


def _insert_events(
    conn: sqlite3.Connection,
    delivery_id: int,
    events: Sequence[WebhookEvent],
    received_at: str,
    store: str,
) -> int:
    """Insert what is new; the number inserted (a duplicate is skipped by the UNIQUE key)."""
    return conn.executemany(
        "INSERT INTO events (delivery_id, type, action, object_id, event_date, data, "
        "received_at, store) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [
            (
                delivery_id,
                event.type,
                event.action,
                event.id,
                event.date,
                None if event.data is None else json.dumps(event.data),
                received_at,
                store,
            )
            for event in events
        ],
    ).rowcount


def _filter(after_seq: int, types: Iterable[str] | None) -> tuple[str, tuple[Any, ...]]:
    if types is None:
        return "seq > ?", (after_seq,)
    wanted = tuple(dict.fromkeys(types))
    if not wanted:
        return "0", ()
    placeholders = ", ".join("?" * len(wanted))
    return f"seq > ? AND type IN ({placeholders})", (after_seq, *wanted)


def _event(row: tuple[Any, ...]) -> InboxEvent:
    values = dict(zip(_EVENT_FIELDS, row, strict=True))
    data = values["data"]
    values["data"] = None if data is None else json.loads(data)
    values["received_at"] = datetime.fromisoformat(values["received_at"])
    return InboxEvent(**values)


__all__ = [
    "DOCUMENTED_ACTIONS",
    "ORDER_REFRESH_TYPES",
    "Delivery",
    "Inbox",
    "InboxBase",
    "InboxCounts",
    "InboxEvent",
    "InboxStoreMismatch",
    "StoreResult",
]
