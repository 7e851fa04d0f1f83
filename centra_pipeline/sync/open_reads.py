"""Reads of the store-local days that hold a stream's open records (`Stream.open_records`):
rows whose state may still change while no API filter selects the change (orders not
archived or cancelled, returns not completed).

Two reads use them: the reconciliation's open pass (reconcile_reads.py), and the incremental
returns read (streams/returns.py), which re-reads every open return older than its window on
every run. Each run of consecutive days holding open rows, or of days with at most a page of
rows between them, is read as one date window, widened by a second on each side
(reconcile.request_window). Every record read is compared with the warehouse's key/hash
index, so only new and changed records are landed.

What the two reads do with rows they expected and Centra did not return differs: the open
pass marks them missing; the incremental read expects nothing back and marks nothing, and
leaves that to the daily open pass (docs/architecture.md, "Per-stream strategy").
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any

from centra_pipeline.centra.order_api import Page
from centra_pipeline.centra.prefetch import prefetch
from centra_pipeline.centra.quirks import DATETIME_FORMAT
from centra_pipeline.streams.model import Stream
from centra_pipeline.sync.plan import ReadContext, ReadPlan
from centra_pipeline.sync.reconcile import day_ranges


def compare_with_warehouse(ctx: ReadContext, stream: Stream) -> bool:
    """Whether a read may land only what differs from the warehouse. Not while a landed load
    waits to be merged (a run died in between): compared with the warehouse alone, a record
    changed back since would not be landed, and the pending, older version would win the
    merge; so everything read is landed."""
    return not ctx.warehouse.pending_loads(ctx.lake, stream.name)


def with_window(
    days: Mapping[date, tuple[int, int]], window_day: date
) -> dict[date, tuple[int, int]]:
    """`days` (day -> (rows, open rows), as warehouse.open_days gives them) with the days from
    `window_day` on counted as open: an incremental window reads them anyway, so day_ranges
    makes them one last range, together with the open days less than a page of rows before
    it."""
    out = {
        day: (total, max(total, 1)) if day >= window_day else (total, open_)
        for day, (total, open_) in days.items()
    }
    out.setdefault(window_day, (0, 1))
    return out


def read_ranges(
    ctx: ReadContext, stream: Stream, requests: list[dict[str, str]], page_size: int | None
) -> Iterator[Page]:
    """The stream's pages for each date window, one after the other, prefetched."""
    api, read = ctx.order_api, stream.read_all
    assert api is not None and read is not None
    return prefetch(
        itertools.chain.from_iterable(read(api, **r, page_size=page_size) for r in requests)
    )


def window_with_open(
    ctx: ReadContext,
    stream: Stream,
    newer_than: str,
    page_size: int | None,
    *,
    cursor_field: str,
) -> ReadPlan:
    """An incremental read of everything from `newer_than` on that also re-reads the
    stream's open rows dated before it, by day ranges; records that match the warehouse are
    not landed, and no row is marked missing.

    The window is the last range, open-ended: when open days lie less than a page of rows
    before it (or on its first day), the window's read starts with them, a second before
    their first day; the other ranges are read as the open pass reads them."""
    api = ctx.order_api
    assert api is not None
    size = page_size or api.page_size
    window_day = datetime.strptime(newer_than, DATETIME_FORMAT).date()
    days = ctx.warehouse.open_days(stream.name, ctx.tz)
    *before, last = day_ranges(with_window(days, window_day), merge_below=size)
    # Open rows on the window's own first day may be older than `newer_than`.
    starts_earlier = last.first < window_day or days.get(window_day, (0, 0))[1] > 0
    read_from = last.request()["newer_than"] if starts_earlier else newer_than
    requests = [r.request() for r in before] + [{"newer_than": read_from}]
    window: dict[str, Any] = {"newer_than": newer_than}
    open_days = [*before, last] if starts_earlier else before
    if open_days:
        window["open_day_ranges"] = len(open_days)
        window["open_days"] = f"{open_days[0].first} .. {min(open_days[-1].last, window_day)}"
    if read_from != newer_than:
        window["read_newer_than"] = read_from
    # Every row the reads can return is compared; none is expected (nothing is marked).
    index = ctx.warehouse.open_index(
        stream.name, [*before, last], ctx.tz, compare=compare_with_warehouse(ctx, stream)
    ).expecting_none()
    return ReadPlan(
        window, read_ranges(ctx, stream, requests, page_size), cursor_field, index=index
    )
