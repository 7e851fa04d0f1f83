"""The synthetic catalogue: markets, pricelists, products, variants, sizes, prices and stock.

The catalogue is small (products x variants x sizes, a few thousand rows at most), so unlike
orders it is materialised as plain objects. Two views are rendered from the same state, so they
always agree: Order API product/stock rows (one per stock item) and Shop API product objects
(one per variant, `silkProduct` = Order API productId, `silkVariant` = variantId, items keyed
by the Order API stockItemId).

Prices have two layers: the *base* price, fixed at generation and used by order lines (an
order keeps the price it was placed at), and the *current* price, which ticks move and which
the product endpoints show.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .clock import StoreClock


@dataclass(frozen=True)
class Market:
    id: int
    name: str
    currency: str
    pricelist_id: int
    pricelist_name: str
    countries: tuple[str, ...]
    weight: float  # share of customers
    fx_from_eur: float  # catalogue price conversion
    base_rate: float  # store base currency (SEK) per unit, as returns show it
    shipping_cents: int
    free_shipping_from_cents: int


BASE_CURRENCY = "SEK"
MARKETS: tuple[Market, ...] = (
    Market(1, "Sweden", "SEK", 21, "SEK Sweden", ("SE",), 0.30, 11.0, 1.0, 4900, 100000),
    Market(
        2,
        "Europe",
        "EUR",
        22,
        "EUR Europe",
        ("DE", "FR", "NL", "FI", "IT", "ES"),
        0.30,
        1.0,
        11.0834,
        595,
        10000,
    ),
    Market(
        3,
        "United Kingdom",
        "GBP",
        23,
        "GBP United Kingdom",
        ("GB",),
        0.12,
        0.85,
        13.0127,
        495,
        8500,
    ),
    Market(
        4, "United States", "USD", 24, "USD United States", ("US",), 0.15, 1.1, 10.0791, 795, 12000
    ),
    Market(5, "Denmark", "DKK", 25, "DKK Denmark", ("DK",), 0.07, 7.5, 1.4862, 3900, 75000),
    Market(6, "Norway", "NOK", 26, "NOK Norway", ("NO",), 0.06, 11.5, 0.9534, 5900, 110000),
)
# VAT in percent by delivery country; US prices carry no VAT.
VAT: dict[str, float] = {
    "SE": 25, "DE": 19, "FR": 20, "NL": 21, "FI": 25.5, "IT": 22, "ES": 21,
    "GB": 20, "US": 0, "DK": 25, "NO": 25,
}  # fmt: skip
COUNTRY_NAMES: dict[str, str] = {
    "PT": "Portugal", "CN": "China", "IT": "Italy", "TR": "Turkey", "SE": "Sweden",
    "BD": "Bangladesh", "LT": "Lithuania",
}  # fmt: skip
STORE_TAX_PERCENT = 25  # the store's default tax class, as tap-centra sees `taxPercent`


@dataclass(frozen=True)
class Category:
    id: int
    parent: int | None
    name: str
    uri: str
    sort_order: int

    def path_name(self, by_id: dict[int, Category]) -> str:
        if self.parent is None:
            return self.name
        return f"{by_id[self.parent].name} / {self.name}"


CATEGORIES: tuple[Category, ...] = (
    Category(11, None, "Women", "women", 1),
    Category(12, 11, "Jackets", "women/jackets", 1),
    Category(13, 11, "Dresses", "women/dresses", 2),
    Category(14, None, "Men", "men", 2),
    Category(15, 14, "Shirts", "men/shirts", 1),
    Category(16, 14, "Outerwear", "men/outerwear", 2),
    Category(17, None, "Shoes", "shoes", 3),
    Category(18, None, "Accessories", "accessories", 4),
    Category(19, None, "New Arrivals", "new-arrivals", 5),
    Category(20, None, "Gift Sets", "gift-sets", 6),
)
NEW_ARRIVALS = 19
GIFT_SETS = 20

BRANDS: tuple[tuple[int, str, str], ...] = (
    (1, "Nordvik", "nordvik"),
    (2, "Lumen Atelier", "lumen-atelier"),
    (3, "Fjällgrund", "fjallgrund"),
    (4, "Halden & Co", "halden-co"),
)
COLLECTIONS: tuple[tuple[int, str], ...] = ((1, "SS25"), (2, "AW25"), (3, "SS26"))


@dataclass(frozen=True)
class _Kind:
    name: str
    nouns: tuple[str, ...]
    sizes: tuple[str, ...]
    categories: tuple[int, ...]
    weight: tuple[float, float]
    harm_code: str
    harm_description: str
    folder: str
    price_eur: tuple[int, int]


_KINDS: tuple[_Kind, ...] = (
    _Kind("apparel", ("Jacket", "Parka", "Dress", "Shirt", "Sweater", "Blouse", "Coat"),
          ("XS", "S", "M", "L", "XL", "XXL"), (12, 13, 15, 16), (0.2, 1.6), "6202930000",
          "Outerwear, synthetic fibres", "Apparel / Main line", (39, 349)),
    _Kind("shoes", ("Sneaker", "Boot", "Loafer"), ("38", "39", "40", "41", "42", "43"), (17,),
          (0.6, 1.4), "6403990000", "Footwear, leather uppers", "Footwear", (89, 259)),
    _Kind("accessories", ("Scarf", "Cap", "Tote Bag", "Belt", "Beanie"), ("One Size",), (18,),
          (0.05, 0.6), "4202220000", "Bags and small accessories", "Accessories", (19, 129)),
)  # fmt: skip
_ADJECTIVES = ("Classic", "Relaxed", "Merino", "Linen", "Alpine", "Harbor", "Coastal", "Urban",
               "Soft", "Heritage", "Canvas", "Storm")  # fmt: skip
_COLORS = (("Black", "BLK"), ("White", "WHT"), ("Navy", "NVY"), ("Sand", "SND"), ("Olive", "OLV"),
           ("Burgundy", "BRG"), ("Grey Melange", "GRM"), ("Off White", "OWH"))  # fmt: skip
_CAMPAIGN = ("40", "Mid Season Sale")
# Id ranges only make ids of different kinds easy to tell apart when reading payloads.
VARIANT_ID_BASE = 10_000
STOCK_ITEM_ID_BASE = 100_000
SHOP_ID_BASE = 500_000
IMAGE_BASE = "https://media.centra-emulator.example/client/images"


@dataclass
class Item:
    index: int
    stock_item_id: int
    variant: Variant
    size: str
    size_sku: str
    ean: str
    upc: str


@dataclass
class Variant:
    index: int
    variant_id: int
    shop_id: int
    product: Product
    name: str
    variant_sku: str
    uri: str
    items: list[Item] = field(default_factory=list)

    def images(self) -> list[str]:
        return [f"{IMAGE_BASE}/{self.variant_id}_{k}.jpg" for k in (1, 2)]


@dataclass
class Product:
    index: int
    product_id: int
    sku: str
    name: str
    kind: _Kind
    brand: tuple[int, str, str]
    collection: tuple[int, str]
    categories: tuple[int, ...]
    weight: float
    country_of_origin: str
    active: bool
    created_epoch: int
    campaign_pct: int  # 0 = no campaign
    base_eur_cents: int
    is_bundle: bool = False
    bundle_items: tuple[int, ...] = ()
    variants: list[Variant] = field(default_factory=list)

    @property
    def internal_name(self) -> str:
        return self.name.lower()


def money(cents: int) -> int | float:
    """Integer cents -> a JSON number: whole amounts print as ints (25, not 25.0) like the docs."""
    return cents // 100 if cents % 100 == 0 else cents / 100


def money_str(cents: int) -> str:
    """ "329.00" (the Order API product price string)."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def money_label(cents: int, currency: str) -> str:
    """ "175.00 USD" (Centra's formatted money strings)."""
    return f"{money_str(cents)} {currency}"


def _nice_price(eur_cents: int, market: Market) -> int:
    """Convert a EUR price into a retail-looking price in the market's currency (cents)."""
    amount = eur_cents * market.fx_from_eur / 100
    if market.currency in ("SEK", "DKK", "NOK"):
        return (int(amount / 10) * 10 + 9) * 100  # 299, 1099...
    return int(amount) * 100 + 95  # 59.95


def _slug(text: str) -> str:
    return text.lower().replace(" ", "-")


def _ean13(body12: int) -> str:
    digits = f"{body12:012d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return digits + str((10 - total % 10) % 10)


class Catalog:
    """Products and their mutable price/stock state."""

    def __init__(self, n_products: int, seed: int, history_start: int, now: int) -> None:
        rng = random.Random(f"centra-emulator-catalog-{seed}")
        self.markets = MARKETS
        self.market_by_id = {m.id: m for m in MARKETS}
        self.categories = CATEGORIES
        self.category_by_id = {c.id: c for c in CATEGORIES}
        self.products: list[Product] = []
        self.variants: list[Variant] = []
        self.items: list[Item] = []

        n_bundles = max(1, n_products // 20) if n_products >= 4 else 0
        for p in range(n_products):
            is_bundle = p >= n_products - n_bundles
            kind = _KINDS[2] if is_bundle else _KINDS[rng.choices((0, 1, 2), (6, 2, 2))[0]]
            brand = BRANDS[rng.randrange(len(BRANDS))]
            name = (
                f"{rng.choice(_ADJECTIVES)} Gift Set"
                if is_bundle
                else f"{rng.choice(_ADJECTIVES)} {rng.choice(kind.nouns)}"
            )
            categories = (GIFT_SETS,) if is_bundle else (rng.choice(kind.categories),)
            if not is_bundle and rng.random() < 0.2:
                categories += (NEW_ARRIVALS,)
            product = Product(
                index=p,
                product_id=p + 1,
                sku=f"{brand[2][:2].upper()}{1000 + p}",
                name=name,
                kind=kind,
                brand=brand,
                collection=COLLECTIONS[rng.randrange(len(COLLECTIONS))],
                categories=categories,
                weight=round(rng.uniform(*kind.weight), 2),
                country_of_origin=rng.choice(tuple(COUNTRY_NAMES)),
                active=is_bundle or rng.random() > 0.05,
                # Created before the order history starts, so no order predates its product.
                created_epoch=history_start - rng.randrange(86400, 400 * 86400),
                campaign_pct=0 if is_bundle or rng.random() > 0.15 else rng.choice((20, 30, 50)),
                base_eur_cents=rng.randrange(*kind.price_eur) * 100,
                is_bundle=is_bundle,
            )
            self.products.append(product)
            n_variants = 1 if is_bundle else rng.randint(1, 3)
            colors = rng.sample(_COLORS, n_variants)
            for color, code in colors:
                v_index = len(self.variants)
                variant = Variant(
                    index=v_index,
                    variant_id=VARIANT_ID_BASE + v_index + 1,
                    shop_id=SHOP_ID_BASE + v_index + 1,
                    product=product,
                    name=color,
                    variant_sku=code,
                    uri=_slug(f"{product.name} {color} {v_index + 1}"),
                )
                product.variants.append(variant)
                self.variants.append(variant)
                sizes = kind.sizes
                if len(sizes) > 1:
                    count = rng.randint(1, len(sizes))
                    start = rng.randint(0, len(sizes) - count)
                    sizes = sizes[start : start + count]
                for size in sizes:
                    i_index = len(self.items)
                    item = Item(
                        index=i_index,
                        stock_item_id=STOCK_ITEM_ID_BASE + i_index + 1,
                        variant=variant,
                        size=size,
                        size_sku="OS" if size == "One Size" else size,
                        ean=_ean13(735_000_000_000 + i_index + 1),
                        upc=f"{880_000_000_000 + i_index + 1:012d}"[:12],
                    )
                    variant.items.append(item)
                    self.items.append(item)

        regular = [it.index for it in self.items if not it.variant.product.is_bundle]
        self.regular_items: list[int] = regular
        for product in self.products:
            if product.is_bundle and len(regular) >= 2:
                picks = rng.sample(regular, 2)
                product.bundle_items = tuple(sorted(picks))
                parts = sum(self.products_of(i).base_eur_cents for i in picks)
                product.base_eur_cents = max(1900, int(parts * 0.85) // 100 * 100)
        self.bundle_items: list[int] = [
            p.variants[0].items[0].index for p in self.products if p.is_bundle and p.bundle_items
        ]

        # price[product][market index] in cents: base (what orders were placed at) and current.
        self.base_price: list[list[int]] = [
            [_nice_price(p.base_eur_cents, m) for m in MARKETS] for p in self.products
        ]
        self.price: list[list[int]] = [list(row) for row in self.base_price]
        self.physical: list[int] = []
        self.allocated: list[int] = []
        for _ in self.items:
            physical = 0 if rng.random() < 0.08 else rng.randint(1, 250)
            self.physical.append(physical)
            self.allocated.append(min(physical, rng.randint(0, 12)))
        self.product_modified: list[int] = [
            min(now, p.created_epoch + rng.randrange(0, 500 * 86400)) for p in self.products
        ]
        self.stock_modified: list[int] = [
            max(self.product_modified[it.variant.product.index], now - rng.randrange(0, 60 * 86400))
            for it in self.items
        ]
        self.product_rev: list[int] = [0] * len(self.products)

    # lookups ----------------------------------------------------------------------------
    def products_of(self, item_index: int) -> Product:
        return self.items[item_index].variant.product

    def campaign_price(self, cents: int, pct: int) -> int:
        return cents - cents * pct // 100

    # mutation ---------------------------------------------------------------------------
    def touch_product(self, product_index: int, epoch: int, rng: random.Random) -> list[int]:
        """A product update: new prices and new stock levels. Returns the stock item ids touched."""
        product = self.products[product_index]
        self.product_rev[product_index] += 1
        factor = rng.choice((0.9, 0.95, 1.05, 1.1))
        for k, market in enumerate(MARKETS):
            moved = _nice_price(int(product.base_eur_cents * factor), market)
            if moved == self.price[product_index][k]:
                moved += 1000 if market.currency in ("SEK", "DKK", "NOK") else 100
            self.price[product_index][k] = moved
        touched: list[int] = []
        for variant in product.variants:
            for item in variant.items:
                old = self.physical[item.index]
                new = rng.randint(0, 250)
                if new == old:
                    new = old + 1
                self.physical[item.index] = new
                self.allocated[item.index] = min(new, self.allocated[item.index])
                self.stock_modified[item.index] = epoch
                touched.append(item.stock_item_id)
        self.product_modified[product_index] = epoch
        return touched

    # Order API rows -----------------------------------------------------------------------
    def _identity(self, item: Item) -> dict[str, object]:
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

    def product_row(
        self, item: Item, clock: StoreClock, *, prices_as_numbers: bool = False
    ) -> dict[str, object]:
        """One GET /products row: the docs example's fields, plus createdAt and taxPercent
        (seen by tap-centra).

        `prices[].price` is a string ("329.00") as in the docs example, or with
        `prices_as_numbers` a JSON number (329, 59.95) like every other amount; campaign
        prices are JSON numbers either way, as in the docs example.
        """
        product = item.variant.product
        row = self._identity(item)
        kind = product.kind
        prices = []
        for k, market in enumerate(MARKETS):
            cents = self.price[product.index][k]
            campaigns = []
            if product.campaign_pct:
                campaigns.append(
                    {
                        "id": _CAMPAIGN[0],
                        "campaign": _CAMPAIGN[1],
                        "price": money(self.campaign_price(cents, product.campaign_pct)),
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
        row.update(
            {
                "weight": product.weight,
                "weightUnit": "kg",
                "countryOfOrigin": product.country_of_origin,
                "harmCode": kind.harm_code,
                "harmDescription": kind.harm_description,
                "active": 1 if product.active else 0,
                "folder": kind.folder,
                "name": product.name,
                "description": f"{product.name} by {product.brand[1]}.",
                "shortDescription": product.name,
                "comment": "",
                "store": "Retail",
                "categories": [
                    self.category_by_id[c].path_name(self.category_by_id)
                    for c in product.categories
                ],
                "images": item.variant.images(),
                "prices": prices,
                "createdAt": clock.fmt_epoch(product.created_epoch),
                "taxPercent": STORE_TAX_PERCENT,
            }
        )
        return row

    def stock_row(self, item: Item, *, include_physical: bool = True) -> dict[str, object]:
        """One GET /stock row (fields exactly as the docs' /stock example)."""
        product = item.variant.product
        row = self._identity(item)
        physical = self.physical[item.index]
        allocated = self.allocated[item.index]
        row.update(
            {
                "upc": item.upc,
                "weight": product.weight,
                "weightUnit": "kg",
                "countryOfOrigin": product.country_of_origin,
                "harmCode": product.kind.harm_code,
                "harmDescription": product.kind.harm_description,
                "active": 1 if product.active else 0,
                "physicalStock": physical,
                "allocatedStock": allocated,
                "availableStock": physical - allocated,
            }
        )
        if not include_physical:
            del row["physicalStock"]
        return row

    def available(self, item: Item) -> int:
        return self.physical[item.index] - self.allocated[item.index]

    # Shop API objects ----------------------------------------------------------------------
    def shop_product(self, variant: Variant) -> dict[str, object]:
        """The Shop API product object for one variant (Shop API reference; docs/emulator.md)."""
        product = variant.product
        kind = product.kind
        new_product = NEW_ARRIVALS in product.categories
        items: dict[str, object] = {}
        total_available = 0
        for item in variant.items:
            available = self.available(item)
            total_available += available
            items[str(item.stock_item_id)] = {
                "item": str(item.stock_item_id),
                "name": item.size,
                "sku": f"{product.sku}{variant.variant_sku}{item.size_sku}",
                "ean": item.ean,
                "stockByMarket": {str(m.id): available for m in MARKETS},
            }
        markets: dict[str, object] = {}
        for k, market in enumerate(MARKETS):
            before = self.price[product.index][k]
            after = self.campaign_price(before, product.campaign_pct)
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
        categories = {
            str(c): {
                "category": str(c),
                "name": self.category_by_id[c].name,
                "uri": self.category_by_id[c].uri,
                "sortOrder": str(self.category_by_id[c].sort_order),
            }
            for c in product.categories
        }
        media = [
            {
                "type": "image",
                "sources": {
                    "standard": {
                        "url": url,
                        "width": 1200,
                        "height": 1600,
                        "mimeType": "image/jpeg",
                    },
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
        canonical = self.category_by_id[product.categories[0]]
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
            "categories": categories,
            "canonicalCategory": canonical.id,
            "media": media,
            "localized": {},
            "items": items,
            "markets": markets,
        }

    def shop_categories(self) -> dict[str, object]:
        """GET /categories: top-level categories keyed by id, children nested (docs shape)."""
        return {str(c.id): self.shop_category(c.id) for c in CATEGORIES if c.parent is None}

    def shop_category(self, category_id: int) -> dict[str, object]:
        cat = self.category_by_id[category_id]
        children = [c for c in CATEGORIES if c.parent == cat.id]
        products = [
            str(v.shop_id)
            for v in self.variants
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
            "categories": {str(c.id): self.shop_category(c.id) for c in children},
            "products": products,
        }

    def shop_brands(self) -> dict[str, object]:
        return {str(b[0]): self.shop_brand(b[0]) for b in BRANDS}

    def shop_brand(self, brand_id: int) -> dict[str, object]:
        brand = next(b for b in BRANDS if b[0] == brand_id)
        return {
            "name": brand[1],
            "brand": str(brand[0]),
            "uri": brand[2],
            "metaKeywords": "",
            "metaDescription": "",
            "metaTitle": "",
        }
