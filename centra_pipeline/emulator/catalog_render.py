"""The catalogue as the two APIs show it, rendered from one `Catalog` so the views always agree.

- Order API: one GET /products row and one GET /stock row per stock item.
- Shop API: one product object per variant (`silkProduct` = Order API productId,
  `silkVariant` = variantId, items keyed by the Order API stockItemId), plus categories and
  brands.
"""

from __future__ import annotations

from .assortment import BRANDS, CAMPAIGN, CATEGORIES, COUNTRY_NAMES, NEW_ARRIVALS
from .catalog import Catalog
from .clock import StoreClock
from .markets import MARKETS, STORE_TAX_PERCENT
from .money import money, money_label, money_str, percent_off
from .products import Item, Product, Variant


# Order API rows -----------------------------------------------------------------------------
def _identity(item: Item) -> dict[str, object]:
    """The leading fields of both row kinds: which product, variant and size this is."""
    variant = item.variant
    product = variant.product
    return {
        "sku": product.sku,
        "productId": product.product_id,
        "variantSku": variant.variant_sku,
        "variantId": variant.variant_id,
        "sizeSku": item.size_sku,
        "brand": product.brand[1],
        "collection": product.collection[1],
        "product": product.internal_name,
        "variant": variant.name,
        "size": item.size,
        "stockItemId": item.stock_item_id,
        "ean": item.ean,
    }


def _product_facts(product: Product) -> dict[str, object]:
    """Weight, origin, customs code and the active flag: both row kinds carry these."""
    return {
        "weight": product.weight,
        "weightUnit": "kg",
        "countryOfOrigin": product.country_of_origin,
        "harmCode": product.kind.harm_code,
        "harmDescription": product.kind.harm_description,
        "active": 1 if product.active else 0,
    }


def product_row(
    catalog: Catalog, item: Item, clock: StoreClock, *, prices_as_numbers: bool = False
) -> dict[str, object]:
    """One GET /products row: the docs example's fields, plus createdAt and taxPercent
    (seen by tap-centra).

    `prices[].price` is a string ("329.00") as in the docs example, or with
    `prices_as_numbers` a JSON number (329, 59.95) like every other amount; campaign
    prices are JSON numbers either way, as in the docs example.
    """
    product = item.variant.product
    kind = product.kind
    by_id = catalog.category_by_id
    return {
        **_identity(item),
        **_product_facts(product),
        "folder": kind.folder,
        "name": product.name,
        "description": f"{product.name} by {product.brand[1]}.",
        "shortDescription": product.name,
        "comment": "",
        "store": "Retail",
        "categories": [by_id[c].path_name(by_id) for c in product.categories],
        "images": item.variant.images(),
        "prices": _row_prices(catalog, product, prices_as_numbers),
        "createdAt": clock.fmt_epoch(product.created_epoch),
        "taxPercent": STORE_TAX_PERCENT,
    }


def _row_prices(
    catalog: Catalog, product: Product, prices_as_numbers: bool
) -> list[dict[str, object]]:
    prices = []
    for k, market in enumerate(MARKETS):
        cents = catalog.price[product.index][k]
        campaigns = []
        if product.campaign_pct:
            campaigns.append(
                {
                    "id": CAMPAIGN[0],
                    "campaign": CAMPAIGN[1],
                    "price": money(percent_off(cents, product.campaign_pct)),
                }
            )
        prices.append(
            {
                "id": str(market.pricelist_id),
                "price": money(cents) if prices_as_numbers else money_str(cents),
                "pricelist": market.pricelist_name,
                "currency": market.currency,
                "campaigns": campaigns,
            }
        )
    return prices


def stock_row(catalog: Catalog, item: Item, *, include_physical: bool = True) -> dict[str, object]:
    """One GET /stock row (fields exactly as the docs' /stock example)."""
    physical = catalog.physical[item.index]
    allocated = catalog.allocated[item.index]
    row = {
        **_identity(item),
        "upc": item.upc,
        **_product_facts(item.variant.product),
        "physicalStock": physical,
        "allocatedStock": allocated,
        "availableStock": physical - allocated,
    }
    if not include_physical:
        del row["physicalStock"]
    return row


# Shop API objects ---------------------------------------------------------------------------
def shop_product(catalog: Catalog, variant: Variant) -> dict[str, object]:
    """The Shop API product object for one variant (Shop API reference; docs/emulator.md)."""
    product = variant.product
    kind = product.kind
    canonical = catalog.category_by_id[product.categories[0]]
    items, total_available = _shop_items(catalog, variant)
    return {
        "product": str(variant.shop_id),
        "productSku": product.sku,
        "sku": f"{product.sku}{variant.variant_sku}",
        "name": product.name,
        "uri": variant.uri,
        "canonicalUri": f"{canonical.uri}/{variant.uri}",
        "silkProduct": str(product.product_id),
        "silkVariant": str(variant.variant_id),
        "silkProductName": product.name,
        "silkVariantName": variant.name,
        "variantName": variant.name,
        "brand": str(product.brand[0]),
        "brandName": product.brand[1],
        "collection": str(product.collection[0]),
        "collectionName": product.collection[1],
        "description": f"{product.name} by {product.brand[1]}.",
        "excerpt": product.name,
        "metaTitle": f"{product.name} - {product.brand[1]}",
        "metaDescription": "",
        "metaKeywords": "",
        "weight": product.weight,
        "weightUnit": "kg",
        "countryOfOrigin": product.country_of_origin,
        "countryOfOriginName": COUNTRY_NAMES[product.country_of_origin],
        "harmCode": kind.harm_code,
        "harmCodeDescription": kind.harm_description,
        "stockUnit": "",
        "measurementChart": "0",
        "measurementChartRows": {},
        "categories": _shop_product_categories(catalog, product),
        "canonicalCategory": canonical.id,
        "media": _shop_media(variant),
        "localized": {},
        "items": items,
        "markets": _shop_markets(catalog, product, total_available),
    }


def _shop_items(catalog: Catalog, variant: Variant) -> tuple[dict[str, object], int]:
    """The variant's items keyed by stock item id, and their total available stock."""
    product = variant.product
    items: dict[str, object] = {}
    total_available = 0
    for item in variant.items:
        available = catalog.available(item)
        total_available += available
        items[str(item.stock_item_id)] = {
            "item": str(item.stock_item_id),
            "name": item.size,
            "sku": f"{product.sku}{variant.variant_sku}{item.size_sku}",
            "ean": item.ean,
            "stockByMarket": {str(m.id): available for m in MARKETS},
        }
    return items, total_available


def _shop_markets(catalog: Catalog, product: Product, total_available: int) -> dict[str, object]:
    new_product = NEW_ARRIVALS in product.categories
    markets: dict[str, object] = {}
    for k, market in enumerate(MARKETS):
        before = catalog.price[product.index][k]
        after = percent_off(before, product.campaign_pct)
        reduction = before - after
        markets[str(market.id)] = {
            "stockOfAllItems": total_available,
            "pricesByPricelist": {
                str(market.pricelist_id): {
                    "price": money_label(after, market.currency),
                    "priceAsNumber": money(after),
                    "priceBeforeDiscount": money_label(before, market.currency),
                    "priceBeforeDiscountAsNumber": money(before),
                    "discountPercent": product.campaign_pct,
                    "priceReduction": money_label(reduction, market.currency),
                    "priceReductionAsNumber": money(reduction),
                    "showAsOnSale": product.campaign_pct > 0,
                    "newProduct": new_product,
                }
            },
        }
    return markets


def _shop_product_categories(catalog: Catalog, product: Product) -> dict[str, object]:
    by_id = catalog.category_by_id
    return {
        str(c): {
            "category": str(c),
            "name": by_id[c].name,
            "uri": by_id[c].uri,
            "sortOrder": str(by_id[c].sort_order),
        }
        for c in product.categories
    }


def _shop_media(variant: Variant) -> list[dict[str, object]]:
    return [
        {
            "type": "image",
            "sources": {
                "standard": {"url": url, "width": 1200, "height": 1600, "mimeType": "image/jpeg"},
                "thumb": {
                    "url": url.replace(".jpg", "_thumb.jpg"),
                    "width": 300,
                    "height": 400,
                    "mimeType": "image/jpeg",
                },
            },
        }
        for url in variant.images()
    ]


def shop_categories(catalog: Catalog) -> dict[str, object]:
    """GET /categories: top-level categories keyed by id, children nested (docs shape)."""
    return {str(c.id): shop_category(catalog, c.id) for c in CATEGORIES if c.parent is None}


def shop_category(catalog: Catalog, category_id: int) -> dict[str, object]:
    cat = catalog.category_by_id[category_id]
    children = [c for c in CATEGORIES if c.parent == cat.id]
    products = [
        str(v.shop_id)
        for v in catalog.variants
        if v.product.active and cat.id in v.product.categories
    ]
    return {
        "category": str(cat.id),
        "name": cat.name,
        "uri": cat.uri.rsplit("/", 1)[-1],
        "completeUri": cat.uri,
        "sortOrder": str(cat.sort_order),
        "sortString": f"s-{cat.sort_order}",
        "metaTitle": "",
        "metaDescription": "",
        "metaKeywords": "",
        "localized": {"sv": {"name": cat.name, "metaTitle": ""}},
        "categories": {str(c.id): shop_category(catalog, c.id) for c in children},
        "products": products,
    }


def shop_brands() -> dict[str, object]:
    return {str(b[0]): shop_brand(b[0]) for b in BRANDS}


def shop_brand(brand_id: int) -> dict[str, object]:
    brand = next(b for b in BRANDS if b[0] == brand_id)
    return {
        "name": brand[1],
        "brand": str(brand[0]),
        "uri": brand[2],
        "metaKeywords": "",
        "metaDescription": "",
        "metaTitle": "",
    }
