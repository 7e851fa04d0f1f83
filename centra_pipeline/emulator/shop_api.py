"""Shop API catalogue endpoints (docs/emulator.md).

Shop API v1 conventions: errors are HTTP 4xx with `{"errors": {"<field>": "<message>"}}`, lists
are objects keyed by id strings, single items are bare objects, and POST bodies with unknown
fields are rejected (v1 behaviour; v0 ignored them).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .api_access import Api, serve
from .assortment import BRANDS
from .catalog import Catalog
from .catalog_render import shop_brand, shop_brands, shop_categories, shop_category, shop_product
from .products import SHOP_ID_BASE, Variant
from .responses import Response
from .store import Store

AUTH_FAILED = {"errors": {"authorization": "invalid API key"}}
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


SHOP_API = Api("shop", route, AUTH_FAILED, UNKNOWN_ENDPOINT)


def handle(
    store: Store, method: str, path: str, body: bytes, api_key: str | None
) -> tuple[str, Response]:
    """Returns (stats label, response)."""

    def endpoint(name: str, param: str | None) -> tuple[int, Any]:
        try:
            return 200, _dispatch(store, name, param, body)
        except ShopError as exc:
            return exc.status, {"errors": {exc.field: exc.message}}

    return serve(store, SHOP_API, method, path, api_key, endpoint)


def _dispatch(store: Store, endpoint: str, param: str | None, body: bytes) -> Any:
    catalog = store.catalog
    if endpoint == "GET /products":
        return _keyed(store, store.shop_variants())
    if endpoint == "GET /products/{id}":
        variant = _variant(store, param)
        if variant is None:
            raise ShopError(404, "product", "not found")
        return shop_product(catalog, variant)
    if endpoint == "POST /products/filter":
        return _filter(store, body)
    if endpoint == "GET /product-ids":
        return [str(v.shop_id) for v in store.shop_variants()]
    if endpoint == "GET /categories":
        return shop_categories(catalog)
    if endpoint == "GET /categories/{id}":
        if param is None or not param.isdigit() or int(param) not in catalog.category_by_id:
            raise ShopError(404, "category", "not found")
        return shop_category(catalog, int(param))
    if endpoint == "GET /brands":
        return shop_brands()
    if endpoint == "GET /brands/{id}":
        if param is None or not param.isdigit() or int(param) not in {b[0] for b in BRANDS}:
            raise ShopError(404, "brand", "not found")
        return shop_brand(int(param))
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
    return {str(v.shop_id): shop_product(store.catalog, v) for v in variants}


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
    """POST /products/filter: the variants matching every field given, from `offset` on."""
    request = _Filter.parse(store.catalog, _request_object(body))
    variants = store.shop_variants(include_inactive=request.preview)
    matched = [variant for variant in variants if request.matches(variant)]
    end = None if request.quantity is None else request.offset + request.quantity
    return _keyed(store, matched[request.offset : end])


def _request_object(body: bytes) -> dict[str, Any]:
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        raise ShopError(400, "request", "body is not valid JSON") from None
    if not isinstance(request, dict):
        raise ShopError(400, "request", "body must be a JSON object")
    for key in request:
        if key not in FILTER_FIELDS:
            raise ShopError(400, key, "unknown field")
    return request


@dataclass(frozen=True)
class _Filter:
    """A validated filter request; None means the field was not given."""

    products: set[str] | None
    categories: set[int] | None
    uri: str | None
    sku: str | None
    silk_product: list[str] | None
    silk_variant: list[str] | None
    preview: bool
    offset: int
    quantity: int | None

    @classmethod
    def parse(cls, catalog: Catalog, request: dict[str, Any]) -> _Filter:
        """Fields are checked in a fixed order, so a request with several bad fields always
        names the same one."""
        products = set(_strings("products", request["products"])) if "products" in request else None
        categories = (
            _categories(catalog, request["categories"]) if "categories" in request else None
        )
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
        return cls(
            products, categories, uri, sku, silk_product, silk_variant, preview, offset, quantity
        )

    def matches(self, variant: Variant) -> bool:
        product = variant.product
        return (
            (self.products is None or str(variant.shop_id) in self.products)
            and (self.uri is None or variant.uri == self.uri)
            and (
                self.sku is None or self.sku in (product.sku, f"{product.sku}{variant.variant_sku}")
            )
            and (self.silk_product is None or str(product.product_id) in self.silk_product)
            and (self.silk_variant is None or str(variant.variant_id) in self.silk_variant)
            and (self.categories is None or bool(self.categories.intersection(product.categories)))
        )


def _categories(catalog: Catalog, value: object) -> set[int]:
    categories = set()
    for category in _strings("categories", value):
        if not category.isdigit() or int(category) not in catalog.category_by_id:
            raise ShopError(404, "categories", f"not found: {category}")
        categories.add(int(category))
    return categories
