"""Order API reads (centra-api.md §2), streamed page by page.

Paging, as documented:
- orders and customers: `limit` + `offset`; no total and no next link;
- returns: `limit` + `page` (1-based), newest first;
- products and stock: `limit` turns on `page` and top-level `next`/`previous` links.

We stop on an empty page rather than on a short one: Centra's maximum `limit` is not
documented, and a server that clamps our limit returns short pages that are not the last.
Offsets advance by the number of records actually received for the same reason.

Nothing here holds more than one page (plus one prefetched page) in memory.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from centra_pipeline.centra.errors import CentraError, CentraNotFound
from centra_pipeline.centra.http import CentraSession, HttpConfig, Response
from centra_pipeline.centra.jsonstream import RawRecord, parse_envelope
from centra_pipeline.settings import ENV_ORDER_API_KEY, Secret

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


@dataclass(frozen=True)
class Page:
    """One response's records, with what is needed to land them and to explain the load."""

    endpoint: str
    number: int  # 1-based position of this page within the stream read
    params: dict[str, Any]
    records: list[RawRecord]
    fetched_at: datetime
    n_bytes: int
    has_more: bool
    server_time: datetime | None = None  # the response's Date header: Centra's clock

    @classmethod
    def from_response(
        cls,
        endpoint: str,
        number: int,
        params: dict[str, Any],
        records: list[RawRecord],
        response: Response,
        *,
        has_more: bool,
    ) -> Page:
        return cls(
            endpoint,
            number,
            params,
            records,
            response.fetched_at,
            len(response.text),
            has_more=has_more,
            server_time=server_time(response),
        )


def server_time(response: Response) -> datetime | None:
    value = response.headers.get("date")
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def offset_pages(
    fetch: Callable[[int], tuple[dict[str, Any], list[RawRecord], Response] | None],
    *,
    api: str,
    endpoint: str,
) -> Iterator[Page]:
    """Offset paging (both APIs): `fetch(offset)` returns (params, records, response), or None
    when the server says there is nothing more. Stops on an empty page; offsets advance by the
    records received. A server that ignores `offset` would be paged forever: refused."""
    offset = 0
    number = 0
    previous_first: str | None = None
    while True:
        fetched = fetch(offset)
        if fetched is None:
            return
        params, records, response = fetched
        number += 1
        if records and records[0].raw == previous_first:
            raise CentraError(
                f"the {api} returned the same page for offset {offset} as for the "
                f"previous one ({endpoint}): it ignores `offset`, so paging cannot go on",
                api=api,
                endpoint=endpoint,
            )
        previous_first = records[0].raw if records else None
        yield Page.from_response(
            endpoint, number, params, records, response, has_more=bool(records)
        )
        if not records:
            return
        offset += len(records)


def _page_parser(endpoint: str, records_key: str, session: CentraSession):
    def parse(response: Response) -> tuple[dict[str, Any], list[RawRecord], Response]:
        envelope, records = parse_envelope(response.text, records_key)
        session.raise_for_business_error(envelope, endpoint)
        return envelope, records, response

    return parse


class OrderApi:
    def __init__(self, session: CentraSession, *, page_size: int = 1000) -> None:
        self.session = session
        self.page_size = page_size

    @classmethod
    def connect(
        cls, url: str, key: Secret | str, *, config: HttpConfig | None = None, page_size: int = 1000
    ) -> OrderApi:
        session = CentraSession(
            url, key, api_name=API_NAME, key_env=ENV_ORDER_API_KEY, config=config
        )
        return cls(session, page_size=page_size)

    def close(self) -> None:
        self.session.close()

    def _get(self, path: str, endpoint: str, records_key: str, params: dict[str, Any]):
        return self.session.call(
            "GET",
            path,
            endpoint=endpoint,
            params=params,
            parse=_page_parser(endpoint, records_key, self.session),
        )

    def _offset_pages(
        self, path: str, endpoint: str, records_key: str, filters: dict[str, Any], limit: int
    ) -> Iterator[Page]:
        def fetch(offset: int) -> tuple[dict[str, Any], list[RawRecord], Response]:
            params = {**filters, "limit": limit, "offset": offset}
            _, records, response = self._get(path, endpoint, records_key, params)
            return params, records, response

        return offset_pages(fetch, api=API_NAME, endpoint=endpoint)

    def _numbered_pages(
        self,
        path: str,
        endpoint: str,
        records_key: str,
        filters: dict[str, Any],
        limit: int,
        *,
        follow_next_link: bool,
    ) -> Iterator[Page]:
        page = 1
        while True:
            params = {**filters, "limit": limit, "page": page}
            envelope, records, response = self._get(path, endpoint, records_key, params)
            # Products/stock say whether more follows; returns do not, so read until empty.
            has_more = bool(envelope.get("next")) if follow_next_link else bool(records)
            has_more = has_more and bool(records)
            yield Page.from_response(endpoint, page, params, records, response, has_more=has_more)
            if not has_more:
                return
            page += 1

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
            "/orders", ENDPOINT_ORDERS, "orders", filters, page_size or self.page_size
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
        both on the return's creation `date`."""
        filters = _drop_none(
            newer_than=newer_than, older_than=older_than, order=order, **{"return": return_id}
        )
        return self._numbered_pages(
            "/returns",
            ENDPOINT_RETURNS,
            "returns",
            filters,
            page_size or self.page_size,
            follow_next_link=False,
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
            "/customers", ENDPOINT_CUSTOMERS, "customers", filters, page_size or self.page_size
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
        return self._numbered_pages(
            "/products",
            ENDPOINT_PRODUCTS,
            "products",
            filters,
            page_size or self.page_size,
            follow_next_link=True,
        )

    def iter_stock(
        self,
        *,
        stock_modified: str | None = None,
        modified: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Page]:
        """GET /stock: product rows plus physical/allocated/available stock."""
        filters = _drop_none(stock_modified=stock_modified, modified=modified)
        return self._numbered_pages(
            "/stock",
            ENDPOINT_STOCK,
            "products",
            filters,
            page_size or self.page_size,
            follow_next_link=True,
        )


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
