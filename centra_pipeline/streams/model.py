"""One schema definition per table: used for Parquet, DuckDB, Dagster column metadata and the
table reference (docs/tables.md) alike.

Naming follows the README: a column is its Centra JSON field name in snake_case
(`grandTotalValue` → `grand_total_value`; a nested field joins its path:
`discounts.discountAsNumber` → `discounts_discount_as_number`). Primary keys are Centra's
identifiers. Money is DECIMAL(18,4) (three-decimal currencies fit; a value with more decimals
is rounded and recorded as a coercion), timestamps are TIMESTAMPTZ converted from the store's
timezone, and every id is BIGINT in every table that holds it (Centra sends order ids as
strings in orders and as ints in returns).

Lists become child tables where analysts need them (order lines, shipments, discounts, return
lines, prices, catalogue items...); small or rarely queried nested values stay as JSON columns.
Fields we do not map are kept per row in `_extra` (JSON) and, always, in the lake's `_raw`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BIGINT = "BIGINT"
TEXT = "VARCHAR"
MONEY = "DECIMAL(18,4)"
RATE = "DECIMAL(18,6)"
PERCENT = "DECIMAL(9,4)"
TS = "TIMESTAMPTZ"
BOOL = "BOOLEAN"
DOUBLE = "DOUBLE"
JSON = "JSON"

ORDER_STATUS_NAMES = {
    "0": "incomplete",
    "1": "pending",
    "2": "confirmed",
    "3": "processing",
    "4": "completed",
    "5": "archived",
    "6": "cancelled",
}


def snake(name: str) -> str:
    """`grandTotalValue` → `grand_total_value`, `billingVAT` → `billing_vat`,
    `discounts.discountAsNumber` → `discounts_discount_as_number`."""
    parts = []
    for part in name.split("."):
        part = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", part)
        part = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", part)
        parts.append(part.lower())
    return "_".join(parts)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    source: str | None  # key in the row dict the table's `rows` function yields
    description: str
    required: bool = False
    transform: Callable[[Any], Any] | None = None  # applied to the raw value before typing


def c(
    source: str,
    type_: str,
    description: str,
    *,
    name: str | None = None,
    required: bool = False,
    transform: Callable[[Any], Any] | None = None,
) -> Column:
    return Column(name or snake(source), type_, source, description, required, transform)


@dataclass(frozen=True)
class Table:
    name: str
    stream: str
    description: str
    source: str  # where it comes from in Centra, for the table reference
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    # Child tables: record -> child rows; parent tables: None (the record is the row).
    rows: Callable[[dict[str, Any]], list[tuple[dict[str, Any], dict[str, Any]]]] | None = None
    parent: str | None = None  # child tables are replaced together with their parent row
    parent_key: tuple[str, ...] = ()  # columns holding the parent's primary key
    consumes: frozenset[str] = field(default_factory=frozenset)  # keys children handle
    ignore_extra: frozenset[str] = field(default_factory=frozenset)  # keys that repeat others

    @property
    def is_parent(self) -> bool:
        return self.parent is None

    @property
    def column_names(self) -> list[str]:
        return [col.name for col in self.columns]

    def known_keys(self) -> frozenset[str]:
        """Top-level keys of a row that something maps (a column, or a child table)."""
        sources = {
            col.source.split(".")[0]
            for col in self.columns
            if col.source and not col.source.startswith("@")
        }
        return frozenset(sources) | {c.split(".")[0] for c in self.consumes} | self.ignore_extra

    def known_nested_keys(self) -> dict[str, frozenset[str]]:
        """For nested objects mapped by dotted sources (`discounts.discountAsNumber`), the
        keys of that object that something maps."""
        nested: dict[str, set[str]] = {}
        for path in [col.source for col in self.columns if col.source] + list(self.consumes):
            if "." in path and not path.startswith("@"):
                head, tail = path.split(".", 1)
                nested.setdefault(head, set()).add(tail)
        return {head: frozenset(tails) for head, tails in nested.items()}


# Metadata columns. Lake files carry all of them; the warehouse drops `_raw` and `_seq`
# (the lake is the record) and adds `_missing_since` on parent tables.
META_LAKE_PARENT = ("_load_id", "_extracted_at", "_seq", "_hash", "_extra", "_raw")
META_LAKE_CHILD = ("_load_id", "_extracted_at", "_seq", "_extra")
META_DESCRIPTIONS = {
    "_load_id": "the load (one extraction of one stream) that wrote this row",
    "_extracted_at": (
        "when Centra last returned this content (UTC): the fetch that wrote the row, moved "
        "forward when a later read finds it unchanged"
    ),
    "_hash": "hash of the record's raw JSON, to tell changed records from unchanged ones",
    "_extra": (
        "fields Centra sent that no column maps (e.g. custom attributes `order_attr_*`), as JSON"
    ),
    "_missing_since": (
        "set when Centra stopped returning this record (refreshed by number and not found, "
        "or gone from the catalogue when read); null while it is present"
    ),
}
META_TYPES = {
    "_load_id": TEXT,
    "_extracted_at": TS,
    "_seq": BIGINT,
    "_hash": TEXT,
    "_extra": JSON,
    "_raw": JSON,
    "_missing_since": TS,
}


def warehouse_meta(table: Table) -> tuple[str, ...]:
    if table.is_parent:
        return ("_load_id", "_extracted_at", "_hash", "_extra", "_missing_since")
    return ("_load_id", "_extracted_at", "_extra")


# --- row builders ------------------------------------------------------------------------
# A child table's builder turns one record into its child rows: (item, injected) pairs, where
# `item` is Centra's own nested object (not copied) and `injected` holds the `@`-columns the
# row gets from its context: the parent's key, a position, a map key.
Row = tuple[dict[str, Any], dict[str, Any]]


def _children(list_key: str, parent_field: str, inject: str, position: str | None = None):
    def rows(record: dict[str, Any]) -> list[Row]:
        items = record.get(list_key)
        if not isinstance(items, list):
            return []
        parent_id = record.get(parent_field)
        if position:
            return [
                (item, {inject: parent_id, position: i})
                for i, item in enumerate(items)
                if isinstance(item, dict)
            ]
        return [(item, {inject: parent_id}) for item in items if isinstance(item, dict)]

    return rows


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


def _keyed_children(map_key: str, key_field: str, inject_key: str):
    """Shop API maps such as `items: {"<itemId>": {...}}` become rows with the map key."""

    def rows(record: dict[str, Any]) -> list[Row]:
        mapping = record.get(map_key)
        if not isinstance(mapping, dict):
            return []
        product = record.get("product")
        return [
            (value, {key_field: key, inject_key: product})
            for key, value in mapping.items()
            if isinstance(value, dict)
        ]

    return rows


def _shop_prices(record: dict[str, Any]) -> list[Row]:
    markets = record.get("markets")
    if not isinstance(markets, dict):
        return []
    product = record.get("product")
    out: list[Row] = []
    for market_id, market in markets.items():
        if not isinstance(market, dict):
            continue
        by_pricelist = market.get("pricesByPricelist")
        if not isinstance(by_pricelist, dict):
            continue
        out.extend(
            (price, {"@market_id": market_id, "@pricelist_id": pricelist_id, "@product": product})
            for pricelist_id, price in by_pricelist.items()
            if isinstance(price, dict)
        )
    return out


# --- columns shared by Order API product and stock rows ----------------------------------
def _product_identity() -> tuple[Column, ...]:
    return (
        c("stockItemId", BIGINT, "Stock item (size) id: one row per size", required=True),
        c("productId", BIGINT, "Product id", required=True),
        c("variantId", BIGINT, "Variant id"),
        c("sku", TEXT, "Product SKU"),
        c("variantSku", TEXT, "Variant SKU"),
        c("sizeSku", TEXT, "Size SKU"),
        c("ean", TEXT, "EAN"),
        c("upc", TEXT, "UPC"),
    )


# --- the tables ----------------------------------------------------------------------------
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
            c(f"delivery{f}", TEXT, f"Delivery address: {f.lower()}")
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
            c(f"billing{f}", TEXT, f"Billing address: {f.lower()}")
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
    rows=_children("products", "orderId", "@order_id", "@position"),
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
    rows=_children("shipments", "orderId", "@order_id"),
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
    rows=_children("products", "returnId", "@return_id"),
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

CUSTOMERS = Table(
    name="customers",
    stream="customers",
    description="Customers.",
    source="Order API GET /customers (modified filter) and GET /customers/{id}",
    primary_key=("customer_id",),
    columns=(
        c("customerId", BIGINT, "Customer id", required=True),
        c("email", TEXT, "E-mail"),
        c("firstName", TEXT, "First name"),
        c("lastName", TEXT, "Last name"),
        c("address1", TEXT, "Address line 1"),
        c("address2", TEXT, "Address line 2"),
        c("zipCode", TEXT, "Postal code"),
        c("city", TEXT, "City"),
        c("state", TEXT, "State"),
        c("country", TEXT, "Country (ISO 3166-1 alpha-2)"),
        c("phoneNumber", TEXT, "Phone number"),
        c("newsletter", BOOL, "Subscribed to the newsletter"),
        c("gender", TEXT, "Gender"),
        c("registered", BOOL, "Can sign in"),
        c(
            "consents",
            JSON,
            "Consents: [{key, name, consented, text, language, version, created, modified}]",
        ),
        c("created", TS, "When the customer was created"),
        c("modified", TS, "When the customer was last modified", required=True),
    ),
)

PRODUCTS = Table(
    name="products",
    stream="products",
    description="Order API product rows: one row per stock item (size).",
    source="Order API GET /products (modified filter)",
    primary_key=("stock_item_id",),
    consumes=frozenset({"prices"}),
    columns=(
        *_product_identity(),
        c("product", TEXT, "Internal product name"),
        c("name", TEXT, "Public product name"),
        c("variant", TEXT, "Variant name"),
        c("size", TEXT, "Size"),
        c("brand", TEXT, "Brand"),
        c("collection", TEXT, "Collection"),
        c("weight", DOUBLE, "Weight"),
        c("weightUnit", TEXT, "Weight unit"),
        c("countryOfOrigin", TEXT, "Country of origin"),
        c("harmCode", TEXT, "Harmonized (HS) code"),
        c("harmDescription", TEXT, "HS code description"),
        c("active", BOOL, "Active"),
        c("folder", TEXT, "Folder"),
        c("description", TEXT, "Description"),
        c("shortDescription", TEXT, "Short description"),
        c("comment", TEXT, "Comment"),
        c("store", TEXT, "Store"),
        c("categories", JSON, "Category paths (strings)"),
        c("images", JSON, "Image URLs"),
        c("taxPercent", PERCENT, "Tax percent"),
        c("createdAt", TS, "When the product was created"),
        c("modified", TS, "When the product was last modified (when Centra sends it)"),
    ),
)

PRODUCT_PRICES = Table(
    name="product_prices",
    stream="products",
    description="Prices of a stock item per pricelist (Centra's `prices[]` on a product row).",
    source="Order API GET /products → prices[]",
    primary_key=("stock_item_id", "price_id"),
    parent="products",
    parent_key=("stock_item_id",),
    rows=_children("prices", "stockItemId", "@stock_item_id"),
    columns=(
        c(
            "@stock_item_id",
            BIGINT,
            "Stock item id (products.stock_item_id)",
            name="stock_item_id",
            required=True,
        ),
        c("id", BIGINT, "Price id", name="price_id", required=True),
        c("price", MONEY, "Price"),
        c("pricelist", TEXT, "Pricelist name"),
        c("currency", TEXT, "Currency"),
        c("campaigns", JSON, "Campaign prices: [{id, campaign, price}]"),
    ),
)

STOCK = Table(
    name="stock",
    stream="stock",
    description="Stock per stock item (size).",
    source="Order API GET /stock (stock_modified filter)",
    primary_key=("stock_item_id",),
    # /stock repeats the product fields, which the products table already holds.
    consumes=frozenset(
        {
            "brand",
            "collection",
            "product",
            "variant",
            "weight",
            "weightUnit",
            "countryOfOrigin",
            "harmCode",
            "harmDescription",
            "name",
            "description",
            "shortDescription",
            "comment",
            "store",
            "categories",
            "images",
            "prices",
            "folder",
            "createdAt",
            "modified",
            "taxPercent",
        }
    ),
    columns=(
        *_product_identity(),
        c("size", TEXT, "Size"),
        c("active", BOOL, "Active"),
        c("physicalStock", BIGINT, "Physical stock", required=True),
        c("allocatedStock", BIGINT, "Allocated stock"),
        c("availableStock", BIGINT, "Available stock"),
    ),
)

SHOP_PRODUCTS = Table(
    name="shop_products",
    stream="catalogue",
    description="Storefront catalogue products (one per Centra display variant).",
    source="Shop API POST /products/filter",
    primary_key=("product",),
    consumes=frozenset({"items", "markets", "media", "categories"}),
    columns=(
        c("product", BIGINT, "Shop API product id", required=True),
        c("productSku", TEXT, "Product SKU"),
        c("sku", TEXT, "SKU"),
        c("name", TEXT, "Name"),
        c("uri", TEXT, "URI"),
        c("canonicalUri", TEXT, "Canonical URI"),
        c("silkProduct", BIGINT, "Product id (products.product_id)"),
        c("silkVariant", BIGINT, "Variant id (products.variant_id)"),
        c("silkProductName", TEXT, "Product name"),
        c("silkVariantName", TEXT, "Variant name"),
        c("variantName", TEXT, "Variant display name"),
        c("brand", BIGINT, "Brand id"),
        c("brandName", TEXT, "Brand"),
        c("collection", BIGINT, "Collection id"),
        c("collectionName", TEXT, "Collection"),
        c("description", TEXT, "Description"),
        c("excerpt", TEXT, "Excerpt"),
        c("metaTitle", TEXT, "SEO title"),
        c("metaDescription", TEXT, "SEO description"),
        c("metaKeywords", TEXT, "SEO keywords"),
        c("weight", DOUBLE, "Weight"),
        c("weightUnit", TEXT, "Weight unit"),
        c("countryOfOrigin", TEXT, "Country of origin"),
        c("countryOfOriginName", TEXT, "Country of origin name"),
        c("harmCode", TEXT, "HS code"),
        c("harmCodeDescription", TEXT, "HS code description"),
        c("canonicalCategory", BIGINT, "Canonical category id"),
        c("stockUnit", TEXT, "Stock unit"),
        c("measurementChart", TEXT, "Measurement chart id"),
        c("measurementChartRows", JSON, "Measurement chart rows"),
        c("localized", JSON, "Localized texts per language"),
    ),
)

SHOP_PRODUCT_ITEMS = Table(
    name="shop_product_items",
    stream="catalogue",
    description="Sizes of a catalogue product with stock per market.",
    source="Shop API POST /products/filter → items{}",
    primary_key=("item",),
    parent="shop_products",
    parent_key=("product",),
    rows=_keyed_children("items", "@item_key", "@product"),
    columns=(
        c("item", BIGINT, "Item id (the Order API stock item id)", required=True),
        c(
            "@product",
            BIGINT,
            "Shop API product id (shop_products.product)",
            name="product",
            required=True,
        ),
        c("name", TEXT, "Size name"),
        c("sku", TEXT, "Size SKU"),
        c("ean", TEXT, "EAN"),
        c("stockByMarket", JSON, "Stock per market id"),
    ),
)

SHOP_PRODUCT_MARKETS = Table(
    name="shop_product_markets",
    stream="catalogue",
    description="Per-market availability of a catalogue product.",
    source="Shop API POST /products/filter → markets{}",
    primary_key=("product", "market_id"),
    parent="shop_products",
    parent_key=("product",),
    rows=_keyed_children("markets", "@market_id", "@product"),
    columns=(
        c("@product", BIGINT, "Shop API product id", name="product", required=True),
        c("@market_id", BIGINT, "Market id", name="market_id", required=True),
        c("stockOfAllItems", BIGINT, "Stock of all sizes in the market"),
    ),
    consumes=frozenset({"pricesByPricelist"}),
)

SHOP_PRODUCT_PRICES = Table(
    name="shop_product_prices",
    stream="catalogue",
    description="Catalogue prices per market and pricelist.",
    source="Shop API POST /products/filter → markets{}.pricesByPricelist{}",
    primary_key=("product", "market_id", "pricelist_id"),
    parent="shop_products",
    parent_key=("product",),
    rows=_shop_prices,
    columns=(
        c("@product", BIGINT, "Shop API product id", name="product", required=True),
        c("@market_id", BIGINT, "Market id", name="market_id", required=True),
        c("@pricelist_id", BIGINT, "Pricelist id", name="pricelist_id", required=True),
        c("price", TEXT, "Price as Centra formats it"),
        c("priceAsNumber", MONEY, "Price", required=True),
        c("priceBeforeDiscount", TEXT, "Price before discount, formatted"),
        c("priceBeforeDiscountAsNumber", MONEY, "Price before discount"),
        c("discountPercent", PERCENT, "Discount percent"),
        c("priceReduction", TEXT, "Reduction, formatted"),
        c("priceReductionAsNumber", MONEY, "Reduction"),
        c("showAsOnSale", BOOL, "Shown as on sale"),
        c("newProduct", BOOL, "Shown as new"),
    ),
)

SHOP_PRODUCT_MEDIA = Table(
    name="shop_product_media",
    stream="catalogue",
    description="Images and other media of a catalogue product.",
    source="Shop API POST /products/filter → media[]",
    primary_key=("product", "media_position"),
    parent="shop_products",
    parent_key=("product",),
    rows=_children("media", "product", "@product", "@position"),
    columns=(
        c("@product", BIGINT, "Shop API product id", name="product", required=True),
        c("@position", BIGINT, "Position", name="media_position", required=True),
        c("type", TEXT, "Media type"),
        c("sources", JSON, "URLs per size: {size: {url, width, height, mimeType}}"),
    ),
)

SHOP_PRODUCT_CATEGORIES = Table(
    name="shop_product_categories",
    stream="catalogue",
    description="Categories a catalogue product is in.",
    source="Shop API POST /products/filter → categories{}",
    primary_key=("product", "category"),
    parent="shop_products",
    parent_key=("product",),
    rows=_keyed_children("categories", "@category_key", "@product"),
    columns=(
        c("@product", BIGINT, "Shop API product id", name="product", required=True),
        c("@category_key", BIGINT, "Category id", name="category", required=True),
        c("name", JSON, "Category name (Centra sends the path as a list or a string)"),
        c("uri", TEXT, "Category URI"),
        c("sortOrder", BIGINT, "Sort order of the product in the category"),
    ),
    ignore_extra=frozenset({"category"}),  # repeats the map key
)


@dataclass(frozen=True)
class Stream:
    name: str
    api: str  # "order_api" | "shop_api"
    description: str
    tables: tuple[Table, ...]  # parent first

    @property
    def parent(self) -> Table:
        return self.tables[0]

    @property
    def children(self) -> tuple[Table, ...]:
        return self.tables[1:]


STREAMS: dict[str, Stream] = {
    s.name: s
    for s in (
        Stream(
            "orders",
            "order_api",
            "Orders with lines, shipments and discounts",
            (ORDERS, ORDER_LINES, ORDER_SHIPMENTS, ORDER_DISCOUNTS),
        ),
        Stream(
            "returns",
            "order_api",
            "Returns (and refunds) with their lines",
            (RETURNS, RETURN_LINES),
        ),
        Stream("customers", "order_api", "Customers", (CUSTOMERS,)),
        Stream(
            "products",
            "order_api",
            "Products per stock item, with prices",
            (PRODUCTS, PRODUCT_PRICES),
        ),
        Stream("stock", "order_api", "Stock per stock item", (STOCK,)),
        Stream(
            "catalogue",
            "shop_api",
            "Storefront catalogue",
            (
                SHOP_PRODUCTS,
                SHOP_PRODUCT_ITEMS,
                SHOP_PRODUCT_MARKETS,
                SHOP_PRODUCT_PRICES,
                SHOP_PRODUCT_MEDIA,
                SHOP_PRODUCT_CATEGORIES,
            ),
        ),
    )
}
TABLES: dict[str, Table] = {t.name: t for s in STREAMS.values() for t in s.tables}
