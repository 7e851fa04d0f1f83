"""The warehouse: the pipeline's private DuckDB file with the current state of every table,
the sync state (cursors) and the load log. This module opens it and answers what the read
plans ask (state, pending loads, key indexes, open days); merge.py writes loads into it,
publish.py copies it to the analyst snapshot, warehouse_schema.py holds its DDL.

Invariants kept here and in merge.py (docs/architecture.md):
- Cursor and data commit in one transaction (1, nothing is lost): see merge.py.
- Idempotent merges (2): see merge.py.
- One writer (4): every connection is taken under a file lock beside the database (exclusive
  for writers, shared for readers) and closed before it is let go; runs queue on it, with a
  log line. Analysts read a copy, `centra.duckdb`, replaced atomically after each run.

DuckDB writes the file in the storage format of DuckDB 1.5 (`storage_compatibility_version`)
so the published copy opens in DuckDB 1.5 and newer clients.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from centra_pipeline.centra.quirks import parse_local_datetime
from centra_pipeline.storage.lake import Lake, LoadManifest
from centra_pipeline.storage.merge import MergeResult, merge_load
from centra_pipeline.storage.publish import publish
from centra_pipeline.storage.sql import main_table, quote_ident
from centra_pipeline.storage.warehouse_schema import (
    StreamState,
    UnmappedField,
    ensure_schema,
    has_table,
    read_state,
)
from centra_pipeline.streams import STREAMS
from centra_pipeline.streams.model import OpenRecords
from centra_pipeline.sync.reconcile import DayRange, KeyIndex

T = TypeVar("T")
log = logging.getLogger("centra_pipeline.storage.warehouse")

STORAGE_COMPATIBILITY = "v1.5.0"


class WarehouseBusy(TimeoutError):
    """Another run held the warehouse lock for longer than we were willing to wait."""


class Warehouse:
    def __init__(
        self,
        path: Path,
        *,
        # DuckDB spills to temp_directory beyond this; the merge is the pipeline's memory
        # peak. Merging a 100k-order full load: 256 MB took 8.0-8.4 s at a peak of 389 MB,
        # 192 MB 8.4 s at 333 MB, 160 MB 9.3 s, 128 MB 10.7 s at 275 MB.
        memory_limit: str = "192MB",
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
    def locked(self, exclusive: bool) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_path, "a+")  # noqa: SIM115 - closed in finally
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                if self.lock_timeout <= 0:  # a caller that does not wait (the sensor)
                    raise WarehouseBusy(
                        f"the warehouse is locked by another run ({self.lock_path})"
                    ) from None
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

    @contextmanager
    def held(self) -> Iterator[None]:
        """A step's hold (warehouse_shared.py hands over once per hold); a no-op on a disk."""
        yield

    def connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        config: dict[str, Any] = {
            "memory_limit": self.memory_limit,
            "threads": self.threads,
            "preserve_insertion_order": False,
        }
        if not read_only:
            config["storage_compatibility_version"] = STORAGE_COMPATIBILITY
            config["temp_directory"] = str(self.path.parent / "duckdb_tmp")
        con = duckdb.connect(str(self.path), read_only=read_only, config=config)
        # A segment's files are read once per load they hold (storage/compact.py).
        con.execute("SET parquet_metadata_cache = true")
        return con

    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.locked(exclusive=True):
            con = self.connect(read_only=False)
            try:
                ensure_schema(con)
                yield con
            finally:
                con.close()

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A read-only connection, or None if the warehouse does not exist yet."""
        with self.locked(exclusive=False):
            if not self.path.exists():
                yield None
                return
            con = self.connect(read_only=True)
            try:
                yield con
            finally:
                con.close()

    # --- state -------------------------------------------------------------------------------
    def state(self, stream: str) -> StreamState:
        with self.reader() as con:
            if con is None or not has_table(con, "pipeline", "sync_state"):
                return StreamState(stream)
            return read_state(con, stream)

    def all_states(self) -> list[StreamState]:
        with self.reader() as con:
            if con is None or not has_table(con, "pipeline", "sync_state"):
                return [StreamState(name) for name in STREAMS]
            return [read_state(con, name) for name in STREAMS]

    def reset_state(self, stream: str) -> StreamState:
        """Forget a stream's cursor: its next run reads everything. Data stays."""
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}; streams are {', '.join(STREAMS)}")
        with self.writer() as con:
            before = read_state(con, stream)
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
            if con is not None and has_table(con, "pipeline", "load_log"):
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

    def row_counts(self, tables: list[str]) -> dict[str, int]:
        """Rows per table (0 for a table not created yet)."""
        with self.reader() as con:
            return row_counts(con, tables)

    def unmapped_fields(self, stream: str | None = None) -> list[UnmappedField]:
        """Fields Centra sent that no column maps, as recorded by every merged load (see
        pipeline.schema_drift), with whether someone acknowledged them."""
        with self.reader() as con:
            return unmapped_fields(con, stream)

    def acknowledge_fields(self, fields: list[str]) -> list[UnmappedField]:
        """Mark unmapped fields (`table.field`) as known, so their check stops warning. An
        unknown field is refused and nothing is changed."""
        known = {f.field: f for f in self.unmapped_fields()}
        unknown = [f for f in fields if f not in known]
        if unknown:
            listed = ", ".join(sorted(known)) or "none recorded"
            raise ValueError(
                f"no unmapped field {', '.join(unknown)} has been recorded (recorded: {listed})"
            )
        with self.writer() as con:
            con.execute(
                "UPDATE pipeline.schema_drift SET acknowledged_at = now() "
                "WHERE field IN (SELECT unnest(?::VARCHAR[])) AND acknowledged_at IS NULL",
                [fields],
            )
        return [f for f in self.unmapped_fields() if f.field in fields]

    def has_table(self, name: str, schema: str = "main") -> bool:
        with self.reader() as con:
            return con is not None and has_table(con, schema, name)

    def last_full_catalogue_read(self) -> datetime | None:
        """When the newest merged full read of the catalogue started (None: never)."""
        with self.reader() as con:
            if con is None or not has_table(con, "pipeline", "load_log"):
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
        column = _open_records(stream).date_column
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

    def window_index(self, stream: str, newer_than: datetime, *, compare: bool = True) -> KeyIndex:
        """Keys and hashes of the rows an incremental window from `newer_than` reads back
        (dated from it on; the stream's open-records date column), to land only what
        changed. None is expected back: a window read marks nothing missing."""
        column = quote_ident(_open_records(stream).date_column)
        return self._key_index(stream, f"{column} >= ?", [newer_than], "false", [], compare)

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
            if con is None or not has_table(con, "main", table.name):
                return KeyIndex([], [], compare=compare)
            arrays = con.execute(
                f"SELECT {quote_ident(pk)} AS k, _hash AS h, ({expected}) AS e "
                f"FROM {main_table(table.name)} WHERE _missing_since IS NULL AND ({where})",
                [*expected_params, *params],
            ).fetchnumpy()
        return KeyIndex(arrays["k"], arrays["h"], arrays["e"], compare=compare)

    def open_days(self, stream: str, tz: str) -> dict[Any, tuple[int, int]]:
        """Per store-local day with rows: (rows, open rows); see `Stream.open_records`."""
        table = STREAMS[stream].parent.name
        column, condition = _open_records(stream).date_column, _open_records(stream).condition
        with self.reader() as con:
            if con is None or not has_table(con, "main", table):
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
            if con is None or not has_table(con, "pipeline", "load_log"):
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
            if con is None or not has_table(con, "pipeline", "inbox_applied"):
                return 0
            rows = con.execute(
                "SELECT applied_seq FROM pipeline.inbox_applied WHERE inbox_id = ?", [inbox_id]
            ).fetchall()
        return int(rows[0][0]) if rows else 0

    # --- merge -----------------------------------------------------------------------------
    def publish(
        self, snapshot_path: Path, pii: str = "keep", key: bytes | None = None
    ) -> dict[str, Any]:
        """Copy the warehouse to the snapshot, swap it in atomically (storage/publish.py)."""
        return publish(self, snapshot_path, pii, key)

    def merge_loads(self, manifests: list[LoadManifest]) -> list[MergeResult]:
        """Merge complete lake loads, oldest first, each in its own transaction."""
        if not manifests:
            return []
        return self.merge_loads_then(manifests, lambda _con, results: results)

    def merge_loads_then(
        self, manifests: list[LoadManifest], then: Callable[[duckdb.DuckDBPyConnection, list], T]
    ) -> T:
        """Merge the loads as `merge_loads` does, then call `then(con, results)` on the same
        connection, still holding the writer lock: what a run reports after a merge (row
        counts, checks) costs no second connection and sees exactly what was merged."""
        with self.writer() as con:
            results = [
                merge_load(con, manifest) for manifest in sorted(manifests, key=lambda m: m.load_id)
            ]
            return then(con, results)


def row_counts(con: duckdb.DuckDBPyConnection | None, tables: list[str]) -> dict[str, int]:
    """Rows per table (0 for a table not created yet, or without a warehouse)."""
    if con is None:
        return dict.fromkeys(tables, 0)
    return {
        name: con.execute(f"SELECT count(*) FROM {main_table(name)}").fetchall()[0][0]
        if has_table(con, "main", name)
        else 0
        for name in tables
    }


def unmapped_fields(
    con: duckdb.DuckDBPyConnection | None, stream: str | None = None
) -> list[UnmappedField]:
    if con is None or not has_table(con, "pipeline", "schema_drift"):
        return []
    rows = con.execute(
        "SELECT stream, field, json_types, occurrences, first_seen, last_seen, "
        "acknowledged_at FROM pipeline.schema_drift "
        "WHERE ? IS NULL OR stream = ? ORDER BY stream, field",
        [stream, stream],
    ).fetchall()
    return [UnmappedField(*row) for row in rows]


def _open_records(stream: str) -> OpenRecords:
    records = STREAMS[stream].open_records
    if records is None:
        raise ValueError(f"stream {stream} has no open records to reconcile")
    return records
