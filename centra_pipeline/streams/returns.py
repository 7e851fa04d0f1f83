"""Returns: `GET /returns` of the Order API, with their lines. Centra makes refunds through
returns; `completed` marks one processed.

How it is read:
- incremental: `newer_than` = cursor − lookback (at least 7 days), the cursor being the newest
  `date` read; a return's `completed` flips later and nothing filters on it, so every run
  also re-reads the days holding the returns still open that are older than the window, by
  date windows as the reconciliation's open pass does (sync/open_reads.py), and lands only
  the returns that differ from the warehouse. An open return Centra no longer returns is not
  marked missing here: the daily open pass does that, and counts it as drift;
- refresh: `GET /returns?...` by return id;
- reconciliation: the open pass re-reads the days holding returns not completed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.centra.prefetch import prefetch
from centra_pipeline.centra.quirks import parse_local_datetime, shift_local
from centra_pipeline.streams.model import (
    BIGINT,
    BOOL,
    MONEY,
    RATE,
    TEXT,
    TS,
    OpenRecords,
    Stream,
    Table,
    c,
    list_children,
)
from centra_pipeline.sync.open_reads import window_with_open
from centra_pipeline.sync.plan import ExtractOptions, ReadContext, ReadPlan, backfill_window

MIN_LOOKBACK = timedelta(days=7)
# The incremental read's page: re-reading the open returns older than the window reads most
# of a store's returns every run (old open returns are spread over its whole history), and
# the records that match the warehouse are compared and dropped, so a page larger than the
# client's costs a little memory while it is parsed and saves requests. Centra documents no
# maximum `limit`; returns are read by date from wherever a page ends (date_paging.py), so a
# server that serves fewer per page costs more requests, nothing else.
REREAD_PAGE_SIZE = 5000

RETURNS = Table(
    name="returns",
    stream="returns",
    description="Returns (Centra's refunds are made through returns; `completed` = processed).",
    source="Order API GET /returns",
    primary_key=("return_id",),
    consumes=frozenset({"products"}),
    columns=(
        c("returnId", BIGINT, "Return id", required=True),
        c("completed", BOOL, "Completed (refund processed); false while pending"),
        c("shipment", TEXT, "Shipment number the return is for"),
        c("shipmentId", BIGINT, "Shipment id"),
        c("orderId", BIGINT, "Order number (orders.order_id)", required=True),
        c("selectionId", TEXT, "Selection id of the order"),
        c("customerId", BIGINT, "Customer id"),
        c("accountId", BIGINT, "B2B account id"),
        c("date", TS, "When the return was created", required=True),
        c("marketId", BIGINT, "Market id"),
        c("pricelistId", BIGINT, "Pricelist id"),
        c("returnCost", MONEY, "Return cost charged"),
        c("shippingCost", MONEY, "Shipping cost refunded"),
        c("handlingCost", MONEY, "Handling cost"),
        c("voucherValue", MONEY, "Voucher value"),
        c("taxValue", MONEY, "Tax value"),
        c("taxDeduction", MONEY, "Tax deduction"),
        c("currency", TEXT, "Currency"),
        c("baseCurrency", TEXT, "Base currency"),
        c("baseCurrencyRate", RATE, "Rate from currency to base currency"),
        c("returnToStock", BOOL, "Items go back to stock"),
        c("comment", TEXT, "Comment"),
        c("createdFrom", TEXT, "Where the return was created (e.g. Order API)"),
    ),
)

RETURN_LINES = Table(
    name="return_lines",
    stream="returns",
    description="Returned items (Centra's `products[]` on a return).",
    source="Order API GET /returns → products[]",
    primary_key=("return_line_id",),
    parent="returns",
    parent_key=("return_id",),
    rows=list_children("products", "returnId", "@return_id"),
    columns=(
        c("returnLineId", BIGINT, "Return line id", required=True),
        c("@return_id", BIGINT, "Return id (returns.return_id)", name="return_id", required=True),
        c("shipmentLineId", BIGINT, "Shipment line id"),
        c("orderLineId", BIGINT, "Order line id (order_lines.line_id)"),
        c("productId", BIGINT, "Product id"),
        c("variantId", BIGINT, "Variant id"),
        c("productName", TEXT, "Product name"),
        c("productBrand", TEXT, "Brand"),
        c("variantName", TEXT, "Variant name"),
        c("size", TEXT, "Size"),
        c("sku", TEXT, "SKU"),
        c("variantSku", TEXT, "Variant SKU"),
        c("sizeSku", TEXT, "Size SKU"),
        c("ean", TEXT, "EAN"),
        c("upc", TEXT, "UPC"),
        c("quantity", BIGINT, "Quantity returned", required=True),
        c("price", MONEY, "Unit price as on the shipment"),
    ),
)


def plan(ctx: ReadContext, options: ExtractOptions, cursor: str | None) -> ReadPlan:
    api = ctx.order_api
    assert api is not None
    if options.incremental(cursor):
        assert cursor is not None
        newer_than = shift_local(cursor, -max(options.lookback, MIN_LOOKBACK))
        size = options.page_size or max(api.page_size, REREAD_PAGE_SIZE)
        read = window_with_open(ctx, STREAM, newer_than, size, cursor_field="date")
        open_before = open_returns_before(ctx, newer_than)
        read.window = {"newer_than": newer_than, "open_returns_reread": open_before, **read.window}
        return read
    window: dict[str, Any] = backfill_window(options) if options.mode == "backfill" else {}
    pages = prefetch(api.iter_returns(**window, page_size=options.page_size))
    return ReadPlan(window, pages, cursor_field="date")


def open_returns_before(ctx: ReadContext, newer_than: str) -> int:
    """How many returns the warehouse holds as open that are older than the window: the
    read re-reads every one."""
    if not ctx.warehouse.path.exists():
        return 0
    rows = ctx.warehouse.query(
        "SELECT count(*) FROM main.returns WHERE NOT coalesce(completed, false) "
        "AND _missing_since IS NULL AND date < ?",
        [parse_local_datetime(newer_than, ctx.tz)],
    )
    return int(rows[0][0]) if rows else 0


STREAM = Stream(
    name="returns",
    api="order_api",
    description="Returns (and refunds) with their lines",
    endpoint="GET /returns",
    tables=(RETURNS, RETURN_LINES),
    key_field="returnId",
    plan=plan,
    read_all=OrderApi.iter_returns,
    lookup=OrderApi.get_return,
    open_records=OpenRecords("date", "NOT coalesce(completed, false)"),
)
