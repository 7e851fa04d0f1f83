"""The store's markets (pricelist, currency, countries, shipping) and VAT by delivery country.

Declarative data: customers are assigned to a market, orders are priced in its pricelist, and
returns convert with its base-currency rate.
"""

from __future__ import annotations

from dataclasses import dataclass


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
STORE_TAX_PERCENT = 25  # the store's default tax class, as tap-centra sees `taxPercent`
