"""Shop API catalogue endpoints (docs/emulator.md).

Shop API v1 conventions: errors are HTTP 4xx with `{"errors": {"<field>": "<message>"}}`, lists
are objects keyed by id strings, single items are bare objects, and POST bodies with unknown
fields are rejected (v1 behaviour; v0 ignored them).
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

from .catalog import BRANDS, SHOP_ID_BASE, Variant
from .responses import Response, json_response
from .store import Store

AUTH_FAILED = {"errors": {"authorization": "invalid API key"}}
NOT_ALLOWED = {"status": "Not Allowed"}
UNKNOWN_ENDPOINT = {"errors": {"endpoint": "not found"}}
FILTER_FIELDS = (
    "products",
    "uri",
    "quantity",
    "offset",
    "silkProduct",
    "silkVariant",
    "categories",
    "sku",
    "market",
    "preview",
)
_ITEM = re.compile(r"^/(products|categories|brands)/([^/]+)$")


class ShopError(Exception):
    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


def route(method: str, path: str) -> tuple[str, str | None] | None:
    if method == "GET" and path in ("/products", "/product-ids", "/categories", "/brands"):
        return f"GET {path}", None
    if method == "POST" and path == "/products/filter":
        return "POST /products/filter", None
    match = _ITEM.match(path)
    if method == "GET" and match:
        return f"GET /{match.group(1)}/{{id}}", match.group(2)
    return None


def handle(
    store: Store, method: str, path: str, body: bytes, api_key: str | None
) -> tuple[str, Response]:
    path = path.rstrip("/") or "/"
    expected = store.keys["shop"]
    if api_key is None or not hmac.compare_digest(api_key.encode(), expected.encode()):
        return "auth failed", json_response(401, AUTH_FAILED)
    routed = route(method, path)
    if routed is None:
        return "unknown", json_response(404, UNKNOWN_ENDPOINT)
    endpoint, param = routed
    allowed = store.plugins["shop"].allowed_endpoints
    if allowed is not None and endpoint not in allowed:
        return endpoint, json_response(403, NOT_ALLOWED)
    try:
        with store.lock:
            payload = _dispatch(store, endpoint, param, body)
    except ShopError as exc:
        return endpoint, json_response(exc.status, {"errors": {exc.field: exc.message}})
    return endpoint, json_response(200, payload)


def _dispatch(store: Store, endpoint: str, param: str | None, body: bytes) -> Any:
    catalog = store.catalog
    if endpoint == "GET /products":
        return _keyed(store, store.shop_variants())
    if endpoint == "GET /products/{id}":
        variant = _variant(store, param)
        if variant is None:
            raise ShopError(404, "product", "not found")
        return catalog.shop_product(variant)
    if endpoint == "POST /products/filter":
        return _filter(store, body)
    if endpoint == "GET /product-ids":
        return [str(v.shop_id) for v in store.shop_variants()]
    if endpoint == "GET /categories":
        return catalog.shop_categories()
    if endpoint == "GET /categories/{id}":
        if param is None or not param.isdigit() or int(param) not in catalog.category_by_id:
            raise ShopError(404, "category", "not found")
        return catalog.shop_category(int(param))
    if endpoint == "GET /brands":
        return catalog.shop_brands()
    if endpoint == "GET /brands/{id}":
        if param is None or not param.isdigit() or int(param) not in {b[0] for b in BRANDS}:
            raise ShopError(404, "brand", "not found")
        return catalog.shop_brand(int(param))
    raise AssertionError(endpoint)  # pragma: no cover - route() only returns the names above


def _variant(store: Store, param: str | None) -> Variant | None:
    if param is None or not param.isdigit():
        return None
    index = int(param) - SHOP_ID_BASE - 1
    variants = store.catalog.variants
    if 0 <= index < len(variants) and variants[index].product.active:
        return variants[index]
    return None


def _keyed(store: Store, variants: list[Variant]) -> dict[str, Any]:
    return {str(v.shop_id): store.catalog.shop_product(v) for v in variants}


def _strings(field: str, value: object) -> list[str]:
    """A string/int or a list of them (the docs allow both forms)."""
    values = value if isinstance(value, list) else [value]
    out = []
    for item in values:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise ShopError(400, field, "invalid value")
        out.append(str(item))
    return out


def _non_negative(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ShopError(400, field, "invalid value")
    return value


def _filter(store: Store, body: bytes) -> dict[str, Any]:
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        raise ShopError(400, "request", "body is not valid JSON") from None
    if not isinstance(request, dict):
        raise ShopError(400, "request", "body must be a JSON object")
    for key in request:
        if key not in FILTER_FIELDS:
            raise ShopError(400, key, "unknown field")
    catalog = store.catalog
    products = set(_strings("products", request["products"])) if "products" in request else None
    categories = None
    if "categories" in request:
        categories = set()
        for value in _strings("categories", request["categories"]):
            if not value.isdigit() or int(value) not in catalog.category_by_id:
                raise ShopError(404, "categories", f"not found: {value}")
            categories.add(int(value))
    if "market" in request:
        for market in _strings("market", request["market"]):
            if not market.isdigit() or int(market) not in catalog.market_by_id:
                raise ShopError(404, "market", f"not found: {market}")
    uri = request.get("uri")
    sku = request.get("sku")
    for name, value in (("uri", uri), ("sku", sku)):
        if value is not None and not isinstance(value, str):
            raise ShopError(400, name, "invalid value")
    silk_product = (
        _strings("silkProduct", request["silkProduct"]) if "silkProduct" in request else None
    )
    silk_variant = (
        _strings("silkVariant", request["silkVariant"]) if "silkVariant" in request else None
    )
    preview = request.get("preview", False)
    if not isinstance(preview, bool):
        raise ShopError(400, "preview", "invalid value")
    offset = _non_negative("offset", request["offset"]) if "offset" in request else 0
    quantity = _non_negative("quantity", request["quantity"]) if "quantity" in request else None

    matched = []
    for variant in store.shop_variants(include_inactive=preview):
        product = variant.product
        if products is not None and str(variant.shop_id) not in products:
            continue
        if uri is not None and variant.uri != uri:
            continue
        if sku is not None and sku not in (product.sku, f"{product.sku}{variant.variant_sku}"):
            continue
        if silk_product is not None and str(product.product_id) not in silk_product:
            continue
        if silk_variant is not None and str(variant.variant_id) not in silk_variant:
            continue
        if categories is not None and not categories.intersection(product.categories):
            continue
        matched.append(variant)
    window = matched[offset:] if quantity is None else matched[offset : offset + quantity]
    return _keyed(store, window)
