"""Data quality checks as plain SQL over a warehouse connection (Dagster wraps them as asset
checks; tests call them directly). Each check tests one property and returns what it found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from centra_pipeline.storage.sql import main_table, quote_ident
from centra_pipeline.streams import TABLES, Table


@dataclass
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def primary_key_unique(con: duckdb.DuckDBPyConnection, table: Table) -> CheckOutcome:
    keys = ", ".join(quote_ident(k) for k in table.primary_key)
    duplicates, sample = con.execute(
        f"""SELECT count(*), any_value(k) FROM (
            SELECT ({keys})::VARCHAR AS k FROM {main_table(table.name)}
            GROUP BY {keys} HAVING count(*) > 1)"""
    ).fetchall()[0]
    null_keys = con.execute(
        f"SELECT count(*) FROM {main_table(table.name)} WHERE "
        + " OR ".join(f"{quote_ident(k)} IS NULL" for k in table.primary_key)
    ).fetchall()[0][0]
    passed = duplicates == 0 and null_keys == 0
    return CheckOutcome(
        passed,
        f"{table.name}: primary key ({', '.join(table.primary_key)}) is unique and not null"
        if passed
        else f"{table.name}: {duplicates} duplicated and {null_keys} null primary keys",
        {
            "duplicate_keys": duplicates,
            "null_keys": null_keys,
            **({"sample_duplicate": str(sample)} if sample is not None else {}),
        },
    )


def required_not_null(con: duckdb.DuckDBPyConnection, table: Table) -> CheckOutcome:
    required = [col.name for col in table.columns if col.required]
    if not required:
        return CheckOutcome(True, f"{table.name}: no required columns")
    counts = con.execute(
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE {quote_ident(c)} IS NULL)" for c in required)
        + f" FROM {main_table(table.name)}"
    ).fetchall()[0]
    nulls = {c: n for c, n in zip(required, counts, strict=True) if n}
    return CheckOutcome(
        not nulls,
        f"{table.name}: required columns are filled"
        if not nulls
        else f"{table.name}: nulls in required columns: "
        + ", ".join(f"{c} ({n})" for c, n in nulls.items()),
        {"columns_checked": len(required), **{f"nulls_{c}": n for c, n in nulls.items()}},
    )


def references_parent(con: duckdb.DuckDBPyConnection, child: Table) -> CheckOutcome:
    assert child.parent is not None
    parent = TABLES[child.parent]
    link = " AND ".join(
        f"p.{quote_ident(pk)} = c.{quote_ident(ck)}"
        for ck, pk in zip(child.parent_key, parent.primary_key, strict=True)
    )
    orphans, sample = con.execute(
        f"""SELECT count(*),
               any_value(({", ".join(f"c.{quote_ident(k)}" for k in child.parent_key)})::VARCHAR)
        FROM {main_table(child.name)} c
        WHERE NOT EXISTS (SELECT 1 FROM {main_table(parent.name)} p WHERE {link})"""
    ).fetchall()[0]
    return CheckOutcome(
        orphans == 0,
        f"every {child.name} row belongs to a row of {parent.name}"
        if orphans == 0
        else f"{orphans} {child.name} rows reference a missing {parent.name} row",
        {"orphans": orphans, **({"sample_parent_key": sample} if sample else {})},
    )


def schema_drift(load_drift: dict[str, dict[str, Any]], table: Table) -> CheckOutcome:
    """Warn about fields Centra sent that no column maps (kept in `_extra` and the lake)."""
    prefix = f"{table.name}."
    fields = {k[len(prefix) :]: v for k, v in load_drift.items() if k.startswith(prefix)}
    if not fields:
        return CheckOutcome(True, f"{table.name}: every field Centra sent is mapped")
    listed = ", ".join(
        f"{name} ({entry['count']}× {'/'.join(entry['types'])})"
        for name, entry in sorted(fields.items())
    )
    return CheckOutcome(
        False,
        f"{table.name}: Centra sent fields no column maps: {listed}. They are kept in the "
        "`_extra` column and in the lake's raw JSON.",
        {
            "unmapped_fields": sorted(fields),
            "occurrences": sum(v["count"] for v in fields.values()),
        },
    )
