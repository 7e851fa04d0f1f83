"""The synthetic catalogue and its mutable state: products drawn from the assortment, their
base and current prices per market, and stock levels per item.

The catalogue is small (products x variants x sizes, a few thousand rows at most), so unlike
orders it is materialised as plain objects. Prices have two layers: the *base* price, fixed at
generation and used by order lines (an order keeps the price it was placed at), and the
*current* price, which ticks move and which the product endpoints show. `catalog_render`
turns this state into the Order API and Shop API views.
"""

from __future__ import annotations

import random

import numpy as np

from .assortment import (
    ADJECTIVES,
    BRANDS,
    CATEGORIES,
    COLLECTIONS,
    COLORS,
    COUNTRY_NAMES,
    GIFT_SETS,
    KINDS,
    NEW_ARRIVALS,
)
from .markets import MARKETS, Market
from .products import SHOP_ID_BASE, STOCK_ITEM_ID_BASE, VARIANT_ID_BASE, Item, Product, Variant

_DAY = 86400


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
    """Products and their mutable price/stock state.

    Generation draws from one seeded RNG in a fixed order (products with their variants and
    items, bundles, stock, modification times); reordering the steps changes the store.
    """

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
            product = _draw_product(p, p >= n_products - n_bundles, rng, history_start)
            self.products.append(product)
            self._add_variants(product, rng)
        self.regular_items: list[int] = [
            it.index for it in self.items if not it.variant.product.is_bundle
        ]
        self._fill_bundles(rng)
        self.bundle_items: list[int] = [
            p.variants[0].items[0].index for p in self.products if p.is_bundle and p.bundle_items
        ]
        # The same as arrays, for the order line draws (made once: a return renders its
        # order's lines one order at a time, and converting per call cost ~2 ms a return).
        self.regular_item_array = np.asarray(self.regular_items, dtype=np.int64)
        self.bundle_item_array = np.asarray(self.bundle_items, dtype=np.int64)
        # price[product][market index] in cents: base (what orders were placed at) and current.
        self.base_price: list[list[int]] = [
            [_nice_price(p.base_eur_cents, m) for m in MARKETS] for p in self.products
        ]
        self.price: list[list[int]] = [list(row) for row in self.base_price]
        self._draw_stock(rng)
        self._draw_modified(rng, now)
        self.product_rev: list[int] = [0] * len(self.products)

    # generation ---------------------------------------------------------------------------
    def _add_variants(self, product: Product, rng: random.Random) -> None:
        n_variants = 1 if product.is_bundle else rng.randint(1, 3)
        for color, code in rng.sample(COLORS, n_variants):
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
            self._add_items(variant, rng)

    def _add_items(self, variant: Variant, rng: random.Random) -> None:
        """One item per size, from a contiguous run of the kind's sizes."""
        sizes = variant.product.kind.sizes
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

    def _fill_bundles(self, rng: random.Random) -> None:
        """Each bundle holds two regular items and costs 85% of them, rounded down."""
        regular = self.regular_items
        for product in self.products:
            if product.is_bundle and len(regular) >= 2:
                picks = rng.sample(regular, 2)
                product.bundle_items = tuple(sorted(picks))
                parts = sum(self.products_of(i).base_eur_cents for i in picks)
                product.base_eur_cents = max(1900, int(parts * 0.85) // 100 * 100)

    def _draw_stock(self, rng: random.Random) -> None:
        self.physical: list[int] = []
        self.allocated: list[int] = []
        for _ in self.items:
            physical = 0 if rng.random() < 0.08 else rng.randint(1, 250)
            self.physical.append(physical)
            self.allocated.append(min(physical, rng.randint(0, 12)))

    def _draw_modified(self, rng: random.Random, now: int) -> None:
        self.product_modified: list[int] = [
            min(now, p.created_epoch + rng.randrange(0, 500 * _DAY)) for p in self.products
        ]
        self.stock_modified: list[int] = [
            max(self.product_modified[it.variant.product.index], now - rng.randrange(0, 60 * _DAY))
            for it in self.items
        ]

    # lookups ------------------------------------------------------------------------------
    def products_of(self, item_index: int) -> Product:
        return self.items[item_index].variant.product

    def available(self, item: Item) -> int:
        return self.physical[item.index] - self.allocated[item.index]

    # mutation -----------------------------------------------------------------------------
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


def _draw_product(index: int, is_bundle: bool, rng: random.Random, history_start: int) -> Product:
    """One product; bundles are accessories-kind gift sets. The RNG draws happen in argument
    order, so the expressions below must stay in this order."""
    kind = KINDS[2] if is_bundle else KINDS[rng.choices((0, 1, 2), (6, 2, 2))[0]]
    brand = BRANDS[rng.randrange(len(BRANDS))]
    name = (
        f"{rng.choice(ADJECTIVES)} Gift Set"
        if is_bundle
        else f"{rng.choice(ADJECTIVES)} {rng.choice(kind.nouns)}"
    )
    categories = (GIFT_SETS,) if is_bundle else (rng.choice(kind.categories),)
    if not is_bundle and rng.random() < 0.2:
        categories += (NEW_ARRIVALS,)
    return Product(
        index=index,
        product_id=index + 1,
        sku=f"{brand[2][:2].upper()}{1000 + index}",
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
