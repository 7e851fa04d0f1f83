"""Publishing the analyst snapshot: a checkpointed copy of the warehouse, swapped in with
`os.replace` so that an analyst never sees a half-written file and never blocks a run.

With CENTRA_PII=hash or drop the copy is made table by table instead of byte for byte: the
personal columns (docs/tables.md) become a keyed hash (HMAC-SHA256, e-mail normalised to
trimmed lower case first, so joins and distinct counts still work) or are left out. The
snapshot file never held the plain values, so none linger in its free blocks."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from centra_pipeline.storage.lake import pid_alive
from centra_pipeline.storage.sql import ident_list, quote_ident, string_literal
from centra_pipeline.storage.warehouse_schema import ensure_schema
from centra_pipeline.testing.failpoints import failpoint

if TYPE_CHECKING:
    from centra_pipeline.storage.warehouse import Warehouse


def publish(
    warehouse: Warehouse, snapshot_path: Path, pii: str = "keep", key: bytes | None = None
) -> dict[str, Any]:
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
    with warehouse.locked(exclusive=True):
        con = warehouse.connect(read_only=False)
        try:
            ensure_schema(con)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        wal = warehouse.path.with_name(warehouse.path.name + ".wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise RuntimeError(f"{wal} still holds changes after a checkpoint; not publishing")
        if pii == "keep":
            shutil.copyfile(warehouse.path, tmp)
        else:
            copy_database(warehouse.path, tmp, pii=pii, key=key)
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
        "personal_data": pii,
    }


def copy_database(
    source: Path, target: Path, *, pii: str = "keep", key: bytes | None = None
) -> None:
    """Copy a DuckDB file into a fresh one, which holds none of the blocks the source freed
    (erasure), with personal columns hashed or left out for CENTRA_PII=hash or drop."""
    from centra_pipeline.streams import TABLES
    from centra_pipeline.streams.personal import PERSON_FIELDS

    if pii not in ("keep", "hash", "drop"):
        raise ValueError(f"CENTRA_PII must be keep, hash or drop, not {pii!r}")
    if pii == "hash" and not key:
        raise ValueError("CENTRA_PII=hash needs a key")
    target.unlink(missing_ok=True)
    con = duckdb.connect(config={"memory_limit": "192MB", "threads": 2})
    try:
        if pii == "hash":
            con.create_function(
                "pii_hmac",
                _hmac_column(key),
                [duckdb.sqltype("VARCHAR")],
                duckdb.sqltype("VARCHAR"),
                type="arrow",
            )
        con.execute(f"ATTACH {string_literal(str(source))} AS src (READ_ONLY)")
        con.execute(f"ATTACH {string_literal(str(target))} AS dst")
        if pii == "keep":
            con.execute("COPY FROM DATABASE src TO dst")
            con.execute("DETACH dst")
            return
        con.execute("COPY FROM DATABASE src TO dst (SCHEMA)")
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'src'"
        ).fetchall()
        for schema, name in tables:
            table = TABLES.get(name) if schema == "main" else None
            personal = [c.name for c in table.personal_columns] if table else []
            emails = {
                c.name
                for c in (table.columns if table else ())
                if c.source in PERSON_FIELDS.get(name, ("", ()))[1]
            }
            qualified = f"{quote_ident(schema)}.{quote_ident(name)}"
            select = "*"
            if personal and pii == "drop":
                for column in personal:
                    con.execute(f"ALTER TABLE dst.{qualified} DROP COLUMN {quote_ident(column)}")
                select = f"* EXCLUDE ({ident_list(personal)})"
            elif personal:
                replaced = ", ".join(
                    f"pii_hmac({'lower(trim(' if c in emails else 'trim('}{quote_ident(c)}"
                    f"{'))' if c in emails else ')'}) AS {quote_ident(c)}"
                    for c in personal
                )
                select = f"* REPLACE ({replaced})"
            con.execute(f"INSERT INTO dst.{qualified} SELECT {select} FROM src.{qualified}")
        con.execute("DETACH dst")
    finally:
        con.close()


def _hmac_column(key: bytes):
    from centra_pipeline.streams.personal import email_hmac

    def apply(values: pa.Array) -> pa.Array:
        return pa.array(
            [None if v is None else email_hmac(key, v) for v in values.to_pylist()], pa.string()
        )

    return apply


def _remove_abandoned_copies(snapshot_path: Path) -> None:
    """Half-written snapshot copies of publishers that died (their pid is gone)."""
    for candidate in snapshot_path.parent.glob(f".{snapshot_path.name}.tmp-*"):
        pid = candidate.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            candidate.unlink(missing_ok=True)
