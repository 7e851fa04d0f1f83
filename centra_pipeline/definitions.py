"""The one place Dagster definitions are assembled (`dagster dev` loads this module through
workspace.yaml).

Loading never needs Centra configuration: without it the definitions still load, the
schedule and the sensor start stopped, and a run fails with a message saying what to set.
With the Order API configured they start running, so the hourly sync and webhook refreshes
happen without a click.
"""

from __future__ import annotations

import os

import dagster as dg

from centra_pipeline.defs.assets import STREAM_ASSETS, centra_snapshot, source_specs
from centra_pipeline.defs.jobs import centra_order_refresh_job, centra_sync_job, hourly_schedule
from centra_pipeline.defs.resources import CentraResource
from centra_pipeline.defs.sensors import build_order_webhook_sensor
from centra_pipeline.settings import ConfigError, Settings

ENV_SYNC_CRON = "CENTRA_SYNC_CRON"  # the live demo syncs every few minutes, not hourly


def _configured() -> bool:
    try:
        settings = Settings.from_env()
    except ConfigError:
        return False
    return not settings.missing_order_api()


def build_definitions() -> dg.Definitions:
    running = _configured()
    cron = os.environ.get(ENV_SYNC_CRON, "").strip() or "0 * * * *"
    return dg.Definitions(
        assets=[*source_specs(), *STREAM_ASSETS.values(), centra_snapshot],
        jobs=[centra_sync_job, centra_order_refresh_job],
        schedules=[
            hourly_schedule(
                dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED,
                cron,
            )
        ],
        sensors=[
            build_order_webhook_sensor(
                dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
            )
        ],
        resources={"centra": CentraResource()},
    )


defs = build_definitions()
