"""The incremental orders read: its lookback window is read in full every run, and only the
orders new or changed since the warehouse's copy are landed (streams/orders.py); and, for
it and the open-returns read alike, what happens while a landed load waits to be merged."""

from __future__ import annotations

import pytest

from centra_pipeline_tests.conftest import TZ, Pipeline


def in_window(pipeline: Pipeline, ids: list[int], newer_than: str) -> set[int]:
    """The orders among `ids` dated from the window's start on (store-local)."""
    rows = pipeline.warehouse.query(
        f"SELECT order_id FROM main.orders WHERE order_id IN (SELECT unnest(?)) "
        f"AND order_date >= timezone('{TZ}', ?::TIMESTAMP)",
        [sorted(ids), newer_than],
    )
    return {r[0] for r in rows}


def test_a_no_change_incremental_reads_the_window_and_lands_no_order(pipeline: Pipeline) -> None:
    full, _ = pipeline.sync(["orders"])["orders"]
    manifest, merged = pipeline.sync(["orders"])["orders"]
    assert "newer_than" in manifest.window
    assert manifest.records_read > 0  # the lookback window was read ...
    assert manifest.records == 0 and sum(manifest.rows.values()) == 0  # ... none landed
    assert merged.staged == merged.new == merged.updated == merged.missing == 0
    assert manifest.cursor_after == full.cursor_after
    assert pipeline.differences(["orders"]) == {}


def hashes(pipeline: Pipeline) -> dict[int, str]:
    return dict(pipeline.warehouse.query("SELECT order_id, _hash FROM main.orders"))


def test_an_incremental_lands_exactly_the_new_and_changed_orders_of_its_window(
    pipeline: Pipeline,
) -> None:
    pipeline.sync(["orders"])
    before = hashes(pipeline)
    changes = pipeline.emu.tick(new_orders=7, updated_orders=40)
    manifest, merged = pipeline.sync(["orders"])["orders"]
    after = hashes(pipeline)
    # The new orders the Order API serves (the plugin's status filter may hide some).
    new = set(after) - set(before)
    assert new and new <= set(changes["new_order_ids"])
    updated = in_window(pipeline, changes["updated_order_ids"], manifest.window["newer_than"])
    assert updated, "the tick must change orders inside the window"
    assert manifest.records == len(new | updated) < manifest.records_read
    assert merged.new == len(new) and merged.updated == len(updated)
    assert manifest.rows["order_lines"] > 0  # a landed order brings its child rows
    # The warehouse took every change inside the window: the rows whose hash moved are the
    # window's updated orders (updated orders older than it are the webhooks' work).
    assert {k for k, h in before.items() if after[k] != h} == updated


@pytest.mark.parametrize(
    ("stream", "tick"), [("orders", {"new_orders": 3}), ("returns", {"completed_returns": 3})]
)
def test_a_pending_load_makes_the_incremental_land_everything_it_reads(
    pipeline: Pipeline, stream: str, tick: dict[str, int]
) -> None:
    """Both incremental reads that compare with the warehouse (the orders window, the open
    returns): while a landed load waits to be merged (a run died in between), comparing with
    the warehouse alone could let the pending, older version win, so they land all."""
    pipeline.sync([stream])
    pipeline.emu.tick(**tick)
    pending = pipeline.extract(stream)  # landed, not merged
    assert 0 < pending.records < pending.records_read  # compared: only the changed ones
    manifest = pipeline.extract(stream)
    assert manifest.records == manifest.records_read > 0
    pipeline.warehouse.merge_loads([pending, manifest])
    assert pipeline.differences([stream]) == {}
