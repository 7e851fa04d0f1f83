"""Reconciliation on a real emulator, real Parquet and DuckDB files: no change in Centra is
lost, with or without webhooks (docs/architecture.md, "Reconciliation")."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from centra_pipeline.streams import TABLES
from centra_pipeline.streams.rows import record_hash
from centra_pipeline.sync.reconcile import KeyIndex, day_ranges, request_window
from centra_pipeline_tests.conftest import TZ, Pipeline
from centra_pipeline_tests.truth import truth_tables

RECONCILED = ["orders", "returns", "customers", "products", "stock", "catalogue"]
# Three simulated days of ordinary store activity, without webhooks: old orders move status,
# orders on hold / waiting for payment are released long after they were placed, returns
# complete, customers change.
DAY = {
    "new_orders": 30,
    "updated_orders": 80,
    "new_returns": 10,
    "completed_returns": 15,
    "updated_customers": 20,
    "updated_products": 3,
    "advance_seconds": 86400,
}


def drift_the_store(pipeline: Pipeline) -> None:
    """Three days of hourly-style syncs with no webhook, then a plugin change that stops
    serving cancelled orders: the incremental reads leave drift behind."""
    for _ in range(3):
        pipeline.emu.tick(**DAY)
        pipeline.sync()
    pipeline.emu.store.set_plugin("order", statuses=(1, 2, 3, 4, 5))


def missing_keys(pipeline: Pipeline, table: str, key: str) -> set[int]:
    rows = pipeline.warehouse.query(
        f'SELECT {key} FROM main."{table}" WHERE _missing_since IS NOT NULL'
    )
    return {r[0] for r in rows}


def test_incremental_syncs_without_webhooks_leave_drift_that_a_full_reconcile_repairs(
    pipeline: Pipeline,
) -> None:
    pipeline.sync()
    drift_the_store(pipeline)
    before = pipeline.differences(["orders", "returns", "customers"])
    assert "orders" in before, "the scenario must leave drift for the reconcile to repair"

    results = pipeline.sync(RECONCILED, mode="reconcile")
    assert pipeline.differences() == {}
    # Exactly the orders Centra no longer serves are marked missing: the cancelled ones.
    visible = set(pipeline.emu.store.order_numbers())
    stored = {r[0] for r in pipeline.warehouse.query("SELECT order_id FROM main.orders")}
    assert missing_keys(pipeline, "orders", "order_id") == stored - visible
    assert missing_keys(pipeline, "orders", "order_id")  # the plugin change hid some
    manifest, merged = results["orders"]
    assert manifest.mode == "reconcile" and manifest.window == {"reconcile": "full"}
    assert merged.drift is not None
    assert merged.drift.read == len(visible)
    assert merged.drift.missing == len(stored - visible)
    assert merged.drift.changed + merged.drift.new == manifest.records > 0
    # "New": orders released from hold or waiting for payment, dated long before the
    # lookback, that no incremental read could see.
    assert merged.drift.new > 0
    # The load log records what was repaired, per stream.
    logged = pipeline.warehouse.query(
        "SELECT reconciled->>'missing', reconciled->>'read' FROM pipeline.load_log "
        "WHERE load_id = ?",
        [manifest.load_id],
    )
    assert logged == [(str(merged.drift.missing), str(len(visible)))]


def test_a_second_reconcile_changes_nothing_and_lands_no_rows(pipeline: Pipeline) -> None:
    pipeline.sync()
    drift_the_store(pipeline)
    pipeline.sync(RECONCILED, mode="reconcile")
    before = pipeline.warehouse.query("SELECT * FROM main.orders ORDER BY order_id")
    again = pipeline.sync(RECONCILED, mode="reconcile")
    for stream, (manifest, merged) in again.items():
        assert manifest.records == 0, stream
        assert sum(manifest.rows.values()) == 0, stream
        assert merged.new == merged.updated == merged.missing == 0, stream
    assert pipeline.warehouse.query("SELECT * FROM main.orders ORDER BY order_id") == before


def test_a_record_that_comes_back_has_its_missing_mark_cleared(pipeline: Pipeline) -> None:
    pipeline.sync(["orders"])
    pipeline.emu.store.set_plugin("order", statuses=(1, 2, 3, 4, 5))
    pipeline.sync(["orders"], mode="reconcile")
    hidden = missing_keys(pipeline, "orders", "order_id")
    assert hidden
    pipeline.emu.store.set_plugin("order", statuses=(1, 2, 3, 4, 5, 6))
    _, merged = pipeline.sync(["orders"], mode="reconcile")["orders"]
    assert missing_keys(pipeline, "orders", "order_id") == set()
    assert merged.drift is not None and merged.drift.changed == len(hidden)
    assert pipeline.differences(["orders"]) == {}


def test_the_open_pass_reads_only_the_days_holding_open_records_and_repairs_them(
    pipeline: Pipeline,
) -> None:
    full, _ = pipeline.sync(["orders", "returns"])["orders"]
    # A month later, orders and returns change far outside a one-day lookback.
    pipeline.emu.tick(advance_seconds=30 * 86400)
    changes = pipeline.emu.tick(updated_orders=60, completed_returns=10, advance_seconds=60)
    updated = changes["updated_order_ids"]
    status_before = dict(
        pipeline.warehouse.query(
            "SELECT order_id, order_status_name FROM main.orders "
            "WHERE order_id IN (SELECT unnest(?::BIGINT[]))",
            [updated],
        )
    )
    pipeline.sync(["orders", "returns"], lookback=1)
    assert "orders" in pipeline.differences(["orders"])

    results = pipeline.sync(["orders", "returns"], mode="reconcile_open")
    manifest, merged = results["orders"]
    assert manifest.mode == "reconcile_open" and manifest.window["reconcile"] == "open"
    assert 0 < manifest.records_read < full.records_read / 2  # not the whole store
    # Every changed order the warehouse held as open now has Centra's status; orders that
    # were already archived or cancelled (cosmetic edits), and orders released from hold on
    # days with nothing open, wait for the weekly full pass.
    was_open = [n for n, s in status_before.items() if s not in ("archived", "cancelled")]
    assert was_open
    truth = truth_tables(pipeline.emu, TZ, ["orders"])["orders"]
    cols = ", ".join(f'"{c}"' for c in TABLES["orders"].column_names)
    with pipeline.warehouse.reader() as con:
        con.register("truth", truth)
        ids = "(SELECT unnest(?::BIGINT[]))"
        stale = con.execute(
            f"SELECT order_id FROM (SELECT {cols} FROM main.orders WHERE order_id IN {ids} "
            f"EXCEPT SELECT {cols} FROM truth WHERE order_id IN {ids})",
            [was_open, was_open],
        ).fetchall()
    assert stale == []
    assert merged.drift is not None and merged.drift.changed > 0
    _, returns_merged = results["returns"]
    # (Every incremental run re-reads the days holding open returns, so the completed
    # returns were repaired already; the open pass re-reads them and lands nothing.)
    assert returns_merged.drift is not None and returns_merged.drift.read > 0
    assert pipeline.differences(["returns"]) == {}


def test_an_open_pass_with_nothing_open_reads_nothing(pipeline: Pipeline) -> None:
    manifest, merged = pipeline.sync(["customers"], mode="reconcile_open")["customers"]
    assert manifest.requests == 0 and manifest.records_read == 0
    assert manifest.window["nothing_open"] is True
    assert merged.drift is not None and merged.drift.repaired == 0


def test_reconcile_auto_runs_the_full_pass_first_and_the_open_pass_within_the_interval(
    pipeline: Pipeline,
) -> None:
    pipeline.sync(["orders"])
    first, _ = pipeline.sync(["orders"], mode="reconcile_auto")["orders"]
    assert first.mode == "reconcile"
    second, _ = pipeline.sync(["orders"], mode="reconcile_auto")["orders"]
    assert second.mode == "reconcile_open"


def test_key_index_tells_new_changed_and_unchanged_records_and_what_was_not_returned() -> None:
    index = KeyIndex([3, 1, 2], [record_hash("c"), record_hash("a"), record_hash("b")])
    flags = index.changed([1, 2, 4], [record_hash("a"), record_hash("B"), record_hash("d")])
    assert flags == [False, True, True]  # unchanged, changed, new
    assert index.unseen() == [3]


def test_open_days_coalesce_into_ranges_and_windows_widen_by_a_second() -> None:
    days = {date(2026, 1, d): (10, 1 if d in (1, 2, 3, 9, 20) else 0) for d in range(1, 21)}
    ranges = day_ranges(days)
    assert [(r.first.day, r.last.day) for r in ranges] == [(1, 3), (9, 9), (20, 20)]
    # Ranges with less than a page of rows between them are read as one window.
    merged = day_ranges(days, merge_below=50)
    assert [(r.first.day, r.last.day) for r in merged] == [(1, 9), (20, 20)]
    assert len(day_ranges(days, merge_below=100)) == 1
    assert ranges[0].bounds() == ("2026-01-01 00:00:00", "2026-01-04 00:00:00")
    assert request_window(*ranges[0].bounds()) == {
        "newer_than": "2025-12-31 23:59:59",
        "older_than": "2026-01-04 00:00:01",
    }


@pytest.mark.parametrize(
    ("newer_inclusive", "older_inclusive"), [(False, False), (True, True), (False, True)]
)
def test_the_open_pass_expects_nothing_falsely_missing_whatever_the_order_filter_edges(
    newer_inclusive: bool, older_inclusive: bool, data_dir
) -> None:
    from centra_pipeline_tests.conftest import running_emulator

    with running_emulator(
        orders_newer_than_inclusive=newer_inclusive, orders_older_than_inclusive=older_inclusive
    ) as emu:
        # The oldest open order starts the first window; place it at exactly midnight, on
        # the window's edge, where an exclusive `newer_than` would leave it out.
        store = emu.store
        with store.lock:
            orders = store.orders
            open_ = np.flatnonzero((orders.status <= 4) & ~orders.hold & ~orders.wfp)
            first = int(open_[np.argmin(orders.local[open_])])
            orders.local[first] -= orders.local[first] % 86400
            store.version += 1
            store._cache.clear()
        pipeline = Pipeline(emu, data_dir)
        pipeline.sync(["orders"])
        _, merged = pipeline.sync(["orders"], mode="reconcile_open")["orders"]
        assert merged.missing == 0
        assert missing_keys(pipeline, "orders", "order_id") == set()


def test_sync_reconcile_on_the_command_line_repairs_reports_and_warns(centra_env, data_dir) -> None:
    from centra_pipeline_tests.test_cli import cli

    assert cli("sync").returncode == 0
    pipeline = Pipeline(centra_env, data_dir)
    drift_the_store(pipeline)

    before = cli("verify")
    assert before.returncode == 1, before.stdout + before.stderr
    done = cli("sync", "--reconcile")
    assert done.returncode == 0, done.stdout + done.stderr
    after = cli("verify")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "agree" in after.stdout
    assert "reconciliation (what incremental reads and webhooks had missed):" in done.stdout
    line = next(
        x for x in done.stdout.splitlines() if x.strip().startswith("orders:") and "read" in x
    )
    assert "missing" in line and "[reconcile]" in line
    # More than 1% repaired: the check warns (and the run still succeeds and publishes).
    assert "warning: warehouse/orders reconcile_drift" in done.stdout
    assert pipeline.differences() == {}

    again = cli("sync", "--reconcile", "--stream", "orders")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "orders: 0 new, 0 changed, 0 missing" in again.stdout
    assert "reconcile_drift" not in again.stdout

    refused = cli("sync", "--reconcile", "--full-refresh")
    assert refused.returncode == 2 and "cannot be combined" in refused.stderr
