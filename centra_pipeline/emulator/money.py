"""Amounts in integer cents: how Centra prints them, and the percentage arithmetic on them.

Every amount is held in integer cents so that sums and VAT shares are exact; the helpers here
turn cents into the three shapes Centra prints (a JSON number, "329.00", "175.00 USD").
"""

from __future__ import annotations


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


def percent_off(cents: int, pct: int) -> int:
    """The price after a `pct` percent reduction; the reduction is rounded down to the cent."""
    return cents - cents * pct // 100


def vat_share(gross_cents: int, vat: float) -> int:
    """VAT share of a VAT-inclusive amount, rounded to the cent."""
    return round(gross_cents * vat / (100 + vat)) if vat else 0
