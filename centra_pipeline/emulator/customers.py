"""Customers: timestamps and market in numpy arrays, everything else rendered from hashes.

Order addresses are derived from a customer's *base* data (revision 0). A later customer
update changes the customer record only, never the addresses printed on old orders, so an
"updated customer" in a tick changes exactly that customer and nothing else.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from .clock import StoreClock
from .markets import MARKETS
from .rand import Hasher, pick_weighted

_FIRST = ("Anna", "Erik", "Maja", "Lucas", "Sofia", "Oscar", "Emma", "Liam", "Olivia", "Noah",
          "Astrid", "Felix", "Ingrid", "Hugo", "Clara", "Jonas", "Léa", "Mateo", "Åsa",
          "Nils")  # fmt: skip
_LAST = ("Andersson", "Johansson", "Schmidt", "Martin", "de Vries", "Rossi", "García", "Smith",
         "Jensen", "Hansen", "Virtanen", "Lindström", "Berg", "Müller", "Dubois", "Brown",
         "Nielsen", "Öberg", "Costa", "Parker")  # fmt: skip
_PLACES: dict[str, tuple[tuple[str, ...], str, str, tuple[str, ...]]] = {
    # country: (cities, zip pattern, street, states)
    "SE": (("Stockholm", "Göteborg", "Malmö", "Uppsala"), "### ##", "Storgatan", ()),
    "DE": (("Berlin", "Hamburg", "München", "Köln"), "#####", "Hauptstraße", ()),
    "FR": (("Paris", "Lyon", "Marseille"), "#####", "Rue de la Paix", ()),
    "NL": (("Amsterdam", "Utrecht", "Rotterdam"), "#### AB", "Kerkstraat", ()),
    "FI": (("Helsinki", "Espoo", "Tampere"), "#####", "Mannerheimintie", ()),
    "IT": (("Milano", "Roma", "Torino"), "#####", "Via Roma", ()),
    "ES": (("Madrid", "Barcelona", "Valencia"), "#####", "Calle Mayor", ()),
    "GB": (("London", "Manchester", "Leeds"), "SW# #AA", "High Street", ()),
    "US": (("New York", "San Jose", "Austin", "Seattle"), "#####", "Main Street",
           ("NY", "CA", "TX", "WA")),
    "DK": (("København", "Aarhus", "Odense"), "####", "Strøget", ()),
    "NO": (("Oslo", "Bergen", "Trondheim"), "####", "Karl Johans gate", ()),
}  # fmt: skip
_COUNTRIES: tuple[str, ...] = tuple(c for m in MARKETS for c in m.countries)
_DIAL = {"SE": "46", "DE": "49", "FR": "33", "NL": "31", "FI": "358", "IT": "39", "ES": "34",
         "GB": "44", "US": "1", "DK": "45", "NO": "47"}  # fmt: skip
_ASCII = str.maketrans({"å": "a", "ä": "a", "ö": "o", "é": "e", "í": "i", "ü": "u", "ø": "o",
                        "Å": "a", "Ö": "o", " ": ""})  # fmt: skip
_CONSENT_TEXT = "I want to receive news and offers by e-mail. I can unsubscribe at any time."


class CustomerBase(NamedTuple):
    first: str
    last: str
    email: str
    phone: str
    address: str
    zipcode: str
    city: str
    state: str
    country: str


class CustomerTable:
    """Customer ids are 1..n, created in id order."""

    def __init__(
        self,
        n: int,
        hasher: Hasher,
        rng: np.random.Generator,
        clock: StoreClock,
        history_start: int,
        now: int,
    ) -> None:
        self.hasher = hasher
        self.clock = clock
        self.n = n
        first = history_start - 60 * 86400
        created = np.sort(rng.integers(first, max(first + 1, now - 3600), size=n, dtype=np.int64))
        if n:
            created[0] = first  # every order has at least one customer who already exists
        keys = np.arange(1, n + 1, dtype=np.int64)
        touched = hasher.uniform(keys, "customer/modified?") < 0.4
        span = (now - created).astype(np.float64)
        modified = created + (touched * hasher.uniform(keys, "customer/modified") * span).astype(
            np.int64
        )
        self.created = created
        self.modified = modified
        self.created_local = clock.to_local_array(created)
        self.modified_local = clock.to_local_array(modified)
        weights = tuple(m.weight for m in MARKETS)
        self.market = pick_weighted(hasher.uniform(keys, "customer/market"), weights).astype(
            np.int8
        )
        self._columns = _draw_records(hasher, keys, self.market)
        self.rev: dict[int, int] = {}
        self.anonymized: set[int] = set()
        self._base = lru_cache(maxsize=16384)(self._compute_base)

    # truth ------------------------------------------------------------------------------
    def exists(self, customer_id: int) -> bool:
        return 1 <= customer_id <= self.n

    def base(self, customer_id: int) -> CustomerBase:
        base = self._base(customer_id)
        if customer_id in self.anonymized:
            return CustomerBase("", "", "", "", "", "", "", "", base.country)
        return base

    def _compute_base(self, cid: int) -> CustomerBase:
        country_i, first_i, last_i, city_i, zip_number, phone_number, house = self._columns[
            cid - 1
        ].tolist()
        country = _COUNTRIES[country_i]
        cities, zip_pattern, street, states = _PLACES[country]
        first = _FIRST[first_i]
        last = _LAST[last_i]
        email = f"{first.translate(_ASCII)}.{last.translate(_ASCII)}.{cid}@example.com".lower()
        digits = f"{zip_number:06d}"
        zipcode, k = [], 0
        for ch in zip_pattern:
            if ch == "#":
                zipcode.append(digits[k])
                k += 1
            else:
                zipcode.append(ch)
        phone = f"+{_DIAL[country]}{phone_number:08d}"
        return CustomerBase(
            first=first,
            last=last,
            email=email,
            phone=phone,
            address=f"{street} {house}",
            zipcode="".join(zipcode),
            city=cities[city_i],
            state=states[city_i] if states else "",
            country=country,
        )

    def customer_id_for_email(self, email: str) -> int | None:
        """Emails embed the id (first.last.ID@example.com); verify the whole address matches."""
        local = email.strip().lower().partition("@")[0]
        tail = local.rsplit(".", 1)[-1]
        if not tail.isdigit():
            return None
        cid = int(tail)
        if self.exists(cid) and self.base(cid).email == email.strip().lower():
            return cid
        return None

    # mutation ---------------------------------------------------------------------------
    def touch(self, cid: int, epoch: int) -> None:
        self.rev[cid] = self.rev.get(cid, 0) + 1
        self.modified[cid - 1] = epoch
        self.modified_local[cid - 1] = self.clock.to_local(epoch)

    def anonymize(self, cid: int, epoch: int) -> bool:
        """Empty the customer's personal data; False if it was already."""
        if cid in self.anonymized:
            return False
        self.anonymized.add(cid)
        self.touch(cid, epoch)
        return True

    # rendering --------------------------------------------------------------------------
    def render(self, cid: int) -> dict[str, object]:
        base = self.base(cid)
        h = self.hasher
        rev = self.rev.get(cid, 0)
        newsletter = h.scalar(cid, "customer/newsletter") < 0.45
        if rev % 2:
            newsletter = not newsletter  # each update flips the newsletter flag...
        anonymized = cid in self.anonymized
        phone = (
            base.phone
            if rev == 0 or anonymized
            else f"{base.phone[:-3]}{(int(base.phone[-3:]) + rev) % 1000:03d}"
        )
        created = self.clock.fmt(int(self.created_local[cid - 1]))
        modified = self.clock.fmt(int(self.modified_local[cid - 1]))
        consents = []
        if h.scalar(cid, "customer/consent") < 0.6:
            consents.append(
                {
                    "key": "newsletter",
                    "name": "Newsletter",
                    "consented": newsletter,
                    "text": _CONSENT_TEXT,
                    "language": "EN",
                    "version": "1",
                    "created": created,
                    "modified": modified if rev else created,
                }
            )
        return {
            "customerId": str(cid),
            "email": base.email,
            "firstName": base.first,
            "lastName": base.last,
            "address1": base.address,
            "address2": "" if rev == 0 or anonymized else f"c/o {base.last} {rev}",  # ...moves
            "zipCode": base.zipcode,
            "city": base.city,
            "state": base.state,
            "country": base.country,
            "phoneNumber": phone,
            "newsletter": newsletter,
            "gender": "",
            "registered": h.scalar(cid, "customer/registered") < 0.7,
            "consents": consents,
            "created": created,
            "modified": modified,
        }


def _draw_records(hasher: Hasher, keys: np.ndarray, market: np.ndarray) -> np.recarray:
    """A customer's country, name, city, zip code, phone and house number as small integer
    columns drawn once: a cache miss then costs one record read instead of eight hash
    evaluations, and the string cache can stay small (a big one makes every GC pass over the
    heap slower)."""
    market_countries = np.asarray([len(m.countries) for m in MARKETS])[market]
    country_offset = np.cumsum([0] + [len(m.countries) for m in MARKETS])[:-1]
    country = country_offset[market] + hasher.below(keys, "customer/country", market_countries)
    cities = np.asarray([len(_PLACES[c][0]) for c in _COUNTRIES])[country]
    return np.rec.fromarrays(
        [
            country.astype(np.int8),
            hasher.below(keys, "customer/first", len(_FIRST)).astype(np.int8),
            hasher.below(keys, "customer/last", len(_LAST)).astype(np.int8),
            hasher.below(keys, "customer/city", cities).astype(np.int8),
            hasher.below(keys, "customer/zip", 10**6).astype(np.int32),
            hasher.below(keys, "customer/phone", 10**8).astype(np.int32),
            (1 + hasher.below(keys, "customer/house", 120)).astype(np.int16),
        ],
        names="country,first,last,city,zip,phone,house",
    )
