"""Orders: `GET /orders` of the Order API, with lines, shipments and discounts.

How it is read:
- incremental: `newer_than` = cursor − lookback (CENTRA_ORDERS_LOOKBACK_DAYS, default 7), the
  cursor being the newest `orderDate` read (naive store-local time); of the orders read,
  only those new or changed since the warehouse's copy are landed. The Order API has no
  "modified since" filter for orders, so changes to older orders come through webhooks: every
  orders read also re-reads, by number, the orders of webhook events no load has applied yet
  (sync/inbox_reads.py);
- refresh: `GET /orders?order=N` per order number (the webhook sensor's runs);
- reconciliation: orders stay open until archived or cancelled, and orders on hold or
  waiting for payment are open whatever their status; the open pass re-reads the days that
  hold them (sync/reconcile_reads.py).
"""

from __future__ import annotations

from typing import Any

from centra_pipeline.centra.http import prefetch
from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.centra.quirks import parse_local_datetime, shift_local
from centra_pipeline.streams.model import (
    BIGINT,
    BOOL,
    DOUBLE,
    JSON,
    MONEY,
    PERCENT,
    TEXT,
    TS,
    OpenRecords,
    Row,
    Stream,
    Table,
    c,
    list_children,
)
from centra_pipeline.sync.open_reads import compare_with_warehouse
from centra_pipeline.sync.plan import ExtractOptions, ReadContext, ReadPlan, backfill_window

# Statuses after which an order no longer changes (completed orders are archived later).
FINAL_ORDER_STATUSES = ("archived", "cancelled")

ORDER_STATUS_NAMES = {
    "0": "incomplete",
    "1": "pending",
    "2": "confirmed",
    "3": "processing",
    "4": "completed",
    "5": "archived",
    "6": "cancelled",
}


def _order_discounts(record: dict[str, Any]) -> list[Row]:
    discounts = record.get("discounts")
    if not isinstance(discounts, dict):
        return []
    order_id = record.get("orderId")
    out = []
    for kind, key in (("voucher", "vouchers"), ("automatic", "automaticDiscounts")):
        items = discounts.get(key)
        if isinstance(items, list):
            out.extend(
                (item, {"@order_id": order_id, "@type": kind, "@position": i})
                for i, item in enumerate(items)
                if isinstance(item, dict)
            )
    return out


def _order_status_name(value: Any) -> Any:
    if value is None:
        return None
    text = str(value).strip().lower()
    return ORDER_STATUS_NAMES.get(text, text)


ORDERS = Table(
    name="orders",
    stream="orders",
    description="One row per order (Centra order number), current state.",
    source="Order API GET /orders (and GET /orders?order=N for webhook refreshes)",
    primary_key=("order_id",),
    consumes=frozenset(
        {"products", "shipments", "discounts.vouchers", "discounts.automaticDiscounts"}
    ),
    columns=(
        c("orderId", BIGINT, "Order number (Centra's `orderId`; the webhook `id`)", required=True),
        c("selectionId", TEXT, "Selection (cart) id; equals the Integration API order id"),
        c(
            "orderStatus",
            TEXT,
            'Order status as Centra sends it (code such as "4" or a word)',
            required=True,
        ),
        c(
            "orderStatus",
            TEXT,
            "Order status name: incomplete, pending, confirmed, processing, "
            "completed, archived, cancelled",
            name="order_status_name",
            transform=_order_status_name,
        ),
        c("orderStore", TEXT, "Store type, e.g. retail"),
        c("orderCurrency", TEXT, "Order currency (ISO 4217)"),
        c("customerId", BIGINT, "Customer id (see customers.customer_id)"),
        c("accountId", BIGINT, "B2B account id"),
        c("orderDate", TS, "When the order was placed", required=True),
        c("cancelDate", TS, "When it was cancelled; null if not cancelled"),
        c("preferredDeliveryDate", TS, "Preferred delivery date"),
        c("estimatedDeliveryDate", TS, "Estimated delivery date"),
        *(
            c(f"delivery{f}", TEXT, f"Delivery address: {f.lower()}", personal=f != "Country")
            for f in (
                "Name",
                "Company",
                "Email",
                "Cell",
                "Tele",
                "Address",
                "Coaddress",
                "Zipcode",
                "City",
                "State",
                "Country",
            )
        ),
        *(
            c(f"billing{f}", TEXT, f"Billing address: {f.lower()}", personal=f != "Country")
            for f in (
                "Name",
                "Company",
                "Email",
                "Tele",
                "Address",
                "Coaddress",
                "Zipcode",
                "City",
                "State",
                "Country",
                "VAT",
            )
        ),
        c("poNumber", TEXT, "Purchase order number"),
        c("shippingList", TEXT, "Shipping list / method"),
        c("suspect", BOOL, "Flagged as suspect"),
        c("internalOrder", BOOL, "Internal order"),
        c("hold", BOOL, "On hold"),
        c("waitingForPayment", BOOL, "Waiting for payment"),
        c("shippingValue", MONEY, "Shipping, in the order currency"),
        c("voucherValue", MONEY, "Voucher value, in the order currency"),
        c("grandTotalValue", MONEY, "Grand total, in the order currency", required=True),
        c("grandTotalTaxValue", MONEY, "Tax included in the grand total"),
        c("taxAdded", MONEY, "Tax added"),
        c("taxDeducted", MONEY, "Tax deducted"),
        c("totalItemsPrice", MONEY, "Sum of line prices"),
        c("totalItemsPriceTax", MONEY, "Tax on the lines"),
        c("totalItemsWithoutTax", MONEY, "Line total without tax"),
        c("totalItemsDiscount", MONEY, "Discount on the lines"),
        c("internalComment", TEXT, "Internal comment"),
        c("otherComment", TEXT, "Other comment"),
        c("marketId", BIGINT, "Market id"),
        c("pricelistId", BIGINT, "Pricelist id"),
        c("ipAddress", TEXT, "Customer IP address"),
        c("defaultCarrier", TEXT, "Default carrier"),
        c("paymentPlugin", TEXT, "Payment plugin"),
        c("paymentType", TEXT, "Payment type (cc, inv, 3rd, free, prepaid)"),
        c("paymentDescription", TEXT, "Payment description"),
        c("paymentReference", TEXT, "Payment reference"),
        c("paymentMethod", TEXT, "Payment method"),
        c("discounts.anyDiscount", BOOL, "Whether any discount applies"),
        c("discounts.discount", TEXT, 'Total discount as Centra formats it ("0.00 USD")'),
        c("discounts.discountAsNumber", MONEY, "Total discount"),
        c("taxBreakdown", JSON, "Tax breakdown: [{description, taxPercent, value}]"),
    ),
)

ORDER_LINES = Table(
    name="order_lines",
    stream="orders",
    description="Order lines (Centra's `products[]` on an order).",
    source="Order API GET /orders → products[]",
    primary_key=("line_id",),
    parent="orders",
    parent_key=("order_id",),
    rows=list_children("products", "orderId", "@order_id", "@position"),
    columns=(
        c("lineId", BIGINT, "Order line id", required=True),
        c("@order_id", BIGINT, "Order number (orders.order_id)", name="order_id", required=True),
        c("@position", BIGINT, "Position of the line in the order", name="line_position"),
        c("sku", TEXT, "Product SKU"),
        c("variantSku", TEXT, "Variant SKU"),
        c("sizeSku", TEXT, "Size SKU"),
        c("ean", TEXT, "EAN (joins products.ean)"),
        c("upc", TEXT, "UPC"),
        c("name", TEXT, "Product name"),
        c("variant", TEXT, "Variant name"),
        c("brand", TEXT, "Brand"),
        c("size", TEXT, "Size"),
        c("qty", BIGINT, "Quantity", required=True),
        c("originalPrice", MONEY, "Unit price before discounts"),
        c("price", MONEY, "Unit price"),
        c("weight", DOUBLE, "Weight"),
        c("weightUnit", TEXT, "Weight unit (kg, lb)"),
        c("countryOfOrigin", TEXT, "Country of origin"),
        c("harmCode", TEXT, "Harmonized (HS) code"),
        c("comment", TEXT, "Comment"),
        c("otherComment", TEXT, "Other comment"),
        c("taxPercent", PERCENT, "Tax percent"),
        c("priceDiscount", MONEY, "Discount per unit"),
        c("priceDiscountAsPercent", PERCENT, "Discount percent"),
        c("taxValue", MONEY, "Tax per unit"),
        c("totalTaxValue", MONEY, "Tax for the line"),
        c("totalPrice", MONEY, "Line total"),
        c("totalPriceWithoutTax", MONEY, "Line total without tax"),
        c("totalPriceWithTax", MONEY, "Line total with tax"),
        c("anyDiscount", BOOL, "Whether the line is discounted"),
        c("priceEachWithoutTax", MONEY, "Unit price without tax"),
        c("priceEachReduction", MONEY, "Unit price reduction"),
        c("isBundle", BOOL, "The line is a bundle"),
        c("isPartOfBundle", TEXT, "Bundle this line belongs to"),
        c("bundle", JSON, "Bundle components (when the plugin nests them)"),
        c("warehouses", JSON, "Allocation per warehouse: [{name, itemQty}]"),
        c("localizedSize", JSON, "Localized size {localizedSize, localizationDefinitionName}"),
    ),
)

ORDER_SHIPMENTS = Table(
    name="order_shipments",
    stream="orders",
    description="Shipments of an order (Centra's `shipments[]` on an order).",
    source="Order API GET /orders → shipments[]",
    primary_key=("shipment_id",),
    parent="orders",
    parent_key=("order_id",),
    rows=list_children("shipments", "orderId", "@order_id"),
    columns=(
        c("shipmentId", TEXT, 'Shipment number, "<order>-<n>"', required=True),
        c("@order_id", BIGINT, "Order number (orders.order_id)", name="order_id", required=True),
        c("shippedDate", TS, "When it was shipped; null if not shipped yet"),
        c("carrier", TEXT, "Carrier"),
        c("service", TEXT, "Carrier service"),
        c("trackingId", TEXT, "Tracking number"),
        c("trackingUrl", TEXT, "Tracking URL"),
        c("returnSlipTracking", TEXT, "Return slip tracking"),
        c("additionalMessage", TEXT, "Additional message"),
    ),
)

ORDER_DISCOUNTS = Table(
    name="order_discounts",
    stream="orders",
    description="Vouchers and automatic discounts applied to an order.",
    source="Order API GET /orders → discounts.vouchers[] and discounts.automaticDiscounts[]",
    primary_key=("order_id", "discount_type", "discount_position"),
    parent="orders",
    parent_key=("order_id",),
    rows=_order_discounts,
    columns=(
        c("@order_id", BIGINT, "Order number (orders.order_id)", name="order_id", required=True),
        c("@type", TEXT, "voucher or automatic", name="discount_type", required=True),
        c("@position", BIGINT, "Position within its list", name="discount_position", required=True),
        c("voucher", TEXT, "Voucher code (vouchers)"),
        c("automaticDiscount", TEXT, "Automatic discount id (automatic discounts)"),
        c("name", TEXT, "Name"),
        c("description", TEXT, "Description"),
        c("priceOff", TEXT, 'Amount off as Centra formats it ("-150.00 USD")'),
        c("priceOffAsANumber", MONEY, "Amount off (negative)"),
        c("isCredit", BOOL, "Voucher is a credit"),
        c("originalPriceOff", TEXT, "Original amount off, formatted"),
        c("originalPriceOffAsNumber", MONEY, "Original amount off"),
    ),
)


def plan(ctx: ReadContext, options: ExtractOptions, cursor: str | None) -> ReadPlan:
    if options.mode == "backfill":
        window: dict[str, Any] = backfill_window(options)
    elif options.incremental(cursor):
        assert cursor is not None
        window = {"newer_than": shift_local(cursor, -options.lookback)}
    else:
        window = {}
    assert ctx.order_api is not None
    pages = prefetch(ctx.order_api.iter_orders(**window, page_size=options.page_size))
    index = None
    if "newer_than" in window and options.mode != "backfill":
        # The lookback re-reads a week of orders every run; only the new and changed ones
        # are landed (compared with the warehouse's key/hash index).
        index = ctx.warehouse.window_index(
            "orders",
            parse_local_datetime(window["newer_than"], ctx.tz),
            compare=compare_with_warehouse(ctx, STREAM),
        )
    return ReadPlan(window, pages, cursor_field="orderDate", index=index)


def orders_before(ctx: ReadContext, numbers: list[int], newer_than: str) -> list[int]:
    """The orders among `numbers` that a read from `newer_than` does not cover: dated before
    it, or not in the warehouse."""
    if not numbers or not ctx.warehouse.path.exists():
        return numbers
    start = parse_local_datetime(newer_than, ctx.tz)
    covered = {
        r[0]
        for r in ctx.warehouse.query(
            "SELECT order_id FROM main.orders WHERE order_id IN "
            "(SELECT unnest(?::BIGINT[])) AND order_date >= ?",
            [numbers, start],
        )
    }
    return [n for n in numbers if n not in covered]


STREAM = Stream(
    name="orders",
    api="order_api",
    description="Orders with lines, shipments and discounts",
    endpoint="GET /orders",
    tables=(ORDERS, ORDER_LINES, ORDER_SHIPMENTS, ORDER_DISCOUNTS),
    key_field="orderId",
    plan=plan,
    read_all=OrderApi.iter_orders,
    lookup=OrderApi.get_order,
    open_records=OpenRecords(
        "order_date",
        "(coalesce(order_status_name, '') NOT IN ("
        + ", ".join(f"'{s}'" for s in FINAL_ORDER_STATUSES)
        + ") OR coalesce(hold, false) OR coalesce(waiting_for_payment, false))",
    ),
    applies_webhooks=True,
)
