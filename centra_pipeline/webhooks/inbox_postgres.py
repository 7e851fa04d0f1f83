"""The webhook inbox on PostgreSQL (`CENTRA_INBOX_URL=postgresql://...`): several receivers,
on several hosts, share one inbox, and the sensor reads it from anywhere.

It keeps the SQLite inbox's contract (webhooks/inbox.py, docs/architecture.md "Webhook
inbox"): a 2xx is answered only after the delivery's transaction has committed (PostgreSQL's
default `synchronous_commit` flushes the WAL first); a re-delivered body and an event seen in
another batch are stored once, by unique keys; an event without a date is never a duplicate
(PostgreSQL's UNIQUE treats NULLs as distinct, as SQLite's does).

The cursor's guarantee needs care. `events.seq` comes from a sequence, and sequences are
handed out before commit: two receivers could commit seq 11 before seq 10, and a sensor
reading in between would move its cursor past 10 for good. So every write transaction first
takes the store's transaction-level advisory lock, and allocates its seqs under it: writes of
one store commit in seq order, and a reader never sees seq N+1 without seq N. Stores share
the tables (the `store` column) and do not wait for each other.

Tables live in the schema `centra_inbox`, beside whatever else the database holds (Dagster's
own tables, for example). Erasure clears payloads and then rewrites the events table
(`VACUUM FULL`), so the old row versions do not linger in the table file.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg2
import psycopg2.extras

from centra_pipeline.centra.webhook import WebhookEvent
from centra_pipeline.settings_values import redact_url
from centra_pipeline.webhooks.inbox import InboxBase, InboxEvent
from centra_pipeline.webhooks.inbox_postgres_schema import SCHEMA, create_schema
from centra_pipeline.webhooks.records import Delivery, InboxCounts, StoreResult, is_documented

_EVENT_COLUMNS = "seq, delivery_id, type, action, object_id, event_date, data, received_at"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _store_lock(store: str) -> int:
    # Two stores whose names share a CRC only wait for each other; order still holds.
    return zlib.crc32(f"centra_inbox:{store}".encode())


class PostgresInbox(InboxBase):
    """One store's inbox in a PostgreSQL database. Thread-safe: a connection per thread.

    `readonly=True` (the sensor, state): the tables are created if missing, then the
    connections are read-only sessions.
    """

    def __init__(self, url: str, *, store: str, readonly: bool = False) -> None:
        if not isinstance(store, str) or not store:
            raise ValueError(f"an inbox's store is a non-empty name, got {store!r}")
        self._url = url
        self.store_name = store
        self.readonly = readonly
        self.location = f"{redact_url(url)} (schema {SCHEMA}, store {store})"
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False
        self._ready = False
        try:
            conn = self._connection()
            create_schema(conn, self.location, self.store_name)
            self._ready = True
            conn.set_session(readonly=readonly)
        except BaseException:
            self.close()
            raise

    # Connections ------------------------------------------------------------------------
    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            with self._lock:
                if self._closed:
                    raise RuntimeError(f"inbox {self.location} is closed")
                try:
                    conn = psycopg2.connect(self._url, connect_timeout=10)
                except psycopg2.OperationalError as exc:
                    # psycopg2's message can quote the connection string: never show it.
                    raise ConnectionError(
                        f"cannot connect to the inbox database {redact_url(self._url)}: "
                        f"{type(exc).__name__}; check CENTRA_INBOX_URL and that the server "
                        "is reachable"
                    ) from None
                self._connections.append(conn)
            if self._ready and self.readonly:
                conn.set_session(readonly=True)
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[Any]:
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                if write:  # writes of one store commit in seq order (module docstring)
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_store_lock(self.store_name),))
                yield cur
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    # Writer -----------------------------------------------------------------------------
    def store_many(self, deliveries: Sequence[Delivery]) -> list[StoreResult]:
        """Store several deliveries in one transaction; all or nothing, durable on return."""
        if self.readonly:
            raise PermissionError(f"inbox {self.location} was opened read-only")
        received_at = _now()
        rows = [[_event_row(e) for e in d.events] for d in deliveries]
        with self._transaction(write=True) as cur:
            return [
                self._store_one(cur, d, r, received_at)
                for d, r in zip(deliveries, rows, strict=True)
            ]

    def _store_one(self, cur, delivery: Delivery, rows: list, received_at: str) -> StoreResult:
        events = delivery.events
        cur.execute(
            f"UPDATE {SCHEMA}.deliveries SET redeliveries = redeliveries + 1, "
            "last_received_at = %s WHERE store = %s AND body_sha256 = %s RETURNING id",
            (received_at, self.store_name, delivery.body_sha256),
        )
        found = cur.fetchone()
        if found is not None:
            return StoreResult(found[0], 0, len(events), duplicate_delivery=True)
        cur.execute(
            f"INSERT INTO {SCHEMA}.deliveries (store, body_sha256, signed_at, received_at, "
            "event_count, new_events, duplicate_events, last_received_at) "
            "VALUES (%s, %s, %s, %s, %s, 0, 0, %s) RETURNING id",
            (
                self.store_name,
                delivery.body_sha256,
                delivery.signed_at,
                received_at,
                len(events),
                received_at,
            ),
        )
        delivery_id = cur.fetchone()[0]
        new_events = 0
        if rows:
            inserted = psycopg2.extras.execute_values(
                cur,
                f"INSERT INTO {SCHEMA}.events (store, delivery_id, type, action, object_id, "
                "event_date, data, received_at) VALUES %s ON CONFLICT DO NOTHING RETURNING seq",
                [(self.store_name, delivery_id, *row, received_at) for row in rows],
                fetch=True,
            )
            new_events = len(inserted)
        cur.execute(
            f"UPDATE {SCHEMA}.deliveries SET new_events = %s, duplicate_events = %s WHERE id = %s",
            (new_events, len(events) - new_events, delivery_id),
        )
        return StoreResult(delivery_id, new_events, len(events) - new_events, False)

    def prune(self, applied_through: int, received_before: datetime) -> int:
        """As the SQLite inbox: delete applied events older than `received_before` (never
        the newest), and deliveries left without events; returns events deleted."""
        cutoff = received_before.astimezone(UTC).isoformat(timespec="microseconds")
        with self._transaction(write=True) as cur:
            cur.execute(
                f"DELETE FROM {SCHEMA}.events WHERE store = %s AND seq <= %s "
                "AND received_at < %s AND seq < "
                f"(SELECT max(seq) FROM {SCHEMA}.events WHERE store = %s)",
                (self.store_name, applied_through, cutoff, self.store_name),
            )
            deleted = cur.rowcount
            cur.execute(
                f"DELETE FROM {SCHEMA}.deliveries d WHERE d.store = %s "
                "AND d.last_received_at < %s AND NOT EXISTS "
                f"(SELECT 1 FROM {SCHEMA}.events e WHERE e.delivery_id = d.id)",
                (self.store_name, cutoff),
            )
        return deleted

    def clear_payloads(self, kind: str, object_ids: Sequence[str]) -> int:
        """Forget the `data` of these objects' events (erasure), then rewrite the table so
        no old row version keeps it. Returns how many were cleared."""
        with self._transaction(write=True) as cur:
            cur.execute(
                f"UPDATE {SCHEMA}.events SET data = NULL WHERE store = %s AND type = %s "
                "AND object_id = ANY(%s) AND data IS NOT NULL",
                (self.store_name, kind, list(object_ids)),
            )
            cleared = cur.rowcount
        if cleared:
            conn = self._connection()
            conn.autocommit = True  # VACUUM cannot run inside a transaction
            try:
                with conn.cursor() as cur:
                    cur.execute(f"VACUUM FULL {SCHEMA}.events")
            finally:
                conn.autocommit = False
        return cleared

    # Readers ----------------------------------------------------------------------------
    def events_after(
        self, seq: int, limit: int = 1000, types: Iterable[str] | None = None
    ) -> list[InboxEvent]:
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        where, params = self._filter(seq, types)
        with self._transaction() as cur:
            cur.execute(
                f"SELECT {_EVENT_COLUMNS} FROM {SCHEMA}.events WHERE {where} ORDER BY seq LIMIT %s",
                (*params, limit),
            )
            return [self._event(row) for row in cur.fetchall()]

    @property
    def inbox_id(self) -> str:
        with self._transaction() as cur:
            cur.execute(
                f"SELECT value FROM {SCHEMA}.meta WHERE store = %s AND key = 'inbox_id'",
                (self.store_name,),
            )
            return cur.fetchone()[0]

    def max_seq(self) -> int:
        with self._transaction() as cur:
            cur.execute(
                f"SELECT coalesce(max(seq), 0) FROM {SCHEMA}.events WHERE store = %s",
                (self.store_name,),
            )
            return cur.fetchone()[0]

    def pending_count(self, after_seq: int, types: Iterable[str] | None = None) -> int:
        where, params = self._filter(after_seq, types)
        with self._transaction() as cur:
            cur.execute(f"SELECT count(*) FROM {SCHEMA}.events WHERE {where}", params)
            return cur.fetchone()[0]

    def counts(self) -> InboxCounts:
        by_type: dict[str, dict[str, int]] = {}
        total = unrecognised = 0
        with self._transaction() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot
            cur.execute(
                f"SELECT type, action, count(*) FROM {SCHEMA}.events WHERE store = %s "
                "GROUP BY type, action",
                (self.store_name,),
            )
            for kind, action, count in cur.fetchall():
                by_type.setdefault(kind, {})[action] = count
                total += count
                if not is_documented(kind, action):
                    unrecognised += count
            cur.execute(
                "SELECT count(*), coalesce(sum(redeliveries), 0), "
                "coalesce(sum(duplicate_events + redeliveries * event_count), 0), "
                f"max(last_received_at) FROM {SCHEMA}.deliveries WHERE store = %s",
                (self.store_name,),
            )
            deliveries, redeliveries, duplicate_events, last_received_at = cur.fetchone()
            cur.execute(
                f"SELECT coalesce(max(seq), 0) FROM {SCHEMA}.events WHERE store = %s",
                (self.store_name,),
            )
            max_seq = cur.fetchone()[0]
        return InboxCounts(
            events=total,
            by_type=by_type,
            unrecognised_events=unrecognised,
            deliveries=deliveries,
            duplicate_deliveries=int(redeliveries),
            duplicate_events=int(duplicate_events),
            max_seq=max_seq,
            last_received_at=last_received_at,
        )

    def _filter(self, after_seq: int, types: Iterable[str] | None) -> tuple[str, tuple]:
        if types is None:
            return "store = %s AND seq > %s", (self.store_name, after_seq)
        wanted = list(dict.fromkeys(types))
        if not wanted:
            return "false", ()
        return "store = %s AND seq > %s AND type = ANY(%s)", (self.store_name, after_seq, wanted)

    def _event(self, row: tuple) -> InboxEvent:
        seq, delivery_id, kind, action, object_id, event_date, data, received_at = row
        return InboxEvent(
            seq=seq,
            delivery_id=delivery_id,
            type=kind,
            action=action,
            object_id=object_id,
            event_date=event_date,
            data=None if data is None else json.loads(data),
            received_at=datetime.fromisoformat(received_at),
            store=self.store_name,
        )


def _event_row(event: WebhookEvent) -> tuple:
    """The event's columns; serialising here, before the transaction, makes a bad payload
    fail the whole batch before anything is written."""
    data = None if event.data is None else json.dumps(event.data)
    return (event.type, event.action, event.id, event.date, data)
