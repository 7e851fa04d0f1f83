"""Order API read endpoints (docs/emulator.md): routing, parameters and the data they page.

After the access checks (api_access), `xml=1` and bad parameters are answered with HTTP 200
and status "no", as Centra does, before any data is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from .api_access import Api, serve
from .catalog_render import stock_row
from .clock import parse_local
from .products import Item
from .responses import BusinessError, Response, first
from .store import CustomerQuery, OrderQuery, ReturnQuery, Store

AUTH_FAILED = {"status": "no", "msg": "Authorization failed"}
UNKNOWN_ENDPOINT = {"status": "no", "msg": "Unknown endpoint"}
CUSTOMER_NOT_FOUND = {"status": "no", "msg": "The customer was not found."}
XML_NOT_EMULATED = "XML output (xml=1) is not emulated; omit xml to get JSON"
DEFAULT_LIMIT = 20
_CUSTOMER_PATH = re.compile(r"^/customers/([^/]+)$")
_ANONYMIZE_PATH = re.compile(r"^/anonymize-customer/([^/]+)$")
ANONYMIZED = {"status": "ok", "msg": "The personal data has been anonymized."}
ALREADY_ANONYMIZED = {"status": "no", "msg": "The personal data was already anonymized."}

Query = dict[str, list[str]]


def route(method: str, path: str) -> tuple[str, str | None] | None:
    """(endpoint name as used in the plugin allow-list, path parameter) or None."""
    if method == "PUT":
        match = _ANONYMIZE_PATH.match(path)
        return ("PUT /anonymize-customer/{id}", match.group(1)) if match else None
    if method != "GET":
        return None
    if path in ("/orders", "/returns", "/customers", "/products", "/stock"):
        return f"GET {path}", None
    match = _CUSTOMER_PATH.match(path)
    if match:
        return "GET /customers/{id}", match.group(1)
    return None


ORDER_API = Api("order", route, AUTH_FAILED, UNKNOWN_ENDPOINT)


def handle(
    store: Store, method: str, path: str, query: Query, api_key: str | None
) -> tuple[str, Response]:
    """Returns (stats label, response)."""

    def endpoint(name: str, param: str | None) -> tuple[int, dict[str, object]]:
        try:
            if first(query, "xml") not in (None, "", "0"):
                raise BusinessError(XML_NOT_EMULATED)
            return 200, _HANDLERS[name](store, query, param)
        except BusinessError as exc:
            return 200, {"status": "no", "msg": exc.msg}

    return serve(store, ORDER_API, method, path, api_key, endpoint)


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


def anonymize_customer(store: Store, _: Query, param: str | None) -> dict[str, object]:
    """`PUT /anonymize-customer/{id}`: the customer's personal data, and that printed on
    their orders, becomes empty (the docs say only that it is anonymised; inferred)."""
    if param is None or not param.isdigit() or not store.customers.exists(int(param)):
        raise BusinessError(CUSTOMER_NOT_FOUND["msg"])
    if not store.anonymize_customer(int(param)):
        raise BusinessError(ALREADY_ANONYMIZED["msg"])
    return dict(ANONYMIZED)


def _product_rows(store: Store, query: Query, *, stock: bool) -> dict[str, object]:
    """GET /products and GET /stock: the items matching every filter given, paged with
    `limit` + `page` when `limit` is given."""
    matches = _item_filter(store, query, stock=stock)
    limit_raw = first(query, "limit")
    limit = _limit(store, query) if limit_raw not in (None, "") else None
    page = _int(query, "page", default=1, minimum=1) or 1
    include_physical = first(query, "exclude") != "physicalStock"
    selected = [item for item in store.catalog.items if matches(item)]
    window, links = _product_page(selected, limit, page)
    if stock:
        rows = [stock_row(store.catalog, it, include_physical=include_physical) for it in window]
    else:
        rows = [store.product_row(item) for item in window]
    # Key order as in the docs: status, products, previous, next.
    return {"status": "ok", "products": rows, **links}


def _item_filter(store: Store, query: Query, *, stock: bool) -> Callable[[Item], bool]:
    catalog = store.catalog
    clock = store.clock
    sku = first(query, "sku")
    ean = first(query, "ean")
    upc = first(query, "upc") if stock else None
    ids = {name: _int(query, name) for name in ("productId", "variantId", "stockItemId")}
    created = _date(query, "created")
    modified = _date(query, "modified")
    stock_modified = _date(query, "stock_modified") if stock else None

    def after(bound: int | None, epoch: int) -> bool:
        return bound is None or store.after(clock.to_local(epoch), bound)

    def matches(item: Item) -> bool:
        variant = item.variant
        product = variant.product
        return (
            (not sku or product.sku == sku)
            and (not ean or item.ean == ean)
            and (not upc or item.upc == upc)
            and ids["productId"] in (None, product.product_id)
            and ids["variantId"] in (None, variant.variant_id)
            and ids["stockItemId"] in (None, item.stock_item_id)
            and after(created, product.created_epoch)
            and after(modified, catalog.product_modified[product.index])
            and after(stock_modified, catalog.stock_modified[item.index])
        )

    return matches


def _product_page(
    selected: list[Item], limit: int | None, page: int
) -> tuple[list[Item], dict[str, str]]:
    """The page's items and its previous/next links; without a limit, all items, no links."""
    if limit is None:
        return selected, {}
    start = (page - 1) * limit
    links = {}
    # Links carry only limit and page, exactly like the docs ("?limit=10&page=3").
    if page > 1:
        links["previous"] = f"?limit={limit}&page={page - 1}"
    if start + limit < len(selected):
        links["next"] = f"?limit={limit}&page={page + 1}"
    return selected[start : start + limit], links


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
    "PUT /anonymize-customer/{id}": anonymize_customer,
}
