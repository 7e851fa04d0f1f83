"""Contract tests: every endpoint has the keys and value types of Centra's documented examples.

The maps below were written by hand from the response examples in Centra's API documentation
(centrahq/api-documentation @ c89c343; docs/emulator.md). Where the docs contradict
themselves we follow one side on purpose; each such place has a comment.
"""

from __future__ import annotations

import re
from typing import Any

from .conftest import Client

NUM = (int, float)
STR_OR_NULL = (str, type(None))
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")

# GET /orders -> orders[] (docs example, top level). `orderStatus` is not in the docs example
# but the order-flow page and tap-centra's schema have it (a string); we always send it.
ORDER = {
    "orderId": str,
    "selectionId": str,
    "orderStatus": str,
    "orderDate": str,
    "cancelDate": str,
    "preferredDeliveryDate": str,
    "estimatedDeliveryDate": str,
    "orderStore": str,
    "orderCurrency": str,
    "customerId": str,
    "accountId": str,
    "deliveryName": str,
    "deliveryCompany": str,
    "deliveryEmail": str,
    "deliveryCell": str,
    "deliveryTele": str,
    "deliveryAddress": str,
    "deliveryCoaddress": str,
    "deliveryZipcode": str,
    "deliveryCity": str,
    "deliveryState": str,
    "deliveryCountry": str,
    "billingName": str,
    "billingCompany": str,
    "billingEmail": str,
    "billingTele": str,
    "billingAddress": str,
    "billingCoaddress": str,
    "billingZipcode": str,
    "billingCity": str,
    "billingState": str,
    "billingCountry": str,
    "billingVAT": str,
    "poNumber": str,
    "shippingList": str,
    "suspect": int,
    "internalOrder": int,
    "hold": int,
    "waitingForPayment": int,
    "shippingValue": NUM,
    "voucherValue": NUM,
    "grandTotalValue": NUM,
    "grandTotalTaxValue": NUM,
    "taxAdded": NUM,
    "taxDeducted": NUM,
    "internalComment": str,
    "otherComment": str,
    "marketId": int,  # docs example: int; tap-centra saw strings (type_style="observed")
    "pricelistId": int,
    "ipAddress": str,
    "paymentPlugin": str,
    "paymentType": str,
    "paymentDescription": str,
    "paymentReference": STR_OR_NULL,  # nullable per the field description
    "paymentMethod": STR_OR_NULL,
    "defaultCarrier": str,
    "shipments": list,
    "totalItemsPriceTax": NUM,
    "totalItemsPrice": NUM,
    "totalItemsWithoutTax": NUM,
    "taxBreakdown": list,
    "products": list,
    "totalItemsDiscount": NUM,
    "discounts": dict,
}
ORDER_OPTIONAL = {"order_attr_external_id": str, "order_attr_gift_message": str}
# The docs example's shipment; `additionalMessage` is what tap-centra saw in real responses.
SHIPMENT = {
    "shipmentId": str,
    "shippedDate": str,
    "carrier": str,
    "service": str,
    "trackingId": str,
    "trackingUrl": str,
    "returnSlipTracking": str,
    "additionalMessage": str,
}
# Order line. Docs inconsistency: the example's first (non-bundle) line carries
# isPartOfBundle while the bundle line does not, and the bundle line lacks otherComment.
# We send otherComment on every line and isPartOfBundle only on lines inside bundle[].
LINE = {
    "lineId": str,
    "sku": str,
    "variantSku": str,
    "sizeSku": str,
    "ean": str,
    "upc": str,
    "name": str,
    "variant": str,
    "brand": str,
    "size": str,
    "qty": int,
    "originalPrice": NUM,
    "price": NUM,
    "weight": NUM,
    "weightUnit": str,
    "countryOfOrigin": str,
    "harmCode": str,
    "comment": str,
    "otherComment": str,
    "taxPercent": NUM,
    "priceDiscount": NUM,
    "priceDiscountAsPercent": NUM,
    "taxValue": NUM,
    "totalTaxValue": NUM,
    "totalPrice": NUM,
    "totalPriceWithoutTax": NUM,
    "totalPriceWithTax": NUM,
    "anyDiscount": bool,
    "priceEachWithoutTax": NUM,
    "priceEachReduction": NUM,
    "warehouses": list,
    "isBundle": bool,
}
WAREHOUSE = {"name": str, "itemQty": int}
TAX_BREAKDOWN = {"description": str, "taxPercent": NUM, "value": NUM}
DISCOUNTS = {
    "anyDiscount": bool,
    "discount": str,
    "discountAsNumber": NUM,
    "vouchers": list,
    "automaticDiscounts": list,
}
VOUCHER = {
    "voucher": str,
    "name": str,
    "priceOff": str,
    "priceOffAsANumber": NUM,
    "description": str,
    "isCredit": bool,
    "originalPriceOff": str,
    "originalPriceOffAsNumber": NUM,
}
AUTOMATIC_DISCOUNT = {
    "automaticDiscount": str,
    "name": str,
    "priceOff": str,
    "priceOffAsANumber": NUM,
}

# GET /returns. Docs inconsistency: the second return in the example has no `completed`; we
# always send it (it is how an open return is recognised).
RETURN = {
    "returnId": int,
    "completed": bool,
    "shipment": str,
    "shipmentId": int,
    "orderId": int,
    "selectionId": str,
    "customerId": int,
    "date": str,
    "marketId": int,
    "pricelistId": int,
    "returnCost": NUM,
    "shippingCost": NUM,
    "handlingCost": NUM,
    "voucherValue": NUM,
    "taxValue": NUM,
    "taxDeduction": NUM,
    "currency": str,
    "baseCurrency": str,
    "baseCurrencyRate": NUM,
    "returnToStock": bool,
    "comment": STR_OR_NULL,
    "createdFrom": str,
    "products": list,
}
RETURN_LINE = {
    "returnLineId": int,
    "shipmentLineId": int,
    "orderLineId": int,
    "productId": int,
    "variantId": int,
    "productName": str,
    "productBrand": str,
    "variantName": str,
    "size": STR_OR_NULL,
    "sku": str,
    "variantSku": str,
    "sizeSku": str,
    "ean": str,
    "upc": str,
    "quantity": int,
    "price": NUM,
}
CUSTOMER = {
    "customerId": str,
    "email": str,
    "firstName": str,
    "lastName": str,
    "address1": str,
    "address2": str,
    "zipCode": str,
    "city": str,
    "state": str,
    "country": str,
    "phoneNumber": str,
    "newsletter": bool,
    "gender": str,
    "registered": bool,
    "consents": list,
    "created": str,
    "modified": str,
}
CONSENT = {
    "key": str,
    "name": str,
    "consented": bool,
    "text": str,
    "language": str,
    "version": str,
    "created": str,
    "modified": str,
}
# The fields both GET /products and GET /stock rows have (both docs examples list them): the
# identity of the stock item, then its physical and customs facts.
ITEM_IDENTITY = {
    "sku": str,
    "productId": int,
    "variantSku": str,
    "variantId": int,
    "sizeSku": str,
    "brand": str,
    "collection": str,
    "product": str,
    "variant": str,
    "size": str,
    "stockItemId": int,
    "ean": str,
}
ITEM_FACTS = {
    "weight": NUM,
    "weightUnit": str,
    "countryOfOrigin": str,
    "harmCode": str,
    "harmDescription": str,
    "active": int,
}
# GET /products row. Docs inconsistency: the second example row has no `folder` (the first
# row's folder line lacks a comma); we send it on every row. createdAt and taxPercent are
# not in the docs example; tap-centra's schema has them.
PRODUCT_ROW = {
    **ITEM_IDENTITY,
    **ITEM_FACTS,
    "folder": str,
    "name": str,
    "description": str,
    "shortDescription": str,
    "comment": str,
    "store": str,
    "categories": list,
    "images": list,
    "prices": list,
    "createdAt": str,
    "taxPercent": NUM,
}
PRICE = {"id": str, "price": str, "pricelist": str, "currency": str, "campaigns": list}
CAMPAIGN = {"id": str, "campaign": str, "price": NUM}
STOCK_ROW = {
    **ITEM_IDENTITY,
    "upc": str,
    **ITEM_FACTS,
    "physicalStock": int,
    "allocatedStock": int,
    "availableStock": int,
}
# Shop API product object (old Shop API reference's example; `google_merchant_*` keys are
# store-specific attributes and are not emulated).
SHOP_PRODUCT = {
    "product": str,
    "productSku": str,
    "sku": str,
    "name": str,
    "uri": str,
    "canonicalUri": str,
    "silkProduct": str,
    "silkVariant": str,
    "silkProductName": str,
    "silkVariantName": str,
    "variantName": str,
    "brand": str,
    "brandName": str,
    "collection": str,
    "collectionName": str,
    "description": str,
    "excerpt": str,
    "metaTitle": str,
    "metaDescription": str,
    "metaKeywords": str,
    "weight": NUM,
    "weightUnit": str,
    "countryOfOrigin": str,
    "countryOfOriginName": str,
    "harmCode": str,
    "harmCodeDescription": str,
    "stockUnit": str,
    "measurementChart": str,
    "measurementChartRows": dict,
    "categories": dict,
    "canonicalCategory": int,
    "media": list,
    "localized": dict,
    "items": dict,
    "markets": dict,
}
SHOP_ITEM = {"item": str, "name": str, "sku": str, "ean": str, "stockByMarket": dict}
SHOP_MARKET = {"stockOfAllItems": int, "pricesByPricelist": dict}
SHOP_PRICE = {
    "price": str,
    "priceAsNumber": NUM,
    "priceBeforeDiscount": str,
    "priceBeforeDiscountAsNumber": NUM,
    "discountPercent": int,
    "priceReduction": str,
    "priceReductionAsNumber": NUM,
    "showAsOnSale": bool,
    "newProduct": bool,
}
SHOP_PRODUCT_CATEGORY = {"sortOrder": str, "category": str, "uri": str, "name": str}
SHOP_MEDIA = {"type": str, "sources": dict}
SHOP_MEDIA_SOURCE = {"url": str, "width": int, "height": int, "mimeType": str}
BRAND = {
    "name": str,
    "brand": str,
    "uri": str,
    "metaKeywords": str,
    "metaDescription": str,
    "metaTitle": str,
}
CATEGORY = {
    "metaTitle": str,
    "name": str,
    "metaDescription": str,
    "sortString": str,
    "localized": dict,
    "completeUri": str,
    "metaKeywords": str,
    "category": str,
    "categories": dict,
    "products": list,
    "sortOrder": str,
    "uri": str,
}


def assert_shape(
    obj: Any, shape: dict[str, Any], where: str, optional: dict[str, Any] | None = None
) -> None:
    assert isinstance(obj, dict), f"{where}: expected an object, got {type(obj).__name__}"
    optional = optional or {}
    missing = sorted(set(shape) - set(obj))
    assert not missing, f"{where}: missing keys {missing}"
    extra = sorted(set(obj) - set(shape) - set(optional))
    assert not extra, f"{where}: unexpected keys {extra}"
    for key, value in obj.items():
        expected = shape.get(key, optional.get(key))
        # bool is an int subclass in Python, but not in JSON: never accept one for the other.
        if expected is int or expected == NUM:
            assert not isinstance(value, bool), f"{where}.{key}: bool where a number belongs"
        if expected is bool:
            assert isinstance(value, bool), f"{where}.{key}: expected bool, got {value!r}"
        assert isinstance(value, expected), f"{where}.{key}: {value!r} is not {expected}"


def assert_line(line: dict[str, Any], where: str) -> None:
    optional = {"bundle": list} if line.get("isBundle") else {}
    if "isPartOfBundle" in line:
        optional["isPartOfBundle"] = str
    assert_shape(line, LINE, where, optional)
    for w in line["warehouses"]:
        assert_shape(w, WAREHOUSE, f"{where}.warehouses[]")
    for component in line.get("bundle", []):
        assert_shape(component, LINE, f"{where}.bundle[]", {"isPartOfBundle": str})
        assert component["isPartOfBundle"] == line["lineId"]


def test_orders_match_the_documented_order_object(shared: Client) -> None:
    raw = shared.order("/orders", limit=500)
    assert raw.status_code == 200
    assert raw.headers["Content-Type"].startswith("application/json")
    assert "https:\\/\\/" in raw.text  # PHP json_encode escapes slashes in URLs
    body = raw.json()
    assert list(body) == ["status", "orders"] and body["status"] == "ok"
    seen_bundle = seen_voucher = seen_auto = seen_attrs = seen_shipment = False
    for order in body["orders"]:
        where = f"order {order['orderId']}"
        assert_shape(order, ORDER, where, ORDER_OPTIONAL)
        for key in ("orderDate", "estimatedDeliveryDate"):
            assert DATETIME.match(order[key]), f"{where}.{key}"
        assert DATETIME.match(order["cancelDate"])  # "0000-00-00 00:00:00" when not cancelled
        assert re.fullmatch(r"[0-9a-f]{32}", order["selectionId"])
        assert order["orderStatus"] in {"1", "2", "3", "4", "5", "6"}
        for shipment in order["shipments"]:
            assert_shape(shipment, SHIPMENT, f"{where}.shipments[]")
            seen_shipment = True
        for tax in order["taxBreakdown"]:
            assert_shape(tax, TAX_BREAKDOWN, f"{where}.taxBreakdown[]")
        for line in order["products"]:
            assert_line(line, f"{where}.products[]")
            seen_bundle |= line["isBundle"]
        assert_shape(order["discounts"], DISCOUNTS, f"{where}.discounts")
        for voucher in order["discounts"]["vouchers"]:
            assert_shape(voucher, VOUCHER, f"{where}.vouchers[]")
            seen_voucher = True
        for auto in order["discounts"]["automaticDiscounts"]:
            assert_shape(auto, AUTOMATIC_DISCOUNT, f"{where}.automaticDiscounts[]")
            seen_auto = True
        seen_attrs |= "order_attr_external_id" in order
    # The sample must exercise every optional shape, or the checks above prove little.
    assert seen_bundle and seen_voucher and seen_auto and seen_attrs and seen_shipment


def test_returns_match_the_documented_return_object(shared: Client) -> None:
    body = shared.order("/returns", limit=100).json()
    assert list(body) == ["status", "returns"] and body["returns"]
    for ret in body["returns"]:
        where = f"return {ret['returnId']}"
        assert_shape(ret, RETURN, where)
        assert DATETIME.match(ret["date"])
        assert re.fullmatch(r"\d+-1", ret["shipment"])
        assert ret["products"]
        for line in ret["products"]:
            assert_shape(line, RETURN_LINE, f"{where}.products[]")


def test_customers_match_the_documented_customer_object(shared: Client) -> None:
    body = shared.order("/customers", limit=100).json()
    assert list(body) == ["status", "customers"] and len(body["customers"]) == 100
    consents = 0
    for customer in body["customers"]:
        assert_shape(customer, CUSTOMER, f"customer {customer['customerId']}")
        for consent in customer["consents"]:
            assert_shape(consent, CONSENT, "consent")
            consents += 1
    assert consents
    single = shared.order("/customers/4").json()
    assert list(single) == ["status", "customer"]
    assert_shape(single["customer"], CUSTOMER, "customer 4")


def test_product_and_stock_rows_match_the_docs(shared: Client) -> None:
    raw = shared.order("/products", limit=10, page=2)
    body = raw.json()
    assert list(body) == ["status", "products", "previous", "next"]
    assert "images\\/" in raw.text
    campaigns = 0
    for row in shared.order("/products").json()["products"]:
        assert_shape(row, PRODUCT_ROW, f"product row {row['stockItemId']}")
        assert all(isinstance(c, str) for c in row["categories"])
        assert all(isinstance(u, str) and u.startswith("https://") for u in row["images"])
        for price in row["prices"]:
            assert_shape(price, PRICE, "prices[]")
            assert re.fullmatch(r"\d+\.\d\d", price["price"])
            for campaign in price["campaigns"]:
                assert_shape(campaign, CAMPAIGN, "campaigns[]")
                campaigns += 1
    assert campaigns
    stock = shared.order("/stock", limit=2).json()
    assert list(stock) == ["status", "products", "next"]  # rows come under "products"
    for row in shared.order("/stock").json()["products"]:
        assert_shape(row, STOCK_ROW, f"stock row {row['stockItemId']}")
        assert row["availableStock"] == row["physicalStock"] - row["allocatedStock"]


def test_shop_api_objects_match_the_docs(shared: Client) -> None:
    products = shared.shop("/products").json()
    assert products and all(isinstance(k, str) and k.isdigit() for k in products)
    for key, product in products.items():
        where = f"shop product {key}"
        assert_shape(product, SHOP_PRODUCT, where)
        assert product["product"] == key
        for item_id, item in product["items"].items():
            assert_shape(item, SHOP_ITEM, f"{where}.items")
            assert item["item"] == item_id
            assert all(isinstance(v, int) for v in item["stockByMarket"].values())
        for market in product["markets"].values():
            assert_shape(market, SHOP_MARKET, f"{where}.markets")
            for price in market["pricesByPricelist"].values():
                assert_shape(price, SHOP_PRICE, f"{where}.pricesByPricelist")
        for category_id, category in product["categories"].items():
            assert_shape(category, SHOP_PRODUCT_CATEGORY, f"{where}.categories")
            assert category["category"] == category_id
        for media in product["media"]:
            assert_shape(media, SHOP_MEDIA, f"{where}.media")
            for source in media["sources"].values():
                assert_shape(source, SHOP_MEDIA_SOURCE, f"{where}.media.sources")
    one_id = next(iter(products))
    assert shared.shop(f"/products/{one_id}").json() == products[one_id]  # bare object
    ids = shared.shop("/product-ids").json()
    assert isinstance(ids, list) and all(isinstance(i, str) for i in ids)
    for brand_id, brand in shared.shop("/brands").json().items():
        assert_shape(brand, BRAND, f"brand {brand_id}")
        assert brand["brand"] == brand_id
    categories = shared.shop("/categories").json()
    stack = list(categories.items())
    while stack:
        category_id, category = stack.pop()
        assert_shape(category, CATEGORY, f"category {category_id}")
        assert category["category"] == category_id
        assert all(isinstance(p, str) for p in category["products"])
        stack.extend(category["categories"].items())


def test_error_shapes_match_the_docs(shared: Client) -> None:
    assert shared.shop("/products/1").json() == {"errors": {"product": "not found"}}
    assert shared.shop("/products/1").status_code == 404
    assert shared.shop("/brands/999").json() == {"errors": {"brand": "not found"}}
    assert shared.shop("/categories/999").json() == {"errors": {"category": "not found"}}
    missing = shared.shop("/products/filter", method="POST", json={"categories": 1})
    assert (missing.status_code, missing.json()) == (
        404,
        {"errors": {"categories": "not found: 1"}},
    )
    assert shared.order("/customers/999999").json() == {
        "status": "no",
        "msg": "The customer was not found.",
    }
