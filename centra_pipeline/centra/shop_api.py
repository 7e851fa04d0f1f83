"""Shop API reads: the storefront catalogue.

Responses are maps keyed by product id (`{"123": {...}}`), not envelopes, and errors are
`{"errors": {...}}` with HTTP 4xx. No documented endpoint filters by modification time, so the
pipeline reads the catalogue in full with `POST /products/filter` (`quantity` + `offset`;
Centra recommends 10–100 per call) and lands only what changed. The read is anchored on the
product id (`product`) so products leaving the catalogue during the read (made inactive,
removed from the market) cannot make it skip one: see `paging.offset_pages`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from centra_pipeline.centra.client import PluginClient
from centra_pipeline.centra.errors import CentraBusinessError, CentraNotFound
from centra_pipeline.centra.http import Response
from centra_pipeline.centra.jsonstream import RawRecord, parse_document, parse_keyed_records
from centra_pipeline.centra.page import Page, record_key
from centra_pipeline.centra.paging import offset_pages
from centra_pipeline.centra.prefetch import Staged
from centra_pipeline.settings import ENV_SHOP_API_KEY

API_NAME = "Shop API"
ENDPOINT_PRODUCTS_FILTER = "POST /products/filter"
ENDPOINT_PRODUCT_IDS = "GET /product-ids"
ENDPOINT_ALL_PRODUCTS = "GET /products"

T = TypeVar("T")
# A page of POST /products/filter: (the body sent, its records, the response).
PageAnswer = tuple[dict[str, Any], list[RawRecord], Response]


def _keyed(response: Response) -> tuple[list[RawRecord], Response]:
    return parse_keyed_records(response.text), response


class ShopApi(PluginClient):
    API_NAME = API_NAME
    KEY_ENV = ENV_SHOP_API_KEY
    DEFAULT_PAGE_SIZE = 100

    def iter_products(
        self,
        *,
        market: int | None = None,
        silk_products: list[str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[Page]:
        """Every catalogue product (or those of the given Centra product ids, `silkProduct`),
        `quantity` new products a page, until a page brings none."""
        if silk_products is not None and not silk_products:
            return

        def body_of(offset: int, count: int) -> dict[str, Any]:
            body: dict[str, Any] = {"quantity": count, "offset": offset}
            if market is not None:
                body["market"] = market
            if silk_products is not None:
                body["silkProduct"] = [str(p) for p in silk_products]
            return body

        def whole(offset: int, count: int) -> PageAnswer | None:
            body = body_of(offset, count)
            found = self._filter_page(body, self._filter)
            return None if found is None else (body, *found)

        def send(offset: int, count: int) -> Response | None:
            return self._filter_page(body_of(offset, count), filtered.send)

        def finish(args: tuple, response: Response | None) -> PageAnswer | None:
            if response is None:
                return None
            body = body_of(*args)
            return (body, *filtered.finish((body,), response))

        filtered = self._filter_staged()
        fetch = Staged(whole, send, finish)
        yield from offset_pages(
            fetch,
            api=API_NAME,
            endpoint=ENDPOINT_PRODUCTS_FILTER,
            key=record_key("product"),
            limit=self._limit(page_size),
            connections=self.connections,
            budget=self.ahead_budget,
        )

    def get_products(self, product_ids: list[str]) -> list[RawRecord]:
        """POST /products/filter with explicit ids (targeted refreshes)."""
        try:
            records, _ = self._filter({"products": [str(p) for p in product_ids]})
        except CentraNotFound:
            return []
        return records

    def _filter(self, body: dict[str, Any]) -> tuple[list[RawRecord], Response]:
        return self._filter_staged()(body)

    def _filter_staged(self) -> Staged:
        return self.session.staged(
            "POST",
            "/products/filter",
            endpoint=ENDPOINT_PRODUCTS_FILTER,
            parse=_keyed,
            not_found_ok=True,
            request=lambda body: {"json_body": body},
        )

    def _filter_page(self, body: dict[str, Any], call: Callable[[dict[str, Any]], T]) -> T | None:
        """One page of a paged POST /products/filter (`call(body)`: parsed or not); None past
        the last product."""
        try:
            return call(body)
        except CentraNotFound as exc:
            # The Shop API answers 404 {"errors":{"product":"not found"}} for an empty
            # selection; past the last product that simply means "no more". Any other
            # 404 (`{"errors":{"market":"not found: 9"}}`) is a bad filter, not an end.
            errors = exc.detail.get("errors") if isinstance(exc.detail, dict) else None
            if not isinstance(errors, dict) or set(errors) <= {"product"}:
                return None
            raise CentraBusinessError(
                str(exc), api=API_NAME, endpoint=ENDPOINT_PRODUCTS_FILTER, detail=exc.detail
            ) from None

    def product_ids(self) -> list[str]:
        def parse(response: Response) -> list[str]:
            value = parse_document(response.text)
            self.session.raise_for_business_error(value, ENDPOINT_PRODUCT_IDS)
            return [str(v) for v in value] if isinstance(value, list) else []

        return self.session.call("GET", "/product-ids", endpoint=ENDPOINT_PRODUCT_IDS, parse=parse)

    def all_products(self) -> Page:
        """GET /products: every active product in one response (the Shop API has no paging
        on this endpoint). For small catalogues and spot checks; the pipeline pages with
        `iter_products` so memory stays flat whatever the catalogue's size."""
        records, response = self.session.call(
            "GET", "/products", endpoint=ENDPOINT_ALL_PRODUCTS, parse=_keyed
        )
        return Page.from_response(ENDPOINT_ALL_PRODUCTS, 1, {}, records, response, has_more=False)
