"""A configured plugin URL with or without a trailing slash builds the same requests.

Centra's admin shows plugin URLs both ways, and users paste them either way. The client
must send `/api/order/orders`, never `/api/order//orders`: Centra's web server happens to
merge the slashes (the emulator does too, see docs/emulator.md), but a proxy in between
need not, so the client never depends on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from centra_pipeline.centra import order_api, shop_api
from centra_pipeline.centra.http import CentraSession, join_url, normalize_base_url
from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.centra.shop_api import ShopApi
from centra_pipeline.emulator import Emulator

from .conftest import FAST, raws

BASES = ("http://127.0.0.1:8081/api/order", "http://127.0.0.1:8081/api/order/")


class Recorder:
    """Clients whose HTTP session records the path of every request it sends."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.opened: list[CentraSession] = []

    def _session(self, url: str, key: str, api_name: str) -> CentraSession:
        http = requests.Session()
        http.trust_env = False
        http.hooks["response"].append(
            lambda response, *args, **kwargs: self.paths.append(urlsplit(response.request.url).path)
        )
        session = CentraSession(url, key, api_name=api_name, config=FAST, session=http)
        self.opened.append(session)
        return session

    def order(self, url: str, key: str, page_size: int = 40) -> OrderApi:
        return OrderApi(self._session(url, key, order_api.API_NAME), page_size=page_size)

    def shop(self, url: str, key: str, page_size: int = 4) -> ShopApi:
        return ShopApi(self._session(url, key, shop_api.API_NAME), page_size=page_size)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    for session in rec.opened:
        session.close()


def _order_reads(api: OrderApi, customer_id: int) -> dict[str, Any]:
    return {
        "orders": raws(api.iter_orders()),
        "returns": raws(api.iter_returns(page_size=7)),
        "customers": raws(api.iter_customers()),
        "customer": api.get_customer(customer_id),
        "products": raws(api.iter_products(page_size=9)),
        "stock": raws(api.iter_stock(page_size=9)),
    }


@pytest.mark.parametrize("base", BASES)
def test_the_session_keeps_one_base_url_whatever_the_trailing_slash(base: str) -> None:
    with CentraSession(base, "key", api_name="Order API") as session:
        assert session.base_url == "http://127.0.0.1:8081/api/order"
    assert join_url(normalize_base_url(base), "/orders") == "http://127.0.0.1:8081/api/order/orders"


def test_base_url_normalisation_merges_slashes_and_drops_only_trailing_ones() -> None:
    assert normalize_base_url("https://x.centra.com/api/order///") == (
        "https://x.centra.com/api/order"
    )
    assert normalize_base_url("https://x.centra.com//api//order") == (
        "https://x.centra.com/api/order"
    )
    assert normalize_base_url("https://x.centra.com/") == "https://x.centra.com"
    assert join_url("https://x.centra.com", "/products/filter") == (
        "https://x.centra.com/products/filter"
    )
    assert join_url("https://x.centra.com/api/shop/", "//products") == (
        "https://x.centra.com/api/shop/products"
    )


def test_an_order_api_url_with_a_trailing_slash_reads_the_same_records_on_the_same_paths(
    emu: Emulator, recorder: Recorder
) -> None:
    url = emu.order_api_url
    assert not url.endswith("/")
    customer_id = 3
    plain = _order_reads(recorder.order(url, emu.order_api_key), customer_id)
    plain_paths, recorder.paths = recorder.paths, []
    slashed = _order_reads(recorder.order(url + "/", emu.order_api_key), customer_id)
    assert slashed == plain
    assert plain["orders"] and plain["returns"] and plain["products"] and plain["customer"]
    assert recorder.paths == plain_paths
    assert set(plain_paths) == {
        "/api/order/orders",
        "/api/order/returns",
        "/api/order/customers",
        f"/api/order/customers/{customer_id}",
        "/api/order/products",
        "/api/order/stock",
    }


def test_a_shop_api_url_with_a_trailing_slash_reads_the_same_catalogue_on_the_same_paths(
    emu: Emulator, recorder: Recorder
) -> None:
    def reads(api: ShopApi) -> dict[str, Any]:
        ids = api.product_ids()
        return {
            "pages": raws(api.iter_products()),
            "ids": ids,
            "all": raws([api.all_products()]),
            "some": [r.raw for r in api.get_products(ids[:2])],
        }

    plain = reads(recorder.shop(emu.shop_api_url, emu.shop_api_key))
    plain_paths, recorder.paths = recorder.paths, []
    slashed = reads(recorder.shop(emu.shop_api_url + "//", emu.shop_api_key))
    assert slashed == plain and plain["pages"] and len(plain["some"]) == 2
    assert recorder.paths == plain_paths
    assert set(plain_paths) == {
        "/api/shop/product-ids",
        "/api/shop/products/filter",
        "/api/shop/products",
    }
