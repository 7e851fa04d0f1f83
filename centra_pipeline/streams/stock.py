"""Stock: `GET /stock` of the Order API, one row per stock item.

Read incrementally with the documented `stock_modified` filter; like products, the cursor is
Centra's clock (`Date`) when the read started.
"""

from __future__ import annotations

from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.streams.model import (
    BIGINT,
    BOOL,
    TEXT,
    Stream,
    Table,
    c,
)
from centra_pipeline.streams.products import product_identity
from centra_pipeline.sync.plan import read_modified_since

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
        *product_identity(),
        c("size", TEXT, "Size"),
        c("active", BOOL, "Active"),
        c("physicalStock", BIGINT, "Physical stock", required=True),
        c("allocatedStock", BIGINT, "Allocated stock"),
        c("availableStock", BIGINT, "Available stock"),
    ),
)


STREAM = Stream(
    name="stock",
    api="order_api",
    description="Stock per stock item",
    endpoint="GET /stock",
    tables=(STOCK,),
    key_field="stockItemId",
    plan=read_modified_since("stock_modified", OrderApi.iter_stock, cursor_field=None),
    read_all=OrderApi.iter_stock,
)
