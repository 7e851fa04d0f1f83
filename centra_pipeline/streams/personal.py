"""Personal data: which records belong to a person, and how a record is erased.

A person is a set of customer ids and a set of e-mail addresses (normalised: trimmed, lower
case). A record belongs to them when its customer id is one of theirs or one of its e-mail
fields holds one of their addresses (guest orders have no customer id). Erasing a record sets
its personal fields (the columns marked `personal`, docs/tables.md) to null in the record
itself, so the raw JSON and every column made from it agree; ids, amounts, lines and dates
stay.

The suppression list keeps people erased in later syncs: customer ids, and the e-mails as a
keyed hash (HMAC-SHA256), so the list itself holds no address (docs/architecture.md,
"Erasure").
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from centra_pipeline.centra.jsonstream import RawRecord
from centra_pipeline.streams.model import Table

# Per table holding personal data: the field with the customer id, the e-mail fields.
PERSON_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "customers": ("customerId", ("email",)),
    "orders": ("customerId", ("billingEmail", "deliveryEmail")),
}

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def normalize_email(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    return text or None


def email_hmac(key: bytes, email: str) -> str:
    return hmac.new(key, email.encode("utf-8"), hashlib.sha256).hexdigest()


def customer_id(value: Any) -> int | None:
    """Centra's customer id as an int; None for a guest (missing, empty or 0)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number or None


@dataclass
class Person:
    customer_ids: set[int] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)  # normalised


@dataclass
class Suppression:
    """People to keep erased: their customer ids and their e-mails' keyed hashes."""

    key: bytes
    customer_ids: set[int] = field(default_factory=set)
    email_hashes: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.customer_ids or self.email_hashes)

    def add(self, person: Person) -> None:
        self.customer_ids |= person.customer_ids
        self.email_hashes |= {email_hmac(self.key, e) for e in person.emails}

    def matches(self, table: str, record: dict[str, Any]) -> bool:
        fields = PERSON_FIELDS.get(table)
        if fields is None:
            return False
        id_field, email_fields = fields
        if customer_id(record.get(id_field)) in self.customer_ids:
            return True
        for name in email_fields:
            email = normalize_email(record.get(name))
            if email and email_hmac(self.key, email) in self.email_hashes:
                return True
        return False

    def apply(self, table: Table, records: Iterable[RawRecord]) -> list[RawRecord]:
        """The records, with those of a suppressed person erased."""
        return [
            erase_record(table, record) if self.matches(table.name, record.obj) else record
            for record in records
        ]


def erase_obj(table: Table, obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of the record with its personal fields set to null (only those present)."""
    erased = dict(obj)
    for col in table.personal_columns:
        if col.source in erased:
            erased[col.source] = None
    return erased


def erase_record(table: Table, record: RawRecord) -> RawRecord:
    erased = erase_obj(table, record.obj)
    return RawRecord(obj=erased, raw=_encode(erased))


def erase_raw(table: Table, raw: str) -> str:
    """The raw JSON text of a record with its personal fields erased."""
    return _encode(erase_obj(table, json.loads(raw)))
