"""The freshness-check sensor: Dagster's own evaluation of each stream's main table's
freshness check, targeting a named job and saying what it checks."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from centra_pipeline.streams import STREAMS

FRESHNESS_SENSOR_NAME = "centra_freshness_checks_sensor"
FRESHNESS_JOB_NAME = "centra_freshness_checks"


def build_freshness_sensor(
    checks: list[dg.AssetChecksDefinition],
    warn: timedelta,
    fail: timedelta,
    default_status: dg.DefaultSensorStatus,
) -> tuple[dg.SensorDefinition, dg.UnresolvedAssetJobDefinition]:
    """Dagster's freshness-check sensor, targeting a named job and saying what it checks.

    It evaluates each table's freshness check when it has never run and whenever the table
    could have become overdue since the last evaluation, in a run of the job
    `centra_freshness_checks`; the evaluation itself is Dagster's.
    """
    job = dg.define_asset_job(
        FRESHNESS_JOB_NAME,
        selection=dg.AssetSelection.checks(*checks),
        description="Evaluate whether each stream's main table was merged recently enough.",
    )
    builtin = dg.build_sensor_for_freshness_checks(
        freshness_checks=checks, name=FRESHNESS_SENSOR_NAME
    )
    sensor = dg.SensorDefinition(
        name=FRESHNESS_SENSOR_NAME,
        evaluation_fn=builtin._raw_fn,
        job=job,
        minimum_interval_seconds=60,
        default_status=default_status,
        description="Checks that every stream's main table ("
        + ", ".join(s.parent.name for s in STREAMS.values())
        + f") was merged within {_hours(fail)} (warning after "
        f"{_hours(warn)}), windows derived from CENTRA_SYNC_CRON. Evaluates a check when it "
        "has never run and when its table could have become overdue.",
    )
    return sensor, job


def _hours(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    return f"{minutes / 60:g} h" if minutes >= 120 else f"{minutes:g} min"
