"""Determinism and the admin tick: each kind of change touches exactly the ids it reports."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from centra_pipeline.emulator import Emulator, TickError
from centra_pipeline.emulator.store import Store

from .conftest import Client, make_config

ENDPOINTS = (
    ("order", "/orders", {"limit": 5000}),
    ("order", "/returns", {"limit": 5000}),
    ("order", "/customers", {"limit": 5000}),
    ("order", "/products", {}),
    ("order", "/stock", {}),
    ("shop", "/products", {}),
    ("shop", "/categories", {}),
)
TICK = {
    "new_orders": 5,
    "updated_orders": 40,
    "new_returns": 3,
    "completed_returns": 2,
    "updated_customers": 4,
    "updated_products": 2,
    "advance_seconds": 3600,
}


def _bodies(client: Client) -> list[bytes]:
    out = []
    for api, path, params in ENDPOINTS:
        response = client.order(path, **params) if api == "order" else client.shop(path)
        assert response.status_code == 200
        out.append(response.content)
    return out


def _snapshot(store: Store) -> dict[str, dict[Any, Any]]:
    return {
        "orders": {int(o["orderId"]): o for o in store.iter_orders(visible_only=False)},
        "returns": {r["returnId"]: r for r in store.iter_returns()},
        "customers": {int(c["customerId"]): c for c in store.iter_customers()},
        "product_rows": {r["stockItemId"]: r for r in store.iter_product_rows()},
        "stock_rows": {r["stockItemId"]: r for r in store.iter_stock_rows()},
        "shop": {int(p["product"]): p for p in store.iter_shop_products()},
    }


def _changed(before: dict[Any, Any], after: dict[Any, Any]) -> set[Any]:
    return {key for key, value in after.items() if before.get(key) != value}


def test_same_seed_and_ticks_give_identical_bytes(start: Any) -> None:
    a, b = start(), start()
    assert _bodies(a) == _bodies(b)
    for client in (a, b):
        response = client.admin("POST", "/tick", json=TICK)
        assert response.status_code == 200
    second = [c.admin("POST", "/tick", json={"new_orders": 2, "updated_orders": 9}) for c in (a, b)]
    assert second[0].content == second[1].content
    assert _bodies(a) == _bodies(b)
    other = start(seed=8)
    assert _bodies(other)[0] != _bodies(a)[0]


def test_tick_changes_exactly_the_reported_ids(fresh: Client) -> None:
    store = fresh.emu.store
    before = _snapshot(store)
    old_now = store.counts()["now"]
    response = fresh.admin("POST", "/tick", json=TICK)
    assert response.status_code == 200
    result = response.json()
    after = _snapshot(store)

    assert result["now"] > old_now
    new, updated = set(result["new_order_ids"]), set(result["updated_order_ids"])
    assert len(new) == 5 and len(updated) == 40 and not new & set(before["orders"])
    assert _changed(before["orders"], after["orders"]) == new | updated
    for number in new:
        order = after["orders"][number]
        assert old_now < order["orderDate"] <= result["now"] and order["orderStatus"] == "1"
    # Updates reach old orders too, not only the recent open ones.
    assert any(before["orders"][n]["orderDate"] < "2025-06-01" for n in updated)
    for number in updated:
        old, new_state = before["orders"][number], after["orders"][number]
        moved = (old["orderStatus"], new_state["orderStatus"])
        assert moved in {
            ("1", "2"), ("2", "3"), ("3", "4"), ("4", "5"),
            ("1", "6"), ("2", "6"), ("3", "6"),
        } or moved[0] == moved[1], moved  # fmt: skip

    new_returns, completed = set(result["new_return_ids"]), set(result["completed_return_ids"])
    assert len(new_returns) == 3 and len(completed) == 2
    assert _changed(before["returns"], after["returns"]) == new_returns | completed
    for rid in completed:
        assert before["returns"][rid]["completed"] is False and after["returns"][rid]["completed"]
    for rid in new_returns:
        assert after["returns"][rid]["completed"] is False
        assert after["returns"][rid]["date"] == result["now"]

    customers = set(result["updated_customer_ids"])
    assert len(customers) == 4 and _changed(before["customers"], after["customers"]) == customers
    assert all(after["customers"][c]["modified"] == result["now"] for c in customers)

    products = set(result["updated_product_ids"])
    assert len(products) == 2
    rows = {sid for sid, row in after["product_rows"].items() if row["productId"] in products}
    assert _changed(before["product_rows"], after["product_rows"]) == rows
    assert (
        _changed(before["stock_rows"], after["stock_rows"])
        == set(result["updated_stock_item_ids"])
        == rows
    )
    shop = {pid for pid, p in after["shop"].items() if int(p["silkProduct"]) in products}
    assert _changed(before["shop"], after["shop"]) == shop
    modified = fresh.order("/products", modified=result["now"]).json()["products"]
    assert {r["stockItemId"] for r in modified} == rows
    stock_modified = fresh.order("/stock", stock_modified=result["now"]).json()["products"]
    assert {r["stockItemId"] for r in stock_modified} == rows


def test_repeated_updates_of_final_orders_still_change_them(fresh: Client) -> None:
    store = fresh.emu.store
    for _ in range(5):
        before = _snapshot(store)["orders"]
        result = fresh.emu.tick(updated_orders=60, advance_seconds=0)
        after = _snapshot(store)["orders"]
        assert _changed(before, after) == set(result["updated_order_ids"])


@pytest.mark.parametrize(
    "body",
    [
        b'{"new_orders": -1}',
        b'{"new_orders": 1.5}',
        b'{"new_orders": "3"}',
        b'{"new_orders": true}',
        b'{"new_orders": 2, "orders": 1}',
        b'{"advance_seconds": null}',
        b"{not json",
        b"[1, 2]",
    ],
)
def test_invalid_tick_is_rejected_and_changes_nothing(fresh: Client, body: bytes) -> None:
    before = fresh.emu.store.counts()
    first_page = fresh.order("/orders", limit=50).content
    response = fresh.admin("POST", "/tick", data=body)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str) and response.json()["error"]
    assert fresh.emu.store.counts() == before
    assert fresh.order("/orders", limit=50).content == first_page


def test_python_tick_validates_like_the_admin_api(fresh: Client) -> None:
    with pytest.raises(TickError, match="unknown field 'bogus'"):
        fresh.emu.tick(bogus=1)
    with pytest.raises(TickError, match="new_orders"):
        fresh.emu.tick(new_orders=-2)
    assert fresh.emu.store.counts()["ticks"] == 0


def test_counts_beyond_what_exists_are_capped() -> None:
    with Emulator(make_config(orders=20, customers=5, products=3, returns=0)) as emu:
        result = emu.tick(updated_orders=1000, updated_customers=50, completed_returns=9)
        assert len(result["updated_order_ids"]) == 20
        assert len(result["updated_customer_ids"]) == 5
        assert result["completed_return_ids"] == []


def test_stats_report_counts_requests_and_clock(fresh: Client) -> None:
    fresh.orders()
    fresh.order("/orders", key="nope")
    fresh.emu.tick(new_orders=2, new_returns=1)
    stats = fresh.admin("GET", "/stats").json()
    assert stats == fresh.emu.stats() | {"requests": stats["requests"]}
    assert stats["orders"]["total"] == 502 and stats["orders"]["visible"] <= 502
    assert stats["returns"]["total"] == 51 and stats["returns"]["open"] >= 1
    assert stats["customers"] == 100 and stats["products"] == 40
    assert stats["stock_items"] > stats["shop_products"] > 0
    assert stats["requests"]["order GET /orders"] == 1
    assert stats["requests"]["order auth failed"] == 1
    assert stats["now"] == "2026-01-15 12:01:00" and stats["ticks"] == 1
    assert stats["webhooks"] == {"enabled": False}
    assert fresh.admin("GET", "/nope").status_code == 404
    assert fresh.admin("GET", "/tick").status_code == 405


def test_date_header_is_the_store_clock(fresh: Client) -> None:
    def server_now(response: Any) -> str:
        moment = parsedate_to_datetime(response.headers["Date"])
        return moment.astimezone(ZoneInfo("Europe/Stockholm")).strftime("%Y-%m-%d %H:%M:%S")

    assert server_now(fresh.order("/orders", limit=1)) == "2026-01-15 12:00:00"
    result = fresh.emu.tick(updated_products=1, advance_seconds=90)
    response = fresh.order("/products", modified=server_now(fresh.order("/stock", limit=1)))
    assert server_now(response) == result["now"] == "2026-01-15 12:01:30"
    assert {r["productId"] for r in response.json()["products"]} == set(
        result["updated_product_ids"]
    )
