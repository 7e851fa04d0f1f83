"""What verify compares per stream, and the checks of what a caller asks for (streams, a
first day).

A stream's columns are the schema's own `Column` definitions, so Centra's raw values are
converted from the same source field, transform and type as a load converts them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from centra_pipeline.centra.order_api import OrderApi, Page
from centra_pipeline.streams import TABLES
from centra_pipeline.streams.model import Column, Table

# (api, after, before) → the Order API pages of records dated after `after` and before
# `before` (store-local timestamps, None: unbounded).
Reader = Callable[[OrderApi, str | None, str | None], Iterator[Page]]


@dataclass(frozen=True)
class StreamSpec:
    """What verify compares for one stream."""

    table: Table  # the snapshot table, named like the stream
    singular: str  # how the report names one record: "order 4711"
    id_column: Column
    day_column: Column  # a record's day is the store-local date of this timestamp
    values: tuple[tuple[str, Column], ...]  # (report name, column) compared per record
    read: Reader
    # False: Centra filters this stream by a lower bound only, so a re-read of some days
    # reads from the earliest of them to now.
    has_upper_bound: bool = True

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def value_columns(self) -> tuple[Column, ...]:
        return tuple(column for _, column in self.values)

    def named(self, values: tuple[Any, ...]) -> dict[str, Any]:
        """A record's compared values by their report names."""
        return {name: value for (name, _), value in zip(self.values, values, strict=True)}


def _spec(
    table_name: str,
    singular: str,
    id_column: str,
    day_column: str,
    read: Reader,
    values: Mapping[str, str] | None = None,
    *,
    has_upper_bound: bool = True,
) -> StreamSpec:
    """The spec of a stream whose snapshot table is `table_name`; columns by their names in
    the schema, `values` as report name → column name."""
    table = TABLES[table_name]
    columns = {column.name: column for column in table.columns}
    return StreamSpec(
        table=table,
        singular=singular,
        id_column=columns[id_column],
        day_column=columns[day_column],
        values=tuple((name, columns[column]) for name, column in (values or {}).items()),
        read=read,
        has_upper_bound=has_upper_bound,
    )


def _read_orders(api: OrderApi, after: str | None, before: str | None) -> Iterator[Page]:
    return api.iter_orders(newer_than=after, older_than=before)


def _read_returns(api: OrderApi, after: str | None, before: str | None) -> Iterator[Page]:
    return api.iter_returns(newer_than=after, older_than=before)


def _read_customers(api: OrderApi, after: str | None, _before: str | None) -> Iterator[Page]:
    # `created` means "created after"; there is no upper bound: callers keep the days.
    return api.iter_customers(created=after)


_ORDER_VALUES = {
    "status": "order_status_name",
    "currency": "order_currency",
    "total": "grand_total_value",
}
_ORDERS = _spec("orders", "order", "order_id", "order_date", _read_orders, _ORDER_VALUES)
_RETURNS = _spec("returns", "return", "return_id", "date", _read_returns)
_CUSTOMERS = _spec(
    "customers", "customer", "customer_id", "created", _read_customers, has_upper_bound=False
)
SPECS: dict[str, StreamSpec] = {s.name: s for s in (_ORDERS, _RETURNS, _CUSTOMERS)}
STREAM_NAMES = tuple(SPECS)


# --- input -----------------------------------------------------------------------------------
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_since(text: str) -> date:
    """A store-local date `YYYY-MM-DD`; ValueError with a message otherwise."""
    value = text.strip()
    if _DATE_RE.match(value):
        try:
            return datetime.strptime(value, "%Y-%m-%d").date()
        except ValueError:
            pass
    raise ValueError(
        f"--since must be a store-local date YYYY-MM-DD (e.g. 2025-06-01), got {text!r}"
    )


def check_streams(streams: Iterable[str] | None) -> list[str]:
    """The streams to verify, in the standard order; ValueError for unknown names."""
    wanted = list(dict.fromkeys(streams or STREAM_NAMES))
    unknown = [s for s in wanted if s not in SPECS]
    if unknown:
        raise ValueError(
            f"cannot verify stream {', '.join(map(repr, unknown))}: verify compares "
            f"{', '.join(STREAM_NAMES)}"
        )
    return [s for s in STREAM_NAMES if s in wanted]
