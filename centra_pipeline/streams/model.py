"""One schema definition per table: used for Parquet, DuckDB, Dagster column metadata and the
table reference (docs/tables.md) alike.

Naming follows the README: a column is its Centra JSON field name in snake_case
(`grandTotalValue` → `grand_total_value`; a nested field joins its path:
`discounts.discountAsNumber` → `discounts_discount_as_number`). Primary keys are Centra's
identifiers. Money is DECIMAL(18,4) (three-decimal currencies fit; a value with more decimals
is rounded and recorded as a coercion), timestamps are TIMESTAMPTZ converted from the store's
timezone, and every id is BIGINT in every table that holds it (Centra sends order ids as
strings in orders and as ints in returns).

Lists become child tables where analysts need them (order lines, shipments, discounts, return
lines, prices, catalogue items...); small or rarely queried nested values stay as JSON columns.
Fields we do not map are kept per row in `_extra` (JSON) and, always, in the lake's `_raw`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from centra_pipeline.sync.plan import Planner

BIGINT = "BIGINT"
TEXT = "VARCHAR"
MONEY = "DECIMAL(18,4)"
RATE = "DECIMAL(18,6)"
PERCENT = "DECIMAL(9,4)"
TS = "TIMESTAMPTZ"
BOOL = "BOOLEAN"
DOUBLE = "DOUBLE"
JSON = "JSON"


def snake(name: str) -> str:
    """`grandTotalValue` → `grand_total_value`, `billingVAT` → `billing_vat`,
    `discounts.discountAsNumber` → `discounts_discount_as_number`."""
    parts = []
    for part in name.split("."):
        part = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", part)
        part = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", part)
        parts.append(part.lower())
    return "_".join(parts)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    source: str | None  # key in the row dict the table's `rows` function yields
    description: str
    required: bool = False
    transform: Callable[[Any], Any] | None = None  # applied to the raw value before typing
    # Personal data of a person (e-mail, phone, name, address lines): erased by `forget`,
    # hashed or left out of the analyst snapshot with CENTRA_PII (streams/personal.py).
    personal: bool = False


def c(
    source: str,
    type_: str,
    description: str,
    *,
    name: str | None = None,
    required: bool = False,
    transform: Callable[[Any], Any] | None = None,
    personal: bool = False,
) -> Column:
    return Column(name or snake(source), type_, source, description, required, transform, personal)


@dataclass(frozen=True)
class Table:
    name: str
    stream: str
    description: str
    source: str  # where it comes from in Centra, for the table reference
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    # Child tables: record -> child rows; parent tables: None (the record is the row).
    rows: Callable[[dict[str, Any]], list[tuple[dict[str, Any], dict[str, Any]]]] | None = None
    parent: str | None = None  # child tables are replaced together with their parent row
    parent_key: tuple[str, ...] = ()  # columns holding the parent's primary key
    consumes: frozenset[str] = field(default_factory=frozenset)  # keys children handle
    ignore_extra: frozenset[str] = field(default_factory=frozenset)  # keys that repeat others

    @property
    def is_parent(self) -> bool:
        return self.parent is None

    @property
    def personal_columns(self) -> tuple[Column, ...]:
        return tuple(col for col in self.columns if col.personal)

    @property
    def column_names(self) -> list[str]:
        return [col.name for col in self.columns]

    def known_keys(self) -> frozenset[str]:
        """Top-level keys of a row that something maps (a column, or a child table)."""
        sources = {
            col.source.split(".")[0]
            for col in self.columns
            if col.source and not col.source.startswith("@")
        }
        return frozenset(sources) | {c.split(".")[0] for c in self.consumes} | self.ignore_extra

    def known_nested_keys(self) -> dict[str, frozenset[str]]:
        """For nested objects mapped by dotted sources (`discounts.discountAsNumber`), the
        keys of that object that something maps."""
        nested: dict[str, set[str]] = {}
        for path in [col.source for col in self.columns if col.source] + list(self.consumes):
            if "." in path and not path.startswith("@"):
                head, tail = path.split(".", 1)
                nested.setdefault(head, set()).add(tail)
        return {head: frozenset(tails) for head, tails in nested.items()}


# Metadata columns. Lake files carry all of them; the warehouse drops `_raw` and `_seq`
# (the lake is the record) and adds `_missing_since` on parent tables.
META_LAKE_PARENT = ("_load_id", "_extracted_at", "_seq", "_hash", "_extra", "_raw")
META_LAKE_CHILD = ("_load_id", "_extracted_at", "_seq", "_extra")
META_DESCRIPTIONS = {
    "_load_id": "the load (one extraction of one stream) that wrote this row",
    "_extracted_at": (
        "when Centra last returned this content (UTC): the fetch that wrote the row, moved "
        "forward when a later read finds it unchanged"
    ),
    "_hash": "hash of the record's raw JSON, to tell changed records from unchanged ones",
    "_extra": (
        "fields Centra sent that no column maps (e.g. custom attributes `order_attr_*`), as JSON"
    ),
    "_missing_since": (
        "set when Centra stopped returning this record (refreshed by number and not found, "
        "or gone from the catalogue when read); null while it is present"
    ),
}
META_TYPES = {
    "_load_id": TEXT,
    "_extracted_at": TS,
    "_seq": BIGINT,
    "_hash": TEXT,
    "_extra": JSON,
    "_raw": JSON,
    "_missing_since": TS,
}


def warehouse_meta(table: Table) -> tuple[str, ...]:
    if table.is_parent:
        return ("_load_id", "_extracted_at", "_hash", "_extra", "_missing_since")
    return ("_load_id", "_extracted_at", "_extra")


# --- row builders ------------------------------------------------------------------------
# A child table's builder turns one record into its child rows: (item, injected) pairs, where
# `item` is Centra's own nested object (not copied) and `injected` holds the `@`-columns the
# row gets from its context: the parent's key, a position, a map key.
Row = tuple[dict[str, Any], dict[str, Any]]


def list_children(list_key: str, parent_field: str, inject: str, position: str | None = None):
    def rows(record: dict[str, Any]) -> list[Row]:
        items = record.get(list_key)
        if not isinstance(items, list):
            return []
        parent_id = record.get(parent_field)
        if position:
            return [
                (item, {inject: parent_id, position: i})
                for i, item in enumerate(items)
                if isinstance(item, dict)
            ]
        return [(item, {inject: parent_id}) for item in items if isinstance(item, dict)]

    return rows


def map_children(map_key: str, key_field: str, inject_key: str):
    """Shop API maps such as `items: {"<itemId>": {...}}` become rows with the map key."""

    def rows(record: dict[str, Any]) -> list[Row]:
        mapping = record.get(map_key)
        if not isinstance(mapping, dict):
            return []
        product = record.get("product")
        return [
            (value, {key_field: key, inject_key: product})
            for key, value in mapping.items()
            if isinstance(value, dict)
        ]

    return rows


@dataclass(frozen=True)
class OpenRecords:
    """What a reconciliation's open pass re-reads: the parent rows for which `condition` (SQL
    on the parent table) holds, found by the store-local day of `date_column`."""

    date_column: str
    condition: str


@dataclass(frozen=True)
class Stream:
    """One stream: where Centra serves it, how it is read, and the tables it fills.

    `plan` is the stream's read strategy for incremental reads, full refreshes and backfills.
    Reconciliation and refresh by key are the same for every Order API stream and are built
    by the engine from `read_all` and `lookup`; a stream without `read_all` (the catalogue)
    reconciles in its own plan.
    """

    name: str
    api: str  # "order_api" | "shop_api"
    description: str
    endpoint: str  # the request that reads it, as the UI shows it
    tables: tuple[Table, ...]  # parent first
    key_field: str  # the record field holding the parent table's primary key
    plan: Planner
    read_all: Callable[..., Any] | None = None  # an OrderApi method paging every record
    lookup: Callable[..., Any] | None = None  # an OrderApi method reading one record by key
    open_records: OpenRecords | None = None  # None: nothing stays open (modified filters)
    applies_webhooks: bool = False  # reads apply the webhook inbox's events (orders)
    backfills: bool = True  # has a date filter to re-read an explicit window by

    @property
    def parent(self) -> Table:
        return self.tables[0]

    @property
    def children(self) -> tuple[Table, ...]:
        return self.tables[1:]

    def key(self, record: dict[str, Any]) -> Any:
        """The record's key as the warehouse holds it: every key is a BIGINT id (the Shop API
        sends them as strings)."""
        value = record.get(self.key_field)
        try:
            return int(value)
        except (TypeError, ValueError):
            return value
