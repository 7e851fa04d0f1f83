"""The one place Dagster definitions are assembled (`dagster dev` loads this module through
workspace.yaml).

Settings are read once, here, and passed down: the schedules' crons, the executor of
scheduled runs and the freshness windows that follow the sync's cron. Loading never needs
Centra configured: without it the definitions still load, the schedules and sensors start
stopped, and a run fails with a message saying what to set. With the Order API configured
they start running, so the sync and webhook refreshes happen without a click.
"""

from __future__ import annotations

import dagster as dg

from centra_pipeline.defs.all_stores import (
    all_stores_job,
    all_stores_snapshot,
    build_all_stores_sensor,
)
from centra_pipeline.defs.assets import all_assets
from centra_pipeline.defs.freshness import Windows, build_freshness
from centra_pipeline.defs.jobs import (
    ORDER_REFRESH_JOB_NAME,
    RECONCILE_JOB_NAME,
    SYNC_JOB_NAME,
    build_jobs,
)
from centra_pipeline.defs.maintenance import maintenance_job, maintenance_schedule
from centra_pipeline.defs.resources import CentraResource, StorageResource
from centra_pipeline.defs.schedules import freshness_windows, reconcile_schedule, sync_schedule
from centra_pipeline.defs.sensors import build_order_webhook_sensor
from centra_pipeline.settings import ConfigError, Settings, environment
from centra_pipeline.stores import DEFAULT_STORE, ENV_STORES_FILE, load_stores
from centra_pipeline.sync.allocators import lean_allocators

lean_allocators()  # a run worker loads this before its threads start (sync/allocators.py)


def _settings() -> tuple[Settings, list[str], bool, bool]:
    """The deployment's settings, its store names (the partitions), whether Centra is
    configured, and whether a stores file is in use. With invalid single-store settings
    the defaults load, and every run fails with the configuration's own message. A bad
    stores file fails loading instead, with its message in the UI's code location:
    nothing runs on half a list of stores."""
    if environment().get(ENV_STORES_FILE, "").strip():
        stores = load_stores()
        first = next(iter(stores.settings.values()))
        return first, stores.names, True, True
    try:
        settings = Settings.from_env()
    except ConfigError:
        return Settings(), [DEFAULT_STORE], False, False
    return settings, [DEFAULT_STORE], not settings.missing_order_api(), False


def build_definitions() -> dg.Definitions:
    settings, store_names, configured, many = _settings()
    stores = dg.StaticPartitionsDefinition(store_names)
    schedules_on = (
        dg.DefaultScheduleStatus.RUNNING if configured else dg.DefaultScheduleStatus.STOPPED
    )
    sensors_on = dg.DefaultSensorStatus.RUNNING if configured else dg.DefaultSensorStatus.STOPPED
    warn, fail = freshness_windows(settings.sync_cron)
    # Dagster evaluates a FreshnessPolicy on the latest materialization of any partition:
    # true with one store, not with many, where the per-store checks say it instead.
    freshness = None if many else dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)
    jobs = build_jobs(settings.sync_executor)
    freshness_checks, freshness_sensor, freshness_job = build_freshness(
        stores, Windows(warn, fail), sensors_on
    )
    return dg.Definitions(
        assets=[*all_assets(freshness, stores), *([all_stores_snapshot] if many else [])],
        asset_checks=[freshness_checks],
        jobs=[*jobs.values(), freshness_job, maintenance_job, *([all_stores_job] if many else [])],
        schedules=[
            sync_schedule(jobs[SYNC_JOB_NAME], settings.sync_cron, schedules_on, store_names),
            reconcile_schedule(
                jobs[RECONCILE_JOB_NAME], settings.reconcile_cron, schedules_on, store_names
            ),
            maintenance_schedule(maintenance_job, settings.maintenance_cron, schedules_on),
        ],
        sensors=[
            freshness_sensor,
            build_order_webhook_sensor(jobs[ORDER_REFRESH_JOB_NAME], sensors_on),
            *([build_all_stores_sensor(sensors_on)] if many else []),
        ],
        resources={"centra": CentraResource(), "storage": StorageResource()},
    )


defs = build_definitions()
