"""Every sync applies the webhook inbox, and each event is applied exactly once, whether the
sensor's refresh runs or the syncs get to it first (docs/architecture.md, "Webhooks")."""

from __future__ import annotations

import json
import random
from pathlib import Path

import dagster as dg
import pytest

from centra_pipeline.definitions import defs
from centra_pipeline.defs import sensors
from centra_pipeline.defs.jobs import ORDER_REFRESH_JOB_NAME, refresh_run_config
from centra_pipeline.storage.lake import Lake
from centra_pipeline_tests.conftest import (
    Pipeline,
)
from centra_pipeline_tests.test_cli import cli
from centra_pipeline_tests.test_webhook_flow import evaluate, live_webhooks, store_events


def applied_ranges(data_dir: Path) -> list[tuple[int, int]]:
    """(after_seq, through_seq] of every orders load that applied inbox events, in order."""
    loads = Lake(data_dir / "lake").loads("orders")
    return [
        (m.inbox["after_seq"], m.inbox["through_seq"])
        for m in sorted(loads, key=lambda m: m.load_id)
        if m.inbox
    ]


def assert_applied_exactly_once(data_dir: Path, max_seq: int) -> None:
    ranges = applied_ranges(data_dir)
    position = 0
    for after, through in ranges:
        assert after == position, f"events {position + 1}..{after} skipped or doubled: {ranges}"
        assert through > after
        position = through
    assert position == max_seq
    # A refresh run that found its events applied already re-read nothing.
    for manifest in Lake(data_dir / "lake").loads("orders"):
        if manifest.mode == "refresh" and not manifest.inbox:
            assert manifest.requests == 0, manifest.window


@pytest.fixture
def live(data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """The emulator sending signed webhooks to the real receiver, which stores them in the
    inbox under CENTRA_DATA_DIR; no Dagster daemon runs."""
    with live_webhooks(data_dir, monkeypatch, batch_size=5) as live_store:
        yield live_store


def test_a_sync_applies_the_webhooks_stored_while_no_daemon_ran(live, data_dir: Path) -> None:
    emu, inbox = live
    first = cli("sync", "--stream", "orders")
    assert first.returncode == 0, first.stdout + first.stderr
    # Changes to old orders, far outside the lookback; only the webhooks tell of them.
    changes = emu.tick(updated_orders=12, advance_seconds=60)
    assert emu.wait_webhooks(timeout=30)
    assert inbox.max_seq() >= 12

    done = cli("sync", "--stream", "orders")
    assert done.returncode == 0, done.stdout + done.stderr
    pipeline = Pipeline(emu, data_dir)
    assert pipeline.differences(["orders"]) == {}
    assert pipeline.warehouse.inbox_applied(inbox.inbox_id) == inbox.max_seq()
    shown = json.loads(cli("state", "show", "--json").stdout)["webhook_inbox"]
    assert shown["applied_seq"] == shown["max_seq"] == inbox.max_seq()
    assert shown["unapplied_order_events"] == 0
    assert "order events wait for the next sync" in cli("state", "show").stdout
    (latest,) = [m for m in Lake(data_dir / "lake").loads("orders") if m.inbox]
    assert latest.inbox["events"] >= len(changes["updated_order_ids"])
    assert set(changes["updated_order_ids"]) - set(latest.requested_keys) <= set(
        # orders inside the lookback window are read by the window, not looked up
        r[0]
        for r in pipeline.warehouse.query("SELECT order_id FROM main.orders")
    )
    # The sensor, running later, finds the events applied: it starts no run, and moves its
    # cursor past them.
    with dg.instance_for_test() as instance:
        result = evaluate(instance)
        assert not result.run_requests
        assert "applied already" in str(result.skip_message)
        assert sensors.read_cursor(result.cursor, inbox.inbox_id) == inbox.max_seq()
        # A run requested while a sync held the warehouse (the sensor could not read the
        # watermark then) finds out for itself: it re-reads nothing.
        run = defs.resolve_job_def(ORDER_REFRESH_JOB_NAME).execute_in_process(
            run_config={
                "ops": refresh_run_config(sorted(changes["updated_order_ids"]), inbox.max_seq())
            },
            instance=instance,
            partition_key="default",
        )
        assert run.success
    refresh = sorted(Lake(data_dir / "lake").loads("orders"), key=lambda m: m.load_id)[-1]
    assert refresh.mode == "refresh" and refresh.requests == 0 and refresh.records == 0
    assert_applied_exactly_once(data_dir, inbox.max_seq())


def test_the_sensor_and_syncs_racing_apply_every_event_exactly_once(
    live, data_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No minimum interval: every tick with events may request a run, to race the syncs.
    monkeypatch.setenv("CENTRA_REFRESH_MIN_INTERVAL_SECONDS", "0")
    emu, inbox = live
    pipeline = Pipeline(emu, data_dir)
    pipeline.sync(["orders"])
    job = defs.resolve_job_def(ORDER_REFRESH_JOB_NAME)
    rng = random.Random(5)
    pending: list[dg.RunRequest] = []
    cursor = None
    with dg.instance_for_test() as instance:
        for _ in range(8):
            emu.tick(updated_orders=rng.randint(3, 15), new_orders=2, advance_seconds=600)
            assert emu.wait_webhooks(timeout=30)
            # The sensor turns what it sees into a run, which may wait in the queue while
            # a sync (from cron, without the daemon) gets to the same events first.
            result = evaluate(instance, cursor)
            cursor = result.cursor or cursor
            pending.extend(result.run_requests)
            if rng.random() < 0.5:
                pipeline.sync(["orders"], lookback=0)
            while pending and rng.random() < 0.6:
                request = pending.pop(rng.randrange(len(pending)))
                run = job.execute_in_process(
                    run_config=request.run_config,
                    instance=instance,
                    partition_key=request.partition_key,
                )
                assert run.success
        for request in pending:
            assert job.execute_in_process(
                run_config=request.run_config,
                instance=instance,
                partition_key=request.partition_key,
            ).success
    pipeline.sync(["orders"], lookback=0)
    assert pipeline.differences(["orders"]) == {}
    assert_applied_exactly_once(data_dir, inbox.max_seq())


def test_a_sync_marks_an_order_missing_that_an_event_names_and_centra_no_longer_serves(
    pipeline: Pipeline, data_dir: Path
) -> None:
    pipeline.sync(["orders"])
    cancelled = [
        r[0]
        for r in pipeline.warehouse.query(
            "SELECT order_id FROM main.orders WHERE order_status_name = 'cancelled' "
            "ORDER BY order_id LIMIT 2"
        )
    ]
    assert cancelled
    # The merchant stops serving cancelled orders; Centra sends a webhook for each.
    pipeline.emu.store.set_plugin("order", statuses=(1, 2, 3, 4, 5))
    store_events(
        data_dir / "webhooks" / "inbox.sqlite3", *[("order", "update", str(n)) for n in cancelled]
    )
    manifest, merged = pipeline.sync(["orders"])["orders"]
    assert set(manifest.missing_keys) == set(cancelled) and merged.missing == len(cancelled)
    marked = pipeline.warehouse.query(
        "SELECT order_id FROM main.orders WHERE _missing_since IS NOT NULL ORDER BY order_id"
    )
    assert [r[0] for r in marked] == cancelled
