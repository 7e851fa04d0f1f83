"""`all_stores.duckdb`: every store's analyst snapshot in one file, each table the union of
that table of all stores with a `store` column first (the store's name in the stores file).

The union is DuckDB's (`UNION ALL BY NAME`, under `memory_limit`, spilling to a directory of
its own), so a store whose table gained or lost a column still unions: column order follows
the first store that has the table, then any column only later stores have. A table's own
column named `store` (products: the Centra store field) is kept as `centra_store`.

Like the per-store snapshot (storage/publish.py), the file is written beside the target,
checkpointed, fsynced and swapped in with `os.replace`: an analyst holding the old file open
keeps reading it and never blocks a publish. The snapshots are attached read-only; one that
a store's publish replaces meanwhile is read to the end from the inode we opened. The file
is written in DuckDB 1.5's storage format (warehouse.STORAGE_COMPATIBILITY).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import duckdb

from centra_pipeline.storage.lake import pid_alive
from centra_pipeline.storage.publish import _remove_abandoned_copies
from centra_pipeline.storage.sql import quote_ident, string_literal
from centra_pipeline.storage.warehouse import STORAGE_COMPATIBILITY
from centra_pipeline.streams import TABLES, Table
from centra_pipeline.streams.model import META_TYPES, warehouse_meta

STORE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
STORE_COLUMN = "store"
RENAMED_STORE_COLUMN = "centra_store"


def publish_all_stores(
    snapshots: dict[str, Path], target: Path, *, memory_limit: str = "192MB"
) -> dict[str, Any]:
    """Union the snapshots (store name -> snapshot file) into `target`, swapped in atomically.

    A store without a snapshot file yet, or whose snapshot lacks a table, is left out of that
    table and listed under "missing"; "stores" counts the snapshots that were read. Raises
    ValueError for bad input before anything is written; on any error the target is left
    as it was.
    """
    target = Path(target)
    sources = _validated(snapshots, target)
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    spill = tmp.with_name(tmp.name + ".spill")
    _remove_temp(tmp, spill)
    missing: dict[str, list[str]] = {}
    try:
        con = duckdb.connect(
            config={
                "memory_limit": memory_limit,
                "threads": 2,
                "preserve_insertion_order": False,
                "temp_directory": str(spill),
                "storage_compatibility_version": STORAGE_COMPATIBILITY,
            }
        )
        try:
            present = _attach_snapshots(con, sources, missing)
            con.execute(
                f"ATTACH {string_literal(str(tmp))} AS dst "
                f"(STORAGE_VERSION {string_literal(STORAGE_COMPATIBILITY)})"
            )
            rows = {}
            for name, table in TABLES.items():
                have = [
                    (store, alias, tables[name])
                    for store, alias, tables in present
                    if name in tables
                ]
                for store, _alias, tables in present:
                    if name not in tables:
                        missing.setdefault(store, []).append(name)
                _build_table(con, table, have)
                rows[name] = con.execute(
                    f"SELECT count(*) FROM dst.main.{quote_ident(name)}"
                ).fetchall()[0][0]
            con.execute("CHECKPOINT dst")
            con.execute("DETACH dst")
        finally:
            con.close()
        wal = tmp.with_name(tmp.name + ".wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise RuntimeError(f"{wal} still holds changes after a checkpoint; not publishing")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        _remove_temp(tmp, spill)
        raise
    _remove_temp(tmp, spill)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return {
        "path": str(target),
        "bytes": target.stat().st_size,
        "seconds": round(time.monotonic() - started, 3),
        "stores": len(present),
        "rows": rows,
        "missing": {store: tables for store, tables in missing.items() if tables},
    }


def _validated(snapshots: dict[str, Path], target: Path) -> list[tuple[str, Path]]:
    if not isinstance(snapshots, dict) or not snapshots:
        raise ValueError("publish_all_stores needs at least one store's snapshot, got none")
    bad = [n for n in snapshots if not isinstance(n, str) or not STORE_NAME.fullmatch(n)]
    if bad:
        raise ValueError(
            f"store names must match [a-z0-9][a-z0-9_-]*; not {', '.join(map(repr, bad))}"
        )
    if target.is_dir():
        raise ValueError(f"the all-stores target {target} is a directory")
    resolved_target = target.resolve()
    seen: dict[Path, str] = {}
    sources = []
    for store, path in snapshots.items():
        path = Path(path)
        resolved = path.resolve()
        if resolved == resolved_target:
            raise ValueError(f"store {store}'s snapshot {path} is the all-stores target itself")
        if resolved in seen:
            raise ValueError(f"stores {seen[resolved]} and {store} name the same snapshot {path}")
        seen[resolved] = store
        sources.append((store, path))
    return sources


def _attach_snapshots(
    con: duckdb.DuckDBPyConnection,
    sources: list[tuple[str, Path]],
    missing: dict[str, list[str]],
) -> list[tuple[str, str, dict[str, list[str]]]]:
    """Attach each existing snapshot read-only: (store, alias, {table: its columns})."""
    present = []
    for i, (store, path) in enumerate(sources):
        if not path.is_file():
            missing[store] = list(TABLES)
            continue
        alias = f"snap_{i}"
        try:
            con.execute(f"ATTACH {string_literal(str(path))} AS {alias} (READ_ONLY)")
        except duckdb.Error as exc:
            raise RuntimeError(f"store {store}: cannot read its snapshot {path}: {exc}") from exc
        columns: dict[str, list[str]] = {}
        for table, column in con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() "
            "WHERE database_name = ? AND schema_name = 'main' ORDER BY table_name, column_index",
            [alias],
        ).fetchall():
            if table in TABLES:
                columns.setdefault(table, []).append(column)
        present.append((store, alias, columns))
    return present


def _build_table(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    have: list[tuple[str, str, list[str]]],
) -> None:
    """`dst.main.<table>`: the union of the stores that have it, (store, alias, columns)."""
    qualified = f"dst.main.{quote_ident(table.name)}"
    if not have:  # no store has it yet: an empty table of the schema a snapshot would hold
        cols = [(col.name, col.type) for col in table.columns]
        cols += [(meta, META_TYPES[meta]) for meta in warehouse_meta(table)]
        ddl = ", ".join(f"{quote_ident(_renamed(n))} {t}" for n, t in cols)
        con.execute(f"CREATE TABLE {qualified} ({quote_ident(STORE_COLUMN)} VARCHAR, {ddl})")
        return
    selects = []
    for store, alias, names in have:
        listed = ", ".join(
            quote_ident(n) + (f" AS {quote_ident(_renamed(n))}" if _renamed(n) != n else "")
            for n in names
        )
        selects.append(
            f"SELECT {string_literal(store)}::VARCHAR AS {quote_ident(STORE_COLUMN)}, {listed} "
            f"FROM {alias}.main.{quote_ident(table.name)}"
        )
    # The union's columns and types first (no rows), then one store at a time: a union of
    # every store in one statement holds them all at once and does not fit the memory
    # limit at 100 stores.
    con.execute(
        f"CREATE TABLE {qualified} AS SELECT * FROM ("
        + " UNION ALL BY NAME ".join(selects)
        + ") LIMIT 0"
    )
    for select in selects:
        con.execute(f"INSERT INTO {qualified} BY NAME {select}")


def _renamed(column: str) -> str:
    return RENAMED_STORE_COLUMN if column == STORE_COLUMN else column


def _remove_temp(tmp: Path, spill: Path) -> None:
    tmp.unlink(missing_ok=True)
    tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    shutil.rmtree(spill, ignore_errors=True)


def _remove_abandoned(target: Path) -> None:
    """Temp files of publishers that died: the copy (publish.py's rule), and its WAL and
    spill directory."""
    _remove_abandoned_copies(target)
    prefix = f".{target.name}.tmp-"
    for candidate in target.parent.glob(prefix + "*"):
        pid, _, rest = candidate.name[len(prefix) :].partition(".")
        if rest in ("wal", "spill") and pid.isdigit() and not pid_alive(int(pid)):
            if candidate.is_dir():
                shutil.rmtree(candidate, ignore_errors=True)
            else:
                candidate.unlink(missing_ok=True)
