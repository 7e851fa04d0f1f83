"""The asset checks, in one table: each row makes the check spec of every table it applies
to and evaluates it after a merge, so the two cannot drift apart.

Each check tests one property (storage/quality.py has the SQL); primary-key uniqueness is
blocking, so a duplicate never reaches the snapshot. `reconcile_drift` runs in
reconciliation runs only (in other runs it could only pass).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import duckdb

from centra_pipeline.defs.keys import table_key
from centra_pipeline.storage import quality
from centra_pipeline.storage.warehouse_schema import UnmappedField
from centra_pipeline.streams import Table
from centra_pipeline.sync.stream_step import Merged

ERROR, WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN


@dataclass(frozen=True)
class CheckInputs:
    """What the checks of one table look at after its merge."""

    con: duckdb.DuckDBPyConnection
    merged: Merged
    unmapped: list[UnmappedField]
    warn_share: float


@dataclass(frozen=True)
class TableCheck:
    name: str  # "{parent}" is replaced by the parent table's name
    describe: Callable[[Table], str]
    evaluate: Callable[[CheckInputs, Table], quality.CheckOutcome]
    severity: dg.AssetCheckSeverity = ERROR
    blocking: bool = False
    applies: Callable[[Table], bool] = lambda table: True
    reconcile_only: bool = False

    def name_for(self, table: Table) -> str:
        return self.name.format(parent=table.parent)


CHECKS = (
    TableCheck(
        "primary_key_unique",
        lambda t: f"({', '.join(t.primary_key)}) is unique and not null",
        lambda i, t: quality.primary_key_unique(i.con, t),
        blocking=True,
    ),
    TableCheck(
        "required_not_null",
        lambda t: "required columns have no nulls",
        lambda i, t: quality.required_not_null(i.con, t),
    ),
    TableCheck(
        "references_{parent}",
        lambda t: f"every row belongs to a row of {t.parent}",
        lambda i, t: quality.references_parent(i.con, t),
        applies=lambda t: t.parent is not None,
    ),
    TableCheck(
        "schema_drift",
        lambda t: (
            "warns while Centra sends fields that no column maps and nobody has "
            "acknowledged (centra-pipeline schema-drift)"
        ),
        lambda i, t: quality.schema_drift(i.unmapped, t),
        severity=WARN,
    ),
    TableCheck(
        "reconcile_drift",
        lambda t: (
            "warns when a reconciliation repaired (new, changed or missing) more than "
            "CENTRA_RECONCILE_WARN_SHARE (default 1%) of what it read: the lookback and the "
            "webhooks are missing changes"
        ),
        lambda i, t: quality.reconcile_drift(i.merged.drift, i.warn_share),
        severity=WARN,
        applies=lambda t: t.is_parent,
        reconcile_only=True,
    ),
)
RECONCILE_ONLY = frozenset(c.name for c in CHECKS if c.reconcile_only)


def store_check_spec(
    name: str,
    key: dg.AssetKey,
    description: str,
    stores: dg.PartitionsDefinition,
    blocking: bool = False,
) -> dg.AssetCheckSpec:
    """A check spec partitioned like its table, by store: the UI shows each store's
    evaluations, and one store's failure is not hidden by another's pass. (Dagster calls
    partitioned checks a preview; its warning says nothing the tests do not cover.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name, asset=key, description=description, blocking=blocking, partitions_def=stores
        )


def check_specs(table: Table, stores: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    return [
        store_check_spec(
            check.name_for(table), table_key(table), check.describe(table), stores, check.blocking
        )
        for check in CHECKS
        if check.applies(table)
    ]


def check_results(
    selected: set[dg.AssetCheckKey], inputs: CheckInputs, table: Table
) -> list[dg.AssetCheckResult]:
    """The results of the table's checks that this run selected."""
    results = []
    for check in CHECKS:
        name = check.name_for(table)
        if not check.applies(table) or dg.AssetCheckKey(table_key(table), name) not in selected:
            continue
        outcome = check.evaluate(inputs, table)
        results.append(
            dg.AssetCheckResult(
                asset_key=table_key(table),
                check_name=name,
                passed=outcome.passed,
                severity=check.severity,
                description=outcome.description,
                metadata=outcome.metadata,
            )
        )
    return results
