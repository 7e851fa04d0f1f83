"""From Centra's signed webhook to the refreshed order in centra.duckdb: the sensor, and the
whole path with the emulator sending real webhooks to the real receiver over loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from centra_pipeline.centra.webhook import WebhookEvent
from centra_pipeline.definitions import defs
from centra_pipeline.defs import sensors
from centra_pipeline.defs.jobs import ORDER_REFRESH_JOB_NAME
from centra_pipeline.defs.keys import SYNC_STEP
from centra_pipeline.emulator import Emulator
from centra_pipeline.storage.lake import Lake
from centra_pipeline.webhooks.inbox import Inbox
from centra_pipeline.webhooks.receiver import create_app
from centra_pipeline_tests.conftest import (
    TZ,
    WEBHOOK_SECRET,
    Pipeline,
    emulator_config,
    point_env_at,
)
from centra_pipeline_tests.test_webhook_receiver import serve
from centra_pipeline_tests.truth import table_differences, truth_tables

SENSOR = (
    defs.resolve_sensor_def(sensors.SENSOR_NAME)
    if hasattr(defs, "resolve_sensor_def")
    else next(s for s in defs.sensors if s.name == sensors.SENSOR_NAME)
)


def store_events(inbox_path: Path, *events: tuple[str, str, str], tag: str = "") -> None:
    inbox = Inbox(inbox_path)
    try:
        parsed = [
            WebhookEvent(kind, action, object_id, f"2026-01-15 12:00:00.{i:06d}{tag}")
            for i, (kind, action, object_id) in enumerate(events)
        ]
        inbox.store(f"{tag}{datetime.now(UTC).timestamp()}{events}", 1_768_478_400, parsed)
    finally:
        inbox.close()


@contextmanager
def live_webhooks(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, *, batch_size: int
) -> Iterator[tuple[Emulator, Inbox]]:
    """The emulator sending signed webhooks to the real receiver, which stores them in the
    inbox under CENTRA_DATA_DIR, with the environment pointing at the emulator."""
    inbox = Inbox(data_dir / "webhooks" / "inbox.sqlite3")
    try:
        with (
            serve(create_app(WEBHOOK_SECRET, inbox)) as receiver_url,
            Emulator(
                emulator_config(
                    webhook_url=receiver_url + "/webhooks/centra",
                    webhook_secret=WEBHOOK_SECRET,
                    webhook_batch_size=batch_size,
                )
            ) as emu,
        ):
            point_env_at(emu, monkeypatch)
            yield emu, inbox
    finally:
        inbox.close()


def evaluate(instance: dg.DagsterInstance, cursor: str | None = None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return SENSOR.evaluate_tick(context)


def run_sensor_refreshes(instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    """One sensor tick, and every refresh run it asks for, executed here (each must succeed);
    returns the tick's run requests."""
    from centra_pipeline.defs.jobs import ORDER_REFRESH_JOB_NAME

    result = evaluate(instance)
    assert result.run_requests, result.skip_message
    refresh = defs.resolve_job_def(ORDER_REFRESH_JOB_NAME)
    for request in result.run_requests:
        assert refresh.execute_in_process(
            run_config=request.run_config,
            instance=instance,
            tags=request.tags,
            partition_key=request.partition_key,
        ).success
    return result.run_requests


@pytest.fixture
def inbox_path(data_dir: Path) -> Path:
    return data_dir / "webhooks" / "inbox.sqlite3"


def test_sensor_skips_with_a_reason_when_there_is_nothing(inbox_path: Path) -> None:
    with dg.instance_for_test() as instance:
        result = evaluate(instance)
        assert not result.run_requests
        assert "no webhook inbox" in result.skip_message
        Inbox(inbox_path).close()
        result = evaluate(instance)
        assert "no order events after inbox seq 0" in result.skip_message


def test_sensor_coalesces_orders_into_one_run_keyed_by_inbox_sequence(inbox_path: Path) -> None:
    store_events(
        inbox_path,
        ("order", "update", "1005"),
        ("shipment", "create", "77"),
        ("order", "insert", "1006"),
        ("order", "update", "1005"),
        ("order", "delete", "1010"),
    )
    with dg.instance_for_test() as instance:
        result = evaluate(instance)
        (request,) = result.run_requests
        assert request.job_name == ORDER_REFRESH_JOB_NAME
        config = request.run_config["ops"][SYNC_STEP]["config"]["streams"]["orders"]
        first, last = request.tags["centra_pipeline/inbox_seq"].split("-")
        # The run applies every unapplied event up to the last seq it covers.
        assert config == {"mode": "refresh", "keys": [1005, 1006, 1010], "inbox_through": int(last)}
        inbox_id = Inbox(inbox_path).inbox_id
        assert request.run_key == f"inbox-{first}-{last}@{inbox_id[:8]}"
        assert sensors.read_cursor(result.cursor, inbox_id) == int(last)
        # The same tick evaluated again (e.g. after a daemon restart) asks for the same run.
        again = evaluate(instance)
        assert again.run_requests[0].run_key == request.run_key
        # From the new cursor there is nothing left to do.
        after = evaluate(instance, result.cursor)
        assert not after.run_requests and "no order events" in after.skip_message


def test_sensor_takes_a_bounded_batch_and_never_skips_an_event(
    inbox_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sensors, "MAX_ORDERS_PER_RUN", 2)
    # No minimum interval between runs: each tick may take the next batch.
    monkeypatch.setenv("CENTRA_REFRESH_MIN_INTERVAL_SECONDS", "0")
    store_events(
        inbox_path,
        ("order", "update", "1"),
        ("order", "update", "2"),
        ("order", "update", "1"),
        ("order", "update", "3"),
        ("order", "update", "4"),
    )
    seen: list[int] = []
    cursor = None
    with dg.instance_for_test() as instance:
        for _ in range(5):
            result = evaluate(instance, cursor)
            if not result.run_requests:
                break
            keys = result.run_requests[0].run_config["ops"][SYNC_STEP]["config"]["streams"][
                "orders"
            ]["keys"]
            assert len(keys) <= 2
            seen += keys
            cursor = result.cursor
    assert seen == [1, 2, 3, 4]


def test_a_replaced_inbox_is_read_from_its_start(
    inbox_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inbox file was deleted (a new data directory, a reset): its seqs restart at 1, and a
    cursor from the old inbox must not make the sensor skip them, nor a run key repeat."""
    monkeypatch.setenv("CENTRA_REFRESH_MIN_INTERVAL_SECONDS", "0")
    store_events(inbox_path, *[("order", "update", str(n)) for n in range(1, 6)])
    with dg.instance_for_test() as instance:
        first = evaluate(instance)
        cursor = first.cursor
        inbox_path.unlink()
        for suffix in ("-wal", "-shm"):
            Path(str(inbox_path) + suffix).unlink(missing_ok=True)
        store_events(inbox_path, *[("order", "update", "42")] * 5, tag="new")
        (request,) = evaluate(instance, cursor).run_requests
        assert request.run_config["ops"][SYNC_STEP]["config"]["streams"]["orders"]["keys"] == [42]
        # The new inbox's seqs start at 1 again; its run key still differs from the old one's
        # (the daemon would skip a request whose key an earlier run had).
        assert request.tags == first.run_requests[0].tags | {"centra_pipeline/order_count": "1"}
        assert request.run_key != first.run_requests[0].run_key


def test_plan_refresh_reports_ids_that_are_not_order_numbers() -> None:
    from centra_pipeline.webhooks.inbox import InboxEvent

    def event(seq: int, object_id: str) -> InboxEvent:
        return InboxEvent(seq, 1, "order", "update", object_id, None, None, datetime.now(UTC))

    orders, last, invalid = sensors.plan_refresh([event(1, "7"), event(2, "x1"), event(3, "7")])
    assert (orders, last, invalid) == ([7], 3, ["x1"])


def test_webhook_to_warehouse_refreshes_exactly_the_changed_orders(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Emulator ticks a change to old orders → signed webhook → receiver → inbox → sensor →
    refresh run → centra.duckdb, and nothing else is re-extracted."""
    with live_webhooks(data_dir, monkeypatch, batch_size=7) as (emu, _inbox):
        pipeline = Pipeline(emu, data_dir)
        pipeline.sync()
        pipeline.publish()
        lake = Lake(data_dir / "lake")
        loads_before = {
            name: len(lake.loads(name))
            for name in ("orders", "returns", "customers", "products", "stock", "catalogue")
        }
        with dg.instance_for_test() as instance:
            # Drain the inbox of the initial store's events (none expected) and remember where.
            start = evaluate(instance)
            cursor = start.cursor if start.run_requests else None

            changes = emu.tick(updated_orders=12, advance_seconds=60)
            changed = set(changes["updated_order_ids"])
            old = [n for n in changed if n < 1000 + 1500 // 2]
            assert old, "the tick should touch old orders, outside any lookback window"
            assert emu.wait_webhooks(timeout=30)

            result = evaluate(instance, cursor)
            (request,) = result.run_requests
            keys = request.run_config["ops"][SYNC_STEP]["config"]["streams"]["orders"]["keys"]
            assert set(keys) == changed

            job = defs.resolve_job_def(ORDER_REFRESH_JOB_NAME)
            run = job.execute_in_process(
                run_config=request.run_config,
                instance=instance,
                tags=request.tags,
                partition_key=request.partition_key,
            )
            assert run.success

        # Exactly one new lake load, for orders, holding exactly the changed orders.
        loads_after = {name: len(lake.loads(name)) for name in loads_before}
        assert loads_after == {**loads_before, "orders": loads_before["orders"] + 1}
        refresh = lake.loads("orders")[-1]
        assert refresh.mode == "refresh"
        assert refresh.records == len(changed) and refresh.requests == len(changed)

        # The analyst snapshot has the orders as Centra has them now.
        truth = truth_tables(emu, TZ, ["orders"])
        con = duckdb.connect(str(data_dir / "centra.duckdb"), read_only=True)
        try:
            assert table_differences(con, truth) == {}
            statuses = dict(
                con.execute(
                    "SELECT order_id, order_status FROM orders WHERE order_id IN "
                    f"({','.join(map(str, changed))})"
                ).fetchall()
            )
        finally:
            con.close()
        for number in changed:
            assert statuses[number] == emu.store.render_order(number)["orderStatus"]
    counts = Inbox(data_dir / "webhooks" / "inbox.sqlite3").counts()
    assert counts.by_type["order"].get("update", 0) >= len(changed)
    json.dumps(counts.to_dict())
