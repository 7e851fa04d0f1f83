"""Data quality checks as plain SQL over a warehouse connection (Dagster wraps them as asset
checks; tests call them directly). Each check tests one property and returns what it found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from centra_pipeline.storage.sql import main_table, quote_ident
from centra_pipeline.storage.warehouse_schema import UnmappedField
from centra_pipeline.streams import TABLES, Table
from centra_pipeline.sync.reconcile import Drift


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


def schema_drift(fields: list[UnmappedField], table: Table) -> CheckOutcome:
    """Warn about fields Centra sends that no column maps (kept in `_extra` and the lake).

    Judged on everything the warehouse has recorded for the table (pipeline.schema_drift),
    not on one load: a webhook refresh of three orders without the field must not flip the
    check to passed until the next hourly sync flips it back. A field someone acknowledged
    (`centra-pipeline schema-drift --acknowledge`) or that a column now maps stops warning.
    """
    mapped = table.known_keys()
    mine = [f for f in fields if f.table == table.name and f.name not in mapped]
    open_ = [f for f in mine if f.acknowledged_at is None]
    acknowledged = sorted(f.name for f in mine if f.acknowledged_at is not None)
    metadata: dict[str, Any] = {
        "unmapped_fields": sorted(f.name for f in open_),
        "acknowledged_fields": acknowledged,
        "occurrences": sum(f.occurrences for f in open_),
    }
    if not open_:
        note = f" ({len(acknowledged)} acknowledged)" if acknowledged else ""
        return CheckOutcome(
            True, f"{table.name}: every field Centra sent is mapped{note}", metadata
        )
    listed = ", ".join(
        f"{f.name} ({f.occurrences}× {f.json_types.replace(',', '/')})"
        for f in sorted(open_, key=lambda f: f.name)
    )
    return CheckOutcome(
        False,
        f"{table.name}: Centra sent fields no column maps: {listed}. They are kept in the "
        "`_extra` column and in the lake's raw JSON; `centra-pipeline schema-drift "
        "--acknowledge TABLE.FIELD` stops the warning for a field you know about.",
        metadata,
    )


def reconcile_drift(found: Drift | None, warn_share: float) -> CheckOutcome:
    """Warn when a reconciliation repaired more than `warn_share` of what it read."""
    if found is None:
        return CheckOutcome(True, "no reconciliation was merged in this run", {})
    metadata = {**found.as_dict(), "warn_share": warn_share}
    if found.share > warn_share:
        return CheckOutcome(
            False,
            f"the reconciliation repaired {found.repaired:,} of {found.read:,} records "
            f"({found.share:.2%}, more than {warn_share:.2%}): {found.new:,} new, "
            f"{found.changed:,} changed, {found.missing:,} missing. Incremental reads and "
            "webhooks missed these changes; check the webhook receiver and the lookback",
            metadata,
        )
    return CheckOutcome(
        True,
        f"repaired {found.repaired:,} of {found.read:,} records ({found.share:.2%})",
        metadata,
    )
