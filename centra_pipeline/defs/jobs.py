"""Jobs: the sync, the webhook refresh and the reconciliation.

Runs that write the warehouse carry the tag `centra_pipeline/warehouse_writer`; the instance's
run queue (dagster.yaml) lets one such run in progress at a time, so a webhook refresh that
arrives during the sync waits its turn instead of failing. Inside a run, streams read
concurrently in one step and merge one at a time as their reads land.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from centra_pipeline.defs.checks import CHECKS, RECONCILE_ONLY
from centra_pipeline.defs.keys import (
    SNAPSHOT_KEY,
    SYNC_STEP,
    WAREHOUSE_WRITER_TAG,
    lake_key,
    table_key,
)
from centra_pipeline.streams import STREAMS

SYNC_JOB_NAME = "centra_sync"
ORDER_REFRESH_JOB_NAME = "centra_order_refresh"
RECONCILE_JOB_NAME = "centra_reconciliation"

# The streams read concurrently inside one step (defs/assets.py), so a run has two steps,
# the sync and the snapshot, and in process is the default: a step process would cost
# seconds of Dagster start-up for nothing to run beside it. `multiprocess` runs each step in
# a child process forked from a server that has imported the project (memory isolation for
# a long-lived run worker).
MULTIPROCESS_RUN_CONFIG = {
    "execution": {
        "config": {
            "multiprocess": {
                "max_concurrent": 2,
                "start_method": {
                    "forkserver": {"preload_modules": ["centra_pipeline.definitions"]}
                },
            }
        }
    }
}
IN_PROCESS_RUN_CONFIG = {"execution": {"config": {"in_process": {}}}}
RUN_CONFIGS = {"multiprocess": MULTIPROCESS_RUN_CONFIG, "in_process": IN_PROCESS_RUN_CONFIG}
RECONCILE_OPS_CONFIG = {SYNC_STEP: {"config": {"mode": "reconcile_auto"}}}


def sync_run_config(streams: dict[str, dict[str, Any]] | None = None, **every: Any) -> dict:
    """The `ops` run config of the sync step: `every` for all streams, `streams` per stream
    (replacing `every` for that stream)."""
    return {SYNC_STEP: {"config": {**every, "streams": streams or {}}}}


def refresh_run_config(orders: list[int], inbox_through: int) -> dict[str, Any]:
    """A webhook refresh: re-read these orders, apply the inbox's events up to the seq."""
    return sync_run_config(
        {"orders": {"mode": "refresh", "keys": orders, "inbox_through": inbox_through}}
    )


def sync_keys(
    streams: list[str] | None = None, *, reconcile: bool = False
) -> tuple[set[dg.AssetKey], set[dg.AssetCheckKey]]:
    """What a sync of `streams` (default all) materializes and checks: each stream's lake and
    tables, the snapshot, and the checks the stream steps evaluate. Freshness checks are left
    to their sensor: inside the run that has just merged the table they could only pass, and
    they would cost every run a step. The reconciliation check belongs to reconciliation
    runs (`reconcile=True`) only."""
    assets: set[dg.AssetKey] = {SNAPSHOT_KEY}
    checks: set[dg.AssetCheckKey] = set()
    for name in streams or list(STREAMS):
        stream = STREAMS[name]
        assets.add(lake_key(stream))
        for table in stream.tables:
            assets.add(table_key(table))
            checks.update(
                dg.AssetCheckKey(table_key(table), check.name_for(table))
                for check in CHECKS
                if check.applies(table) and (reconcile or check.name not in RECONCILE_ONLY)
            )
    return assets, checks


def sync_selection(
    streams: list[str] | None = None, *, reconcile: bool = False
) -> dg.AssetSelection:
    assets, checks = sync_keys(streams, reconcile=reconcile)
    return dg.AssetSelection.assets(*assets).without_checks() | dg.AssetSelection.checks(*checks)


def build_jobs(executor: str) -> dict[str, Any]:
    """The three jobs; scheduled ones run with `executor` (CENTRA_SYNC_EXECUTOR)."""
    run_config = RUN_CONFIGS[executor]
    return {
        SYNC_JOB_NAME: dg.define_asset_job(
            SYNC_JOB_NAME,
            selection=sync_selection(),
            description="Incremental sync of every stream from both Centra APIs, then publish "
            "the analyst snapshot.",
            tags={WAREHOUSE_WRITER_TAG: "true"},
            executor_def=dg.multi_or_in_process_executor,
            config=run_config,
        ),
        ORDER_REFRESH_JOB_NAME: dg.define_asset_job(
            ORDER_REFRESH_JOB_NAME,
            selection=sync_selection(["orders"]),
            description="Re-read specific orders by number (GET /orders?order=N), merge them "
            "like the sync does and republish. Started by centra_order_webhook_sensor.",
            tags={WAREHOUSE_WRITER_TAG: "true", "dagster/max_retries": "2"},
            executor_def=dg.in_process_executor,
        ),
        RECONCILE_JOB_NAME: dg.define_asset_job(
            RECONCILE_JOB_NAME,
            selection=sync_selection(reconcile=True),
            description="Reconciliation: re-read what incremental reads cannot see and repair "
            "the drift. Each stream gets the full pass (every record re-read) when its last "
            "one is CENTRA_RECONCILE_FULL_DAYS old (default 7), else the pass over open orders "
            "and returns. Lands only changed records, marks records Centra no longer serves as "
            "missing, records the drift repaired, then republishes.",
            tags={WAREHOUSE_WRITER_TAG: "true"},
            executor_def=dg.multi_or_in_process_executor,
            config={**run_config, "ops": RECONCILE_OPS_CONFIG},
        ),
    }
