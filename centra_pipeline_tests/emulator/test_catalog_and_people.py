"""Returns, customers, product/stock rows and the Shop API: paging, filters and consistency."""

from __future__ import annotations

from typing import Any

from .conftest import Client


# returns ------------------------------------------------------------------------------------
def test_returns_are_newest_first_and_page_by_page_number(shared: Client) -> None:
    everything = shared.order("/returns", limit=5000).json()["returns"]
    assert len(everything) == 50  # orders // 10
    keys = [(r["date"], r["returnId"]) for r in everything]
    assert keys == sorted(keys, reverse=True)
    assert everything == list(shared.emu.store.iter_returns())
    assert len(shared.order("/returns").json()["returns"]) == 20  # default limit
    paged: list[dict[str, Any]] = []
    page = 1
    while True:
        chunk = shared.order("/returns", limit=10, page=page).json()["returns"]
        paged.extend(chunk)
        if not chunk:
            break
        page += 1
    assert paged == everything and page == 6  # 5 full pages, then an empty one
    assert shared.order("/returns", page=0).json()["status"] == "no"


def test_return_filters(shared: Client) -> None:
    everything = shared.order("/returns", limit=5000).json()["returns"]
    pivot = everything[20]["date"]
    newer = shared.order("/returns", limit=5000, newer_than=pivot).json()["returns"]
    older = shared.order("/returns", limit=5000, older_than=pivot).json()["returns"]
    assert newer == [r for r in everything if r["date"] >= pivot]  # documented: inclusive
    assert older == [r for r in everything if r["date"] < pivot]  # documented: exclusive
    one = everything[7]
    for params in (
        {"return": one["returnId"]},
        {"order": one["orderId"]},
        {"shipment": one["shipment"]},
        {"selection": one["selectionId"]},
    ):
        assert shared.order("/returns", **params).json()["returns"] == [one], params
    mine = shared.order("/returns", limit=5000, customer_id=one["customerId"]).json()["returns"]
    assert one in mine and all(r["customerId"] == one["customerId"] for r in mine)
    assert shared.order("/returns", **{"return": 99999}).json() == {"status": "ok", "returns": []}
    assert shared.order("/returns", shipment="nonsense").json()["returns"] == []


def test_returns_belong_to_shipped_orders_and_reuse_their_lines(shared: Client) -> None:
    store = shared.emu.store
    orders = {int(o["orderId"]): o for o in store.iter_orders(visible_only=False)}
    for ret in store.iter_returns():
        order = orders[ret["orderId"]]
        assert order["orderStatus"] in ("4", "5")
        shipped = order["shipments"][0]["shippedDate"]
        assert "0000" not in shipped and shipped <= ret["date"]
        assert ret["shipment"] == order["shipments"][0]["shipmentId"]
        assert ret["selectionId"] == order["selectionId"]
        assert str(ret["customerId"]) == order["customerId"]
        assert ret["currency"] == order["orderCurrency"]
        lines = {int(line["lineId"]): line for line in order["products"]}
        for returned in ret["products"]:
            line = lines[returned["orderLineId"]]
            assert not line["isBundle"]
            assert 1 <= returned["quantity"] <= line["qty"]
            assert returned["price"] == line["price"]
            assert (returned["sku"], returned["ean"]) == (line["sku"], line["ean"])
    statuses = [r["completed"] for r in store.iter_returns()]
    assert any(statuses) and not all(statuses)


# customers ----------------------------------------------------------------------------------
def test_customers_paging_and_sort(shared: Client) -> None:
    everything = shared.order("/customers", limit=5000).json()["customers"]
    assert [int(c["customerId"]) for c in everything] == list(range(1, 101))
    assert everything == list(shared.emu.store.iter_customers())
    assert len(shared.order("/customers").json()["customers"]) == 20
    assert shared.order("/customers", limit=30, offset=90).json()["customers"] == everything[90:]
    assert shared.order("/customers", offset=100).json()["customers"] == []


def test_customer_filters(shared: Client) -> None:
    everything = shared.order("/customers", limit=5000).json()["customers"]
    pivot = sorted(c["modified"] for c in everything)[60]
    modified = shared.order("/customers", limit=5000, modified=pivot).json()["customers"]
    assert modified == [c for c in everything if c["modified"] >= pivot]  # inclusive (our choice)
    created_pivot = everything[40]["created"]
    created = shared.order("/customers", limit=5000, created=created_pivot).json()["customers"]
    assert created == [c for c in everything if c["created"] >= created_pivot]
    one = everything[17]
    assert shared.order("/customers", email=one["email"]).json()["customers"] == [one]
    assert shared.order("/customers", email=one["email"].upper()).json()["customers"] == [one]
    assert shared.order("/customers", email="nobody@example.com").json()["customers"] == []
    assert shared.order(f"/customers/{one['customerId']}").json() == {
        "status": "ok",
        "customer": one,
    }
    assert shared.order("/customers/abc").json()["status"] == "no"
    assert shared.order("/customers", modified="not-a-date").json()["status"] == "no"


def test_after_filters_can_be_exclusive(start: Any) -> None:
    client = start(after_filters_inclusive=False)
    everything = client.order("/customers", limit=5000).json()["customers"]
    pivot = everything[40]["created"]
    created = client.order("/customers", limit=5000, created=pivot).json()["customers"]
    assert created == [c for c in everything if c["created"] > pivot]


# products and stock -------------------------------------------------------------------------
def test_products_without_limit_return_every_row(shared: Client) -> None:
    body = shared.order("/products").json()
    assert set(body) == {"status", "products"}  # no links without limit
    assert body["products"] == list(shared.emu.store.iter_product_rows())
    ids = [r["stockItemId"] for r in body["products"]]
    assert ids == sorted(ids) and len(ids) == len(set(ids))


def test_product_paging_links_are_exactly_like_the_docs(shared: Client) -> None:
    everything = shared.order("/products").json()["products"]
    total = len(everything)
    limit = next(d for d in range(3, total) if total % d == 0)  # exact last page
    pages = total // limit
    collected = []
    for page in range(1, pages + 1):
        body = shared.order("/products", limit=limit, page=page, sku=None).json()
        collected.extend(body["products"])
        if page == 1:
            assert "previous" not in body
        else:
            assert body["previous"] == f"?limit={limit}&page={page - 1}"
        if page == pages:
            assert "next" not in body  # omitted on the last page
        else:
            assert body["next"] == f"?limit={limit}&page={page + 1}"
    assert collected == everything
    beyond = shared.order("/products", limit=limit, page=pages + 1).json()
    assert beyond["products"] == [] and "next" not in beyond
    # Filters are applied but not repeated in the links.
    brand_sku = everything[0]["sku"]
    filtered = shared.order("/products", limit=1, sku=brand_sku).json()
    assert filtered.get("next", "?limit=1&page=2") == "?limit=1&page=2"


def test_product_filters(shared: Client) -> None:
    rows = shared.order("/products").json()["products"]
    row = rows[5]
    for name in ("sku", "ean", "productId", "variantId", "stockItemId"):
        got = shared.order("/products", **{name: row[name]}).json()["products"]
        assert row in got and all(r[name] == row[name] for r in got), name
    assert shared.order("/products", productId="x").json()["status"] == "no"
    stock = shared.order("/stock", stockItemId=row["stockItemId"]).json()["products"]
    assert len(stock) == 1 and stock[0]["stockItemId"] == row["stockItemId"]
    slim = shared.order("/stock", exclude="physicalStock", limit=3).json()["products"]
    assert all("physicalStock" not in r for r in slim)
    created = rows[0]["createdAt"]
    after = shared.order("/products", created=created).json()["products"]
    assert after == [r for r in rows if r["createdAt"] >= created]


# Shop API -----------------------------------------------------------------------------------
def test_shop_products_agree_with_order_api_rows(shared: Client) -> None:
    rows = {r["stockItemId"]: r for r in shared.order("/products").json()["products"]}
    stock = {r["stockItemId"]: r for r in shared.order("/stock").json()["products"]}
    shop = shared.shop("/products").json()
    assert list(shop) == sorted(shop, key=int)
    assert list(shop) == shared.shop("/product-ids").json()
    active_variants = {r["variantId"] for r in rows.values() if r["active"] == 1}
    assert {int(p["silkVariant"]) for p in shop.values()} == active_variants
    for product in shop.values():
        for item_id, item in product["items"].items():
            row = rows[int(item_id)]
            assert (int(product["silkProduct"]), int(product["silkVariant"])) == (
                row["productId"],
                row["variantId"],
            )
            assert item["ean"] == row["ean"]
            assert set(item["stockByMarket"].values()) == {stock[int(item_id)]["availableStock"]}
            for market in product["markets"].values():
                for pricelist_id, price in market["pricesByPricelist"].items():
                    listed = next(p for p in row["prices"] if p["id"] == pricelist_id)
                    assert price["priceBeforeDiscountAsNumber"] == float(listed["price"])
                    expected = (
                        listed["campaigns"][0]["price"]
                        if listed["campaigns"]
                        else float(listed["price"])
                    )
                    assert price["priceAsNumber"] == expected
                    assert price["price"] == f"{price['priceAsNumber']:.2f} {listed['currency']}"
        total = sum(stock[int(i)]["availableStock"] for i in product["items"])
        assert all(m["stockOfAllItems"] == total for m in product["markets"].values())


def test_shop_filter_paging_and_validation(shared: Client) -> None:
    everything = shared.shop("/products").json()
    ids = list(everything)

    def post(body: Any) -> Any:
        return shared.shop("/products/filter", method="POST", json=body)

    assert post({}).json() == everything
    page = post({"quantity": 5, "offset": 5}).json()
    assert list(page) == ids[5:10]
    assert post({"offset": len(ids)}).json() == {}
    chosen = post({"products": [ids[3], ids[1], "999"]}).json()
    assert list(chosen) == [ids[1], ids[3]]  # ordered by id, unknown ids ignored
    one = everything[ids[2]]
    assert list(post({"products": ids[2]}).json()) == [ids[2]]
    assert ids[2] in post({"silkProduct": one["silkProduct"]}).json()
    assert list(post({"silkVariant": one["silkVariant"]}).json()) == [ids[2]]
    assert list(post({"uri": one["uri"]}).json()) == [ids[2]]
    category = next(iter(one["categories"]))
    in_category = post({"categories": [category], "market": 1}).json()
    assert ids[2] in in_category and all(category in p["categories"] for p in in_category.values())
    bad = post({"products": [ids[0]], "colour": "red"})
    assert (bad.status_code, bad.json()) == (400, {"errors": {"colour": "unknown field"}})
    assert post({"quantity": "ten"}).status_code == 400
    assert post({"market": 999}).json() == {"errors": {"market": "not found: 999"}}
    malformed = shared.session.post(
        shared.emu.shop_api_url + "/products/filter",
        data=b"{not json",
        headers={"API-Authorization": shared.emu.shop_api_key},
        timeout=10,
    )
    assert malformed.status_code == 400 and "errors" in malformed.json()


def test_shop_auth_and_allow_list(fresh: Client) -> None:
    for key in (None, "wrong", fresh.emu.order_api_key):
        response = fresh.shop("/products", key=key)
        assert (response.status_code, response.json()) == (
            401,
            {"errors": {"authorization": "invalid API key"}},
        )
    fresh.emu.set_plugin("shop", allowed_endpoints=["GET /product-ids"])
    denied = fresh.shop("/products")
    assert (denied.status_code, denied.json()) == (403, {"status": "Not Allowed"})
    assert fresh.shop("/product-ids").status_code == 200
    assert fresh.shop("/nothing-here").status_code == 404
