"""Order API reads: orders, returns, customers, products and stock, streamed page by page.

Each `iter_*` method names its endpoint's filters and hands the paging to the algorithm that
keeps the read exact while the store changes under it: anchored offset paging for orders and
customers and page numbers for products and stock (`paging`), dates for returns
(`date_paging`). Nothing here holds more than one page in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from centra_pipeline.centra.client import PluginClient
from centra_pipeline.centra.date_paging import return_pages
from centra_pipeline.centra.errors import CentraNotFound
from centra_pipeline.centra.http import CentraSession, Response
from centra_pipeline.centra.jsonstream import RawRecord, parse_envelope
from centra_pipeline.centra.page import Page, record_key  # Page: the pipeline imports it here
from centra_pipeline.centra.paging import numbered_pages, offset_pages
from centra_pipeline.centra.prefetch import Staged
from centra_pipeline.settings import ENV_ORDER_API_KEY

API_NAME = "Order API"

# The endpoints the pipeline uses, named as in the plugin's allow-list.
ENDPOINT_ORDERS = "GET /orders"
ENDPOINT_RETURNS = "GET /returns"
ENDPOINT_CUSTOMERS = "GET /customers"
ENDPOINT_CUSTOMER = "GET /customers/{id}"
ENDPOINT_PRODUCTS = "GET /products"
ENDPOINT_STOCK = "GET /stock"
ENDPOINTS = (
    ENDPOINT_ORDERS,
    ENDPOINT_RETURNS,
    ENDPOINT_CUSTOMERS,
    ENDPOINT_CUSTOMER,
    ENDPOINT_PRODUCTS,
    ENDPOINT_STOCK,
)


class OrderApi(PluginClient):
    API_NAME = API_NAME
    KEY_ENV = ENV_ORDER_API_KEY
    DEFAULT_PAGE_SIZE = 1000

    def _get(self, path: str, endpoint: str, records_key: str, params: dict[str, Any]):
        return self.session.call(
            "GET",
            path,
            endpoint=endpoint,
            params=params,
            parse=_page_parser(endpoint, records_key, self.session),
        )

    def _fetcher(self, path: str, endpoint: str, records_key: str) -> Staged:
        """A GET of `path` with the params a paging algorithm asks for (parsed when taken,
        if it was made ahead: `prefetch.Staged`)."""
        return self.session.staged(
            "GET",
            path,
            endpoint=endpoint,
            parse=_page_parser(endpoint, records_key, self.session),
            request=lambda params: {"params": params},
        )

    def _offset_pages(
        self,
        path: str,
        endpoint: str,
        records_key: str,
        filters: dict[str, Any],
        limit: int,
        key_field: str,
    ) -> Iterator[Page]:
        get = self._fetcher(path, endpoint, records_key)

        def params_of(offset: int, count: int) -> dict[str, Any]:
            return {**filters, "limit": count, "offset": offset}

        def whole(offset: int, count: int) -> tuple[dict[str, Any], list[RawRecord], Response]:
            params = params_of(offset, count)
            _, records, response = get(params)
            return params, records, response

        def finish(args: tuple, response: Response):
            params = params_of(*args)
            _, records, response = get.finish((params,), response)
            return params, records, response

        fetch = Staged(whole, lambda offset, count: get.send(params_of(offset, count)), finish)
        return offset_pages(
            fetch,
            api=API_NAME,
            endpoint=endpoint,
            key=record_key(key_field),
            limit=limit,
            connections=self.connections,
            budget=self.ahead_budget,
        )

    def _numbered_pages(
        self, path: str, endpoint: str, filters: dict[str, Any], limit: int
    ) -> Iterator[Page]:
        get = self._fetcher(path, endpoint, "products")
        return numbered_pages(
            get,
            endpoint=endpoint,
            filters=filters,
            limit=limit,
            connections=self.connections,
            budget=self.ahead_budget,
        )

    # --- orders ------------------------------------------------------------------------
    def iter_orders(
        self,
        *,
        newer_than: str | None = None,
        older_than: str | None = None,
        customer_id: int | str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Page]:
        """GET /orders in pages. `newer_than`/`older_than` are naive store-local timestamps
        compared with the order date (Centra has no modified-since filter for orders)."""
        filters = _drop_none(newer_than=newer_than, older_than=older_than, customer_id=customer_id)
        return self._offset_pages(
            "/orders", ENDPOINT_ORDERS, "orders", filters, self._limit(page_size), "orderId"
        )

    def get_order(self, order_number: int | str) -> RawRecord | None:
        """GET /orders?order=N: the order, or None if Centra does not return it (unknown,
        or filtered out by the plugin's status/market/hold settings)."""
        _, records, _ = self._get("/orders", ENDPOINT_ORDERS, "orders", {"order": order_number})
        wanted = str(order_number)
        for record in records:
            if str(record.obj.get("orderId")) == wanted:
                return record
        return None

    # --- returns -----------------------------------------------------------------------
    def iter_returns(
        self,
        *,
        newer_than: str | None = None,
        older_than: str | None = None,
        order: int | str | None = None,
        return_id: int | str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Page]:
        """GET /returns, newest first; `newer_than` is inclusive and `older_than` exclusive,
        both on the return's creation `date`. Read by date rather than by page number, so
        returns hidden or added during the read cannot make it skip one."""
        filters = _drop_none(
            newer_than=newer_than, older_than=older_than, order=order, **{"return": return_id}
        )
        return return_pages(
            self._fetcher("/returns", ENDPOINT_RETURNS, "returns"),
            api=API_NAME,
            endpoint=ENDPOINT_RETURNS,
            filters=filters,
            limit=self._limit(page_size),
        )

    def get_return(self, return_id: int | str) -> RawRecord | None:
        _, records, _ = self._get("/returns", ENDPOINT_RETURNS, "returns", {"return": return_id})
        wanted = str(return_id)
        return next((r for r in records if str(r.obj.get("returnId")) == wanted), None)

    # --- customers ---------------------------------------------------------------------
    def iter_customers(
        self,
        *,
        created: str | None = None,
        modified: str | None = None,
        email: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Page]:
        """GET /customers; `modified` = modified after (the one documented change filter)."""
        filters = _drop_none(created=created, modified=modified, email=email)
        return self._offset_pages(
            "/customers",
            ENDPOINT_CUSTOMERS,
            "customers",
            filters,
            self._limit(page_size),
            "customerId",
        )

    def get_customer(self, customer_id: int | str) -> RawRecord | None:
        endpoint = ENDPOINT_CUSTOMER
        try:
            _, records, _ = self.session.call(
                "GET",
                f"/customers/{customer_id}",
                endpoint=endpoint,
                parse=_single_parser(endpoint, "customer", self.session),
                not_found_ok=True,
            )
        except CentraNotFound:
            return None
        return records[0] if records else None

    # --- products and stock --------------------------------------------------------------
    def iter_products(
        self,
        *,
        modified: str | None = None,
        created: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Page]:
        """GET /products: one row per stock item (size), paged with `limit`/`page`/`next`."""
        filters = _drop_none(modified=modified, created=created)
        return self._numbered_pages("/products", ENDPOINT_PRODUCTS, filters, self._limit(page_size))

    def iter_stock(
        self,
        *,
        stock_modified: str | None = None,
        modified: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Page]:
        """GET /stock: product rows plus physical/allocated/available stock."""
        filters = _drop_none(stock_modified=stock_modified, modified=modified)
        return self._numbered_pages("/stock", ENDPOINT_STOCK, filters, self._limit(page_size))


def _page_parser(endpoint: str, records_key: str, session: CentraSession):
    def parse(response: Response) -> tuple[dict[str, Any], list[RawRecord], Response]:
        envelope, records = parse_envelope(response.text, records_key)
        session.raise_for_business_error(envelope, endpoint)
        return envelope, records, response

    return parse


def _single_parser(endpoint: str, key: str, session: CentraSession):
    """`{"status":"ok","customer":{...}}`; `{"status":"no","msg":"...not found"}` → none."""

    def parse(response: Response):
        envelope, records = parse_envelope(response.text, key, single=True)
        if envelope.get("status") == "no":
            msg = str(envelope.get("msg", ""))
            if "not found" in msg.lower() or "does not exist" in msg.lower():
                raise CentraNotFound(
                    f"{API_NAME} {endpoint}: {msg}", api=API_NAME, endpoint=endpoint
                )
        session.raise_for_business_error(envelope, endpoint)
        return envelope, records, response

    return parse


def _drop_none(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}
