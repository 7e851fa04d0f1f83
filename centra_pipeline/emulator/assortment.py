"""The fixed lists the synthetic catalogue is drawn from: categories, brands, collections,
product kinds (sizes, weights, customs codes, price range), name parts, colours, the campaign.

Declarative data; `catalog.Catalog` draws the products from it with a seeded RNG.
"""

from __future__ import annotations

from dataclasses import dataclass


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
COUNTRY_NAMES: dict[str, str] = {
    "PT": "Portugal", "CN": "China", "IT": "Italy", "TR": "Turkey", "SE": "Sweden",
    "BD": "Bangladesh", "LT": "Lithuania",
}  # fmt: skip


@dataclass(frozen=True)
class ProductKind:
    name: str
    nouns: tuple[str, ...]
    sizes: tuple[str, ...]
    categories: tuple[int, ...]
    weight: tuple[float, float]
    harm_code: str
    harm_description: str
    folder: str
    price_eur: tuple[int, int]


KINDS: tuple[ProductKind, ...] = (
    ProductKind("apparel", ("Jacket", "Parka", "Dress", "Shirt", "Sweater", "Blouse", "Coat"),
                ("XS", "S", "M", "L", "XL", "XXL"), (12, 13, 15, 16), (0.2, 1.6), "6202930000",
                "Outerwear, synthetic fibres", "Apparel / Main line", (39, 349)),
    ProductKind("shoes", ("Sneaker", "Boot", "Loafer"), ("38", "39", "40", "41", "42", "43"),
                (17,), (0.6, 1.4), "6403990000", "Footwear, leather uppers", "Footwear",
                (89, 259)),
    ProductKind("accessories", ("Scarf", "Cap", "Tote Bag", "Belt", "Beanie"), ("One Size",),
                (18,), (0.05, 0.6), "4202220000", "Bags and small accessories", "Accessories",
                (19, 129)),
)  # fmt: skip
ADJECTIVES = ("Classic", "Relaxed", "Merino", "Linen", "Alpine", "Harbor", "Coastal", "Urban",
              "Soft", "Heritage", "Canvas", "Storm")  # fmt: skip
COLORS = (("Black", "BLK"), ("White", "WHT"), ("Navy", "NVY"), ("Sand", "SND"), ("Olive", "OLV"),
          ("Burgundy", "BRG"), ("Grey Melange", "GRM"), ("Off White", "OWH"))  # fmt: skip
CAMPAIGN = ("40", "Mid Season Sale")  # (id, name) of the one campaign discounted products are in
