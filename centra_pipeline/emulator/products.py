"""What the catalogue is made of: products, their colour variants and each variant's size
items (the stock items), linked both ways; and the id ranges of each."""

from __future__ import annotations

from dataclasses import dataclass, field

from .assortment import ProductKind

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
    kind: ProductKind
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
