"""Returns: `GET /returns` of the Order API, with their lines. Centra makes refunds through
returns; `completed` marks one processed.

How it is read:
- incremental: `newer_than` = cursor − lookback (at least 7 days), the cursor being the newest
  `date` read; a return's `completed` flips later and nothing filters on it, so the returns
  still open that are older than the window are re-read one by one, those read longest ago
  first, at most OPEN_RETURNS_PER_RUN per run;
- refresh: `GET /returns?...` by return id;
- reconciliation: the open pass re-reads the days holding returns not completed.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from centra_pipeline.centra.http import prefetch
from centra_pipeline.centra.order_api import OrderApi
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
from centra_pipeline.sync.plan import (
    ExtractOptions,
    ReadContext,
    ReadPlan,
    backfill_window,
    lookups,
)

MIN_LOOKBACK = timedelta(days=7)
OPEN_RETURNS_PER_RUN = 100  # oldest-read first, so every open return is revisited in turn

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
    if options.mode == "backfill":
        window: dict[str, Any] = backfill_window(options)
    elif options.incremental(cursor):
        assert cursor is not None
        window = {"newer_than": shift_local(cursor, -max(options.lookback, MIN_LOOKBACK))}
    else:
        window = {}
    pages: Any = prefetch(api.iter_returns(**window, page_size=options.page_size))
    if options.incremental(cursor):
        open_ids = open_returns_before(ctx, window["newer_than"])
        if open_ids:
            window["open_returns_reread"] = len(open_ids)
            pages = itertools.chain(pages, lookups(tuple(open_ids), api.get_return))
    return ReadPlan(window, pages, cursor_field="date")


def open_returns_before(ctx: ReadContext, newer_than: str) -> list[int]:
    """Ids of returns still open created before the window, those read longest ago first."""
    if not ctx.warehouse.path.exists():
        return []
    before = parse_local_datetime(newer_than, ctx.tz)
    rows = ctx.warehouse.query(
        "SELECT return_id FROM main.returns WHERE NOT coalesce(completed, false) "
        "AND _missing_since IS NULL AND date < ? ORDER BY _extracted_at, return_id LIMIT ?",
        [before, OPEN_RETURNS_PER_RUN],
    )
    return [r[0] for r in rows]


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
