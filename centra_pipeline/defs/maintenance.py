"""The maintenance job and its weekly schedule: compact the lake, prune the webhook inbox and
delete old webhook refresh runs (docs/architecture.md, "The lake over years").

The job carries the warehouse writers' tag, so it queues with the syncs and refreshes, and
compaction holds the warehouse's writer lock besides. Each lake asset gets an observation
with its file count before and after, so the UI shows what compaction did.

(No `from __future__ import annotations`: Dagster reads the op's config type at runtime.)
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from centra_pipeline.defs.jobs import ORDER_REFRESH_JOB_NAME
from centra_pipeline.defs.keys import WAREHOUSE_WRITER_TAG, lake_key
from centra_pipeline.defs.resources import StorageResource
from centra_pipeline.defs.schedules import describe_cron
from centra_pipeline.settings import ConfigError, Settings
from centra_pipeline.storage.backends import lake_for
from centra_pipeline.storage.compact import compact_lake
from centra_pipeline.storage.warehouse import Warehouse
from centra_pipeline.streams import STREAMS, Stream

MAINTENANCE_JOB_NAME = "centra_maintenance"
MAINTENANCE_SCHEDULE_NAME = "centra_maintenance_schedule"
_FINISHED = [
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
]


class MaintenanceConfig(dg.Config):
    """Run config; unset values come from settings (CENTRA_COMPACT_OLDER_THAN_DAYS, ...)."""

    streams: list[str] = Field(default_factory=list)  # default: every stream
    stores: list[str] = Field(default_factory=list)  # default: every store
    compact_older_than_days: float | None = None
    inbox_retention_days: float | None = None
    refresh_run_retention_days: float | None = None


@dg.op(
    name="lake_maintenance",
    description="For each store: compact each stream's lake loads into one segment per "
    "month and delete applied webhook events past retention; then delete webhook refresh "
    "runs past retention.",
)
def lake_maintenance(
    context: dg.OpExecutionContext, config: MaintenanceConfig, storage: StorageResource
) -> None:
    unknown = [name for name in config.streams if name not in STREAMS]
    if unknown:
        raise dg.Failure(f"unknown stream {', '.join(unknown)}; streams are {', '.join(STREAMS)}")
    streams = [STREAMS[name] for name in config.streams or STREAMS]
    try:
        stores = storage.stores().select(config.stores)
    except ConfigError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    for settings in stores:  # one store at a time: each holds its own writer lock
        _maintain(context, config, storage, settings, streams)
    run_days = _days(config.refresh_run_retention_days, stores[0].refresh_run_retention_days)
    deleted = delete_refresh_runs(context.instance, datetime.now(UTC) - run_days)
    context.log.info(f"{deleted} webhook refresh runs older than {_in_days(run_days)} deleted")


def _maintain(
    context: dg.OpExecutionContext,
    config: MaintenanceConfig,
    storage: StorageResource,
    settings: Settings,
    streams: list[Stream],
) -> None:
    warehouse = storage.warehouse(settings)
    older_than = _days(config.compact_older_than_days, settings.compact_older_than_days)
    results = compact_lake(
        warehouse,
        lake_for(settings),
        streams,
        older_than=older_than,
        on_month=lambda s, m, n: context.log.info(
            f"{settings.store}: {s} {m}: compacting {n} loads and segments"
        ),
    )
    for result in results:
        context.log_event(
            dg.AssetObservation(
                asset_key=lake_key(STREAMS[result.stream]),
                partition=settings.store,
                metadata={
                    "files_before": result.files_before,
                    "files_after": result.files_after,
                    "loads_compacted": result.loads,
                    "segments_written": len(result.segments),
                    "left_unmerged": result.left_unmerged,
                    "left_older_schema": len(result.left_older_schema),
                    "seconds": result.seconds,
                },
            )
        )
    inbox_days = _days(config.inbox_retention_days, settings.inbox_retention_days)
    pruned = prune_inbox(settings, warehouse, datetime.now(UTC) - inbox_days)
    context.log.info(
        f"{settings.store}: webhook inbox: {pruned} applied events older than "
        f"{_in_days(inbox_days)} deleted"
    )


def _days(configured: float | None, default: float) -> timedelta:
    return timedelta(days=default if configured is None else configured)


def _in_days(delta: timedelta) -> str:
    return f"{delta / timedelta(days=1):g} days"


def prune_inbox(settings: Settings, warehouse: Warehouse, received_before: datetime) -> int:
    """Delete inbox events the warehouse has applied that arrived before `received_before`."""
    from centra_pipeline.webhooks.inboxes import InboxRef

    ref = InboxRef.of(settings)
    if not ref.exists():
        return 0
    with ref.open() as inbox:
        applied = warehouse.inbox_applied(inbox.inbox_id)
        return inbox.prune(applied, received_before)


def delete_refresh_runs(instance: dg.DagsterInstance, created_before: datetime) -> int:
    """Delete finished webhook refresh runs (and their events) created before the cutoff,
    keeping the newest one whatever its age."""
    newest = instance.get_runs(dg.RunsFilter(job_name=ORDER_REFRESH_JOB_NAME), limit=1)
    keep = {run.run_id for run in newest}
    deleted = 0
    while True:
        old = instance.get_runs(
            dg.RunsFilter(
                job_name=ORDER_REFRESH_JOB_NAME, statuses=_FINISHED, created_before=created_before
            ),
            limit=500,
        )
        old = [run for run in old if run.run_id not in keep]
        if not old:
            return deleted
        for run in old:
            instance.delete_run(run.run_id)
            deleted += 1


@dg.job(
    name=MAINTENANCE_JOB_NAME,
    description="Weekly upkeep: lake compaction, webhook inbox retention, refresh run retention.",
    tags={WAREHOUSE_WRITER_TAG: "true"},
    executor_def=dg.in_process_executor,
)
def maintenance_job() -> None:
    lake_maintenance()


def maintenance_schedule(
    job: dg.JobDefinition, cron: str, default_status: dg.DefaultScheduleStatus
) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=MAINTENANCE_SCHEDULE_NAME,
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=default_status,
        description=f"Lake compaction and retention, {describe_cron(cron)} "
        "(CENTRA_MAINTENANCE_CRON).",
    )
