"""The webhook sensor's bounded refresh runs: at most one run per
CENTRA_REFRESH_MIN_INTERVAL_SECONDS, none while the previous one is unfinished, none for
events a sync has applied, and every event in exactly one run (defs/sensors.py).

The sensor runs for real (`evaluate_tick` on a real Dagster instance, a real SQLite inbox
written by the project's Inbox class); only its clock is replaced, so that half a minute
passes without waiting for it. `Daemon` does what the sensor daemon does with a tick: keep the
cursor, and create each requested run in the instance tagged with its run key (skipping a key
that already has a run).
"""

from __future__ import annotations

import itertools
import random
import re
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from centra_pipeline.definitions import defs
from centra_pipeline.defs import sensors
from centra_pipeline.defs.jobs import ORDER_REFRESH_JOB_NAME, refresh_run_config
from centra_pipeline.defs.keys import SYNC_STEP
from centra_pipeline.storage.warehouse import Warehouse
from centra_pipeline.webhooks.inbox import ORDER_REFRESH_TYPES, Inbox
from centra_pipeline_tests.conftest import Pipeline
from centra_pipeline_tests.test_webhook_flow import evaluate, store_events

INTERVAL = sensors.Settings().refresh_min_interval_seconds  # the default, 30 s
TICK = sensors.TICK_SECONDS
JOB = defs.resolve_job_def(ORDER_REFRESH_JOB_NAME)
RANGE = re.compile(r"inbox-(\d+)-(\d+)@([0-9a-f]{8})")


class Daemon:
    """The sensor daemon, as far as the sensor can tell: ticks at a fake time, the cursor
    kept between ticks, and requested runs created (NOT_STARTED, as the daemon creates them)
    with the run key and sensor tags the daemon adds."""

    def __init__(self, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch) -> None:
        self.instance = instance
        self.now = 1_800_000_000.0
        self.cursor: str | None = None
        self.requests: list[dg.RunRequest] = []
        self.requested_at: list[float] = []
        self.finished_at: dict[str, float] = {}
        monkeypatch.setattr(sensors, "clock", lambda: self.now)

    def tick(self, seconds: float = TICK):
        self.now += seconds
        result = evaluate(self.instance, self.cursor)
        if result.cursor is not None:
            self.cursor = result.cursor
        for request in result.run_requests:
            if self.instance.get_runs(dg.RunsFilter(tags={RUN_KEY_TAG: request.run_key})):
                continue
            self.instance.create_run_for_job(
                JOB,
                run_config=request.run_config,
                tags={
                    **request.tags,
                    RUN_KEY_TAG: request.run_key,
                    SENSOR_NAME_TAG: sensors.SENSOR_NAME,
                },
            )
            self.requests.append(request)
            self.requested_at.append(self.now)
        return result

    def run(self, request: dg.RunRequest) -> dg.DagsterRun:
        (run,) = self.instance.get_runs(dg.RunsFilter(tags={RUN_KEY_TAG: request.run_key}))
        return run

    def report(self, request: dg.RunRequest, *events: DagsterEventType) -> None:
        """Move the request's run on (RUN_START, RUN_SUCCESS, RUN_FAILURE)."""
        run = self.run(request)
        for event in events:
            self.instance.report_dagster_event(DagsterEvent(event.value, run.job_name), run.run_id)
        if self.run(request).is_finished:
            self.finished_at[request.run_key] = self.now

    def finish_all(self) -> None:
        for request in self.requests:
            if not self.run(request).is_finished:
                self.report(request, DagsterEventType.RUN_START, DagsterEventType.RUN_SUCCESS)


@pytest.fixture
def inbox_path(data_dir: Path) -> Path:
    return data_dir / "webhooks" / "inbox.sqlite3"


@pytest.fixture
def daemon(data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    with dg.instance_for_test() as instance:
        yield Daemon(instance, monkeypatch)


def burst(inbox_path: Path, orders: list[int], tag: str) -> None:
    """One delivery of an order event per number (repeats included), as Centra batches."""
    store_events(inbox_path, *[("order", "update", str(n)) for n in orders], tag=tag)


def keys(request: dg.RunRequest) -> list[int]:
    return request.run_config["ops"][SYNC_STEP]["config"]["streams"]["orders"]["keys"]


def seq_range(request: dg.RunRequest) -> tuple[int, int]:
    first, last, _inbox = RANGE.fullmatch(request.run_key).groups()
    return int(first), int(last)


def order_events(inbox_path: Path) -> list:
    with Inbox(inbox_path, readonly=True) as inbox:
        return inbox.events_after(0, limit=100_000, types=ORDER_REFRESH_TYPES)


def test_a_burst_of_events_gives_one_run(inbox_path: Path, daemon: Daemon) -> None:
    burst(inbox_path, [1001, 1002, 1003, 1001, 1004, 1002] * 10, "a")
    (request,) = daemon.tick().run_requests
    assert keys(request) == [1001, 1002, 1003, 1004]
    daemon.finish_all()
    for _ in range(12):  # a minute of ticks: nothing new, no run
        result = daemon.tick()
        assert not result.run_requests
        assert "no order events after inbox seq 60" in result.skip_message


def test_a_second_burst_within_the_interval_waits_for_it_then_one_run_covers_both(
    inbox_path: Path, daemon: Daemon
) -> None:
    burst(inbox_path, [1, 2], "first run")
    (first,) = daemon.tick().run_requests
    requested = daemon.now
    daemon.finish_all()  # the interval holds even when the run was quick
    burst(inbox_path, [3, 4, 3], "burst 1")
    skipped = daemon.tick()
    assert not skipped.run_requests
    assert f"next may start in {INTERVAL - TICK:.0f} s" in skipped.skip_message
    assert "3 order events after inbox seq 2 wait" in skipped.skip_message
    assert "CENTRA_REFRESH_MIN_INTERVAL_SECONDS" in skipped.skip_message
    burst(inbox_path, [5, 4], "burst 2")
    while daemon.now + TICK < requested + INTERVAL:
        assert not daemon.tick().run_requests
    (second,) = daemon.tick().run_requests
    assert daemon.now - requested == INTERVAL
    assert keys(second) == [3, 4, 5]
    assert seq_range(second) == (seq_range(first)[1] + 1, 7)
    # Held back only for the interval: the oldest event waited INTERVAL - TICK seconds.
    assert daemon.now - (requested + TICK) < INTERVAL


def test_a_run_still_in_progress_defers_the_next_until_it_has_finished(
    inbox_path: Path, daemon: Daemon
) -> None:
    burst(inbox_path, [10, 11], "a")
    (first,) = daemon.tick().run_requests
    daemon.report(first, DagsterEventType.RUN_START)
    burst(inbox_path, [12], "b")
    daemon.tick(INTERVAL)
    burst(inbox_path, [13], "c")
    for _ in range(20):  # long past the interval, the first run is still going
        result = daemon.tick()
        assert not result.run_requests
        assert f"the last refresh run ({first.run_key}, run " in result.skip_message
        assert "is still started; the next run, once it has finished, covers everything" in (
            result.skip_message
        )
        assert "2 order events after inbox seq 2 wait" in result.skip_message
    daemon.report(first, DagsterEventType.RUN_FAILURE)  # failed or succeeded: it has finished
    (second,) = daemon.tick().run_requests
    assert keys(second) == [12, 13] and seq_range(second) == (3, 4)


def test_a_run_waiting_in_the_queue_defers_the_next_too(inbox_path: Path, daemon: Daemon) -> None:
    burst(inbox_path, [10], "a")
    (first,) = daemon.tick().run_requests
    assert daemon.run(first).status == dg.DagsterRunStatus.NOT_STARTED
    burst(inbox_path, [11], "b")
    result = daemon.tick(INTERVAL)
    assert not result.run_requests and "is still not_started" in result.skip_message
    daemon.finish_all()
    (second,) = daemon.tick().run_requests
    assert keys(second) == [11]


def test_no_event_is_lost_between_runs_and_each_is_in_exactly_one(
    inbox_path: Path, daemon: Daemon
) -> None:
    """A random stream of deliveries (repeated orders, other event types, ids that are not
    order numbers) over ten simulated minutes, runs finishing after a random while: every
    order event is in exactly one run, runs start at least INTERVAL apart, and a run is
    requested at the first tick that the interval, the run before it and its first event
    allow."""
    rng = random.Random(10)
    stored: list[tuple[int, float]] = []  # (newest seq, fake time) after each delivery
    for minute in range(10):
        for second in range(0, 60, TICK):
            if rng.random() < 0.7:
                events = [
                    ("order", "update", str(rng.randint(1000, 1040)))
                    for _ in range(rng.randint(1, 8))
                ]
                if rng.random() < 0.2:
                    events += [("shipment", "create", "1"), ("order", "update", "not-a-number")]
                store_events(inbox_path, *events, tag=f"{minute}:{second}")
                stored.append((Inbox(inbox_path).max_seq(), daemon.now))
            daemon.tick()
            for request in daemon.requests:
                if not daemon.run(request).is_finished and rng.random() < 0.15:
                    daemon.report(request, DagsterEventType.RUN_START, DagsterEventType.RUN_SUCCESS)
    daemon.finish_all()
    for _ in range(int(INTERVAL / TICK) + 1):  # the stream stops: the last events get a run
        daemon.tick()
    finished = dict(daemon.finished_at)
    events = order_events(inbox_path)
    ranges = [seq_range(r) for r in daemon.requests]
    assert len(ranges) <= 600 / INTERVAL + 1
    assert ranges[0][0] == events[0].seq and ranges[-1][1] == events[-1].seq
    for (_, last), (first, _) in itertools.pairwise(ranges):
        assert first == min(e.seq for e in events if e.seq > last)  # the next event, none left
    for request, (first, last) in zip(daemon.requests, ranges, strict=True):
        numbers = {
            int(e.object_id) for e in events if first <= e.seq <= last and e.object_id.isdigit()
        }
        assert sorted(numbers) == sorted(keys(request))
    gaps = [b - a for a, b in itertools.pairwise(daemon.requested_at)]
    assert min(gaps) >= INTERVAL
    for k, (first, _) in enumerate(ranges):
        first_stored = next(t for seq, t in stored if seq >= first)
        allowed = first_stored
        if k:
            previous = daemon.requests[k - 1].run_key
            allowed = max(allowed, daemon.requested_at[k - 1] + INTERVAL)
            allowed = max(allowed, finished[previous])
        assert daemon.requested_at[k] - allowed <= TICK
    assert any(
        finished[a.run_key] > t + INTERVAL
        for a, t in zip(daemon.requests[:-1], daemon.requested_at, strict=False)
    ), "no run outlasted the interval: the deferral was not exercised"
    assert sensors.read_cursor(daemon.cursor, Inbox(inbox_path).inbox_id) == events[-1].seq


def test_events_a_sync_has_applied_start_no_run(
    pipeline: Pipeline, inbox_path: Path, daemon: Daemon
) -> None:
    burst(inbox_path, [1001, 1002, 1003], "a")
    pipeline.sync(["orders"])  # a sync (from cron, say) applies the inbox's events
    with Inbox(inbox_path, readonly=True) as inbox:
        applied = pipeline.warehouse.inbox_applied(inbox.inbox_id)
    assert applied == 3
    result = daemon.tick()
    assert not result.run_requests
    assert "applied already" in result.skip_message
    assert sensors.read_cursor(daemon.cursor, Inbox(inbox_path).inbox_id) == applied
    # Events after the watermark do get a run, and only they: its range starts after it.
    burst(inbox_path, [1004, 1001], "b")
    (request,) = daemon.tick().run_requests
    assert seq_range(request) == (4, 5) and keys(request) == [1004, 1001]
    # A sync applies events the sensor has not requested yet: the cursor moves past them.
    daemon.finish_all()
    burst(inbox_path, [1005], "c")
    pipeline.sync(["orders"])
    burst(inbox_path, [1006], "d")
    (request,) = daemon.tick(INTERVAL).run_requests
    assert seq_range(request) == (7, 7) and keys(request) == [1006]


def test_the_sensor_never_waits_for_a_busy_warehouse(
    pipeline: Pipeline, inbox_path: Path, daemon: Daemon
) -> None:
    """While a run holds the warehouse, the watermark cannot be read without waiting: the
    run is requested, and finds out for itself which of its events are applied."""
    burst(inbox_path, [1001], "a")
    pipeline.sync(["orders"])
    warehouse = Warehouse(pipeline.settings.warehouse_path)
    with warehouse.locked(exclusive=True):
        started = time.monotonic()
        (request,) = daemon.tick().run_requests
        assert time.monotonic() - started < 2
    assert seq_range(request) == (1, 1)


def test_with_no_minimum_interval_every_tick_with_events_requests_a_run(
    inbox_path: Path, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CENTRA_REFRESH_MIN_INTERVAL_SECONDS", "0")
    for n in range(5):
        burst(inbox_path, [n, n + 100], str(n))
        (request,) = daemon.tick().run_requests
        assert keys(request) == [n, n + 100]
        daemon.finish_all()
        assert not daemon.tick().run_requests  # nothing new
    assert [seq_range(r) for r in daemon.requests] == [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10)]


def test_run_keys_are_the_inbox_seq_ranges_and_a_tick_evaluated_twice_asks_for_the_same_run(
    inbox_path: Path, daemon: Daemon
) -> None:
    burst(inbox_path, [7, 8, 7], "a")
    inbox_id = Inbox(inbox_path).inbox_id
    result = daemon.tick()
    (request,) = result.run_requests
    assert request.run_key == f"inbox-1-3@{inbox_id[:8]}"
    assert request.tags["centra_pipeline/inbox_seq"] == "1-3"
    assert request.run_config == {"ops": refresh_run_config([7, 8], 3)}
    assert request.run_config["ops"][SYNC_STEP]["config"]["streams"]["orders"] == {
        "mode": "refresh",
        "keys": [7, 8],
        "inbox_through": 3,
    }
    # The daemon evaluating the same tick again (its cursor was not saved) asks for the same
    # run; the daemon skips a run key that already has a run.
    again = evaluate(daemon.instance, None)
    assert [r.run_key for r in again.run_requests] == [request.run_key]


def test_a_cursor_from_before_coalescing_is_read_and_continued(
    inbox_path: Path, daemon: Daemon
) -> None:
    burst(inbox_path, [1, 2, 3, 4], "a")
    inbox_id = Inbox(inbox_path).inbox_id
    daemon.cursor = f'{{"inbox": "{inbox_id}", "seq": 2}}'  # what earlier versions wrote
    (request,) = daemon.tick().run_requests  # no run known: one may start at once
    assert seq_range(request) == (3, 4) and keys(request) == [3, 4]
    state = sensors.read_state(daemon.cursor, inbox_id)
    assert (state.seq, state.requested_at, state.run_key) == (4, daemon.now, request.run_key)


def test_a_clock_that_went_back_does_not_hold_events_longer_than_the_interval(
    inbox_path: Path, daemon: Daemon
) -> None:
    burst(inbox_path, [1], "a")
    daemon.tick()
    daemon.finish_all()
    burst(inbox_path, [2], "b")
    (request,) = daemon.tick(-3600).run_requests  # an hour back (NTP step, say)
    assert keys(request) == [2]
