"""The pipeline's invariants (docs/architecture.md) on a real emulator, Parquet and DuckDB."""

from __future__ import annotations

import duckdb
import pytest

from centra_pipeline.storage.lake import Lake
from centra_pipeline.storage.warehouse import Warehouse
from centra_pipeline.streams import STREAMS, TABLES
from centra_pipeline.streams.rows import record_hash
from centra_pipeline_tests.conftest import TZ, Pipeline

TICK = {
    "new_orders": 40,
    "updated_orders": 60,
    "new_returns": 15,
    "completed_returns": 10,
    "updated_customers": 25,
    "updated_products": 5,
    "advance_seconds": 3600,
}


def table_rows(pipeline: Pipeline, *, exclude: str = "") -> dict[str, list[tuple]]:
    """Every row of every table, including load metadata, in a stable order."""
    out = {}
    with pipeline.warehouse.reader() as con:
        for name in TABLES:
            select = f"* EXCLUDE ({exclude})" if exclude else "*"
            rows = con.execute(f'SELECT {select} FROM main."{name}"').fetchall()
            out[name] = sorted(rows, key=repr)
    return out


def test_full_sync_lands_and_merges_every_stream(pipeline: Pipeline) -> None:
    results = pipeline.sync()
    assert pipeline.differences() == {}
    counts = pipeline.emu.store.counts()
    manifest, merged = results["orders"]
    assert merged.new == manifest.records == pipeline.emu.stats()["orders"]["visible"]
    assert results["returns"][1].new == counts["returns"]
    assert results["customers"][1].new == counts["customers"]
    # The cursor is the newest order date read, committed with the data.
    state = pipeline.warehouse.state("orders")
    with pipeline.warehouse.reader() as con:
        newest = con.execute(
            f"SELECT strftime(max(order_date) AT TIME ZONE '{TZ}', '%Y-%m-%d %H:%M:%S') FROM orders"
        ).fetchall()[0][0]
    assert state.cursor == newest


def test_tick_then_incremental_sync_equals_the_emulator(pipeline: Pipeline) -> None:
    full = pipeline.sync()
    changes = pipeline.emu.tick(**TICK)
    incremental = pipeline.sync()
    # Orders have no modified-since filter: changes to orders older than the lookback window
    # arrive by webhook (here: the refresh the sensor would request for the tick's ids).
    pipeline.refresh_orders(changes["new_order_ids"] + changes["updated_order_ids"])
    assert pipeline.differences() == {}

    # Work is proportional to the change, not to the store.
    full_orders = full["orders"][0]
    inc_orders = incremental["orders"][0]
    assert inc_orders.records < 0.25 * full_orders.records
    assert inc_orders.requests <= 3
    assert incremental["customers"][0].records <= 2 * TICK["updated_customers"]
    assert incremental["customers"][1].updated == TICK["updated_customers"]
    assert incremental["returns"][1].new == TICK["new_returns"]
    # Products and stock: exactly the stock items of the changed products are read again.
    changed_items = set(changes["updated_stock_item_ids"])
    assert (
        incremental["products"][1].updated + incremental["products"][1].new
        <= len(changed_items)
        <= incremental["products"][0].records
    )
    # The catalogue (no modified filter exists) re-reads only the changed products' entries
    # between its daily full reads, and lands only what changed.
    catalogue, merged = incremental["catalogue"]
    assert "changed_since" in catalogue.window
    assert 0 < catalogue.rows["shop_products"] <= 3 * len(changes["updated_product_ids"])
    assert merged.updated == catalogue.rows["shop_products"] and merged.new == 0
    assert catalogue.records_read < full["catalogue"][0].records_read / 2


def test_catalogue_between_full_reads_rereads_the_products_centra_reports_changed(
    pipeline: Pipeline,
) -> None:
    full, _ = pipeline.sync(["catalogue"])["catalogue"]
    assert full.window == {"full_read": True}
    changes = pipeline.emu.tick(updated_products=7, advance_seconds=2 * 3600)
    manifest, merged = pipeline.sync(["catalogue"])["catalogue"]
    # Asked the Order API what changed since the cursor (less an overlap), then the Shop API
    # for exactly those products: a handful of requests instead of the whole catalogue.
    assert manifest.window["changed_since"] < manifest.cursor_after
    assert manifest.window["products_changed"] == len(changes["updated_product_ids"])
    assert manifest.requests <= 2 + 2 + 2
    assert manifest.cursor_after > full.cursor_after
    shop_ids = {
        str(v.shop_id)
        for v in pipeline.emu.store.shop_variants()
        if v.product.product_id in set(changes["updated_product_ids"])
    }
    assert merged.updated == len(shop_ids) == manifest.rows["shop_products"]
    assert pipeline.differences(["catalogue"]) == {}

    # The next run's overlap asks for the same products again; nothing of them is landed.
    pipeline.emu.tick(advance_seconds=2 * 3600)
    again, merged = pipeline.sync(["catalogue"])["catalogue"]
    assert again.window["products_changed"] == len(changes["updated_product_ids"])
    assert again.records_read == len(shop_ids) and again.records == merged.staged == 0
    # Past the overlap, with nothing changed: two Order API questions and nothing else.
    quiet, merged = pipeline.sync(["catalogue"])["catalogue"]
    assert quiet.window["products_changed"] == 0 and quiet.requests == 2
    assert merged.staged == 0 and quiet.cursor_after >= manifest.cursor_after


def test_catalogue_is_read_in_full_again_once_the_interval_has_passed(pipeline: Pipeline) -> None:
    from datetime import UTC, datetime, timedelta

    pipeline.sync(["catalogue"])
    last_full = pipeline.warehouse.last_full_catalogue_read()
    assert last_full is not None
    hour = timedelta(hours=1)
    targeted, _ = pipeline.sync(["catalogue"], catalogue_full_read_every=hour)["catalogue"]
    assert "changed_since" in targeted.window
    assert pipeline.warehouse.last_full_catalogue_read() == last_full

    # The interval has passed since the last full read started: read everything again.
    elapsed = datetime.now(UTC) - last_full
    again, merged = pipeline.sync(["catalogue"], catalogue_full_read_every=elapsed)["catalogue"]
    assert again.window == {"full_read": True}
    assert again.records_read == len(pipeline.emu.store.shop_variants())
    assert merged.staged == 0  # read in full, but nothing changed, so nothing landed
    assert pipeline.warehouse.last_full_catalogue_read() > last_full
    # 0 means a full read on every run.
    every, _ = pipeline.sync(["catalogue"], catalogue_full_read_every=timedelta(0))["catalogue"]
    assert every.window == {"full_read": True}
    # `state reset catalogue`: the next run reads it in full too.
    pipeline.warehouse.reset_state("catalogue")
    after_reset, _ = pipeline.sync(["catalogue"])["catalogue"]
    assert after_reset.window == {"full_read": True}


@pytest.mark.parametrize(
    ("api", "denied"), [("order", "GET /stock"), ("shop", "POST /products/filter")]
)
def test_a_targeted_catalogue_read_that_fails_changes_nothing(
    pipeline: Pipeline, api: str, denied: str
) -> None:
    from centra_pipeline.centra.errors import CentraEndpointNotAllowed
    from centra_pipeline.emulator.config import API_ENDPOINTS

    pipeline.sync(["catalogue"])
    pipeline.emu.tick(updated_products=5, advance_seconds=3600)
    before = table_rows(pipeline)
    state = pipeline.warehouse.state("catalogue")
    loads = [m.load_id for m in pipeline.lake.loads("catalogue")]
    allowed = [e for e in API_ENDPOINTS[api] if e != denied]
    pipeline.emu.set_plugin(api, allowed_endpoints=allowed)
    with pytest.raises(CentraEndpointNotAllowed, match=denied):
        pipeline.sync(["catalogue"])
    assert table_rows(pipeline) == before
    assert pipeline.warehouse.state("catalogue").cursor == state.cursor
    assert [m.load_id for m in pipeline.lake.loads("catalogue")] == loads
    assert not list(pipeline.lake.root.glob("catalogue/**/*.tmp*"))
    # Allowed again, the next run reads the same changes.
    pipeline.emu.set_plugin(api, allowed_endpoints=None)
    manifest, _ = pipeline.sync(["catalogue"])["catalogue"]
    assert manifest.window["products_changed"] == 5
    assert pipeline.differences(["catalogue"]) == {}


def _set_active(pipeline: Pipeline, product, active: bool) -> None:
    """Take a product out of (or back into) the storefront in Centra."""
    store = pipeline.emu.store
    with store.lock:
        product.active = active
        store.catalog.product_modified[product.index] = store.now
        store._cache.clear()


def test_a_catalogue_load_left_unmerged_by_a_crash_never_outvotes_a_newer_read(
    pipeline: Pipeline,
) -> None:
    """A run lands a change and dies before merging; Centra undoes the change; the next run
    must land what it reads even though it equals the warehouse, or the older pending load
    would win the merge."""
    pipeline.sync(["catalogue"])
    clean = table_rows(pipeline, exclude="_load_id, _extracted_at")
    store = pipeline.emu.store
    product = next(v.product for v in store.shop_variants() if len(v.product.variants) > 1)
    pipeline.emu.tick(advance_seconds=600)
    _set_active(pipeline, product, False)
    crashed = pipeline.extract("catalogue")  # landed, never merged
    assert crashed.missing_keys
    pipeline.emu.tick(advance_seconds=600)
    _set_active(pipeline, product, True)
    pipeline.extract("catalogue")
    pipeline.warehouse.merge_loads(pipeline.warehouse.pending_loads(pipeline.lake, "catalogue"))
    assert table_rows(pipeline, exclude="_load_id, _extracted_at") == clean
    assert pipeline.differences(["catalogue"]) == {}


def test_a_full_refresh_of_the_catalogue_marks_products_gone_from_it(pipeline: Pipeline) -> None:
    pipeline.sync(["catalogue"])
    store = pipeline.emu.store
    product = next(v.product for v in store.shop_variants() if len(v.product.variants) > 1)
    _set_active(pipeline, product, False)
    manifest, merged = pipeline.sync(["catalogue"], mode="full_refresh")["catalogue"]
    assert sorted(int(k) for k in manifest.missing_keys) == sorted(
        v.shop_id for v in product.variants
    )
    assert merged.missing == len(product.variants)
    assert pipeline.differences(["catalogue"]) == {}


def test_a_changed_product_gone_from_the_catalogue_is_marked_missing(pipeline: Pipeline) -> None:
    pipeline.sync(["catalogue"])
    store = pipeline.emu.store
    pipeline.emu.tick(advance_seconds=600)
    product = next(v.product for v in store.shop_variants() if len(v.product.variants) > 1)
    _set_active(pipeline, product, False)
    manifest, merged = pipeline.sync(["catalogue"])["catalogue"]
    gone = sorted(v.shop_id for v in product.variants)
    assert "changed_since" in manifest.window
    assert sorted(int(k) for k in manifest.missing_keys) == gone
    assert merged.missing == len(gone)
    assert pipeline.differences(["catalogue"]) == {}


def test_running_the_same_sync_twice_changes_nothing(pipeline: Pipeline) -> None:
    pipeline.sync()
    pipeline.emu.tick(**TICK)
    pipeline.sync()
    before = table_rows(pipeline, exclude="_extracted_at")
    seen_before = pipeline.warehouse.query("SELECT max(_extracted_at) FROM orders")[0][0]
    again = pipeline.sync()
    for stream, (_, merged) in again.items():
        assert merged.new == 0 and merged.updated == 0, stream
    # Every row, load id and hash as before. The orders window lands only new and changed
    # orders (the warehouse's key/hash index), so no order was re-landed at all.
    assert table_rows(pipeline, exclude="_extracted_at") == before
    assert again["orders"][0].records == 0
    assert pipeline.warehouse.query("SELECT max(_extracted_at) FROM orders")[0][0] == seen_before


def test_an_older_read_merged_late_never_replaces_a_newer_one(pipeline: Pipeline) -> None:
    """Two runs overlap. A reads an order while it is changed (C2); the change is undone and B
    reads it back as it was (C1), finds it unchanged and merges first; then A merges."""
    import json
    from datetime import UTC, datetime

    from centra_pipeline.centra.jsonstream import RawRecord
    from centra_pipeline.streams import STREAMS
    from centra_pipeline.streams.rows import flatten

    pipeline.sync(["orders"])
    changed = pipeline.emu.tick(updated_orders=10, advance_seconds=60)["updated_order_ids"]
    with pipeline.warehouse.reader() as con:
        number, c1 = con.execute(
            "SELECT order_id, _raw FROM read_parquet(?) WHERE order_id IN "
            "(SELECT unnest(?)) ORDER BY order_id LIMIT 1",
            [pipeline.lake.loads("orders")[0].file_paths("orders"), changed],
        ).fetchall()[0]
    run_a = pipeline.extract("orders", mode="refresh", keys=(number,))  # reads C2
    # Centra undoes the change; run B reads C1 again, later than A's read.
    writer = pipeline.lake.writer(
        STREAMS["orders"], "20991231T000000000000Z-orders-b", "refresh", datetime.now(UTC)
    )
    writer.write(
        flatten(
            STREAMS["orders"],
            [RawRecord(json.loads(c1), c1)],
            load_id="20991231T000000000000Z-orders-b",
            extracted_at=datetime.now(UTC),
            seq_start=0,
            tz=TZ,
        )
    )
    run_b = writer.commit()
    (b,) = pipeline.warehouse.merge_loads([run_b])
    assert b.unchanged == 1
    (a,) = pipeline.warehouse.merge_loads([run_a])
    assert a.stale == 1 and a.updated == 0
    with pipeline.warehouse.reader() as con:
        assert con.execute("SELECT _hash FROM orders WHERE order_id = ?", [number]).fetchall()[0][
            0
        ] == record_hash(c1)


def test_merging_a_load_twice_or_out_of_order_converges(pipeline: Pipeline) -> None:
    first = pipeline.extract("orders")
    changes = pipeline.emu.tick(**TICK)
    second = pipeline.extract("orders", mode="full_refresh")
    # Newer load first, then the older one (a crashed run's leftover), then both again.
    pipeline.warehouse.merge_loads([second])
    pipeline.warehouse.merge_loads([first])
    pipeline.warehouse.merge_loads([first, second])
    pipeline.refresh_orders(changes["updated_order_ids"])
    assert pipeline.differences(["orders"]) == {}
    with pipeline.warehouse.reader() as con:
        assert (
            con.execute("SELECT count(*) - count(DISTINCT order_id) FROM orders").fetchall()[0][0]
            == 0
        )


def test_duplicated_records_in_one_batch_are_merged_once(pipeline: Pipeline) -> None:
    """Offset paging over a changing result set can return a record twice."""
    manifest = pipeline.extract("orders", mode="full_refresh")
    again = pipeline.extract("orders", mode="full_refresh")
    # Fold both loads into one manifest: every order and its children appear twice.
    for table in manifest.files:
        manifest.files[table] = manifest.file_paths(table) + again.file_paths(table)
    manifest.path = "/"
    (merged,) = pipeline.warehouse.merge_loads([manifest])
    assert merged.new == manifest.records
    with pipeline.warehouse.reader() as con:
        for name in ("orders", "order_lines", "order_shipments", "order_discounts"):
            keys = ", ".join(TABLES[name].primary_key)
            dupes = con.execute(
                f"SELECT count(*) FROM (SELECT {keys} FROM {name} GROUP BY ALL HAVING count(*) > 1)"
            ).fetchall()[0][0]
            assert dupes == 0, name


def test_any_table_can_be_rebuilt_from_the_lake_alone(pipeline: Pipeline, tmp_path) -> None:
    pipeline.sync()
    changes = pipeline.emu.tick(**TICK)
    pipeline.sync()
    pipeline.refresh_orders(changes["updated_order_ids"])
    original = table_rows(pipeline)
    rebuilt = Warehouse(tmp_path / "rebuilt" / "warehouse.duckdb")
    lake = Lake(pipeline.settings.lake_dir)
    for stream in STREAMS:
        rebuilt.merge_loads(lake.loads(stream))
    with rebuilt.reader() as con:
        for name in TABLES:
            rows = sorted(con.execute(f'SELECT * FROM main."{name}"').fetchall(), key=repr)
            assert rows == original[name], name


def test_backfill_reads_its_window_and_leaves_the_cursor_alone(pipeline: Pipeline) -> None:
    pipeline.sync(["orders"])
    cursor = pipeline.warehouse.state("orders").cursor
    manifest = pipeline.extract(
        "orders", mode="backfill", window_start="2025-06-01", window_end="2025-07-01"
    )
    (merged,) = pipeline.warehouse.merge_loads([manifest])
    assert manifest.window == {
        "newer_than": "2025-06-01 00:00:00",
        "older_than": "2025-07-01 00:00:00",
    }
    assert manifest.cursor_after is None
    assert pipeline.warehouse.state("orders").cursor == cursor
    assert merged.unchanged == manifest.records > 0
    expected = sum(
        1 for o in pipeline.emu.store.iter_orders() if "2025-06-01" <= o["orderDate"] < "2025-07-01"
    )
    assert manifest.records == expected


def test_refresh_of_an_order_centra_no_longer_returns_marks_it_missing(pipeline: Pipeline) -> None:
    pipeline.sync(["orders"])
    victim = next(o for o in pipeline.emu.store.iter_orders() if o["orderStatus"] in ("4", "5"))
    number = int(victim["orderId"])
    # The merchant narrows the plugin's statuses: completed/archived orders are no longer served.
    pipeline.emu.set_plugin("order", statuses=[1, 2, 3, 6])
    manifest, merged = pipeline.refresh_orders([number, 99_999_999])
    assert manifest.missing_keys == [number, 99_999_999]
    assert merged.missing == 1  # the unknown number was never in the warehouse
    with pipeline.warehouse.reader() as con:
        missing_since = con.execute(
            "SELECT _missing_since FROM orders WHERE order_id = ?", [number]
        ).fetchall()[0][0]
        lines = con.execute(
            "SELECT count(*) FROM order_lines WHERE order_id = ?", [number]
        ).fetchall()[0][0]
    assert missing_since is not None
    assert lines == len(victim["products"])  # last known state is kept, not deleted
    pipeline.emu.set_plugin("order", statuses=[1, 2, 3, 4, 5, 6])
    pipeline.refresh_orders([number])
    with pipeline.warehouse.reader() as con:
        assert (
            con.execute(
                "SELECT _missing_since FROM orders WHERE order_id = ?", [number]
            ).fetchall()[0][0]
            is None
        )


def test_publish_swaps_the_snapshot_while_an_analyst_holds_it_open(pipeline: Pipeline) -> None:
    pipeline.sync()
    pipeline.publish()
    snapshot = str(pipeline.settings.snapshot_path)
    reader = duckdb.connect(snapshot, read_only=True)
    before = reader.execute("SELECT count(*) FROM orders").fetchall()[0][0]
    pipeline.emu.tick(**TICK)
    pipeline.sync()
    pipeline.publish()  # does not wait for, or disturb, the open session
    assert reader.execute("SELECT count(*) FROM orders").fetchall()[0][0] == before
    reader.close()
    fresh = duckdb.connect(snapshot, read_only=True)
    after = fresh.execute("SELECT count(*) FROM orders").fetchall()[0][0]
    fresh.close()
    assert after == before + TICK["new_orders"]


def test_publish_with_an_analyst_holding_a_read_write_session(pipeline: Pipeline) -> None:
    pipeline.sync(["customers"])
    pipeline.publish()
    analyst = duckdb.connect(str(pipeline.settings.snapshot_path))  # DuckDB's default mode
    analyst.execute("CREATE TEMP TABLE scratch AS SELECT 1")
    pipeline.emu.tick(updated_customers=3)
    pipeline.sync(["customers"])
    info = pipeline.publish()
    assert info["bytes"] > 0
    analyst.close()


@pytest.mark.parametrize("stream", ["orders", "returns", "customers"])
def test_cursor_never_passes_committed_data(pipeline: Pipeline, stream: str) -> None:
    """Extraction alone (no merge) must not move the cursor."""
    pipeline.sync([stream])
    cursor = pipeline.warehouse.state(stream).cursor
    pipeline.emu.tick(**TICK)
    manifest = pipeline.extract(stream)  # landed, not merged
    assert manifest.cursor_after is not None and manifest.cursor_after > cursor
    assert pipeline.warehouse.state(stream).cursor == cursor


def test_a_value_of_the_wrong_type_fails_the_load_and_changes_nothing(pipeline: Pipeline) -> None:
    """Drift Centra could send tomorrow: a money field that is no longer a number."""
    import json

    from centra_pipeline.centra.order_api import OrderApi
    from centra_pipeline.centra.quirks import TypeDrift
    from centra_pipeline.sync.extract import Extractor
    from centra_pipeline_tests.centra.conftest import PlainServer
    from centra_pipeline_tests.conftest import FAST_HTTP

    pipeline.sync(["orders"])
    before = table_rows(pipeline)
    cursor = pipeline.warehouse.state("orders").cursor
    loads = len(pipeline.lake.loads("orders"))
    order = next(iter(pipeline.emu.store.iter_orders()))
    order["grandTotalValue"] = "thirty euros"
    server = PlainServer()
    server.answer(json.dumps({"status": "ok", "orders": [order]}).encode())
    try:
        extractor = Extractor(
            lake=pipeline.lake,
            warehouse=pipeline.warehouse,
            timezone=TZ,
            order_api=OrderApi.connect(server.url, "key", config=FAST_HTTP),
        )
        with pytest.raises(TypeDrift) as raised:
            extractor.run("orders")
    finally:
        server.stop()
    assert "orders.grand_total_value" in str(raised.value)
    assert order["orderId"] in str(raised.value)
    assert table_rows(pipeline) == before
    assert pipeline.warehouse.state("orders").cursor == cursor
    assert len(pipeline.lake.loads("orders")) == loads
    assert not list(pipeline.lake.stream_dir("orders").glob("day=*/load=*.tmp-*"))


def test_extraction_keeps_at_most_a_few_pages_alive(pipeline: Pipeline) -> None:
    """Flat memory (docs/architecture.md, invariant 7): pages stream through extraction and
    landing; the one being processed and the one prefetched are alive, never the whole
    stream."""
    import gc
    import weakref

    from centra_pipeline.centra.order_api import OrderApi

    alive: list[weakref.ref] = []
    most = 0
    iter_orders = OrderApi.iter_orders

    def counted(self, **kwargs):
        nonlocal most
        for page in iter_orders(self, **kwargs):
            gc.collect()
            alive[:] = [ref for ref in alive if ref() is not None]
            most = max(most, len(alive) + 1)
            alive.append(weakref.ref(page))
            yield page

    pipeline.page_size = 40
    OrderApi.iter_orders = counted
    try:
        manifest = pipeline.extract("orders")
    finally:
        OrderApi.iter_orders = iter_orders
    assert manifest.pages > 10  # a stream of many pages
    assert most <= 3, f"{most} pages alive at once"


def test_the_runtime_stays_relaxed_until_the_last_concurrent_load_ends() -> None:
    """Streams load concurrently and the collector's and thread switching's settings are
    process-wide: the first load to finish must not restore the defaults under the others
    (that doubled the cost of parsing and flattening the long orders stream)."""
    import gc
    import sys

    from centra_pipeline.sync.extract import LOADING_SWITCH_INTERVAL, relaxed_runtime

    before, interval = gc.get_threshold(), sys.getswitchinterval()
    assert interval != LOADING_SWITCH_INTERVAL
    first, second = relaxed_runtime(), relaxed_runtime()
    first.__enter__()
    relaxed = gc.get_threshold()
    assert relaxed != before
    assert sys.getswitchinterval() == LOADING_SWITCH_INTERVAL
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold() == relaxed, "the first load to end restored the defaults"
    assert sys.getswitchinterval() == LOADING_SWITCH_INTERVAL
    assert gc.get_freeze_count() > 0
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
    assert sys.getswitchinterval() == interval
    assert gc.get_freeze_count() == 0


def test_extraction_allocates_arrow_memory_from_the_system_allocator(pipeline: Pipeline) -> None:
    """Arrow's bundled allocator keeps freed pages per thread; with six streams reading at
    once that was a tenth of the peak (sync/allocators.py)."""
    import pyarrow as pa

    pipeline.extract("customers")
    assert pa.default_memory_pool().backend_name == "system"


@pytest.mark.parametrize("bad", ["key_revoked", "truncated_after_first_page"])
def test_a_read_that_fails_changes_nothing(pipeline: Pipeline, bad: str, monkeypatch) -> None:
    """Bad input from Centra (docs/architecture.md, invariant 6): a key that stops working, or
    bodies cut short from the second page on (past the retries): a specific error, and no
    row, cursor or load changes, although the first page was already landed in a temporary
    load."""
    from centra_pipeline.centra.errors import CentraAuthError, CentraError
    from centra_pipeline.centra.order_api import OrderApi

    pipeline.sync(["orders"])
    pipeline.emu.tick(new_orders=30, updated_orders=30, advance_seconds=3600)
    before = table_rows(pipeline)
    cursor = pipeline.warehouse.state("orders").cursor
    loads = [m.load_id for m in pipeline.lake.loads("orders")]
    iter_orders = OrderApi.iter_orders

    def cut_after_first_page(self, **kwargs):
        for number, page in enumerate(iter_orders(self, **kwargs), start=1):
            if number == 1:
                pipeline.emu.faults.set_rates(rate_truncate=1.0)
            yield page

    if bad == "key_revoked":  # rotated in Centra; the pipeline still has the old one
        old_key = pipeline.emu.order_api_key
        pipeline.emu.set_plugin("order", secret="a-new-key-the-pipeline-does-not-have")
        monkeypatch.setattr(type(pipeline.emu), "order_api_key", property(lambda _: old_key))
        expected, match = CentraAuthError, "CENTRA_ORDER_API_KEY"
    else:
        OrderApi.iter_orders = cut_after_first_page
        expected, match = CentraError, "truncated"
    pipeline.page_size = 20
    try:
        with pytest.raises(expected, match=match):
            pipeline.sync(["orders"], lookback=3650)
    finally:
        OrderApi.iter_orders = iter_orders
        pipeline.emu.faults.clear()
    assert table_rows(pipeline) == before
    assert pipeline.warehouse.state("orders").cursor == cursor
    assert [m.load_id for m in pipeline.lake.loads("orders")] == loads
    assert not list(pipeline.lake.root.glob("orders/**/*.tmp*"))
