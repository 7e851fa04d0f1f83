"""GET /orders paging, filters, plugin settings and the error paths around the Order API."""

from __future__ import annotations

import itertools
from typing import Any

import requests

from centra_pipeline.emulator import Emulator

from .conftest import ORDER_KEY, Client, make_config


def _all_pages(client: Client, limit: int, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Page with offset until a short page; returns (orders, number of requests)."""
    out: list[dict[str, Any]] = []
    requests_made = 0
    while True:
        page = client.orders(limit=limit, offset=len(out), **params)
        requests_made += 1
        out.extend(page)
        if len(page) < limit:
            return out, requests_made


def _key(order: dict[str, Any]) -> tuple[str, int]:
    return order["orderDate"], int(order["orderId"])


def test_default_limit_is_20_and_results_are_sorted_by_date_then_id(shared: Client) -> None:
    first = shared.orders()
    assert len(first) == 20
    everything = shared.orders(limit=5000)
    assert [_key(o) for o in everything] == sorted(_key(o) for o in everything)
    assert everything == list(shared.emu.store.iter_orders())
    assert first == everything[:20]


def test_offset_paging_covers_everything_once_including_an_exact_last_page(shared: Client) -> None:
    truth = shared.emu.store.order_numbers()
    total = len(truth)
    divisor = next(d for d in range(7, total) if total % d == 0)  # a limit that divides total
    pages, requests_made = _all_pages(shared, divisor)
    assert [int(o["orderId"]) for o in pages] == truth
    assert requests_made == total // divisor + 1  # the page after the exact last one is empty
    assert shared.orders(limit=10, offset=total) == []
    assert shared.orders(limit=10, offset=total + 1000) == []
    assert len(shared.orders(limit=10, offset=total - 3)) == 3


def test_limit_above_max_limit_is_clamped(start: Any) -> None:
    client = start(max_limit=50)
    assert len(client.orders(limit=100_000)) == 50


def test_newer_than_is_inclusive_and_older_than_exclusive(shared: Client) -> None:
    everything = shared.orders(limit=5000)
    pivot = everything[len(everything) // 2]["orderDate"]
    newer = shared.orders(limit=5000, newer_than=pivot)
    older = shared.orders(limit=5000, older_than=pivot)
    assert newer == [o for o in everything if o["orderDate"] >= pivot]
    assert older == [o for o in everything if o["orderDate"] < pivot]
    assert len(newer) + len(older) == len(everything)
    assert newer[0]["orderDate"] == pivot
    day = pivot[:10]
    assert shared.orders(limit=5000, newer_than=day) == [
        o for o in everything if o["orderDate"] >= f"{day} 00:00:00"
    ]
    window = shared.orders(limit=5000, newer_than=pivot, older_than=pivot)
    assert window == []


def test_bounds_are_configurable(start: Any) -> None:
    client = start(orders_newer_than_inclusive=False, orders_older_than_inclusive=True)
    everything = client.orders(limit=5000)
    pivot = everything[100]["orderDate"]
    assert client.orders(limit=5000, newer_than=pivot) == [
        o for o in everything if o["orderDate"] > pivot
    ]
    assert client.orders(limit=5000, older_than=pivot) == [
        o for o in everything if o["orderDate"] <= pivot
    ]


def test_empty_results_and_single_order_lookup(shared: Client) -> None:
    assert shared.orders(newer_than="2030-01-01") == []
    assert shared.orders(older_than="2000-01-01") == []
    number = shared.emu.store.order_numbers()[42]
    found = shared.orders(order=number)
    assert [o["orderId"] for o in found] == [str(number)]
    assert found[0] == shared.emu.store.render_order(number)
    assert shared.order("/orders", order=99_999_999).json() == {"status": "ok", "orders": []}
    hidden = [
        n
        for n in shared.emu.store.order_numbers(visible_only=False)
        if shared.emu.store.render_order(n) is None
    ]
    assert hidden  # hold / waitingForPayment orders exist and are invisible by default
    assert shared.orders(order=hidden[0]) == []


def test_customer_id_filter(shared: Client) -> None:
    everything = shared.orders(limit=5000)
    customer = everything[10]["customerId"]
    mine = shared.orders(limit=5000, customer_id=customer)
    assert mine and mine == [o for o in everything if o["customerId"] == customer]
    assert shared.orders(customer_id=10**9) == []


def test_business_errors_are_http_200_with_status_no(shared: Client) -> None:
    cases = [
        {"limit": "abc"},
        {"limit": 0},
        {"limit": -5},
        {"offset": -1},
        {"offset": "x"},
        {"newer_than": "2024-13-01"},
        {"newer_than": "yesterday"},
        {"older_than": "2024-01-01T10:00:00"},
        {"order": "ABC"},
        {"xml": 1},
    ]
    for params in cases:
        response = shared.order("/orders", **params)
        body = response.json()
        assert response.status_code == 200, params
        assert body["status"] == "no" and isinstance(body["msg"], str) and body["msg"], params
        assert "orders" not in body
    assert "XML" in shared.order("/orders", xml=1).json()["msg"]


def test_auth_forbidden_and_unknown_paths(fresh: Client) -> None:
    for key in (None, "", "wrong"):
        response = fresh.order("/orders", key=key)
        assert response.status_code == 401
        assert response.json() == {"status": "no", "msg": "Authorization failed"}
    shop_key_on_order_api = fresh.order("/orders", key=fresh.emu.shop_api_key)
    assert shop_key_on_order_api.status_code == 401
    unknown = fresh.order("/ordersX")
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"status": "no", "msg": "Unknown endpoint"},
    )
    post = fresh.session.post(
        fresh.emu.order_api_url + "/orders", headers={"API-Authorization": ORDER_KEY}, timeout=10
    )
    assert post.status_code == 404
    page = fresh.session.get(fresh.emu.base_url + "/api/orders", timeout=10)  # wrong base URL
    assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html")
    assert "<html>" in page.text

    fresh.emu.set_plugin("order", allowed_endpoints=["GET /orders"])
    denied = fresh.order("/returns")
    assert (denied.status_code, denied.json()) == (403, {"status": "Not Allowed"})
    assert fresh.order("/customers/1").status_code == 403
    assert fresh.order("/orders").status_code == 200
    # A trailing slash is the same endpoint (Centra's own examples use one).
    assert fresh.order("/orders/").status_code == 200


def test_plugin_statuses_markets_and_hold_wfp(fresh: Client) -> None:
    store = fresh.emu.store
    all_orders = list(store.iter_orders(visible_only=False))
    fresh.emu.set_plugin("order", statuses=[4])
    orders = fresh.orders(limit=5000)
    assert orders and {o["orderStatus"] for o in orders} == {"4"}

    fresh.emu.set_plugin("order", statuses=[1, 2, 3, 4, 5, 6], markets=[1, 3])
    orders = fresh.orders(limit=5000)
    assert orders and {o["marketId"] for o in orders} <= {1, 3}
    assert len(orders) == len(
        [
            o
            for o in all_orders
            if o["marketId"] in (1, 3) and not (o["hold"] or o["waitingForPayment"])
        ]
    )

    fresh.emu.set_plugin("order", markets=None)
    default = fresh.orders(limit=5000)
    assert all(o["hold"] == 0 and o["waitingForPayment"] == 0 for o in default)
    fresh.emu.set_plugin("order", include_hold_wfp=True)
    everything = fresh.orders(limit=5000)
    assert len(everything) == len(all_orders) > len(default)
    assert any(o["hold"] for o in everything) and any(o["waitingForPayment"] for o in everything)


def test_plugin_changes_over_the_admin_api(fresh: Client) -> None:
    response = fresh.admin("POST", "/plugin", json={"api": "order", "statuses": [5]})
    assert response.status_code == 200 and response.json()["statuses"] == [5]
    assert {o["orderStatus"] for o in fresh.orders(limit=5000)} == {"5"}
    bad = fresh.admin("POST", "/plugin", json={"api": "order", "statuses": [9]})
    assert bad.status_code == 400 and "status" in bad.json()["error"]
    bad = fresh.admin("POST", "/plugin", json={"api": "nope"})
    assert bad.status_code == 400
    rotated = fresh.admin("POST", "/plugin", json={"api": "order", "secret": "new-key"})
    assert rotated.status_code == 200 and "new-key" not in rotated.text
    assert fresh.order("/orders").status_code == 401
    assert fresh.order("/orders", key="new-key").status_code == 200


def test_status_words_and_observed_types(start: Any) -> None:
    words = start(order_status_format="word").orders(limit=5000)
    assert {o["orderStatus"] for o in words} <= {
        "pending",
        "confirmed",
        "processing",
        "completed",
        "archived",
        "cancelled",
    }
    observed = start(type_style="observed").orders(limit=50)
    for order in observed:
        assert isinstance(order["marketId"], str) and isinstance(order["pricelistId"], str)
        for line in order["products"]:
            assert all(isinstance(w["itemQty"], str) for w in line["warehouses"])


def test_descending_sort_option(start: Any) -> None:
    client = start(orders_sort="desc")
    orders = client.orders(limit=5000)
    assert [_key(o) for o in orders] == sorted((_key(o) for o in orders), reverse=True)
    assert client.orders(limit=5)[0] == orders[0]


def test_custom_attributes_can_be_switched_off(start: Any) -> None:
    orders = start(custom_attributes=False).orders(limit=5000)
    assert not any("order_attr_external_id" in o for o in orders)


def test_order_flow_and_money_are_consistent(shared: Client) -> None:
    orders = list(shared.emu.store.iter_orders(visible_only=False))
    statuses = {o["orderStatus"] for o in orders}
    assert statuses == {"1", "2", "3", "4", "5", "6"}
    lines = sum(len(o["products"]) for o in orders) / len(orders)
    assert lines >= 3
    assert len({o["orderCurrency"] for o in orders}) >= 4
    for order in orders:
        shipped = [s for s in order["shipments"] if s["shippedDate"] != "0000-00-00 00:00:00"]
        if order["orderStatus"] in ("4", "5"):
            assert shipped and shipped[0]["shippedDate"] >= order["orderDate"]
        else:
            assert not shipped
        assert (order["cancelDate"] != "0000-00-00 00:00:00") == (order["orderStatus"] == "6")
        items = round(sum(line["totalPrice"] for line in order["products"]), 2)
        assert items == order["totalItemsPrice"]
        grand = round(items + order["shippingValue"] + order["voucherValue"], 2)
        assert grand == order["grandTotalValue"]
    # Old orders are mostly finished, recent ones mostly open.
    old = [o for o in orders if o["orderDate"] < "2025-06-01"]
    recent = [o for o in orders if o["orderDate"] >= "2026-01-10"]
    assert sum(o["orderStatus"] in ("4", "5", "6") for o in old) / len(old) > 0.9
    assert sum(o["orderStatus"] in ("1", "2", "3") for o in recent) / len(recent) > 0.5


def test_dst_fold_repeats_local_times_and_filters_compare_naive_local_time() -> None:
    # 02:00-03:00 on 2025-10-26 happens twice in Europe/Stockholm.
    cfg = make_config(orders=3000, now="2025-10-26 06:00:00", history_days=1, customers=50)
    with Emulator(cfg) as emu:
        client = Client(emu)
        store_order = list(emu.store.iter_orders())
        by_number = sorted(store_order, key=lambda o: int(o["orderId"]))
        dates = [o["orderDate"] for o in by_number]
        assert any(b < a for a, b in itertools.pairwise(dates))  # clocks went back
        api = client.orders(limit=5000)
        assert [_key(o) for o in api] == sorted(_key(o) for o in api)
        in_fold = client.orders(
            limit=5000, newer_than="2025-10-26 02:30:00", older_than="2025-10-26 02:31:00"
        )
        assert in_fold
        numbers = sorted(int(o["orderId"]) for o in in_fold)
        # Both passes through 02:30 are matched: their order numbers are far apart.
        assert numbers[-1] - numbers[0] > 50


def test_keep_alive_serves_many_requests_on_one_connection(shared: Client) -> None:
    with requests.Session() as session:
        session.trust_env = False
        for _ in range(5):
            r = session.get(
                shared.emu.order_api_url + "/orders",
                headers={"API-Authorization": ORDER_KEY},
                params={"limit": 1},
                timeout=10,
            )
            assert r.status_code == 200 and r.headers.get("Connection") != "close"
