"""The schedules, and the freshness expected of the tables they keep up to date.

Both schedules take their cron from settings (CENTRA_SYNC_CRON, CENTRA_RECONCILE_CRON), so
their names say what they do, not how often, and their descriptions are written from the
cron itself. Freshness windows follow the sync's cron: a table warns when one and a half
sync intervals have passed without a merge and fails after two (one missed run is
tolerated).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._utils.schedules import cron_string_iterator

SYNC_SCHEDULE_NAME = "centra_sync_schedule"
RECONCILE_SCHEDULE_NAME = "centra_reconcile"
SCHEDULE_TIMEZONE = "UTC"  # Dagster's default execution timezone, said in each description

_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


def describe_cron(cron: str) -> str:
    """Common cron expressions in words (`*/5 * * * *` → "every 5 minutes"); anything else
    as the expression itself. Always names the timezone."""
    minute, hour, day, month, weekday = cron.split()
    at = f"{int(hour):02d}:{int(minute):02d}" if hour.isdigit() and minute.isdigit() else None
    words = None
    if (day, month) == ("*", "*"):
        if hour == "*" and weekday == "*":
            if minute == "*":
                words = "every minute"
            elif minute.startswith("*/") and minute[2:].isdigit():
                words = f"every {int(minute[2:])} minutes"
            elif minute.isdigit():
                words = (
                    "every hour on the hour" if minute == "0" else f"every hour at :{minute:0>2}"
                )
        elif hour.startswith("*/") and hour[2:].isdigit() and minute.isdigit() and weekday == "*":
            words = f"every {int(hour[2:])} hours at :{minute:0>2}"
        elif at and weekday == "*":
            words = f"every day at {at}"
        elif at and weekday.isdigit() and int(weekday) % 7 < 7:
            words = f"every {_DAYS[int(weekday) % 7]} at {at}"
    text = words or f"on cron `{cron}`"
    return (
        f"{text} ({SCHEDULE_TIMEZONE}, cron `{cron}`)" if words else f"{text} ({SCHEDULE_TIMEZONE})"
    )


def cron_interval(cron: str) -> timedelta:
    """The longest gap between two consecutive ticks of `cron` over the next weeks."""
    start = datetime(2026, 1, 5, tzinfo=UTC).timestamp()  # a fixed Monday: deterministic
    ticks = list(itertools.islice(cron_string_iterator(start, cron, SCHEDULE_TIMEZONE), 400))
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    return max(gaps) if gaps else timedelta(days=1)


def freshness_windows(sync_cron: str) -> tuple[timedelta, timedelta]:
    """(warn, fail) windows for the tables the sync keeps fresh."""
    interval = cron_interval(sync_cron)
    return interval * 1.5, interval * 2


def sync_schedule(
    job: dg.UnresolvedAssetJobDefinition,
    cron: str,
    default_status: dg.DefaultScheduleStatus,
    stores: list[str],
) -> dg.ScheduleDefinition:
    description = (
        f"Incremental sync of all streams of {_each(stores)}, {describe_cron(cron)}; set "
        "CENTRA_SYNC_CRON to change when."
    )
    return _schedule(SYNC_SCHEDULE_NAME, job, cron, default_status, description, stores)


def reconcile_schedule(
    job: dg.UnresolvedAssetJobDefinition,
    cron: str,
    default_status: dg.DefaultScheduleStatus,
    stores: list[str],
) -> dg.ScheduleDefinition:
    description = (
        f"Reconciliation of {_each(stores)}, {describe_cron(cron)} (CENTRA_RECONCILE_CRON): "
        "open orders and returns; once every CENTRA_RECONCILE_FULL_DAYS, every order, "
        "return, customer, product and stock item and the catalogue."
    )
    return _schedule(RECONCILE_SCHEDULE_NAME, job, cron, default_status, description, stores)


def _each(stores: list[str]) -> str:
    return "the store" if len(stores) == 1 else f"each of the {len(stores)} stores (one run each)"


def _schedule(
    name: str,
    job: dg.UnresolvedAssetJobDefinition,
    cron: str,
    default_status: dg.DefaultScheduleStatus,
    description: str,
    stores: list[str],
) -> dg.ScheduleDefinition:
    """One run per store each tick (its partition), keyed by store and tick so that a tick
    evaluated twice starts no store twice; the run queue runs different stores at once and
    one store's runs one at a time (dagster.yaml)."""

    def requests(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
        tick = context.scheduled_execution_time
        stamp = tick.isoformat() if tick else "now"
        for store in stores:
            yield dg.RunRequest(run_key=f"{store}@{stamp}", partition_key=store)

    return dg.ScheduleDefinition(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone=SCHEDULE_TIMEZONE,
        default_status=default_status,
        description=description,
        execution_fn=requests,
    )
