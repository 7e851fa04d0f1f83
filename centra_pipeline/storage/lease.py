"""A store's writer lease and its warehouse's version pointer, in PostgreSQL
(`CENTRA_INBOX_URL`): one writer per store across machines (docs/architecture.md, "Workers
anywhere").

The lease is a session-level advisory lock on a connection of its own, exclusive for a
writer and shared for readers. PostgreSQL releases it when that session ends, so a worker
that dies (a SIGKILL, an OOM kill) gives up its lease as soon as the server sees its
connection close; a worker whose host vanishes gives it up when TCP keepalive gives up on the
session (`KEEPALIVE`: about a minute). The pointer names the warehouse object that is
current; a writer moves it from the version it started from, on the lease's own session, so
a writer that lost its lease (its session is gone) cannot move it.
"""

from __future__ import annotations

import logging
import socket
import time
import zlib
from dataclasses import dataclass
from typing import Any

import psycopg2

from centra_pipeline.settings_values import redact_url

log = logging.getLogger("centra_pipeline.storage.lease")

SCHEMA = "centra_shared"
# Two-key advisory locks: a key space apart from the inbox's one-key locks.
LOCK_CLASS = 0x63656E74  # "cent"
# Server-side keepalive of the lease's session: idle 20 s, then 4 probes 10 s apart.
KEEPALIVE = {"tcp_keepalives_idle": 20, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 4}
TAKEOVER_AFTER_HOST_LOSS = 20 + 10 * 4  # seconds, from the values above

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.warehouse_versions (
    store TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    object TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    written_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    written_by TEXT NOT NULL
);
"""


class LeaseBusy(TimeoutError):
    """Another worker held the store's lease for longer than we were willing to wait."""


class LeaseLost(RuntimeError):
    """The lease's session ended before the writer moved the pointer: nothing was moved."""


@dataclass(frozen=True)
class Version:
    version: int
    object: str
    bytes: int


def _lock_key(store: str) -> int:
    # A signed 32-bit key; two stores sharing a CRC only wait for each other.
    return zlib.crc32(f"centra_warehouse:{store}".encode()) - 2**31


def connect(url: str) -> Any:
    try:
        conn = psycopg2.connect(
            url, connect_timeout=10, keepalives=1, keepalives_idle=20, keepalives_interval=10
        )
    except psycopg2.OperationalError as exc:
        raise ConnectionError(
            f"cannot connect to {redact_url(url)}: {type(exc).__name__}; check "
            "CENTRA_INBOX_URL and that the server is reachable"
        ) from None
    conn.autocommit = True
    return conn


class Lease:
    """One store's lease, held from `acquire` to `release` on a session of its own."""

    def __init__(self, url: str, store: str) -> None:
        self.url, self.store = url, store
        self.where = f"{redact_url(url)} (store {store})"
        self._conn: Any = None
        self._exclusive = False

    def acquire(self, *, exclusive: bool, timeout: float) -> None:
        conn = connect(self.url)
        try:
            with conn.cursor() as cur:
                for name, value in KEEPALIVE.items():
                    cur.execute(f"SET {name} = {int(value)}")
                cur.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.warehouse_versions",))
                if cur.fetchone()[0] is None:  # first use: create it, one session at a time
                    cur.execute("BEGIN")
                    cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))
                    cur.execute(DDL)
                    cur.execute("COMMIT")
                try_lock = "pg_try_advisory_lock" if exclusive else "pg_try_advisory_lock_shared"
                deadline = time.monotonic() + timeout
                waited = False
                while True:
                    cur.execute(f"SELECT {try_lock}(%s, %s)", (LOCK_CLASS, _lock_key(self.store)))
                    if cur.fetchone()[0]:
                        break
                    if timeout <= 0 or time.monotonic() > deadline:
                        raise LeaseBusy(
                            f"store {self.store}'s warehouse is in use by another worker"
                            + (f" after waiting {timeout:.0f} s" if timeout > 0 else "")
                        )
                    if not waited:
                        log.info(
                            "store %s's warehouse is in use by another worker; waiting for it",
                            self.store,
                        )
                        waited = True
                    time.sleep(0.2)
        except BaseException:
            conn.close()
            raise
        self._conn, self._exclusive = conn, exclusive

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # ending the session releases the lock

    def current(self) -> Version | None:
        with self._conn.cursor() as cur:
            cur.execute(
                f"SELECT version, object, bytes FROM {SCHEMA}.warehouse_versions WHERE store = %s",
                (self.store,),
            )
            row = cur.fetchone()
        return Version(*row) if row else None

    def advance(self, previous: Version | None, new_object: str, size: int) -> Version:
        """Point at `new_object`, if the pointer is still at `previous` and the lease held."""
        if not self._exclusive or self._conn is None:
            raise LeaseLost(f"store {self.store}: no writer lease is held")
        version = (previous.version if previous else 0) + 1
        host = socket.gethostname()
        try:
            with self._conn.cursor() as cur:
                if previous is None:
                    cur.execute(
                        f"INSERT INTO {SCHEMA}.warehouse_versions "
                        "(store, version, object, bytes, written_by) VALUES (%s, 1, %s, %s, %s) "
                        "ON CONFLICT (store) DO NOTHING",
                        (self.store, new_object, size, host),
                    )
                else:
                    cur.execute(
                        f"UPDATE {SCHEMA}.warehouse_versions SET version = %s, object = %s, "
                        "bytes = %s, written_at = now(), written_by = %s "
                        "WHERE store = %s AND version = %s",
                        (version, new_object, size, host, self.store, previous.version),
                    )
                moved = cur.rowcount == 1
        except psycopg2.Error as exc:
            raise LeaseLost(
                f"store {self.store}: the lease's session ended ({type(exc).__name__}); the "
                "warehouse version was not moved"
            ) from None
        if not moved:
            raise LeaseLost(
                f"store {self.store}: the warehouse version moved under this writer's lease; "
                "nothing was changed"
            )
        return Version(version, new_object, size)
