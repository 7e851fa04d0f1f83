"""What one read of a stream asks Centra for: the options a run passes (`ExtractOptions`),
and the plan a stream makes from them (`ReadPlan`: the window, the pages, which field is the
cursor, which keys are expected back).

Each stream's module in `centra_pipeline/streams/` builds its plan from the pieces here; the
extractor (extract.py) only executes plans, so it knows nothing about any one stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from centra_pipeline.centra.http import prefetch
from centra_pipeline.centra.jsonstream import RawRecord
from centra_pipeline.centra.order_api import OrderApi, Page
from centra_pipeline.centra.quirks import normalize_local, shift_local
from centra_pipeline.settings import (
    DEFAULT_CATALOGUE_FULL_READ_HOURS,
    DEFAULT_ORDERS_LOOKBACK_DAYS,
    DEFAULT_RECONCILE_FULL_DAYS,
)
from centra_pipeline.sync.reconcile import RECONCILE_MODES, KeyIndex

if TYPE_CHECKING:
    from centra_pipeline.centra.shop_api import ShopApi
    from centra_pipeline.storage.lake import Lake
    from centra_pipeline.storage.warehouse import Warehouse

MODES = ("incremental", "full_refresh", "backfill", "refresh", *RECONCILE_MODES)
DEFAULT_OVERLAP = timedelta(hours=1)


@dataclass(frozen=True)
class ExtractOptions:
    """How a run reads a stream; the default is an incremental read."""

    mode: str = "incremental"
    window_start: str | None = None  # backfill: naive store-local, inclusive
    window_end: str | None = None  # backfill: naive store-local, exclusive
    keys: tuple[Any, ...] = ()  # refresh: order numbers / return ids / customer ids
    lookback: timedelta = timedelta(days=DEFAULT_ORDERS_LOOKBACK_DAYS)
    overlap: timedelta = DEFAULT_OVERLAP
    page_size: int | None = None
    # catalogue: how often it is read in full (0 = every run); in between, changed products
    catalogue_full_read_every: timedelta = timedelta(hours=DEFAULT_CATALOGUE_FULL_READ_HOURS)
    # reconcile_auto: a stream whose last full reconciliation is this old gets a full one
    reconcile_full_every: timedelta = timedelta(days=DEFAULT_RECONCILE_FULL_DAYS)
    # orders: apply the webhook inbox's unapplied events (up to this seq; None = all stored)
    apply_inbox: bool = True
    inbox_through: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "backfill":
            if not self.window_start or not self.window_end:
                raise ValueError("a backfill needs both window_start and window_end")
            start = normalize_local(self.window_start)
            end = normalize_local(self.window_end)
            if start >= end:
                raise ValueError(f"backfill window is empty: {start} is not before {end}")
        if self.mode == "refresh" and not self.keys and self.inbox_through is None:
            raise ValueError("a refresh needs the keys (order numbers, ids) to read")
        if (
            self.lookback < timedelta(0)
            or self.overlap < timedelta(0)
            or self.catalogue_full_read_every < timedelta(0)
        ):
            raise ValueError(
                "lookback, overlap and the catalogue's full-read interval must not be negative"
            )

    def incremental(self, cursor: str | None) -> bool:
        """An incremental read that has a cursor to start from (the first one reads all)."""
        return self.mode == "incremental" and cursor is not None


@dataclass
class ReadPlan:
    """One read: what it asks for (`window`, shown in the manifest and the UI) and the pages
    that answer it, with what the extractor needs to land them and prove a cursor."""

    window: dict[str, Any]
    pages: Iterable[Page]
    cursor_field: str | None = None  # the cursor is the max of this field; None: Centra's clock
    key_field: str | None = None
    requested_keys: tuple[Any, ...] = ()  # a refresh's keys, for the manifest
    known_hashes: dict[Any, str] | None = None  # land only records whose hash differs
    # Keys Centra should return; those it does not are marked missing. Called after the
    # read: a targeted catalogue read learns them while reading.
    expected_keys: Callable[[], Iterable[Any]] | None = None
    # A reconciliation: the warehouse's keys and hashes; land only what differs, and mark
    # the expected keys not returned as missing.
    index: KeyIndex | None = None
    inbox: dict[str, Any] | None = None  # webhook events this read applies

    def describe(self) -> str:
        if not self.window:
            return "everything"
        return ", ".join(f"{k}={v}" for k, v in self.window.items())


class ReadContext(Protocol):
    """What a stream's plan may use: the API clients, storage and the store's timezone."""

    lake: Lake
    warehouse: Warehouse
    tz: str
    order_api: OrderApi | None
    shop_api: ShopApi | None


# A stream's read strategy: (context, options, cursor) -> plan.
Planner = Callable[[ReadContext, ExtractOptions, str | None], ReadPlan]


def lookups(keys: tuple[Any, ...], fetch: Callable[[Any], RawRecord | None]) -> Iterator[Page]:
    """Targeted reads, one request per key, presented as pages of one record."""
    for number, key in enumerate(keys, start=1):
        fetched_at = datetime.now(UTC)
        record = fetch(key)
        yield Page(
            "lookup",
            number,
            {"key": key},
            [record] if record else [],
            fetched_at,
            len(record.raw) if record else 0,
            has_more=number < len(keys),
        )


def int_keys(keys: Iterable[Any]) -> list[int]:
    """Centra ids from user input, de-duplicated in order; a specific error for a bad one."""
    out: list[int] = []
    for key in keys:
        try:
            value = int(str(key).strip())
        except ValueError:
            raise ValueError(f"{key!r} is not a Centra id (a whole number)") from None
        if value not in out:
            out.append(value)
    return out


def backfill_window(options: ExtractOptions) -> dict[str, Any]:
    return {
        "newer_than": normalize_local(options.window_start or ""),
        "older_than": normalize_local(options.window_end or ""),
    }


def modified_window(
    param: str, mode: str, cursor: str | None, options: ExtractOptions
) -> dict[str, Any]:
    """The window of a stream Centra filters by modification time (`param`): from the
    backfill's start, or from the cursor minus an overlap; empty (everything) otherwise."""
    if mode == "backfill":
        return {param: normalize_local(options.window_start or "")}
    if mode == "incremental" and cursor is not None:
        return {param: shift_local(cursor, -options.overlap)}
    return {}


def read_modified_since(
    param: str, read: Callable[..., Iterable[Page]], cursor_field: str | None
) -> Planner:
    """The plan of a stream with a documented modified filter: read what changed since the
    cursor (minus an overlap), or everything on the first run and on a full refresh."""

    def plan(ctx: ReadContext, options: ExtractOptions, cursor: str | None) -> ReadPlan:
        window = modified_window(param, options.mode, cursor, options)
        pages = prefetch(read(ctx.order_api, **window, page_size=options.page_size))
        return ReadPlan(window, pages, cursor_field=cursor_field)

    return plan
