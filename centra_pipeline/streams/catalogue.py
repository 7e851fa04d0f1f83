"""The storefront catalogue: `POST /products/filter` of the Shop API, with items, markets,
prices, media and categories.

The Shop API has no modified filter, and a full read costs the same whether one product
changed or none. So the catalogue is read in full on the first run and then once every
CENTRA_CATALOGUE_FULL_READ_HOURS (default 24; 0 = every run), which also finds products that
left the catalogue (marked missing). In between, a run asks the Order API which products
changed since the cursor (`GET /products?modified=`, `GET /stock?stock_modified=`, with an
overlap) and re-reads only those through `POST /products/filter` with `silkProduct`. A
catalogue-only change that Centra reflects in neither Order API filter (if Centra has any)
waits for the next full read. Either way only records whose content hash differs from the
warehouse are landed. A full read is also the catalogue's reconciliation.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from centra_pipeline.centra.http import prefetch
from centra_pipeline.centra.order_api import Page
from centra_pipeline.centra.quirks import shift_local
from centra_pipeline.streams.model import (
    BIGINT,
    BOOL,
    DOUBLE,
    JSON,
    MONEY,
    PERCENT,
    TEXT,
    Row,
    Stream,
    Table,
    c,
    list_children,
    map_children,
)
from centra_pipeline.sync.plan import ExtractOptions, ReadContext, ReadPlan

log = logging.getLogger(__name__)

SILK_PRODUCTS_PER_FILTER = 50  # product ids per POST /products/filter of a targeted read


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
    rows=map_children("items", "@item_key", "@product"),
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
    rows=map_children("markets", "@market_id", "@product"),
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
    rows=list_children("media", "product", "@product", "@position"),
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
    rows=map_children("categories", "@category_key", "@product"),
    columns=(
        c("@product", BIGINT, "Shop API product id", name="product", required=True),
        c("@category_key", BIGINT, "Category id", name="category", required=True),
        c("name", JSON, "Category name (Centra sends the path as a list or a string)"),
        c("uri", TEXT, "Category URI"),
        c("sortOrder", BIGINT, "Sort order of the product in the category"),
    ),
    ignore_extra=frozenset({"category"}),  # repeats the map key
)


def plan(ctx: ReadContext, options: ExtractOptions, cursor: str | None) -> ReadPlan:
    if options.mode == "backfill":
        raise ValueError("the Shop API catalogue has no date filter to backfill by")
    index = catalogue_index(ctx)
    known: dict[int, str] | None = {p: digest for p, (digest, _) in index.items()}
    # Land only what differs from the warehouse, except with --full-refresh, and while a
    # landed load waits to be merged (a run died in between): compared with the warehouse
    # alone, a product changed back since would not be landed, and the pending, older
    # version would win the merge.
    if options.mode == "full_refresh" or ctx.warehouse.pending_loads(ctx.lake, "catalogue"):
        known = None
    if options.incremental(cursor) and not _full_read_due(ctx, options):
        assert cursor is not None
        return _changed_products(ctx, cursor, options, index, known)
    window: dict[str, Any] = {"full_read": True}
    if options.mode == "reconcile":
        window["reconcile"] = "full"
    assert ctx.shop_api is not None
    return ReadPlan(
        window,
        prefetch(ctx.shop_api.iter_products(page_size=options.page_size)),
        known_hashes=known,
        expected_keys=lambda: sorted(index),
    )


def catalogue_index(ctx: ReadContext) -> dict[int, tuple[str, Any]]:
    """Catalogue product id → (`_hash`, silkProduct) of the products present."""
    if not ctx.warehouse.has_table("shop_products"):
        return {}
    rows = ctx.warehouse.query(
        "SELECT product, _hash, silk_product FROM main.shop_products WHERE _missing_since IS NULL"
    )
    return {int(product): (digest, silk) for product, digest, silk in rows}


def _full_read_due(ctx: ReadContext, options: ExtractOptions) -> bool:
    """Whether this run reads the catalogue in full: when a targeted read is impossible
    (no Order API client), when full reads are asked for every run, or when the last full
    read committed to the warehouse started at least the interval ago."""
    if ctx.order_api is None:
        log.info("catalogue: no Order API client to ask what changed, so a full read")
        return True
    if options.catalogue_full_read_every <= timedelta(0):
        return True
    last = ctx.warehouse.last_full_catalogue_read()
    return last is None or datetime.now(UTC) - last >= options.catalogue_full_read_every


def _changed_products(
    ctx: ReadContext,
    cursor: str,
    options: ExtractOptions,
    index: dict[int, tuple[str, Any]],
    known: dict[int, str] | None,
) -> ReadPlan:
    """Re-read the catalogue products of the products the Order API reports changed."""
    api, shop = ctx.order_api, ctx.shop_api
    assert api is not None and shop is not None
    since = shift_local(cursor, -options.overlap)
    window: dict[str, Any] = {"changed_since": since}
    changed: set[str] = set()

    def pages() -> Iterator[Page]:
        # The Order API pages come first, emptied: their `Date` is the cursor this load
        # proves (Centra's clock before anything was read), and nothing of them is landed.
        for page in itertools.chain(
            api.iter_products(modified=since), api.iter_stock(stock_modified=since)
        ):
            ids = (r.obj.get("productId") for r in page.records)
            changed.update(str(i) for i in ids if i is not None)
            yield replace(page, records=[])
        window["products_changed"] = len(changed)
        ordered = sorted(changed, key=lambda p: (len(p), p))
        for start in range(0, len(ordered), SILK_PRODUCTS_PER_FILTER):
            chunk = ordered[start : start + SILK_PRODUCTS_PER_FILTER]
            yield from shop.iter_products(silk_products=chunk, page_size=options.page_size)

    def expected() -> list[int]:
        # The catalogue products of the changed products: missing if not returned now.
        return sorted(p for p, (_, silk) in index.items() if str(silk) in changed)

    return ReadPlan(window, prefetch(pages()), known_hashes=known, expected_keys=expected)


STREAM = Stream(
    name="catalogue",
    api="shop_api",
    description="Storefront catalogue",
    endpoint="POST /products/filter",
    tables=(
        SHOP_PRODUCTS,
        SHOP_PRODUCT_ITEMS,
        SHOP_PRODUCT_MARKETS,
        SHOP_PRODUCT_PRICES,
        SHOP_PRODUCT_MEDIA,
        SHOP_PRODUCT_CATEGORIES,
    ),
    key_field="product",
    plan=plan,
    backfills=False,
)
