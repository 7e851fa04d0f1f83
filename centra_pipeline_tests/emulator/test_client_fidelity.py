"""What a real third-party client (the Singer tap `tap-centra`) needs from the emulator:
doubled slashes merged like Centra's web server does, product prices as JSON numbers on
request, and `offset` paging on GET /returns on request (docs/emulator.md lists the switches).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
from decimal import Decimal
from typing import Any

import pytest

from centra_pipeline.emulator import Emulator
from centra_pipeline.emulator.cli import add_arguments, build_config

from .conftest import ORDER_KEY, SHOP_KEY, Client, make_config


def _raw(
    emu: Emulator, method: str, target: str, key: str, body: bytes | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send `target` byte for byte (no client-side URL normalisation): status, headers, body."""
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=30)
    try:
        headers = {"API-Authorization": key}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, sorted(response.getheaders()), response.read()
    finally:
        conn.close()


# doubled slashes ----------------------------------------------------------------------------
ORDER_TARGETS = [
    ("/api/order//orders?limit=7", "/api/order/orders?limit=7"),
    ("/api/order//orders", "/api/order/orders"),
    ("//api/order/orders?limit=3&offset=2", "/api/order/orders?limit=3&offset=2"),
    ("/api//order///returns/?limit=4&page=2", "/api/order/returns?limit=4&page=2"),
    ("/api/order//customers//3", "/api/order/customers/3"),
    ("/api/order//customers?limit=5", "/api/order/customers?limit=5"),
    ("/api/order//products?limit=5&page=2", "/api/order/products?limit=5&page=2"),
    ("/api/order//stock?limit=5", "/api/order/stock?limit=5"),
    ("/api/order//no-such-endpoint", "/api/order/no-such-endpoint"),
]
SHOP_TARGETS = [
    ("/api/shop//products", "/api/shop/products"),
    ("/api/shop//product-ids", "/api/shop/product-ids"),
    ("/api/shop//categories//12", "/api/shop/categories/12"),
    ("//api//shop//brands", "/api/shop/brands"),
    ("/api/shop//no-such-endpoint", "/api/shop/no-such-endpoint"),
]


@pytest.mark.parametrize(("doubled", "single"), ORDER_TARGETS)
def test_order_api_answers_doubled_slash_paths_exactly_like_single_slash_ones(
    shared: Client, doubled: str, single: str
) -> None:
    got = _raw(shared.emu, "GET", doubled, ORDER_KEY)
    expected = _raw(shared.emu, "GET", single, ORDER_KEY)
    assert got == expected
    assert got[0] in (200, 404) and got[2]  # a real answer, not an empty page


@pytest.mark.parametrize(("doubled", "single"), SHOP_TARGETS)
def test_shop_api_answers_doubled_slash_paths_exactly_like_single_slash_ones(
    shared: Client, doubled: str, single: str
) -> None:
    assert _raw(shared.emu, "GET", doubled, SHOP_KEY) == _raw(shared.emu, "GET", single, SHOP_KEY)


def test_a_doubled_slash_post_filters_shop_products_like_the_single_slash_path(
    shared: Client,
) -> None:
    body = json.dumps({"quantity": 3, "offset": 2}).encode()
    got = _raw(shared.emu, "POST", "/api/shop//products//filter", SHOP_KEY, body)
    expected = _raw(shared.emu, "POST", "/api/shop/products/filter", SHOP_KEY, body)
    assert got == expected
    assert got[0] == 200 and len(json.loads(got[2])) == 3


def test_doubled_slash_requests_count_as_the_same_endpoint_and_still_need_the_key(
    fresh: Client,
) -> None:
    emu = fresh.emu
    status, _, body = _raw(emu, "GET", "/api/order//orders?limit=5000", ORDER_KEY)
    assert status == 200
    assert json.loads(body)["orders"] == list(emu.store.iter_orders())
    _raw(emu, "GET", "/api/order/orders", ORDER_KEY)
    assert emu.stats()["requests"]["order GET /orders"] == 2
    refused = _raw(emu, "GET", "/api/order//orders", "wrong-key")
    assert (refused[0], json.loads(refused[2])) == (
        401,
        {"status": "no", "msg": "Authorization failed"},
    )
    # Outside the API areas a doubled slash still lands on the web server's HTML 404.
    page = _raw(emu, "GET", "//api/orders", ORDER_KEY)
    assert page[0] == 404 and b"<html>" in page[2]
    assert _raw(emu, "GET", "/_emulator//health", "")[2] == b'{"status":"ok"}'


# product prices as numbers ------------------------------------------------------------------
def _products(client: Client) -> list[dict[str, Any]]:
    body = client.order("/products").json()
    assert body["status"] == "ok"
    return body["products"]


def _without_row_prices(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "prices": [{k: v for k, v in p.items() if k != "price"} for p in row["prices"]]}


def test_product_prices_are_two_decimal_strings_by_default(shared: Client) -> None:
    rows = _products(shared)
    prices = [p for row in rows for p in row["prices"]]
    assert prices and all(re.fullmatch(r"\d+\.\d{2}", p["price"]) for p in prices)
    campaigns = [c for p in prices for c in p["campaigns"]]
    assert campaigns and all(isinstance(c["price"], int | float) for c in campaigns)


def test_product_prices_as_numbers_changes_only_the_type_of_the_row_price(start: Any) -> None:
    strings = start()
    numbers = start(product_prices_as_numbers=True)
    assert numbers.emu.config.product_prices_as_numbers is True
    with_strings, with_numbers = _products(strings), _products(numbers)
    assert len(with_numbers) == len(with_strings) > 0
    seen_fraction = False
    for as_string, as_number in zip(with_strings, with_numbers, strict=True):
        for p_string, p_number in zip(as_string["prices"], as_number["prices"], strict=True):
            value = p_number["price"]
            assert isinstance(value, int | float) and not isinstance(value, bool)
            assert Decimal(str(value)) == Decimal(p_string["price"])
            seen_fraction = seen_fraction or isinstance(value, float)
            # Campaign prices were numbers already; they are untouched.
            assert p_number["campaigns"] == p_string["campaigns"]
        # Everything else in the row is identical.
        assert _without_row_prices(as_number) == _without_row_prices(as_string)
    assert seen_fraction  # 59.95-style prices, not only whole amounts
    # The JSON text has numbers: whole amounts as ints (329), like every other amount.
    text = numbers.order("/products", limit=50).text
    assert '"price":"' not in text and re.search(r'"price":\d+[,}]', text)
    assert with_numbers == list(numbers.emu.store.iter_product_rows())
    # Stock rows, orders, returns and the Shop API do not change.
    for path, params in (("/stock", {}), ("/orders", {"limit": 50}), ("/returns", {"limit": 50})):
        assert numbers.order(path, **params).json() == strings.order(path, **params).json(), path
    assert numbers.shop("/products").json() == strings.shop("/products").json()


# GET /returns with offset -------------------------------------------------------------------
def _returns(client: Client, **params: Any) -> list[dict[str, Any]]:
    body = client.order("/returns", **params).json()
    assert body["status"] == "ok", body
    return body["returns"]


def test_returns_ignore_offset_by_default_as_only_page_is_documented(shared: Client) -> None:
    assert shared.emu.config.returns_offset is False
    first_page = _returns(shared, limit=10)
    assert _returns(shared, limit=10, offset=5) == first_page
    assert _returns(shared, limit=10, offset=5, page=2) == _returns(shared, limit=10, page=2)
    assert shared.order("/returns", offset=-1).json()["status"] == "ok"  # not even validated


def test_returns_offset_option_selects_records_from_the_offset_on(start: Any) -> None:
    client = start(returns_offset=True)
    everything = _returns(client, limit=5000)
    assert len(everything) == 50 and everything == list(client.emu.store.iter_returns())
    assert _returns(client, limit=10, offset=7) == everything[7:17]
    assert _returns(client, offset=3) == everything[3:23]  # default limit 20
    # offset takes precedence over page; without offset, page works as documented.
    assert _returns(client, limit=10, offset=7, page=3) == everything[7:17]
    assert _returns(client, limit=10, page=3) == everything[20:30]
    assert _returns(client, limit=10, offset="", page=2) == everything[10:20]
    assert _returns(client, limit=10, offset=0) == everything[:10]
    # Paging by offset covers every return once, in the newest-first order.
    paged: list[dict[str, Any]] = []
    while chunk := _returns(client, limit=9, offset=len(paged)):
        paged.extend(chunk)
    assert paged == everything
    assert _returns(client, limit=10, offset=50) == []
    assert _returns(client, limit=10, offset=10_000) == []
    # Filters apply first; the offset counts within the filtered result.
    pivot = everything[25]["date"]
    newer = [r for r in everything if r["date"] >= pivot]
    assert _returns(client, limit=5, offset=4, newer_than=pivot) == newer[4:9]
    # A bad offset is a business error, like a bad offset on GET /orders.
    for bad in (-1, "abc"):
        body = client.order("/returns", offset=bad).json()
        assert body["status"] == "no" and "offset" in body["msg"], body


# CLI ----------------------------------------------------------------------------------------
def _cli_config(*argv: str) -> Any:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return build_config(parser.parse_args(list(argv)))


def test_cli_flags_switch_product_prices_to_numbers_and_returns_to_offset_paging() -> None:
    default = _cli_config()
    assert (default.product_prices_as_numbers, default.returns_offset) == (False, False)
    switched = _cli_config("--product-prices-as-numbers", "--returns-offset")
    assert (switched.product_prices_as_numbers, switched.returns_offset) == (True, True)


def test_the_new_options_must_be_booleans() -> None:
    for name in ("product_prices_as_numbers", "returns_offset"):
        with pytest.raises(ValueError, match=name):
            make_config(**{name: "yes"})
