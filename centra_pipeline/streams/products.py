"""Products: `GET /products` of the Order API, one row per stock item (size), with prices.

Read incrementally with the documented `modified` filter. Product rows carry no documented
modification timestamp, so the cursor is Centra's own clock when the read started (the `Date`
header): the one watermark that needs no assumption about our clock agreeing with Centra's.
"""

from __future__ import annotations

from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.streams.model import (
    BIGINT,
    BOOL,
    DOUBLE,
    JSON,
    MONEY,
    PERCENT,
    TEXT,
    TS,
    Column,
    Stream,
    Table,
    c,
    list_children,
)
from centra_pipeline.sync.plan import read_modified_since


# --- columns shared by Order API product and stock rows ----------------------------------
def product_identity() -> tuple[Column, ...]:
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


PRODUCTS = Table(
    name="products",
    stream="products",
    description="Order API product rows: one row per stock item (size).",
    source="Order API GET /products (modified filter)",
    primary_key=("stock_item_id",),
    consumes=frozenset({"prices"}),
    columns=(
        *product_identity(),
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
    rows=list_children("prices", "stockItemId", "@stock_item_id"),
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


STREAM = Stream(
    name="products",
    api="order_api",
    description="Products per stock item, with prices",
    endpoint="GET /products",
    tables=(PRODUCTS, PRODUCT_PRICES),
    key_field="stockItemId",
    plan=read_modified_since("modified", OrderApi.iter_products, cursor_field=None),
    read_all=OrderApi.iter_products,
)
