"""The incremental returns read re-reads every open return older than its window, by date
windows, on every run, and lands only what changed (streams/returns.py, sync/open_reads.py):
on a real emulator over loopback, real Parquet and DuckDB files."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from centra_pipeline.emulator.clock import parse_local
from centra_pipeline.sync.open_reads import with_window
from centra_pipeline.sync.reconcile import KeyIndex, day_ranges
from centra_pipeline_tests.conftest import TZ, Pipeline, running_emulator

ALL = 1_000_000  # a tick count larger than the store: complete every open return


def open_returns_before(pipeline: Pipeline, newer_than: str) -> set[int]:
    """The returns the warehouse holds as open that are older than the window."""
    rows = pipeline.warehouse.query(
        f"SELECT return_id FROM main.returns WHERE NOT completed AND _missing_since IS NULL "
        f"AND date < timezone('{TZ}', ?::TIMESTAMP)",
        [newer_than],
    )
    return {r[0] for r in rows}


def completed(pipeline: Pipeline, ids: set[int]) -> dict[int, bool]:
    rows = pipeline.warehouse.query(
        "SELECT return_id, completed FROM main.returns WHERE return_id IN (SELECT unnest(?))",
        [sorted(ids)],
    )
    return dict(rows)


def returns_requests(pipeline: Pipeline) -> int:
    """The emulator's own count of the GET /returns requests it answered."""
    return pipeline.emu.stats()["requests"].get("order GET /returns", 0)


def test_an_open_return_older_than_the_window_is_updated_when_it_completes(
    pipeline: Pipeline,
) -> None:
    pipeline.sync(["returns"])
    first, _ = pipeline.sync(["returns"])["returns"]
    old_open = open_returns_before(pipeline, first.window["newer_than"])
    assert old_open, "the store must hold open returns older than the window"

    changes = pipeline.emu.tick(completed_returns=ALL)
    assert old_open <= set(changes["completed_return_ids"])
    manifest, merged = pipeline.sync(["returns"])["returns"]
    assert manifest.window["newer_than"] == first.window["newer_than"]
    assert manifest.window["open_returns_reread"] == len(old_open)
    assert completed(pipeline, old_open) == dict.fromkeys(old_open, True)
    # Exactly the returns that changed were landed, the old ones among them.
    assert manifest.records == merged.updated == len(changes["completed_return_ids"])
    assert pipeline.differences(["returns"]) == {}


def test_a_no_change_incremental_lands_no_returns_in_a_bounded_number_of_requests(
    pipeline: Pipeline,
) -> None:
    full, _ = pipeline.sync(["returns"])["returns"]
    before = returns_requests(pipeline)
    manifest, merged = pipeline.sync(["returns"])["returns"]
    # The window and the open returns before it are read (here as one date window, as the
    # store's returns fit a page); nothing matches anything but the warehouse.
    assert manifest.window["open_returns_reread"] > 0
    assert manifest.window["open_day_ranges"] >= 1
    assert manifest.records_read >= manifest.window["open_returns_reread"]
    assert manifest.records == 0 and sum(manifest.rows.values()) == 0
    assert merged.staged == merged.new == merged.updated == merged.missing == 0
    assert manifest.requests == returns_requests(pipeline) - before <= 2
    assert manifest.cursor_after == full.cursor_after


def test_every_open_return_is_reread_every_run(data_dir: Path) -> None:
    """More open returns older than the window than the one-by-one re-read took per run
    (100): all of them completing are all seen by the next run, in a few requests."""
    with running_emulator(orders=4000, returns=2500) as emu:
        pipeline = Pipeline(emu, data_dir)
        pipeline.sync(["returns"])
        first, _ = pipeline.sync(["returns"])["returns"]
        old_open = open_returns_before(pipeline, first.window["newer_than"])
        assert len(old_open) > 100
        changes = emu.tick(completed_returns=ALL)
        before = returns_requests(pipeline)
        manifest, merged = pipeline.sync(["returns"])["returns"]
        assert completed(pipeline, old_open) == dict.fromkeys(old_open, True)
        assert merged.updated == len(changes["completed_return_ids"])
        assert pipeline.differences(["returns"]) == {}
        # 2,500 returns fit one page of the re-read: one window, and the request that
        # finds nothing older.
        assert returns_requests(pipeline) - before == manifest.requests <= 2


def test_open_returns_far_apart_are_read_as_separate_ranges_and_all_updated(
    pipeline: Pipeline,
) -> None:
    """With a page smaller than the rows between open days, each run of open days is its own
    date window (as in the reconciliation's open pass), and the window is the last."""
    pipeline.sync(["returns"])
    first, _ = pipeline.sync(["returns"], page_size=2)["returns"]
    assert first.records == 0
    assert first.window["open_day_ranges"] > 1
    old_open = open_returns_before(pipeline, first.window["newer_than"])
    pipeline.emu.tick(completed_returns=ALL)
    manifest, _ = pipeline.sync(["returns"], page_size=2)["returns"]
    assert completed(pipeline, old_open) == dict.fromkeys(old_open, True)
    assert pipeline.differences(["returns"]) == {}
    # Fewer returns read than the store holds: the days between the ranges are skipped.
    assert manifest.records_read < pipeline.emu.stats()["returns"]["visible"]


def test_an_open_return_on_the_windows_first_day_but_before_it_is_reread(
    pipeline: Pipeline,
) -> None:
    """The window starts mid-day; an open return earlier that day is read with the window,
    which then starts a second before the day does."""
    pipeline.sync(["returns"])
    cursor = pipeline.warehouse.state("returns").cursor
    assert cursor is not None
    newer_than = datetime.strptime(cursor, "%Y-%m-%d %H:%M:%S") - timedelta(days=7)
    assert newer_than.time() > datetime.min.time(), "the window must start after midnight"
    store = pipeline.emu.store
    with store.lock:  # one open return just after midnight of that day, all others completed
        returns = store.returns
        target = int(np.flatnonzero(returns.local < parse_local(cursor) - 8 * 86400)[0])
        returns.local[target] = parse_local(f"{newer_than:%Y-%m-%d} 00:00:01")
        returns.epoch[target] = store.clock.from_local(int(returns.local[target]))
        returns.completed[:] = True
        returns.completed[target] = False
        store.version += 1
        store._cache.clear()
    pipeline.sync(["returns"], mode="full_refresh")
    target_id = target + 1
    assert open_returns_before(pipeline, f"{newer_than:%Y-%m-%d %H:%M:%S}") == {target_id}

    with store.lock:
        returns.completed[target] = True
        store.version += 1
        store._cache.clear()
    manifest, _ = pipeline.sync(["returns"], page_size=2)["returns"]
    assert completed(pipeline, {target_id}) == {target_id: True}
    day_before = newer_than - timedelta(days=1)
    assert manifest.window["read_newer_than"] == f"{day_before:%Y-%m-%d} 23:59:59"


def test_an_open_return_centra_no_longer_serves_is_left_to_the_reconciliation(
    pipeline: Pipeline,
) -> None:
    """The incremental read expects nothing back: a hidden open return is not marked
    missing by it (nor named as not returned); the daily open pass marks it."""
    pipeline.sync(["returns"])
    first, _ = pipeline.sync(["returns"])["returns"]
    old_open = open_returns_before(pipeline, first.window["newer_than"])
    markets = dict(
        pipeline.warehouse.query(
            "SELECT return_id, market_id FROM main.returns WHERE return_id IN (SELECT unnest(?))",
            [sorted(old_open)],
        )
    )
    hidden_market = markets[min(old_open)]
    hidden = {r for r, m in markets.items() if m == hidden_market}
    others = tuple(m for m in (1, 2, 3, 4, 5, 6) if m != hidden_market)
    pipeline.emu.set_plugin("order", markets=others)

    manifest, merged = pipeline.sync(["returns"])["returns"]
    assert manifest.missing_keys == [] and merged.missing == 0
    marked = pipeline.warehouse.query(
        "SELECT count(*) FROM main.returns WHERE _missing_since IS NOT NULL"
    )
    assert marked == [(0,)]
    # Still open in the warehouse, so the next run reads its days again.
    assert hidden <= open_returns_before(pipeline, manifest.window["newer_than"])

    _, reconciled = pipeline.sync(["returns"], mode="reconcile_open")["returns"]
    gone = {
        r[0]
        for r in pipeline.warehouse.query(
            "SELECT return_id FROM main.returns WHERE _missing_since IS NOT NULL"
        )
    }
    assert hidden <= gone and reconciled.missing == len(gone)


def test_the_window_is_the_last_range_and_takes_the_open_days_just_before_it() -> None:
    day = date(2026, 3, 1)

    def d(n: int) -> date:
        return day + timedelta(days=n)

    # Open days 1 and 6, 30 rows on every day before the window, which starts on day 8.
    days = {d(n): (30, 1 if n in (1, 6) else 0) for n in range(1, 8)}
    days[d(9)] = (12, 0)
    # Day 6 lies less than a page of rows (day 7's) before the window: read with it.
    spread = day_ranges(with_window(days, d(8)), merge_below=50)
    assert [(r.first, r.last) for r in spread] == [(d(1), d(1)), (d(6), d(9))]
    # Less than a page of rows between day 1 and day 6 too: one read, from day 1.
    one = day_ranges(with_window(days, d(8)), merge_below=130)
    assert [(r.first, r.last) for r in one] == [(d(1), d(9))]
    # No row on or after the window's day yet: the window is still a range of its own.
    assert day_ranges(with_window({d(1): (5, 0)}, d(8)))[-1].first == d(8)


def test_an_index_expecting_nothing_marks_nothing_missing() -> None:
    index = KeyIndex([1, 2, 3], ["a", "b", "c"]).expecting_none()
    assert index.changed([1], ["a"]) == [False]
    assert index.unseen() == []
