"""Syncs under the emulator switches a third-party client (tap-centra) made us add: product
prices sent as JSON numbers load to the same DECIMAL values as the documented strings, and a
plugin URL configured with a trailing slash syncs the same records."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from centra_pipeline.streams import STREAMS
from centra_pipeline_tests.conftest import TZ, Pipeline, running_emulator
from centra_pipeline_tests.truth import table_differences, truth_tables

PRICE_COLUMNS = "stock_item_id, price_id, price, pricelist, currency, campaigns"


def _sync_products(data: Path, **emulator: Any) -> tuple[list[tuple], list[tuple], Any]:
    """Sync products from a fresh emulator: (product_prices rows, column types, manifest)."""
    data.mkdir()
    with running_emulator(products=12, **emulator) as emu:
        pipeline = Pipeline(emu, data)
        ((manifest, _),) = pipeline.sync(["products"]).values()
        with pipeline.warehouse.reader() as con:
            assert table_differences(con, truth_tables(emu, TZ, ["products"])) == {}
            rows = con.execute(
                f"SELECT {PRICE_COLUMNS} FROM product_prices ORDER BY stock_item_id, price_id"
            ).fetchall()
            types = con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'product_prices' ORDER BY column_name"
            ).fetchall()
    return rows, types, manifest


def test_product_prices_sent_as_numbers_load_the_same_decimals_as_price_strings(
    data_dir: Path,
) -> None:
    as_strings, string_types, string_load = _sync_products(data_dir / "strings")
    as_numbers, number_types, number_load = _sync_products(
        data_dir / "numbers", product_prices_as_numbers=True
    )
    assert as_numbers == as_strings
    assert number_types == string_types and ("price", "DECIMAL(18,4)") in number_types
    prices = [row[2] for row in as_numbers]
    assert prices and all(
        isinstance(p, Decimal) and p == p.quantize(Decimal("0.01")) for p in prices
    )
    assert any(p % 1 for p in prices)  # fractional prices (59.95), not only whole ones
    # Nothing was rounded or coerced, in either form.
    assert number_load.coercions == string_load.coercions == {}
    assert number_load.drift == string_load.drift == {}


def test_plugin_urls_with_a_trailing_slash_sync_the_same_records(data_dir: Path) -> None:
    with running_emulator(orders=300, customers=60, products=10) as emu:
        configured = SimpleNamespace(
            order_api_url=emu.order_api_url + "/",
            order_api_key=emu.order_api_key,
            shop_api_url=emu.shop_api_url + "/",
            shop_api_key=emu.shop_api_key,
        )
        pipeline = Pipeline(configured, data_dir)  # type: ignore[arg-type]
        results = pipeline.sync()
        assert set(results) == set(STREAMS)
        with pipeline.warehouse.reader() as con:
            assert table_differences(con, truth_tables(emu, TZ)) == {}
            counts = {
                name: con.execute(f'SELECT count(*) FROM main."{name}"').fetchall()[0][0]
                for name in ("orders", "returns", "customers", "product_prices", "stock")
            }
        assert all(counts.values()), counts
        # Every request hit a known endpoint (a wrong path would be counted as "unknown").
        labels = emu.stats()["requests"]
        assert not any(label.endswith(("unknown", "404")) for label in labels), labels
