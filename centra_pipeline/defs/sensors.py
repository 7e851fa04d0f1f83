"""`centra_order_webhook_sensor`: turn stored Centra order webhooks into targeted refresh runs.

Cursor in, cursor out: the cursor is the inbox sequence number of the last event that became
part of a run request, with the id of the inbox it belongs to (a replaced inbox starts its
sequence at 1 again, so an old cursor must not skip its events). Each tick reads a bounded
batch of order events after it, coalesces
their order numbers (Centra sends the same change several times) and requests one run of the
refresh job for exactly those orders. The run key is derived from the inbox sequence range,
so a tick evaluated twice cannot start two runs, and the cursor never moves past an event
that did not become a run.

An event whose id is not an order number is reported and passed over (it cannot become a
refresh); `delete` events are refreshed like updates: an order Centra no longer returns is
marked `_missing_since` in the warehouse rather than deleted (see docs/webhooks.md).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import dagster as dg

from centra_pipeline.defs.jobs import ORDER_REFRESH_JOB_NAME
from centra_pipeline.defs.keys import INBOX_SEQ_TAG, ORDER_COUNT_TAG
from centra_pipeline.settings import Settings
from centra_pipeline.streams import STREAMS
from centra_pipeline.webhooks.inbox import ORDER_REFRESH_TYPES, Inbox, InboxEvent

SENSOR_NAME = "centra_order_webhook_sensor"
MAX_EVENTS_PER_TICK = 5000
MAX_ORDERS_PER_RUN = 500


def plan_refresh(
    events: list[InboxEvent], max_orders: int | None = None
) -> tuple[list[int], int, list[str]]:
    """Coalesce order events into (order numbers, last seq covered, ids that are not numbers).

    Stops before the event that would add order number `max_orders + 1`, so the cursor only
    covers events whose orders are in the run.
    """
    max_orders = MAX_ORDERS_PER_RUN if max_orders is None else max_orders
    orders: list[int] = []
    seen: set[int] = set()
    invalid: list[str] = []
    last_seq = 0
    for event in events:
        try:
            number = int(event.object_id)
        except ValueError:
            invalid.append(event.object_id)
            last_seq = event.seq
            continue
        if number not in seen:
            if len(orders) >= max_orders:
                break
            seen.add(number)
            orders.append(number)
        last_seq = event.seq
    return orders, last_seq, invalid


def write_cursor(inbox_id: str, seq: int) -> str:
    return json.dumps({"inbox": inbox_id, "seq": seq})


def read_cursor(cursor: str | None, inbox_id: str) -> int:
    """The last seq turned into a run, if the cursor belongs to this inbox; else 0."""
    if not cursor:
        return 0
    try:
        data = json.loads(cursor)
    except ValueError:
        return 0
    if not isinstance(data, dict) or data.get("inbox") != inbox_id:
        return 0
    return int(data.get("seq", 0))


def build_order_webhook_sensor(
    job: dg.UnresolvedAssetJobDefinition, default_status: dg.DefaultSensorStatus
) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=5,
        default_status=default_status,
        description="Reads Centra order webhooks from the durable inbox and refreshes exactly "
        "the orders that changed (GET /orders?order=N), out of schedule.",
    )
    def centra_order_webhook_sensor(context: dg.SensorEvaluationContext):
        inbox_path = Settings.from_env().inbox_path
        if not inbox_path.exists():
            return dg.SkipReason(
                f"no webhook inbox at {inbox_path} yet (start `centra-pipeline webhook-server`)"
            )
        inbox_id, cursor, events, skip = _events_after_cursor(context, inbox_path)
        if skip is not None:
            return skip
        orders, last_seq, invalid = plan_refresh(events)
        if invalid:
            context.log.warning(
                "skipping %d order events whose id is not an order number: %s",
                len(invalid),
                ", ".join(invalid[:10]),
            )
        if not orders:
            return dg.SensorResult(
                skip_reason=dg.SkipReason(
                    f"{len(events)} order events after seq {cursor} had no usable order number"
                ),
                cursor=write_cursor(inbox_id, last_seq),
            )
        context.log.info(
            "%d order events (seq %d..%d) → refresh of %d orders",
            len(events),
            events[0].seq,
            last_seq,
            len(orders),
        )
        return dg.SensorResult(
            run_requests=[refresh_request(orders, events[0].seq, last_seq)],
            cursor=write_cursor(inbox_id, last_seq),
        )

    return centra_order_webhook_sensor


def _events_after_cursor(
    context: dg.SensorEvaluationContext, inbox_path: Path
) -> tuple[str, int, list[InboxEvent], dg.SkipReason | None]:
    """The inbox's id, the seq the cursor stands at, and a bounded batch of order events
    after it (or the reason there are none)."""
    inbox = Inbox(inbox_path, readonly=True)
    try:
        inbox_id = inbox.inbox_id
        cursor = read_cursor(context.cursor, inbox_id)
        if context.cursor and cursor == 0:
            context.log.warning(
                "the webhook inbox at %s is not the one the cursor was read from (it was "
                "replaced); reading it from the start",
                inbox_path,
            )
        events = inbox.events_after(cursor, limit=MAX_EVENTS_PER_TICK, types=ORDER_REFRESH_TYPES)
        skip = None
        if not events:
            counts = inbox.counts()
            skip = dg.SkipReason(
                f"no order events after inbox seq {cursor} (inbox: {counts.events} events "
                f"in {counts.deliveries} deliveries, newest seq {counts.max_seq})"
            )
    finally:
        inbox.close()
    return inbox_id, cursor, events, skip


def refresh_request(orders: list[int], first_seq: int, last_seq: int) -> dg.RunRequest:
    """One refresh run for the orders of inbox events first_seq..last_seq; its run key comes
    from that range, so a tick evaluated twice cannot start two runs."""
    return dg.RunRequest(
        run_key=f"inbox-{first_seq}-{last_seq}",
        job_name=ORDER_REFRESH_JOB_NAME,
        # The run applies every event not applied yet up to last_seq (a sync may have
        # applied some already): see sync/inbox_reads.py.
        run_config={
            "ops": {
                "sync_orders": {
                    "config": {"mode": "refresh", "keys": orders, "inbox_through": last_seq}
                }
            }
        },
        tags={INBOX_SEQ_TAG: f"{first_seq}-{last_seq}", ORDER_COUNT_TAG: str(len(orders))},
    )


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
