"""Jobs and the hourly schedule.

Runs that write the warehouse carry the tag `centra_pipeline/warehouse_writer`; the instance's
run queue (dagster.yaml) lets one such run in progress at a time, so a webhook refresh that
arrives during the hourly sync waits its turn instead of failing. Inside a run, streams extract
in parallel steps and their merges queue on the warehouse lock.
"""

from __future__ import annotations

import dagster as dg

from centra_pipeline.defs.assets import (
    RECONCILE_CHECK,
    SNAPSHOT_KEY,
    STREAM_ASSETS,
    WAREHOUSE_WRITER_TAG,
    lake_key,
    table_key,
)
from centra_pipeline.settings import ConfigError, Settings, environment
from centra_pipeline.streams import STREAMS

SYNC_JOB_NAME = "centra_sync"
ORDER_REFRESH_JOB_NAME = "centra_order_refresh"
HOURLY_SCHEDULE_NAME = "centra_hourly_sync"
RECONCILE_JOB_NAME = "centra_reconciliation"
RECONCILE_SCHEDULE_NAME = "centra_reconcile"

# Scheduled runs: streams extract in parallel step processes (extraction is I/O-bound, so all
# at once even on 2 cores), forked from a server that has imported Dagster and this project.
# `centra-pipeline sync` runs the same job in process (run config `in_process`): each step
# process costs seconds of Dagster start-up (instance, storage checks), which on a small
# machine outweighs what parallel extraction saves.
MULTIPROCESS_RUN_CONFIG = {
    "execution": {
        "config": {
            "multiprocess": {
                "max_concurrent": len(STREAMS) + 1,
                "start_method": {
                    "forkserver": {"preload_modules": ["centra_pipeline.definitions"]}
                },
            }
        }
    }
}
IN_PROCESS_RUN_CONFIG = {"execution": {"config": {"in_process": {}}}}
ENV_SYNC_EXECUTOR = "CENTRA_SYNC_EXECUTOR"


def scheduled_run_config() -> dict:
    """`CENTRA_SYNC_EXECUTOR=in_process` runs scheduled syncs in one process: better on a
    small machine that also hosts the emulator (the live demo does this)."""
    choice = environment().get(ENV_SYNC_EXECUTOR, "multiprocess").strip().lower()
    if choice not in ("multiprocess", "in_process"):
        raise ValueError(f"{ENV_SYNC_EXECUTOR} must be multiprocess or in_process, not {choice!r}")
    return IN_PROCESS_RUN_CONFIG if choice == "in_process" else MULTIPROCESS_RUN_CONFIG


def sync_keys(
    streams: list[str] | None = None, *, reconcile: bool = False
) -> tuple[set[dg.AssetKey], set[dg.AssetCheckKey]]:
    """What a sync of `streams` (default all) materializes and checks: each stream's lake and
    tables, the snapshot, and the checks the stream steps evaluate. Freshness checks are left
    to `centra_freshness_checks_sensor`: inside the run that has just merged the table they
    could only pass, and they would cost every run a step. The reconciliation check belongs
    to reconciliation runs (`reconcile=True`) only."""
    names = streams or list(STREAMS)
    assets: set[dg.AssetKey] = {SNAPSHOT_KEY}
    checks: set[dg.AssetCheckKey] = set()
    for name in names:
        stream = STREAMS[name]
        assets.add(lake_key(stream))
        assets.update(table_key(t) for t in stream.tables)
        checks.update(
            key
            for key in STREAM_ASSETS[name].check_keys
            if reconcile or key.name != RECONCILE_CHECK
        )
    return assets, checks


def sync_selection(
    streams: list[str] | None = None, *, reconcile: bool = False
) -> dg.AssetSelection:
    assets, checks = sync_keys(streams, reconcile=reconcile)
    return dg.AssetSelection.assets(*assets).without_checks() | dg.AssetSelection.checks(*checks)


centra_sync_job = dg.define_asset_job(
    SYNC_JOB_NAME,
    selection=sync_selection(),
    description="Incremental sync of every stream from both Centra APIs, then publish the "
    "analyst snapshot.",
    tags={WAREHOUSE_WRITER_TAG: "true"},
    executor_def=dg.multi_or_in_process_executor,
    config=scheduled_run_config(),
)

centra_order_refresh_job = dg.define_asset_job(
    ORDER_REFRESH_JOB_NAME,
    selection=sync_selection(["orders"]),
    description="Re-read specific orders by number (GET /orders?order=N), merge them like the "
    "hourly sync does and republish. Started by centra_order_webhook_sensor.",
    tags={WAREHOUSE_WRITER_TAG: "true", "dagster/max_retries": "2"},
    executor_def=dg.in_process_executor,
)


RECONCILE_OPS_CONFIG = {f"sync_{name}": {"config": {"mode": "reconcile_auto"}} for name in STREAMS}

centra_reconcile_job = dg.define_asset_job(
    RECONCILE_JOB_NAME,
    selection=sync_selection(reconcile=True),
    description="Reconciliation: re-read what incremental reads cannot see and repair the "
    "drift. Each stream gets the full pass (every record re-read) when its last one is "
    "CENTRA_RECONCILE_FULL_DAYS old (default 7), else the pass over open orders and returns. "
    "Lands only changed records, marks records Centra no longer serves as missing, records "
    "the drift repaired, then republishes.",
    tags={WAREHOUSE_WRITER_TAG: "true"},
    executor_def=dg.multi_or_in_process_executor,
    config={**scheduled_run_config(), "ops": RECONCILE_OPS_CONFIG},
)


def reconcile_schedule(default_status: dg.DefaultScheduleStatus) -> dg.ScheduleDefinition:
    try:
        cron = Settings.from_env().reconcile_cron
    except ConfigError:
        cron = Settings.reconcile_cron  # a run then fails with the configuration's message
    return dg.ScheduleDefinition(
        name=RECONCILE_SCHEDULE_NAME,
        job=centra_reconcile_job,
        cron_schedule=cron,
        default_status=default_status,
        description="Daily (CENTRA_RECONCILE_CRON): reconcile open orders and returns; once "
        "every CENTRA_RECONCILE_FULL_DAYS, every order, return, customer, product and stock "
        "item and the catalogue.",
    )


def hourly_schedule(
    default_status: dg.DefaultScheduleStatus, cron: str = "0 * * * *"
) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=HOURLY_SCHEDULE_NAME,
        job=centra_sync_job,
        cron_schedule=cron,
        default_status=default_status,
        description="Every hour on the hour: incremental sync of all streams.",
    )


__all__ = [
    "STREAM_ASSETS",
    "centra_order_refresh_job",
    "centra_reconcile_job",
    "centra_sync_job",
    "hourly_schedule",
    "reconcile_schedule",
]
