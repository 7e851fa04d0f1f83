"""Merging one lake load into the warehouse, in one transaction.

The steps, in order: stage the load's parent rows (de-duplicated on the primary key, latest
fetch wins), find the rows that win over what is stored (new, or fetched no earlier and
different), replace those rows and their children, mark the keys Centra no longer returned,
move the cursor, record drift and the inbox watermark, write the load log, commit. Merging a
load twice is a no-op (the load log knows it), and loads merged out of order converge
(docs/architecture.md, invariants 1 and 2).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from centra_pipeline.storage.lake import LoadManifest
from centra_pipeline.storage.sql import (
    ident_list,
    main_table,
    parquet_scan,
    quote_ident,
    string_literal,
)
from centra_pipeline.storage.warehouse_schema import read_state
from centra_pipeline.streams import STREAMS, Table
from centra_pipeline.streams.model import warehouse_meta
from centra_pipeline.sync.reconcile import RECONCILE_MODES, Drift
from centra_pipeline.testing.failpoints import failpoint

CURSOR_MODES = frozenset({"incremental", "full_refresh"})  # the modes that move a cursor


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
    stream = STREAMS[manifest.stream]
    result = MergeResult(manifest.load_id, manifest.stream, manifest.mode)
    if _already_merged(con, manifest.load_id):
        result.skipped = True
        return result
    con.execute("BEGIN TRANSACTION")
    try:
        _stage(con, manifest, stream.parent)
        _find_winners(con, stream.parent, result)
        _replace_winners(con, stream.parent)
        for child in stream.children:
            result.child_rows[child.name] = _merge_child(con, manifest, child, stream.parent)
        if manifest.missing_keys:
            result.missing = _mark_missing(con, stream.parent, manifest)
        _advance_cursor(con, manifest, result)
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
        _log_load(con, manifest, result)
        failpoint("warehouse.before_commit")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for temp in ("stg", "win", "stg_child"):
            with contextlib.suppress(duckdb.Error):
                con.execute(f"DROP TABLE IF EXISTS temp.{temp}")
        if manifest.filesystem is not None:
            for table in stream.tables:
                with contextlib.suppress(duckdb.Error):
                    con.unregister(f"lake_{table.name}")
    return result


def load_rows(con: duckdb.DuckDBPyConnection, manifest: LoadManifest, table: str) -> str | None:
    """SQL for a load's rows of `table` (None: it has none): its Parquet files, or, once
    compacted, its rows of the segment's files."""
    files = manifest.file_paths(table)
    if not files:
        return None
    scan = parquet_scan(con, f"lake_{table}", files, manifest.filesystem)
    if manifest.segment:
        return f"(SELECT * FROM {scan} WHERE _load_id = {string_literal(manifest.load_id)})"
    return scan


def _already_merged(con: duckdb.DuckDBPyConnection, load_id: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM pipeline.load_log WHERE load_id = ?", [load_id]
        ).fetchall()[0][0]
    )


def _stage(con: duckdb.DuckDBPyConnection, manifest: LoadManifest, parent: Table) -> None:
    """`stg`: the load's parent rows, one per key (the latest fetch, then the last read)."""
    rows = load_rows(con, manifest, parent.name)
    if rows:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE stg AS
            SELECT * EXCLUDE (_raw) FROM {rows}
            QUALIFY row_number() OVER (PARTITION BY {ident_list(list(parent.primary_key))}
                                       ORDER BY _extracted_at DESC, _seq DESC) = 1"""
        )
        return
    cols = ", ".join(f"NULL::{c.type} AS {quote_ident(c.name)}" for c in parent.columns)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE stg AS SELECT {cols},
        NULL::VARCHAR AS _load_id, NULL::TIMESTAMPTZ AS _extracted_at,
        NULL::BIGINT AS _seq, NULL::VARCHAR AS _hash, NULL::VARCHAR AS _extra
        WHERE false"""
    )


def _find_winners(con: duckdb.DuckDBPyConnection, parent: Table, result: MergeResult) -> None:
    """`win`: staged rows that replace the stored ones (new, or fetched no earlier and
    different, or back after being missing); count new, updated, unchanged and stale."""
    target, join_on = main_table(parent.name), _join_on(parent)
    first_pk = quote_ident(parent.primary_key[0])
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE win AS
        SELECT s.*, t.{first_pk} IS NULL AS _is_new
        FROM stg s LEFT JOIN {target} t ON {join_on}
        WHERE t.{first_pk} IS NULL
           OR (s._extracted_at >= t._extracted_at
               AND (s._hash IS DISTINCT FROM t._hash OR t._missing_since IS NOT NULL))"""
    )
    result.staged = con.execute("SELECT count(*) FROM stg").fetchall()[0][0]
    result.new, result.updated = con.execute(
        "SELECT count(*) FILTER (WHERE _is_new), count(*) FILTER (WHERE NOT _is_new) FROM win"
    ).fetchall()[0]
    result.unchanged = con.execute(
        f"""SELECT count(*) FROM stg s JOIN {target} t ON {join_on}
        WHERE s._hash = t._hash AND t._missing_since IS NULL"""
    ).fetchall()[0][0]
    result.stale = result.staged - result.new - result.updated - result.unchanged
    # Unchanged rows were confirmed by a newer read: remember when, so that an older load
    # merged later (a concurrent run's) cannot replace them with what it saw before.
    con.execute(
        f"""UPDATE {target} t SET _extracted_at = s._extracted_at
        FROM stg s WHERE {join_on} AND s._hash = t._hash
          AND s._extracted_at > t._extracted_at AND t._missing_since IS NULL"""
    )


def _replace_winners(con: duckdb.DuckDBPyConnection, parent: Table) -> None:
    target, pk_cols = main_table(parent.name), ident_list(list(parent.primary_key))
    con.execute(f"DELETE FROM {target} WHERE ({pk_cols}) IN (SELECT {pk_cols} FROM win)")
    con.execute(
        f"INSERT INTO {target} ({ident_list(_columns(parent))}) "
        f"SELECT {_select_list(parent, 'win')} FROM win"
    )


def _join_on(parent: Table) -> str:
    return " AND ".join(f"s.{quote_ident(k)} = t.{quote_ident(k)}" for k in parent.primary_key)


def _advance_cursor(
    con: duckdb.DuckDBPyConnection, manifest: LoadManifest, result: MergeResult
) -> None:
    """Move the stream's cursor to what the load proves (never backwards), in the merge's
    transaction: a cursor never passes data that is not committed."""
    state = read_state(con, manifest.stream)
    result.cursor_before = result.cursor_after = state.cursor
    if manifest.mode not in CURSOR_MODES or manifest.cursor_after is None:
        return
    new_cursor = (
        manifest.cursor_after if state.cursor is None else max(state.cursor, manifest.cursor_after)
    )
    result.cursor_after = new_cursor
    con.execute(
        """INSERT INTO pipeline.sync_state (stream, cursor, updated_at, last_load_id, extra)
        VALUES (?, ?, now(), ?, NULL)
        ON CONFLICT (stream) DO UPDATE SET cursor = excluded.cursor,
            updated_at = excluded.updated_at, last_load_id = excluded.last_load_id""",
        [manifest.stream, new_cursor, manifest.load_id],
    )


def _log_load(con: duckdb.DuckDBPyConnection, manifest: LoadManifest, result: MergeResult) -> None:
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


def _merge_child(con, manifest: LoadManifest, child: Table, parent: Table) -> int:
    """Replace the children of every parent row that won, with the children of its record."""
    rows = load_rows(con, manifest, child.name)
    parent_cols = ident_list(list(child.parent_key))
    child_pk = ident_list(list(child.primary_key))
    link = " AND ".join(
        f"c.{quote_ident(ck)} = w.{quote_ident(pk)}"
        for ck, pk in zip(child.parent_key, parent.primary_key, strict=True)
    )
    con.execute(
        f"DELETE FROM {main_table(child.name)} WHERE ({parent_cols}) IN "
        f"(SELECT {ident_list(list(parent.primary_key))} FROM win)"
    )
    if not rows:
        return 0
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE stg_child AS
        SELECT c.* FROM {rows} c
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
                "INSERT INTO pipeline.schema_drift VALUES (?, ?, ?, ?, ?, ?, now(), now(), NULL)",
                [manifest.stream, name, types, entry["count"], manifest.load_id, manifest.load_id],
            )
