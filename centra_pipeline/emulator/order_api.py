"""Order API read endpoints (docs/emulator.md): routing, auth, plugin rules, parameters.

Order of checks, our choice (docs/emulator.md): API key (401) -> known endpoint (404) ->
plugin allow-list (403) -> `xml=1` and parameters (HTTP 200 with status "no") -> data.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable

import numpy as np

from .clock import parse_local
from .responses import BusinessError, Response, first, json_response
from .store import CustomerQuery, OrderQuery, ReturnQuery, Store

AUTH_FAILED = {"status": "no", "msg": "Authorization failed"}
NOT_ALLOWED = {"status": "Not Allowed"}
UNKNOWN_ENDPOINT = {"status": "no", "msg": "Unknown endpoint"}
CUSTOMER_NOT_FOUND = {"status": "no", "msg": "The customer was not found."}
XML_NOT_EMULATED = "XML output (xml=1) is not emulated; omit xml to get JSON"
DEFAULT_LIMIT = 20
_CUSTOMER_PATH = re.compile(r"^/customers/([^/]+)$")

Query = dict[str, list[str]]


def route(method: str, path: str) -> tuple[str, str | None] | None:
    """(endpoint name as used in the plugin allow-list, path parameter) or None."""
    if method != "GET":
        return None
    if path in ("/orders", "/returns", "/customers", "/products", "/stock"):
        return f"GET {path}", None
    match = _CUSTOMER_PATH.match(path)
    if match:
        return "GET /customers/{id}", match.group(1)
    return None


def handle(
    store: Store, method: str, path: str, query: Query, api_key: str | None
) -> tuple[str, Response]:
    """Returns (stats label, response)."""
    path = path.rstrip("/") or "/"
    expected = store.keys["order"]
    if api_key is None or not hmac.compare_digest(api_key.encode(), expected.encode()):
        return "auth failed", json_response(401, AUTH_FAILED)
    routed = route(method, path)
    if routed is None:
        return "unknown", json_response(404, UNKNOWN_ENDPOINT)
    endpoint, param = routed
    allowed = store.plugins["order"].allowed_endpoints
    if allowed is not None and endpoint not in allowed:
        return endpoint, json_response(403, NOT_ALLOWED)
    try:
        if first(query, "xml") not in (None, "", "0"):
            raise BusinessError(XML_NOT_EMULATED)
        with store.lock:
            payload = _HANDLERS[endpoint](store, query, param)
    except BusinessError as exc:
        payload = {"status": "no", "msg": exc.msg}
    return endpoint, json_response(200, payload)


# parameters ---------------------------------------------------------------------------------
def _int(query: Query, name: str, *, default: int | None = None, minimum: int = 0) -> int | None:
    raw = first(query, name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"-?\d+", raw.strip()):
        raise BusinessError(f"Invalid {name}: {raw!r} is not an integer")
    value = int(raw)
    if value < minimum:
        raise BusinessError(f"Invalid {name}: must be at least {minimum}, got {value}")
    return value


def _limit(store: Store, query: Query) -> int:
    value = _int(query, "limit", default=DEFAULT_LIMIT, minimum=1)
    assert value is not None
    return min(value, store.cfg.max_limit)  # larger limits are clamped, not rejected


def _date(query: Query, name: str) -> int | None:
    raw = first(query, name)
    if raw is None or raw == "":
        return None
    try:
        return parse_local(raw)
    except ValueError:
        raise BusinessError(
            f"Invalid date format for {name}: {raw!r} (use YYYY-mm-dd or YYYY-mm-dd HH:MM:SS)"
        ) from None


# endpoints ----------------------------------------------------------------------------------
def get_orders(store: Store, query: Query, _: str | None) -> dict[str, object]:
    limit = _limit(store, query)
    offset = _int(query, "offset", default=0) or 0
    number = _int(query, "order")
    q = OrderQuery(
        newer_than=_date(query, "newer_than"),
        older_than=_date(query, "older_than"),
        customer_id=_int(query, "customer_id"),
    )
    indices = _single_order(store, number, q) if number is not None else store.query_orders(q)
    page = indices[offset : offset + limit]
    return {"status": "ok", "orders": store.render_orders(page)}


def _single_order(store: Store, number: int, q: OrderQuery) -> np.ndarray:
    """`order=N`: the order if it exists, is visible and matches the other filters, else none."""
    index = store.orders.index_of(number)
    empty = np.zeros(0, dtype=np.int64)
    if index is None or not store.order_visible(index):
        return empty
    local = int(store.orders.local[index])
    cfg = store.cfg
    if q.newer_than is not None and not (
        local >= q.newer_than if cfg.orders_newer_than_inclusive else local > q.newer_than
    ):
        return empty
    if q.older_than is not None and not (
        local <= q.older_than if cfg.orders_older_than_inclusive else local < q.older_than
    ):
        return empty
    if q.customer_id is not None and int(store.orders.customer[index]) != q.customer_id:
        return empty
    return np.asarray([index], dtype=np.int64)


def get_returns(store: Store, query: Query, _: str | None) -> dict[str, object]:
    limit = _limit(store, query)
    page = _int(query, "page", default=1, minimum=1) or 1
    # Documented paging is `limit` + `page`; with `returns_offset`, an `offset` (when given)
    # selects the start instead and takes precedence over `page` (docs/emulator.md).
    offset = _int(query, "offset") if store.cfg.returns_offset else None
    q = ReturnQuery(
        newer_than=_date(query, "newer_than"),
        older_than=_date(query, "older_than"),
        return_id=_int(query, "return"),
        order_number=_int(query, "order"),
        shipment=first(query, "shipment") or None,
        customer_id=_int(query, "customer_id"),
    )
    indices = store.query_returns(q)
    selection = first(query, "selection")
    if selection:
        keep = [
            i
            for i in indices.tolist()
            if store.hasher.hex32(int(store.returns.order_index[i]), "order/selection") == selection
        ]
        indices = np.asarray(keep, dtype=np.int64)
    start = (page - 1) * limit if offset is None else offset
    return {"status": "ok", "returns": store.render_returns(indices[start : start + limit])}


def get_customers(store: Store, query: Query, _: str | None) -> dict[str, object]:
    limit = _limit(store, query)
    offset = _int(query, "offset", default=0) or 0
    email = first(query, "email")
    customer_id = None
    if email:
        customer_id = store.customers.customer_id_for_email(email) or -1
    q = CustomerQuery(
        created=_date(query, "created"), modified=_date(query, "modified"), customer_id=customer_id
    )
    ids = store.query_customers(q)[offset : offset + limit]
    return {"status": "ok", "customers": [store.customers.render(int(c)) for c in ids]}


def get_customer(store: Store, _: Query, param: str | None) -> dict[str, object]:
    if param is None or not param.isdigit() or not store.customers.exists(int(param)):
        return dict(CUSTOMER_NOT_FOUND)
    return {"status": "ok", "customer": store.customers.render(int(param))}


def _product_rows(store: Store, query: Query, *, stock: bool) -> dict[str, object]:
    catalog = store.catalog
    clock = store.clock
    sku = first(query, "sku")
    ean = first(query, "ean")
    upc = first(query, "upc") if stock else None
    ids = {name: _int(query, name) for name in ("productId", "variantId", "stockItemId")}
    created = _date(query, "created")
    modified = _date(query, "modified")
    stock_modified = _date(query, "stock_modified") if stock else None
    limit_raw = first(query, "limit")
    limit = _limit(store, query) if limit_raw not in (None, "") else None
    page = _int(query, "page", default=1, minimum=1) or 1
    include_physical = first(query, "exclude") != "physicalStock"

    selected = []
    for item in catalog.items:
        variant = item.variant
        product = variant.product
        if sku and product.sku != sku:
            continue
        if ean and item.ean != ean:
            continue
        if upc and item.upc != upc:
            continue
        if ids["productId"] is not None and product.product_id != ids["productId"]:
            continue
        if ids["variantId"] is not None and variant.variant_id != ids["variantId"]:
            continue
        if ids["stockItemId"] is not None and item.stock_item_id != ids["stockItemId"]:
            continue
        if created is not None and not store.after(clock.to_local(product.created_epoch), created):
            continue
        if modified is not None and not store.after(
            clock.to_local(catalog.product_modified[product.index]), modified
        ):
            continue
        if stock_modified is not None and not store.after(
            clock.to_local(catalog.stock_modified[item.index]), stock_modified
        ):
            continue
        selected.append(item)

    payload: dict[str, object] = {"status": "ok"}
    if limit is not None:
        start = (page - 1) * limit
        window = selected[start : start + limit]
        # Links carry only limit and page, exactly like the docs ("?limit=10&page=3").
        if page > 1:
            payload["previous"] = f"?limit={limit}&page={page - 1}"
        if start + limit < len(selected):
            payload["next"] = f"?limit={limit}&page={page + 1}"
    else:
        window = selected
    if stock:
        rows = [catalog.stock_row(item, include_physical=include_physical) for item in window]
    else:
        rows = [store.product_row(item) for item in window]
    # Key order as in the docs: status, products, previous, next.
    ordered: dict[str, object] = {"status": "ok", "products": rows}
    for key in ("previous", "next"):
        if key in payload:
            ordered[key] = payload[key]
    return ordered


def get_products(store: Store, query: Query, _: str | None) -> dict[str, object]:
    return _product_rows(store, query, stock=False)


def get_stock(store: Store, query: Query, _: str | None) -> dict[str, object]:
    return _product_rows(store, query, stock=True)


_HANDLERS: dict[str, Callable[[Store, Query, str | None], dict[str, object]]] = {
    "GET /orders": get_orders,
    "GET /returns": get_returns,
    "GET /customers": get_customers,
    "GET /customers/{id}": get_customer,
    "GET /products": get_products,
    "GET /stock": get_stock,
}
