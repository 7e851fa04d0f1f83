"""The warehouse: the pipeline's private DuckDB file with the current state of every table,
the sync state (cursors) and the load log; and the analyst snapshot published from it.

Invariants this module keeps (docs/architecture.md):
- Cursor and data commit in one transaction: `merge_load` writes a load's rows, its child
  rows, the stream's cursor and the load log entry, then commits (1, nothing is lost).
- Idempotent merges (2): a batch is de-duplicated on its primary key first (latest fetch
  wins, ties by position), then a row replaces the stored one only if it was fetched no
  earlier and differs. Merging the same load twice, or loads out of order, converges.
  Child rows are replaced together with their parent row.
- One writer (4): every connection is taken under a file lock next to the database, exclusive
  for writers and shared for readers, and closed before the lock is released. Runs queue on
  the lock (with a log line saying so); nothing races for DuckDB's own file lock.
  Analysts read a copy, `centra.duckdb`, replaced atomically after each successful run.

DuckDB writes the file in the storage format of DuckDB 1.5 (`storage_compatibility_version`)
so the published copy opens in DuckDB 1.5 and newer clients.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from centra_pipeline.centra.quirks import parse_local_datetime
from centra_pipeline.storage.lake import Lake, LoadManifest, pid_alive
from centra_pipeline.storage.sql import ident_list, main_table, quote_ident, string_list
from centra_pipeline.streams.model import (
    META_TYPES,
    STREAMS,
    TABLES,
    Stream,
    Table,
    warehouse_meta,
)
from centra_pipeline.sync.reconcile import (
    FINAL_ORDER_STATUSES,
    RECONCILE_MODES,
    DayRange,
    Drift,
    KeyIndex,
)
from centra_pipeline.testing.failpoints import failpoint

log = logging.getLogger("centra_pipeline.storage.warehouse")

STORAGE_COMPATIBILITY = "v1.5.0"
# What an open reconciliation pass re-reads, per stream: (table, date column, open rows).
# Orders move on until archived or cancelled (completed ones are still archived later);
# orders on hold or waiting for payment are open whatever their status.
OPEN_RECORDS = {
    "orders": (
        "orders",
        "order_date",
        "(coalesce(order_status_name, '') NOT IN ("
        + ", ".join(f"'{s}'" for s in FINAL_ORDER_STATUSES)
        + ") OR coalesce(hold, false) OR coalesce(waiting_for_payment, false))",
    ),
    "returns": ("returns", "date", "NOT coalesce(completed, false)"),
}
CURSOR_MODES = frozenset({"incremental", "full_refresh"})


class WarehouseBusy(TimeoutError):
    """Another run held the warehouse lock for longer than we were willing to wait."""


@dataclass
class StreamState:
    stream: str
    cursor: str | None = None
    updated_at: datetime | None = None
    last_load_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class MergeResult:
    load_id: str
    stream: str
    mode: str
    staged: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    missing: int = 0
    child_rows: dict[str, int] = field(default_factory=dict)
    cursor_before: str | None = None
    cursor_after: str | None = None
    skipped: bool = False  # already merged earlier
    drift: Drift | None = None  # a reconciliation's findings


def table_ddl(table: Table) -> str:
    cols = [f"{quote_ident(col.name)} {col.type}" for col in table.columns]
    cols += [f"{quote_ident(meta)} {META_TYPES[meta]}" for meta in warehouse_meta(table)]
    return f"CREATE TABLE IF NOT EXISTS {main_table(table.name)} (\n  " + ",\n  ".join(cols) + "\n)"


PIPELINE_DDL = [
    "CREATE SCHEMA IF NOT EXISTS pipeline",
    """CREATE TABLE IF NOT EXISTS pipeline.sync_state (
        stream VARCHAR PRIMARY KEY,
        cursor VARCHAR,
        updated_at TIMESTAMPTZ,
        last_load_id VARCHAR,
        extra JSON
    )""",
    """CREATE TABLE IF NOT EXISTS pipeline.load_log (
        load_id VARCHAR,
        stream VARCHAR,
        mode VARCHAR,
        extracted_from TIMESTAMPTZ,
        extracted_to TIMESTAMPTZ,
        merged_at TIMESTAMPTZ,
        window_read JSON,
        cursor_before VARCHAR,
        cursor_after VARCHAR,
        records_fetched BIGINT,
        rows_staged BIGINT,
        rows_new BIGINT,
        rows_updated BIGINT,
        rows_unchanged BIGINT,
        rows_stale BIGINT,
        rows_missing BIGINT,
        child_rows JSON,
        requests BIGINT,
        retries BIGINT,
        bytes BIGINT,
        drift JSON,
        coercions JSON,
        lake_path VARCHAR,
        reconciled JSON
    )""",
    # Webhook events applied to the warehouse: every event of the inbox up to applied_seq has
    # had its order re-read and merged (written in the merge transaction of that load).
    """CREATE TABLE IF NOT EXISTS pipeline.inbox_applied (
        inbox_id VARCHAR PRIMARY KEY,
        applied_seq BIGINT,
        updated_at TIMESTAMPTZ,
        last_load_id VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS pipeline.schema_drift (
        stream VARCHAR,
        field VARCHAR,
        json_types VARCHAR,
        occurrences BIGINT,
        first_load_id VARCHAR,
        last_load_id VARCHAR,
        first_seen TIMESTAMPTZ,
        last_seen TIMESTAMPTZ
    )""",
]


class Warehouse:
    def __init__(
        self,
        path: Path,
        *,
        # DuckDB spills to temp_directory beyond this; the merge is the pipeline's memory
        # peak, and 256 MB keeps a sync under ~700 MB RSS at any store size for ~15% slower
        # merges than 512 MB (measured at 100k orders).
        memory_limit: str = "256MB",
        threads: int = 2,
        lock_timeout: float = 3600.0,
    ) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.memory_limit = memory_limit
        self.threads = threads
        self.lock_timeout = lock_timeout

    # --- connections under the lock --------------------------------------------------------
    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_path, "a+")  # noqa: SIM115 - closed in finally
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info(
                    "warehouse %s is in use by another run; waiting for it to finish",
                    "writer lock" if exclusive else "read lock",
                )
                deadline = time.monotonic() + self.lock_timeout
                while True:
                    try:
                        fcntl.flock(handle, mode | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise WarehouseBusy(
                                f"the warehouse stayed locked by another run for "
                                f"{self.lock_timeout:.0f} s ({self.lock_path})"
                            ) from None
                        time.sleep(0.2)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        config: dict[str, Any] = {
            "memory_limit": self.memory_limit,
            "threads": self.threads,
            "preserve_insertion_order": False,
        }
        if not read_only:
            config["storage_compatibility_version"] = STORAGE_COMPATIBILITY
            config["temp_directory"] = str(self.path.parent / "duckdb_tmp")
        return duckdb.connect(str(self.path), read_only=read_only, config=config)

    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._locked(exclusive=True):
            con = self._connect(read_only=False)
            try:
                ensure_schema(con)
                yield con
            finally:
                con.close()

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A read-only connection, or None if the warehouse does not exist yet."""
        with self._locked(exclusive=False):
            if not self.path.exists():
                yield None
                return
            con = self._connect(read_only=True)
            try:
                yield con
            finally:
                con.close()

    # --- state -------------------------------------------------------------------------------
    def state(self, stream: str) -> StreamState:
        with self.reader() as con:
            if con is None or not _has_table(con, "pipeline", "sync_state"):
                return StreamState(stream)
            return _read_state(con, stream)

    def all_states(self) -> list[StreamState]:
        with self.reader() as con:
            if con is None or not _has_table(con, "pipeline", "sync_state"):
                return [StreamState(name) for name in STREAMS]
            return [_read_state(con, name) for name in STREAMS]

    def reset_state(self, stream: str) -> StreamState:
        """Forget a stream's cursor: its next run reads everything. Data stays."""
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}; streams are {', '.join(STREAMS)}")
        with self.writer() as con:
            before = _read_state(con, stream)
            con.execute("DELETE FROM pipeline.sync_state WHERE stream = ?", [stream])
        return before

    def pending_loads(self, lake: Lake, stream: str) -> list[LoadManifest]:
        """Complete lake loads of `stream` not merged yet, oldest first.

        Only day directories from the day before the newest merged load are scanned: an older
        unmerged load belongs to a run that died before merging, and a later run has read the
        same data again since (merging it would be harmless, but scanning years of loads on
        every run would not be).
        """
        merged: set[str] = set()
        since = None
        with self.reader() as con:
            if con is not None and _has_table(con, "pipeline", "load_log"):
                (newest,) = con.execute(
                    "SELECT max(load_id) FROM pipeline.load_log WHERE stream = ?", [stream]
                ).fetchall()[0]
                if newest:
                    day = datetime.strptime(newest[:8], "%Y%m%d").date() - timedelta(days=1)
                    since = day.isoformat()
                    rows = con.execute(
                        "SELECT load_id FROM pipeline.load_log WHERE stream = ? AND load_id >= ?",
                        [stream, day.strftime("%Y%m%d")],
                    ).fetchall()
                    merged = {r[0] for r in rows}
        return lake.loads(stream, since_day=since, skip=merged)

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        with self.reader() as con:
            if con is None:
                return []
            return con.execute(sql, params or []).fetchall()

    def catalogue_index(self) -> dict[str, tuple[str, Any]]:
        """Catalogue product id → (`_hash`, silkProduct) of the products present."""
        with self.reader() as con:
            if con is None or not _has_table(con, "main", "shop_products"):
                return {}
            rows = con.execute(
                "SELECT product, _hash, silk_product FROM main.shop_products "
                "WHERE _missing_since IS NULL"
            ).fetchall()
        return {str(product): (digest, silk) for product, digest, silk in rows}

    def last_full_catalogue_read(self) -> datetime | None:
        """When the newest merged full read of the catalogue started (None: never)."""
        with self.reader() as con:
            if con is None or not _has_table(con, "pipeline", "load_log"):
                return None
            (started,) = con.execute(
                "SELECT max(extracted_from) FROM pipeline.load_log WHERE stream = 'catalogue' "
                "AND json_extract(window_read, '$.full_read')::BOOLEAN IS TRUE"
            ).fetchall()[0]
        return started

    def full_index(self, stream: str, *, compare: bool = True) -> KeyIndex:
        """Keys and hashes of every present row of the stream: a full pass expects each."""
        return self._key_index(stream, "true", [], "true", [], compare)

    def open_index(
        self, stream: str, ranges: list[DayRange], tz: str, *, compare: bool = True
    ) -> KeyIndex:
        """Keys and hashes of the rows an open pass over `ranges` reads back: the rows dated
        within the widened request windows are compared, and those within the ranges
        themselves are expected (see reconcile.request_window)."""
        _, column, _ = OPEN_RECORDS[stream]
        widened, widened_params, inside, inside_params = [], [], [], []
        for day_range in ranges:
            start, end = day_range.bounds()
            request = day_range.request()
            inside.append(f"({quote_ident(column)} >= ? AND {quote_ident(column)} < ?)")
            inside_params += [parse_local_datetime(start, tz), parse_local_datetime(end, tz)]
            widened.append(f"({quote_ident(column)} >= ? AND {quote_ident(column)} <= ?)")
            widened_params += [
                parse_local_datetime(request["newer_than"], tz),
                parse_local_datetime(request["older_than"], tz),
            ]
        return self._key_index(
            stream,
            " OR ".join(widened) or "false",
            widened_params,
            " OR ".join(inside) or "false",
            inside_params,
            compare,
        )

    def _key_index(
        self,
        stream: str,
        where: str,
        params: list[Any],
        expected: str,
        expected_params: list[Any],
        compare: bool,
    ) -> KeyIndex:
        table = STREAMS[stream].parent
        (pk,) = table.primary_key
        with self.reader() as con:
            if con is None or not _has_table(con, "main", table.name):
                return KeyIndex([], [], compare=compare)
            arrays = con.execute(
                f"SELECT {quote_ident(pk)} AS k, _hash AS h, ({expected}) AS e "
                f"FROM {main_table(table.name)} WHERE _missing_since IS NULL AND ({where})",
                [*expected_params, *params],
            ).fetchnumpy()
        return KeyIndex(arrays["k"], arrays["h"], arrays["e"], compare=compare)

    def open_days(self, stream: str, tz: str) -> dict[Any, tuple[int, int]]:
        """Per store-local day with rows: (rows, open rows); see OPEN_RECORDS."""
        if stream not in OPEN_RECORDS:
            raise ValueError(f"stream {stream} has no open records to reconcile")
        table, column, condition = OPEN_RECORDS[stream]
        with self.reader() as con:
            if con is None or not _has_table(con, "main", table):
                return {}
            rows = con.execute(
                f"SELECT CAST(timezone(?, {quote_ident(column)}) AS DATE) AS day, count(*), "
                f"count(*) FILTER (WHERE {condition}) FROM {main_table(table)} "
                f"WHERE _missing_since IS NULL AND {quote_ident(column)} IS NOT NULL GROUP BY day",
                [tz],
            ).fetchall()
        return {day: (total, open_) for day, total, open_ in rows}

    def last_full_reconcile(self, stream: str) -> datetime | None:
        """When the newest merged full reconciliation of `stream` started (None: never)."""
        with self.reader() as con:
            if con is None or not _has_table(con, "pipeline", "load_log"):
                return None
            (started,) = con.execute(
                "SELECT max(extracted_from) FROM pipeline.load_log "
                "WHERE stream = ? AND mode = 'reconcile'",
                [stream],
            ).fetchall()[0]
        return started

    def inbox_applied(self, inbox_id: str) -> int:
        """The inbox seq up to which every webhook event has been applied (0: none)."""
        with self.reader() as con:
            if con is None or not _has_table(con, "pipeline", "inbox_applied"):
                return 0
            rows = con.execute(
                "SELECT applied_seq FROM pipeline.inbox_applied WHERE inbox_id = ?", [inbox_id]
            ).fetchall()
        return int(rows[0][0]) if rows else 0

    # --- merge -----------------------------------------------------------------------------
    def merge_loads(self, manifests: list[LoadManifest]) -> list[MergeResult]:
        """Merge complete lake loads, oldest first, each in its own transaction."""
        results = []
        if not manifests:
            return results
        with self.writer() as con:
            for manifest in sorted(manifests, key=lambda m: m.load_id):
                results.append(merge_load(con, manifest))
        return results

    # --- publish ---------------------------------------------------------------------------
    def publish(self, snapshot_path: Path) -> dict[str, Any]:
        """Copy the warehouse to the analyst snapshot and swap it in atomically.

        Analysts hold the old file open (or not) without noticing: `os.replace` swaps the
        directory entry, an open connection keeps reading the old inode, and a reconnect
        sees the new data. We never open the snapshot, so an analyst never blocks us.
        """
        snapshot_path = Path(snapshot_path)
        snapshot_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        _remove_abandoned_copies(snapshot_path)
        tmp = snapshot_path.with_name(f".{snapshot_path.name}.tmp-{os.getpid()}")
        with self._locked(exclusive=True):
            con = self._connect(read_only=False)
            try:
                ensure_schema(con)
                con.execute("CHECKPOINT")
            finally:
                con.close()
            wal = self.path.with_name(self.path.name + ".wal")
            if wal.exists() and wal.stat().st_size > 0:
                raise RuntimeError(f"{wal} still holds changes after a checkpoint; not publishing")
            shutil.copyfile(self.path, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        failpoint("warehouse.before_publish")
        os.replace(tmp, snapshot_path)
        dir_fd = os.open(snapshot_path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return {
            "path": str(snapshot_path),
            "bytes": snapshot_path.stat().st_size,
            "seconds": round(time.monotonic() - started, 3),
        }


def _remove_abandoned_copies(snapshot_path: Path) -> None:
    """Half-written snapshot copies of publishers that died (their pid is gone)."""
    for candidate in snapshot_path.parent.glob(f".{snapshot_path.name}.tmp-*"):
        pid = candidate.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            candidate.unlink(missing_ok=True)


def _has_table(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchall()[0][0]
    )


def _read_state(con: duckdb.DuckDBPyConnection, stream: str) -> StreamState:
    rows = con.execute(
        "SELECT cursor, updated_at, last_load_id, extra FROM pipeline.sync_state WHERE stream = ?",
        [stream],
    ).fetchall()
    if not rows:
        return StreamState(stream)
    row = rows[0]
    return StreamState(stream, row[0], row[1], row[2], json.loads(row[3]) if row[3] else {})


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create what is missing; add columns that the schema gained since the table was made."""
    for statement in PIPELINE_DDL:
        con.execute(statement)
    load_log_columns = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'pipeline' AND table_name = 'load_log'"
        ).fetchall()
    }
    if "reconciled" not in load_log_columns:  # warehouses made before reconciliation
        con.execute("ALTER TABLE pipeline.load_log ADD COLUMN reconciled JSON")
    existing: dict[str, set[str]] = {}
    for table_name, column_name in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
    ).fetchall():
        existing.setdefault(table_name, set()).add(column_name)
    for table in TABLES.values():
        if table.name not in existing:
            con.execute(table_ddl(table))
            continue
        wanted = [(col.name, col.type) for col in table.columns]
        wanted += [(meta, META_TYPES[meta]) for meta in warehouse_meta(table)]
        for name, type_ in wanted:
            if name not in existing[table.name]:
                con.execute(
                    f"ALTER TABLE {main_table(table.name)} ADD COLUMN {quote_ident(name)} {type_}"
                )


def _columns(table: Table) -> list[str]:
    return [col.name for col in table.columns] + list(warehouse_meta(table))


def _select_list(table: Table, alias: str) -> str:
    parts = []
    for name in _columns(table):
        if name == "_missing_since":
            parts.append("NULL::TIMESTAMPTZ")
        else:
            parts.append(f"{alias}.{quote_ident(name)}")
    return ", ".join(parts)


def merge_load(con: duckdb.DuckDBPyConnection, manifest: LoadManifest) -> MergeResult:
    """Merge one load in one transaction: rows, child rows, missing keys, cursor, load log."""
    stream: Stream = STREAMS[manifest.stream]
    parent = stream.parent
    pk = parent.primary_key
    result = MergeResult(manifest.load_id, manifest.stream, manifest.mode)
    already = con.execute(
        "SELECT count(*) FROM pipeline.load_log WHERE load_id = ?", [manifest.load_id]
    ).fetchall()[0][0]
    if already:
        result.skipped = True
        return result
    pk_cols = ", ".join(quote_ident(k) for k in pk)
    join_on = " AND ".join(f"s.{quote_ident(k)} = t.{quote_ident(k)}" for k in pk)
    con.execute("BEGIN TRANSACTION")
    try:
        parent_files = manifest.file_paths(parent.name)
        if parent_files:
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE stg AS
                SELECT * EXCLUDE (_raw) FROM read_parquet({string_list(parent_files)})
                QUALIFY row_number() OVER (PARTITION BY {pk_cols}
                                           ORDER BY _extracted_at DESC, _seq DESC) = 1"""
            )
        else:
            cols = ", ".join(f"NULL::{c.type} AS {quote_ident(c.name)}" for c in parent.columns)
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE stg AS SELECT {cols},
                NULL::VARCHAR AS _load_id, NULL::TIMESTAMPTZ AS _extracted_at,
                NULL::BIGINT AS _seq, NULL::VARCHAR AS _hash, NULL::VARCHAR AS _extra
                WHERE false"""
            )
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE win AS
            SELECT s.*, t.{quote_ident(pk[0])} IS NULL AS _is_new
            FROM stg s LEFT JOIN {main_table(parent.name)} t ON {join_on}
            WHERE t.{quote_ident(pk[0])} IS NULL
               OR (s._extracted_at >= t._extracted_at
                   AND (s._hash IS DISTINCT FROM t._hash OR t._missing_since IS NOT NULL))"""
        )
        result.staged = con.execute("SELECT count(*) FROM stg").fetchall()[0][0]
        result.new, result.updated = con.execute(
            "SELECT count(*) FILTER (WHERE _is_new), count(*) FILTER (WHERE NOT _is_new) FROM win"
        ).fetchall()[0]
        result.unchanged = con.execute(
            f"""SELECT count(*) FROM stg s JOIN {main_table(parent.name)} t ON {join_on}
            WHERE s._hash = t._hash AND t._missing_since IS NULL"""
        ).fetchall()[0][0]
        result.stale = result.staged - result.new - result.updated - result.unchanged
        # Unchanged rows were confirmed by a newer read: remember when, so that an older load
        # merged later (a concurrent run's) cannot replace them with what it saw before.
        con.execute(
            f"""UPDATE {main_table(parent.name)} t SET _extracted_at = s._extracted_at
            FROM stg s WHERE {join_on} AND s._hash = t._hash
              AND s._extracted_at > t._extracted_at AND t._missing_since IS NULL"""
        )

        win_keys = f"SELECT {pk_cols} FROM win"
        con.execute(f"DELETE FROM {main_table(parent.name)} WHERE ({pk_cols}) IN ({win_keys})")
        con.execute(
            f"INSERT INTO {main_table(parent.name)} ({ident_list(_columns(parent))}) "
            f"SELECT {_select_list(parent, 'win')} FROM win"
        )
        for child in stream.children:
            result.child_rows[child.name] = _merge_child(con, manifest, child, parent)

        if manifest.missing_keys:
            result.missing = _mark_missing(con, parent, manifest)

        state = _read_state(con, stream.name)
        result.cursor_before = state.cursor
        result.cursor_after = state.cursor
        if manifest.mode in CURSOR_MODES and manifest.cursor_after is not None:
            new_cursor = (
                manifest.cursor_after
                if state.cursor is None
                else max(state.cursor, manifest.cursor_after)
            )
            result.cursor_after = new_cursor
            con.execute(
                """INSERT INTO pipeline.sync_state (stream, cursor, updated_at, last_load_id, extra)
                VALUES (?, ?, now(), ?, NULL)
                ON CONFLICT (stream) DO UPDATE SET cursor = excluded.cursor,
                    updated_at = excluded.updated_at, last_load_id = excluded.last_load_id""",
                [stream.name, new_cursor, manifest.load_id],
            )
        _record_drift(con, manifest)
        if manifest.mode in RECONCILE_MODES:
            result.drift = Drift(
                read=manifest.records_read,
                new=result.new,
                changed=result.updated,
                missing=result.missing,
            )
        if manifest.inbox:
            _record_inbox_applied(con, manifest)
        con.execute(
            """INSERT INTO pipeline.load_log VALUES
            (?, ?, ?, ?, ?, now(), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                manifest.load_id,
                manifest.stream,
                manifest.mode,
                manifest.started_at,
                manifest.finished_at,
                json.dumps(manifest.window),
                result.cursor_before,
                result.cursor_after,
                max(manifest.records_read, manifest.records),
                result.staged,
                result.new,
                result.updated,
                result.unchanged,
                result.stale,
                result.missing,
                json.dumps(result.child_rows),
                manifest.requests,
                manifest.retries,
                manifest.bytes,
                json.dumps(manifest.drift),
                json.dumps(manifest.coercions),
                manifest.path,
                json.dumps(result.drift.as_dict()) if result.drift else None,
            ],
        )
        failpoint("warehouse.before_commit")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for temp in ("stg", "win", "stg_child"):
            with contextlib.suppress(duckdb.Error):
                con.execute(f"DROP TABLE IF EXISTS temp.{temp}")
    return result


def _merge_child(con, manifest: LoadManifest, child: Table, parent: Table) -> int:
    """Replace the children of every parent row that won, with the children of its record."""
    files = manifest.file_paths(child.name)
    parent_cols = ", ".join(quote_ident(k) for k in child.parent_key)
    child_pk = ", ".join(quote_ident(k) for k in child.primary_key)
    link = " AND ".join(
        f"c.{quote_ident(ck)} = w.{quote_ident(pk)}"
        for ck, pk in zip(child.parent_key, parent.primary_key, strict=True)
    )
    con.execute(
        f"DELETE FROM {main_table(child.name)} WHERE ({parent_cols}) IN "
        f"(SELECT {', '.join(quote_ident(k) for k in parent.primary_key)} FROM win)"
    )
    if not files:
        return 0
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE stg_child AS
        SELECT c.* FROM read_parquet({string_list(files)}) c
        JOIN win w ON {link} AND c._seq = w._seq
        QUALIFY row_number() OVER (PARTITION BY {ident_list(list(child.primary_key), "c.")}
                                   ORDER BY c._seq DESC) = 1"""
    )
    # A child key that moved to another parent must not survive under the old one.
    con.execute(
        f"DELETE FROM {main_table(child.name)} "
        f"WHERE ({child_pk}) IN (SELECT {child_pk} FROM stg_child)"
    )
    con.execute(
        f"INSERT INTO {main_table(child.name)} ({ident_list(_columns(child))}) "
        f"SELECT {_select_list(child, 'stg_child')} FROM stg_child"
    )
    return con.execute("SELECT count(*) FROM stg_child").fetchall()[0][0]


def _mark_missing(con, parent: Table, manifest: LoadManifest) -> int:
    (pk,) = parent.primary_key
    keys = [int(k) for k in manifest.missing_keys]
    con.execute("CREATE OR REPLACE TEMP TABLE missing_keys (k BIGINT)")
    con.executemany("INSERT INTO missing_keys VALUES (?)", [[k] for k in keys])
    count = con.execute(
        f"""UPDATE {main_table(parent.name)} SET _missing_since = ?::TIMESTAMPTZ
        WHERE {quote_ident(pk)} IN (SELECT k FROM missing_keys) AND _missing_since IS NULL
          AND _extracted_at <= ?::TIMESTAMPTZ""",
        # Only rows read before this load looked for them: a newer read wins.
        [
            manifest.finished_at or datetime.now(UTC).isoformat(),
            manifest.finished_at or datetime.now(UTC).isoformat(),
        ],
    ).fetchall()[0][0]
    con.execute("DROP TABLE temp.missing_keys")
    return count


def _record_inbox_applied(con, manifest: LoadManifest) -> None:
    """Move the inbox watermark to the events this load applied (never backwards)."""
    inbox = manifest.inbox
    con.execute(
        """INSERT INTO pipeline.inbox_applied VALUES (?, ?, now(), ?)
        ON CONFLICT (inbox_id) DO UPDATE SET
            applied_seq = greatest(inbox_applied.applied_seq, excluded.applied_seq),
            updated_at = excluded.updated_at, last_load_id = excluded.last_load_id""",
        [inbox["inbox_id"], int(inbox["through_seq"]), manifest.load_id],
    )


def _record_drift(con, manifest: LoadManifest) -> None:
    for name, entry in manifest.drift.items():
        types = ",".join(entry.get("types", []))
        updated = con.execute(
            """UPDATE pipeline.schema_drift SET occurrences = occurrences + ?,
            last_load_id = ?, last_seen = now(), json_types = ?
            WHERE stream = ? AND field = ?""",
            [entry["count"], manifest.load_id, types, manifest.stream, name],
        ).fetchall()[0][0]
        if not updated:
            con.execute(
                "INSERT INTO pipeline.schema_drift VALUES (?, ?, ?, ?, ?, ?, now(), now())",
                [manifest.stream, name, types, entry["count"], manifest.load_id, manifest.load_id],
            )
