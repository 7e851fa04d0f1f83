"""The reads a reconciliation makes: which pass is due, and the plan of each pass.

The full pass re-reads every record of an Order API stream; the open pass re-reads the
store-local days that hold the stream's open records (`Stream.open_records`; open_reads.py
reads them, as the incremental returns read does). Both compare each record with the
warehouse's key/hash index, so only new and changed records are landed, and rows Centra no
longer returns are marked missing (see reconcile.py for the index and the day ranges, and
docs/architecture.md for why the net is needed).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from centra_pipeline.centra.prefetch import prefetch
from centra_pipeline.streams.model import Stream
from centra_pipeline.sync.open_reads import compare_with_warehouse, read_ranges
from centra_pipeline.sync.plan import ExtractOptions, ReadContext, ReadPlan
from centra_pipeline.sync.reconcile import day_ranges


def pass_due(ctx: ReadContext, stream: Stream, options: ExtractOptions) -> str:
    """`reconcile_auto`: the full pass when the last one is at least the interval old (or
    there was none), else the open pass."""
    last = ctx.warehouse.last_full_reconcile(stream.name)
    if last is None or datetime.now(UTC) - last >= options.reconcile_full_every:
        return "reconcile"
    return "reconcile_open"


def plan(ctx: ReadContext, stream: Stream, options: ExtractOptions) -> ReadPlan:
    """Re-read the stream in full, or the days holding its open records, comparing each
    record with the warehouse."""
    api = ctx.order_api
    assert api is not None and stream.read_all is not None
    size = options.page_size
    compare = compare_with_warehouse(ctx, stream)
    if options.mode == "reconcile":
        return ReadPlan(
            {"reconcile": "full"},
            prefetch(stream.read_all(api, page_size=size)),
            index=ctx.warehouse.full_index(stream.name, compare=compare),
        )
    # The open pass: each run of consecutive days (or of days with less than a page of rows
    # between them) is read as one date window, widened by a second each side as the edges
    # of Centra's order filters are undocumented. Every present row dated inside a range is
    # expected back; rows just outside come back too and are compared.
    ranges = day_ranges(
        ctx.warehouse.open_days(stream.name, ctx.tz), merge_below=size or api.page_size
    )
    window: dict[str, Any] = {"reconcile": "open", "day_ranges": len(ranges)}
    if not ranges:
        return ReadPlan(window, [])
    window["days"] = f"{ranges[0].first} .. {ranges[-1].last}"
    return ReadPlan(
        window,
        read_ranges(ctx, stream, [r.request() for r in ranges], size),
        index=ctx.warehouse.open_index(stream.name, ranges, ctx.tz, compare=compare),
    )
