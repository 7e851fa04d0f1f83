"""`centra_order_webhook_sensor`: turn stored Centra order webhooks into bounded refresh runs.

The sensor ticks every 5 s, so an order event after a quiet period starts a refresh within
seconds. A busy store sends events all the time, though, and a run per tick would be ~720
runs an hour, each paying Dagster's start-up, queued behind each other. So a tick that finds
order events after its cursor requests a run only if

1. no run was requested in the last CENTRA_REFRESH_MIN_INTERVAL_SECONDS (default 30 s;
   0 = no minimum): refresh runs start at most that often, and the events arriving in
   between are coalesced into the next run, which waits no longer than the interval;
2. the run it requested last is not still queued or in progress (looked up by its run key):
   the next run, once it has finished, covers everything since;
3. a sync has not applied the events already. The warehouse's inbox watermark
   (`pipeline.inbox_applied`, every seq up to it applied; the inbox itself does not record
   it) is read under a shared warehouse lock taken without waiting; events up to it start no
   run, and the cursor moves past them. While a run holds the warehouse, the run is
   requested, and it finds out for itself (sync/inbox_reads.py).

Otherwise the skip reason says when the next run may start and how many events wait.

Cursor: JSON `{"inbox": <inbox id>, "seq": <last seq covered>, "requested_at": <unix time
of the last run request>, "run": <its run key>}`. The seq belongs to the inbox named (a
replaced inbox starts its seqs at 1 again, so an old cursor must not skip its events); a
cursor of `{"inbox", "seq"}` only, as earlier versions wrote, reads as "no run requested yet".
The cursor never moves past an event that did not become part of a run request or was
applied already. A run is for a bounded batch of events after the cursor; its run key is
derived from the inbox id and the batch's seq range, so a tick evaluated twice cannot start
two runs, and a replaced inbox's seqs cannot collide with an old run's key.

An event whose id is not an order number is reported and passed over (it cannot become a
refresh); `delete` events are refreshed like updates: an order Centra no longer returns is
marked `_missing_since` in the warehouse rather than deleted (see docs/webhooks.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import duckdb
from dagster._core.storage.tags import RUN_KEY_TAG

from centra_pipeline.defs.jobs import ORDER_REFRESH_JOB_NAME, refresh_run_config
from centra_pipeline.defs.keys import INBOX_SEQ_TAG, ORDER_COUNT_TAG
from centra_pipeline.settings import ENV_REFRESH_MIN_INTERVAL, Settings
from centra_pipeline.storage.backends import warehouse_for
from centra_pipeline.storage.warehouse import WarehouseBusy
from centra_pipeline.stores import DEFAULT_STORE, Stores, load_stores
from centra_pipeline.webhooks.inbox import ORDER_REFRESH_TYPES, InboxEvent
from centra_pipeline.webhooks.inboxes import AnyInbox, InboxRef

SENSOR_NAME = "centra_order_webhook_sensor"
TICK_SECONDS = 5
MAX_EVENTS_PER_TICK = 5000
MAX_ORDERS_PER_RUN = 500
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
clock = time.time  # wall-clock seconds; the cursor outlives the process (tests replace it)


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


@dataclass(frozen=True)
class Cursor:
    """Where the sensor stands: the last seq covered, and its last run request (if any)."""

    seq: int = 0
    requested_at: float | None = None
    run_key: str | None = None
    inbox_matches: bool = True


def write_cursor(
    inbox_id: str, seq: int, requested_at: float | None = None, run_key: str | None = None
) -> str:
    data: dict[str, object] = {"inbox": inbox_id, "seq": seq}
    if requested_at is not None:
        data |= {"requested_at": round(requested_at, 3), "run": run_key}
    return json.dumps(data)


def read_state(cursor: str | None, inbox_id: str) -> Cursor:
    """The cursor's state; its seq only if it belongs to this inbox (else 0). The last run
    request is kept either way: the interval is about runs, not about one inbox."""
    try:
        data = json.loads(cursor) if cursor else {}
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return Cursor(inbox_matches=False)
    requested_at = data.get("requested_at")
    run_key = data.get("run")
    matches = data.get("inbox") == inbox_id
    return Cursor(
        seq=int(data.get("seq", 0)) if matches else 0,
        requested_at=float(requested_at) if isinstance(requested_at, int | float) else None,
        run_key=run_key if isinstance(run_key, str) else None,
        inbox_matches=matches or not data,
    )


def read_cursor(cursor: str | None, inbox_id: str) -> int:
    """The last seq covered, if the cursor belongs to this inbox; else 0."""
    return read_state(cursor, inbox_id).seq


def build_order_webhook_sensor(
    job: dg.UnresolvedAssetJobDefinition, default_status: dg.DefaultSensorStatus
) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=TICK_SECONDS,
        default_status=default_status,
        description="Reads Centra order webhooks from the durable inbox and refreshes exactly "
        "the orders that changed (GET /orders?order=N), out of schedule. Runs start at most "
        f"once every {ENV_REFRESH_MIN_INTERVAL} (default 30 s: at most 120 runs an hour) and "
        "not while the previous one is queued or in progress; the events that arrive in "
        "between are coalesced into the next run. Events a sync has already applied start "
        "no run.",
    )
    def centra_order_webhook_sensor(context: dg.SensorEvaluationContext):
        stores = load_stores()
        cursors = read_store_cursors(context.cursor, stores)
        requests: list[dg.RunRequest] = []
        skipped: list[str] = []
        no_inbox: list[str] = []
        for name, settings in stores.settings.items():
            if stores.multi and not InboxRef.of(settings).exists():
                no_inbox.append(name)
                continue
            result = _store_tick(_StoreContext(context, cursors.get(name), name), settings)
            if isinstance(result, dg.SkipReason):
                skipped.append(_labelled(stores, name, result.skip_message or ""))
                continue
            cursors[name] = result.cursor
            requests.extend(result.run_requests or [])
            if result.skip_reason is not None:
                skipped.append(_labelled(stores, name, result.skip_reason.skip_message or ""))
        if no_inbox:
            more = ", ..." if len(no_inbox) > 10 else ""
            skipped.append(
                f"{len(no_inbox)} store(s) have no webhook inbox yet (start `centra-pipeline "
                f"webhook-server`): {', '.join(no_inbox[:10])}{more}"
            )
        return dg.SensorResult(
            run_requests=requests,
            cursor=write_store_cursors(cursors, stores),
            skip_reason=None if requests else dg.SkipReason("; ".join(skipped[:20])),
        )

    return centra_order_webhook_sensor


class _StoreContext:
    """The sensor context as one store's tick sees it: that store's own cursor."""

    def __init__(self, context: dg.SensorEvaluationContext, cursor: str | None, store: str):
        self.cursor, self.store = cursor, store
        self.log, self.instance = context.log, context.instance


def _labelled(stores: Stores, name: str, text: str) -> str:
    return f"{name}: {text}" if stores.multi else text


def read_store_cursors(cursor: str | None, stores: Stores) -> dict[str, str | None]:
    """Each store's cursor. A single-store deployment keeps the cursor of one inbox as
    earlier versions wrote it; with a stores file it is `{"stores": {name: cursor}}`."""
    if not stores.multi:
        return {name: cursor for name in stores.names}
    try:
        data = json.loads(cursor) if cursor else {}
    except ValueError:
        data = {}
    kept = data.get("stores") if isinstance(data, dict) else None
    return dict(kept) if isinstance(kept, dict) else {}


def write_store_cursors(cursors: dict[str, str | None], stores: Stores) -> str | None:
    if not stores.multi:
        return cursors.get(stores.names[0])
    return json.dumps({"stores": {k: v for k, v in cursors.items() if k in stores.settings}})


def _store_tick(context: _StoreContext, settings: Settings) -> dg.SensorResult | dg.SkipReason:
    ref = InboxRef.of(settings)
    if not ref.exists():
        return dg.SkipReason(
            f"no webhook inbox at {ref.location} yet (start `centra-pipeline webhook-server`)"
        )
    with ref.open(readonly=True) as inbox:
        return _tick(context, inbox, settings)


def _tick(
    context: _StoreContext, inbox: AnyInbox, settings: Settings
) -> dg.SensorResult | dg.SkipReason:
    inbox_id = inbox.inbox_id
    state = read_state(context.cursor, inbox_id)
    if not state.inbox_matches:
        context.log.warning(
            "the webhook inbox at %s is not the one the cursor was read from (it was "
            "replaced); reading it from the start",
            inbox.location,
        )
    if inbox.oldest_pending(state.seq, types=ORDER_REFRESH_TYPES) is None:
        counts = inbox.counts()
        return dg.SkipReason(
            f"no order events after inbox seq {state.seq} (inbox: {counts.events} events in "
            f"{counts.deliveries} deliveries, newest seq {counts.max_seq})"
        )
    now = clock()
    held = _held_back(context.instance, inbox, state, settings.refresh_min_interval_seconds, now)
    if held is not None:
        return held
    start = state.seq
    applied = applied_through(settings, inbox_id)
    if applied is not None and applied > start:
        start = applied
    events = inbox.events_after(start, limit=MAX_EVENTS_PER_TICK, types=ORDER_REFRESH_TYPES)
    if not events:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                f"the order events after inbox seq {state.seq} are applied already (a sync "
                f"applied every event up to seq {start}); no refresh needed"
            ),
            cursor=write_cursor(inbox_id, start, state.requested_at, state.run_key),
        )
    return _request(context, inbox_id, state, events, now)


def _request(
    context: _StoreContext,
    inbox_id: str,
    state: Cursor,
    events: list[InboxEvent],
    now: float,
) -> dg.SensorResult:
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
                f"{len(events)} order events after seq {state.seq} had no usable order number"
            ),
            cursor=write_cursor(inbox_id, last_seq, state.requested_at, state.run_key),
        )
    request = refresh_request(orders, events[0].seq, last_seq, inbox_id, context.store)
    context.log.info(
        "%d order events (seq %d..%d) → refresh of %d orders%s",
        len(events),
        events[0].seq,
        last_seq,
        len(orders),
        f" (events up to seq {events[0].seq - 1} applied already)"
        if events[0].seq - 1 > state.seq
        else "",
    )
    return dg.SensorResult(
        run_requests=[request],
        cursor=write_cursor(inbox_id, last_seq, now, request.run_key),
    )


def _held_back(
    instance: dg.DagsterInstance, inbox: AnyInbox, state: Cursor, interval: float, now: float
) -> dg.SkipReason | None:
    """Why no run may start now (the interval, or the last run still unfinished), or None."""

    def waiting() -> str:
        pending = inbox.pending_count(state.seq, types=ORDER_REFRESH_TYPES)
        oldest = inbox.oldest_pending(state.seq, types=ORDER_REFRESH_TYPES)
        age = now - oldest.received_at.timestamp() if oldest else 0.0
        return (
            f"{pending} order events after inbox seq {state.seq} wait (the oldest for "
            f"{max(age, 0):.0f} s)"
        )

    # A request in the future means the clock went back: never hold events longer than the
    # interval for it.
    elapsed = None if state.requested_at is None else now - state.requested_at
    if elapsed is not None and 0 <= elapsed < interval:
        next_at = datetime.fromtimestamp(state.requested_at + interval, UTC)
        return dg.SkipReason(
            f"the last refresh run ({state.run_key}) was requested {elapsed:.0f} s ago and "
            f"runs start at most every {interval:g} s ({ENV_REFRESH_MIN_INTERVAL}): the next "
            f"may start in {interval - elapsed:.0f} s, at {next_at:%H:%M:%S} UTC; "
            f"{waiting()}"
        )
    run = _unfinished_run(instance, state.run_key)
    if run is not None:
        return dg.SkipReason(
            f"the last refresh run ({state.run_key}, run {run.run_id[:8]}) is still "
            f"{run.status.value.lower()}; the next run, once it has finished, covers "
            f"everything since: {waiting()}"
        )
    return None


def _unfinished_run(instance: dg.DagsterInstance, run_key: str | None) -> dg.DagsterRun | None:
    """The run (or its retry) requested with this run key, if it is still queued or in
    progress: one indexed tag lookup in the instance's run storage."""
    if not run_key:
        return None
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            job_name=ORDER_REFRESH_JOB_NAME, tags={RUN_KEY_TAG: run_key}, statuses=UNFINISHED
        ),
        limit=1,
    )
    return runs[0] if runs else None


def applied_through(settings: Settings, inbox_id: str) -> int | None:
    """The seq up to which the warehouse has applied this inbox's events, if that can be read
    without waiting: None when there is no warehouse yet or a run holds it (its writer lock
    or lease), and the run then requested finds out for itself."""
    if settings.storage_url is None and not settings.warehouse_path.exists():
        return None
    try:
        return warehouse_for(settings, lock_timeout=0).inbox_applied(inbox_id)
    except (WarehouseBusy, duckdb.Error, OSError):
        return None


def refresh_request(
    orders: list[int],
    first_seq: int,
    last_seq: int,
    inbox_id: str = "",
    store: str = DEFAULT_STORE,
) -> dg.RunRequest:
    """One refresh run for the orders of inbox events first_seq..last_seq; its run key comes
    from the inbox and that range, so a tick evaluated twice cannot start two runs."""
    return dg.RunRequest(
        run_key=run_key(inbox_id, first_seq, last_seq),
        job_name=ORDER_REFRESH_JOB_NAME,
        partition_key=store,
        # The run applies every event not applied yet up to last_seq (a sync may have
        # applied some already): see sync/inbox_reads.py.
        run_config={"ops": refresh_run_config(orders, last_seq)},
        tags={INBOX_SEQ_TAG: f"{first_seq}-{last_seq}", ORDER_COUNT_TAG: str(len(orders))},
    )


def run_key(inbox_id: str, first_seq: int, last_seq: int) -> str:
    """`inbox-<first>-<last>`, with the first 8 characters of the inbox id after it: the
    Dagster daemon skips a request whose run key an earlier run had, and a replaced inbox
    numbers its events from 1 again."""
    suffix = f"@{inbox_id[:8]}" if inbox_id else ""
    return f"inbox-{first_seq}-{last_seq}{suffix}"
