"""Order API reads, streamed page by page, and the offset paging both APIs share.

Paging, as documented:
- orders and customers: `limit` + `offset`; no total and no next link;
- returns: `limit` + `page` (1-based), newest first; `newer_than` (inclusive) and
  `older_than` (exclusive) filter on the creation `date`;
- products and stock: `limit` turns on `page` and top-level `next`/`previous` links.

A result set can change while it is read. With positional paging, a record that leaves the
set in front of the read position (the plugin stops serving cancelled orders, an order goes
on hold, a market is dropped) moves every later record one place forward, and the record at
the page boundary falls between two pages: skipped, silently. Full reads are built so that
every record visible throughout the read is returned exactly once:

- Offset reads (orders, customers, and the Shop API catalogue through `offset_pages`) use
  *anchored offset paging*. Every page after the first is requested from the offset of the
  last record already read, one record wider (`limit + 1`), so it should start with that
  record, the anchor. Records are told apart by their key (`orderId`, `customerId`, the Shop
  API's `product`). What follows the last record of the previous page found in the response
  is new; nothing before it is returned again. Records arriving in front of the read position
  push the anchor back: duplicates, dropped, never a skip. Records leaving pull it forward,
  out of the response: then the read steps back half a window at a time until a response
  holds a record of the last pages read again. The steps do not double: a window without a
  known record looks the same whether it lies before or after them, so windows must overlap
  for a step back never to jump over them. An unchanged store costs what plain offset paging
  costs: pages of `limit` new records, and a last request that returns only the anchor where
  plain paging gets an empty page. Limits: a server whose pages hold one record leaves no
  room for an anchor (those reads are plain offset reads), and if every record of the last
  two pages left during one request the read cannot know where it was: it raises rather than
  guess.
- Returns are read by date (keyset): each next request is page 1 of `older_than` = the oldest
  second read so far + 1 s, which, being exclusive, brings that second again. Returns already
  read at that second are dropped, and `limit` grows by their number, so a page still brings
  `limit` new returns and an unchanged store costs the same requests as page numbers. Nothing
  depends on a position, so nothing can shift. Should more than a page of returns share one
  second, that second alone is read by page number. The caller's own window is kept.
- Products and stock (`page` + `next`) are read by page number, unanchored: page numbers
  cannot overlap without changing the page size, and rows do not leave these sets during a
  read. A row carries its product's `active` flag instead of disappearing, and `modified` /
  `stock_modified` are "after" filters on timestamps that only move forward. Only a product
  deleted during a full read would shift rows.

No page ends a read for being short: Centra's maximum `limit` is not documented, and a server
that clamps our limit returns short pages that are not the last. Offsets advance by the
records actually received for the same reason.

Each `Page` says what changes cost: `overlap` counts records received again and not repeated
(the anchor, and duplicates pushed back by arrivals), `rereads` the requests before it that
brought nothing new. A read that had to step back logs it at INFO: the store changed under it.

Nothing here holds more than one page (plus one prefetched page) in memory: reads keep only
the keys of the last two pages (returns: of the oldest second read).
"""

from __future__ import annotations

import email.utils
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from centra_pipeline.centra.errors import CentraError, CentraMalformedResponse, CentraNotFound
from centra_pipeline.centra.http import CentraSession, HttpConfig, Response
from centra_pipeline.centra.jsonstream import RawRecord, parse_envelope
from centra_pipeline.settings import ENV_ORDER_API_KEY, Secret

log = logging.getLogger("centra_pipeline.centra")

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
    # Records the response held that had been read already and are not in `records` (the
    # anchor of offset paging, the returns of the boundary second, duplicates from arrivals).
    overlap: int = 0
    # Requests made before this page's own that brought nothing new: the store changed.
    rereads: int = 0

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
        overlap: int = 0,
        rereads: int = 0,
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
            overlap=overlap,
            rereads=rereads,
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


def record_key(field: str) -> Callable[[RawRecord], str]:
    """A record's identity for paging: `obj[field]` as a string (ids come as 7 or "7"), or
    the record's raw text when it has no such field."""

    def key(record: RawRecord) -> str:
        value = record.obj.get(field)
        return record.raw if value is None else str(value)

    return key


Fetch = Callable[[int, int], tuple[dict[str, Any], list[RawRecord], Response] | None]


def offset_pages(
    fetch: Fetch,
    *,
    api: str,
    endpoint: str,
    key: Callable[[RawRecord], str],
    limit: int,
) -> Iterator[Page]:
    """Anchored offset paging (both APIs; see the module docstring).

    `fetch(offset, limit)` returns (params, records, response), or None when the server says
    there is nothing (read as an empty page). `key` identifies a record. Pages carry only new
    records; the read ends with a page of none (has_more false). A server that ignores
    `offset` would be paged forever: refused.
    """
    number = 0  # pages yielded
    offset = 0  # of the next request
    # Keys of the last two responses that brought new records: records read at the read
    # position. Two, because arrivals between the previous page's records can push its last
    # ones past the end of the next response: they must still be recognised after it.
    recent: set[str] = set()
    known: set[str] = set()
    known_first: str | None = None  # the first key of the last such response
    known_size = 0  # and how many records it held
    anchored = False  # the next response should start with the last record read
    rereads = 0  # requests since the last page that brought nothing new
    lost_at: int | None = None  # offset where the previous page was not found, while searching
    widest = 0  # the most records one response held: the server's page, as far as we know
    while True:
        fetched = fetch(offset, limit + 1 if anchored else limit)
        params, records, response = fetched if fetched is not None else ({}, [], None)
        widest = max(widest, len(records))
        keys = [key(record) for record in records]
        last = max((i for i, k in enumerate(keys) if k in known), default=-1)
        # With an anchor the second response should start with the first page's last record;
        # without one (after a one-record page), with a new record. Starting with the first
        # page's first record and bringing nothing new, it is the first page again. (Later,
        # a page can come back when records leave in front as fast as the read advances.)
        same_page = keys[:1] == [known_first] and last == len(keys) - 1 and lost_at is None
        if same_page and number == 1 and (not anchored or known_size > 1):
            raise CentraError(
                f"the {api} returned the same page for offset {offset} as for the "
                f"previous one ({endpoint}): it ignores `offset`, so paging cannot go on",
                api=api,
                endpoint=endpoint,
            )
        if anchored and last < 0:
            # No record of the previous page: records left the set in front of it, and what
            # is at `offset` now lies past it. Step back half a window: windows overlap, even
            # if a few more records leave while we search.
            if offset > 0:
                lost_at = offset if lost_at is None else lost_at
                offset = max(0, offset - max(1, widest // 2))
                rereads += 1
                continue
            if number > 2:
                raise CentraError(
                    f"the {api} result set changed so much during the read ({endpoint}) that "
                    "every record of the last two pages read left it: the read cannot tell "
                    "where it was, so it stops rather than skip records; run it again",
                    api=api,
                    endpoint=endpoint,
                )
            # All that was read has left (`known` holds it all): everything is unread.
        fresh = records[last + 1 :]
        if lost_at is not None and (fresh or not records or len(records) == 1):
            log.info(
                "%s %s: records left the result set during the read (the previous page was "
                "no longer at offset %d); stepped back, found it after %d re-read(s) and read "
                "on from offset %d",
                api,
                endpoint,
                lost_at,
                rereads,
                offset,
            )
            lost_at = None
        if fresh:
            number += 1
            yield Page.from_response(
                endpoint,
                number,
                params,
                fresh,
                response,
                has_more=True,
                overlap=len(records) - len(fresh),
                rereads=rereads,
            )
            rereads = 0
            known = recent | set(keys)
            recent = set(keys)
            known_first, known_size = keys[0], len(keys)
            # One record leaves no room to overlap, unless one was all we asked for.
            anchored = len(records) > 1 or limit == 1
            offset += len(records) - 1 if anchored else len(records)
            continue
        if len(records) > 1 and anchored:
            # Only records read before, the last of them at the end: more may follow it.
            offset += len(records) - 1
            rereads += 1
            continue
        # The end: an empty page, or only the record read last.
        if response is not None:
            number += 1
            yield Page.from_response(
                endpoint,
                number,
                params,
                [],
                response,
                has_more=False,
                overlap=len(records),
                rereads=rereads,
            )
        return


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
        self,
        path: str,
        endpoint: str,
        records_key: str,
        filters: dict[str, Any],
        limit: int,
        key_field: str,
    ) -> Iterator[Page]:
        def fetch(offset: int, count: int) -> tuple[dict[str, Any], list[RawRecord], Response]:
            params = {**filters, "limit": count, "offset": offset}
            _, records, response = self._get(path, endpoint, records_key, params)
            return params, records, response

        return offset_pages(
            fetch, api=API_NAME, endpoint=endpoint, key=record_key(key_field), limit=limit
        )

    def _numbered_pages(
        self, path: str, endpoint: str, filters: dict[str, Any], limit: int
    ) -> Iterator[Page]:
        """Products and stock: `page` numbers while the response has a `next` link."""
        page = 1
        while True:
            params = {**filters, "limit": limit, "page": page}
            envelope, records, response = self._get(path, endpoint, "products", params)
            has_more = bool(envelope.get("next")) and bool(records)
            yield Page.from_response(endpoint, page, params, records, response, has_more=has_more)
            if not has_more:
                return
            page += 1

    def _return_pages(self, filters: dict[str, Any], limit: int) -> Iterator[Page]:
        """Returns by date, newest first (see the module docstring): page 1 of `older_than` =
        the oldest second read + 1 s each time, dropping the returns of that second already
        read; a second holding more than a page is read by page number."""
        endpoint = ENDPOINT_RETURNS
        base = {k: v for k, v in filters.items() if k != "older_than"}
        older_than: str | None = filters.get("older_than")
        ceiling = _parse_bound(older_than)  # exclusive: every return read is older
        second: datetime | None = None  # the oldest second read so far
        at_second: set[str] = set()  # the returns of that second read so far
        by_page = 0  # while that second is read by page number: the next page number
        number = 0
        widest = 0
        rereads = 0
        while True:
            if by_page:
                assert second is not None
                params = {
                    **base,
                    "newer_than": _format_second(second),
                    "older_than": _format_second(second + ONE_SECOND),
                    "limit": limit,
                    "page": by_page,
                }
            else:
                params = {**base, "limit": limit + len(at_second), "page": 1}
                if older_than is not None:
                    params["older_than"] = older_than
            _, records, response = self._get("/returns", endpoint, "returns", params)
            widest = max(widest, len(records))
            fresh = [r for r in records if RETURN_KEY(r) not in at_second]
            dates = [_return_date(r) for r in fresh]
            if by_page:
                if any(d != second for d in dates):
                    raise _ignored(endpoint, "`newer_than`/`older_than`")
                if not records:  # that second is read: go on with the returns older than it
                    older_than, ceiling = _format_second(second), second
                    second, at_second, by_page = None, set(), 0
                    continue
                by_page += 1
                at_second.update(RETURN_KEY(r) for r in fresh)
            elif not fresh:
                if len(records) > 1 and len(records) >= min(params["limit"], widest):
                    # Only returns of `second` read before, as many as the server puts in a
                    # page (it clamps the limit): more than a page of returns share it.
                    by_page, rereads = 1, rereads + 1
                    _log_crowded_second(second)
                    continue
                number += 1
                yield Page.from_response(
                    endpoint,
                    number,
                    params,
                    [],
                    response,
                    has_more=False,
                    overlap=len(records),
                    rereads=rereads,
                )
                return
            else:
                if ceiling is not None and dates[0] >= ceiling:
                    raise _ignored(endpoint, "`older_than`")
                if any(a < b for a, b in itertools.pairwise(dates)):
                    raise CentraError(
                        f"the {API_NAME} did not list returns newest first ({endpoint}); "
                        "they are read by date, which depends on that order",
                        api=API_NAME,
                        endpoint=endpoint,
                    )
                oldest = dates[-1]
                if oldest != second:
                    second, at_second = oldest, set()
                at_second.update(
                    RETURN_KEY(r) for r, d in zip(fresh, dates, strict=True) if d == oldest
                )
                ceiling = oldest + ONE_SECOND
                older_than = _format_second(ceiling)
                if len(at_second) > limit:
                    # More than a page of returns share `second`: asking for it again with
                    # an ever wider limit would resend them all, so page through it instead.
                    by_page = 1
                    _log_crowded_second(second)
            if not fresh:
                rereads += 1
                continue
            number += 1
            yield Page.from_response(
                endpoint,
                number,
                params,
                fresh,
                response,
                has_more=True,
                overlap=len(records) - len(fresh),
                rereads=rereads,
            )
            rereads = 0

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
            "/orders", ENDPOINT_ORDERS, "orders", filters, page_size or self.page_size, "orderId"
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
        return self._return_pages(filters, page_size or self.page_size)

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
            page_size or self.page_size,
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
        return self._numbered_pages(
            "/products", ENDPOINT_PRODUCTS, filters, page_size or self.page_size
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
        return self._numbered_pages("/stock", ENDPOINT_STOCK, filters, page_size or self.page_size)


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


ONE_SECOND = timedelta(seconds=1)
_SECOND_FORMAT = "%Y-%m-%d %H:%M:%S"
RETURN_KEY = record_key("returnId")


def _format_second(moment: datetime) -> str:
    return moment.strftime(_SECOND_FORMAT)


def _parse_bound(value: str | None) -> datetime | None:
    """A date filter as sent (`YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD`); None if neither."""
    for fmt in (_SECOND_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.strptime(str(value), fmt)
        except ValueError:
            continue
    return None


def _return_date(record: RawRecord) -> datetime:
    value = record.obj.get("date")
    try:
        return datetime.strptime(str(value), _SECOND_FORMAT)
    except ValueError:
        raise CentraMalformedResponse(
            f"the {API_NAME} sent return {record.obj.get('returnId')!r} with `date` {value!r}, "
            "not YYYY-MM-DD HH:MM:SS; returns are read by that date",
            api=API_NAME,
            endpoint=ENDPOINT_RETURNS,
        ) from None


def _log_crowded_second(second: datetime | None) -> None:
    log.info(
        "%s %s: a page or more of returns were created at %s; reading that second by page number",
        API_NAME,
        ENDPOINT_RETURNS,
        _format_second(second) if second else "?",
    )


def _ignored(endpoint: str, what: str) -> CentraError:
    return CentraError(
        f"the {API_NAME} returned returns outside the {what} asked for ({endpoint}): it "
        "ignores the filter, so the read cannot go on",
        api=API_NAME,
        endpoint=endpoint,
    )


def _drop_none(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}
