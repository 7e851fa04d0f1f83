"""One stream's step, free of Dagster: land a read in the lake, then merge what is pending.

The Dagster asset (defs/assets.py), `centra-pipeline sync` (through that asset) and the
tests all call these two functions, so a test exercises exactly what production runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.centra.shop_api import ShopApi
from centra_pipeline.settings import Settings
from centra_pipeline.storage.erasure import Erasure, anonymised_in, forget
from centra_pipeline.storage.lake import Lake, LoadManifest
from centra_pipeline.storage.merge import MergeResult
from centra_pipeline.storage.suppression import load_suppression
from centra_pipeline.storage.warehouse import Warehouse, row_counts
from centra_pipeline.streams import Stream, Table
from centra_pipeline.sync.extract import Extractor, ProgressCallback
from centra_pipeline.sync.plan import ExtractOptions
from centra_pipeline.sync.reconcile import Drift
from centra_pipeline.webhooks.inboxes import InboxRef


@dataclass
class Landed:
    """A read landed in the lake."""

    manifest: LoadManifest
    seconds: float

    @property
    def not_returned(self) -> list[Any]:
        """Keys the read expected (a webhook's order, a refreshed id) that Centra did not
        return; the merge marks them missing."""
        return list(self.manifest.missing_keys)


@dataclass
class Merged:
    """The pending loads of a stream merged into the warehouse."""

    results: list[MergeResult]
    loads: list[LoadManifest]
    seconds: float
    row_counts: dict[str, int] = field(default_factory=dict)  # table -> rows after the merge
    inspected: Any = None  # what `merge(inspect=...)` found on the merged warehouse

    @property
    def merged(self) -> list[MergeResult]:
        return [r for r in self.results if not r.skipped]

    def total(self, attr: str) -> int:
        return sum(getattr(r, attr) for r in self.results)

    @property
    def drift(self) -> Drift | None:
        """What the reconciliations among the merged loads repaired (None: there were none)."""
        drifts = [r.drift for r in self.results if r.drift is not None]
        return Drift.total(drifts) if drifts else None


def land(
    stream: Stream,
    options: ExtractOptions,
    *,
    settings: Settings,
    lake: Lake,
    warehouse: Warehouse,
    order_api: Callable[[], OrderApi],
    shop_api: Callable[[], ShopApi],
    progress: ProgressCallback | None = None,
) -> Landed:
    """Read the stream from Centra into one lake load; the API clients are opened for this
    read and closed after it."""
    started = time.monotonic()
    # The catalogue asks the Order API which products changed, when it is configured
    # (without it, every catalogue read is a full one).
    uses_order_api = stream.api == "order_api" or not settings.missing_order_api()
    order = order_api() if uses_order_api else None
    shop = shop_api() if stream.api == "shop_api" else None
    try:
        manifest = Extractor(
            lake=lake,
            warehouse=warehouse,
            timezone=settings.timezone,
            order_api=order,
            shop_api=shop,
            progress=progress,
            inbox=InboxRef.of(settings),
            suppression=load_suppression(settings),
        ).run(stream.name, options)
    finally:
        for client in (order, shop):
            if client is not None:
                client.close()
    return Landed(manifest, time.monotonic() - started)


def merge(
    stream: Stream,
    tables: list[Table],
    *,
    lake: Lake,
    warehouse: Warehouse,
    inspect: Callable[[duckdb.DuckDBPyConnection, Merged], Any] | None = None,
) -> Merged:
    """Merge every landed load of the stream that is not merged yet (oldest first, one
    transaction each), and count the rows of `tables` after it. `inspect(con, merged)`
    runs on the same connection, before the writer lock is let go (the asset's checks)."""
    started = time.monotonic()
    pending = warehouse.pending_loads(lake, stream.name)

    def after(con: duckdb.DuckDBPyConnection, results: list[MergeResult]) -> Merged:
        merged = Merged(results, pending, time.monotonic() - started)
        merged.row_counts = row_counts(con, [t.name for t in tables])
        if inspect is not None:
            merged.inspected = inspect(con, merged)
        return merged

    return warehouse.merge_loads_then(pending, after)


def erase_anonymised(
    merged: Merged, *, settings: Settings, lake: Lake, warehouse: Warehouse
) -> Erasure | None:
    """Customers that Centra anonymised show up in a customers read with every personal
    field empty: erase the older copies of their data as `forget` would (None: none)."""
    ids = anonymised_in(settings, merged.loads)
    if not ids:
        return None
    return forget(settings, warehouse, lake, ids, set(), reason="anonymised in Centra")


def probe(
    stream: Stream, order_api: Callable[[], OrderApi], shop_api: Callable[[], ShopApi]
) -> dict[str, Any]:
    """Ask the stream's endpoint for its first page of one record: whether it answers, how
    fast, and Centra's clock. Writes nothing."""
    started = time.monotonic()
    client: Any = shop_api() if stream.api == "shop_api" else order_api()
    try:
        if stream.api == "shop_api":
            pages = client.iter_products(page_size=1)
        else:
            assert stream.read_all is not None
            pages = stream.read_all(client, page_size=1)
        page = next(iter(pages), None)
    finally:
        client.close()
    return {
        "answered": page is not None,
        "records_on_first_page": len(page.records) if page else 0,
        "server_time": page.server_time.isoformat() if page and page.server_time else "",
        "seconds": round(time.monotonic() - started, 3),
    }
