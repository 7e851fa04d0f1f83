"""The warehouse's tables in SQL: the analysts' tables, generated from the stream schemas
(`centra_pipeline/streams/`), and the pipeline's own bookkeeping in schema `pipeline`
(cursors, the load log, how far the webhook inbox is applied, fields no column maps).
`ensure_schema` creates what is missing and adds columns a table gained since it was made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from centra_pipeline.storage.sql import main_table, quote_ident
from centra_pipeline.streams import TABLES, Table
from centra_pipeline.streams.model import META_TYPES, warehouse_meta


@dataclass
class StreamState:
    stream: str
    cursor: str | None = None
    updated_at: datetime | None = None
    last_load_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


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
        last_seen TIMESTAMPTZ,
        acknowledged_at TIMESTAMPTZ
    )""",
]


def has_table(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchall()[0][0]
    )


def read_state(con: duckdb.DuckDBPyConnection, stream: str) -> StreamState:
    rows = con.execute(
        "SELECT cursor, updated_at, last_load_id, extra FROM pipeline.sync_state WHERE stream = ?",
        [stream],
    ).fetchall()
    if not rows:
        return StreamState(stream)
    row = rows[0]
    return StreamState(stream, row[0], row[1], row[2], json.loads(row[3]) if row[3] else {})


@dataclass
class UnmappedField:
    """A field Centra sends that no column maps (kept in `_extra` and the lake's raw JSON)."""

    stream: str
    field: str  # "table.field"
    json_types: str
    occurrences: int
    first_seen: datetime | None
    last_seen: datetime | None
    acknowledged_at: datetime | None = None

    @property
    def table(self) -> str:
        return self.field.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.field.split(".", 1)[1]


def _columns_of(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchall()
    }


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create what is missing; add columns that the schema gained since the table was made."""
    for statement in PIPELINE_DDL:
        con.execute(statement)
    load_log_columns = _columns_of(con, "pipeline", "load_log")
    if "reconciled" not in load_log_columns:  # warehouses made before reconciliation
        con.execute("ALTER TABLE pipeline.load_log ADD COLUMN reconciled JSON")
    drift_columns = _columns_of(con, "pipeline", "schema_drift")
    if "acknowledged_at" not in drift_columns:  # warehouses made before acknowledgements
        con.execute("ALTER TABLE pipeline.schema_drift ADD COLUMN acknowledged_at TIMESTAMPTZ")
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
