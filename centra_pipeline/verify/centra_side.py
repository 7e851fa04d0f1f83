"""Centra's side of the comparison: the Order API read by store-local day, each record's
values converted exactly as a load would store them.

A full read keeps per-day numbers only, so memory stays flat however many records Centra
serves; the records themselves are kept only when a few differing days are re-read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import date, timedelta
from decimal import localcontext
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from centra_pipeline.centra import quirks
from centra_pipeline.centra.http import prefetch
from centra_pipeline.centra.jsonstream import RawRecord
from centra_pipeline.centra.order_api import OrderApi, Page
from centra_pipeline.centra.quirks import Coercions, shift_local
from centra_pipeline.streams.model import Column
from centra_pipeline.verify.results import MONEY_CONTEXT, DayNumbers, DayRecords
from centra_pipeline.verify.specs import StreamSpec

ProgressCallback = Callable[[str], None]


class ReadProgress:
    """Counts a read's pages and records and reports a line every `interval` seconds."""

    def __init__(self, label: str, report: ProgressCallback | None, interval: float) -> None:
        self.label = label
        self.report = report
        self.interval = interval
        self.pages = 0
        self.records = 0
        self.started = time.monotonic()
        self.last = self.started

    def page(self, records: int) -> None:
        self.pages += 1
        self.records += records
        now = time.monotonic()
        if self.report and now - self.last >= self.interval:
            self.last = now
            self.report(self.line("reading Centra"))

    def done(self) -> None:
        if self.report:
            self.report(self.line("read"))

    def line(self, state: str) -> str:
        seconds = time.monotonic() - self.started
        rate = self.records / seconds if seconds > 0 else 0.0
        return (
            f"{self.label}: {state}, {self.records:,} records in {self.pages:,} pages "
            f"({rate:,.0f}/s)"
        )


def centra_days(
    spec: StreamSpec, api: OrderApi, tz: str, since: date | None, progress: ReadProgress
) -> dict[date | None, DayNumbers]:
    """Every record's numbers added up per store-local day, for days on or after `since`."""
    days: dict[date | None, DayNumbers] = {}
    pages = spec.read(api, _just_before(since) if since else None, None)
    with localcontext(MONEY_CONTEXT):
        for page in prefetch(pages):
            progress.page(len(page.records))
            for _, day, value in _rows(spec, page.records, tz):
                if since is not None and (day is None or day < since):
                    continue
                numbers = days.get(day)
                if numbers is None:
                    numbers = days[day] = DayNumbers()
                numbers.add(value)
    progress.done()
    return days


def centra_records(
    spec: StreamSpec, api: OrderApi, tz: str, days: set[date], progress: ReadProgress
) -> DayRecords:
    """The records of `days` as Centra serves them now: day → id → compared values."""
    found: DayRecords = {day: {} for day in days}
    for pages in _day_reads(spec, api, days):
        for page in prefetch(pages):
            progress.page(len(page.records))
            for record_id, day, value in _rows(spec, page.records, tz):
                if day in found and record_id is not None:
                    found[day][record_id] = value
    progress.done()
    return found


def _day_reads(spec: StreamSpec, api: OrderApi, days: set[date]) -> list[Iterator[Page]]:
    """The reads that cover `days`: one per run of consecutive days, or, for a stream with
    only a lower bound, one from the earliest day."""
    if not spec.has_upper_bound:
        return [spec.read(api, _just_before(min(days)), None)]
    return [
        spec.read(api, _just_before(first), _day_start(last + timedelta(days=1)))
        for first, last in _windows(days)
    ]


def _windows(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days as (first, last) ranges."""
    out: list[tuple[date, date]] = []
    for day in sorted(days):
        if out and out[-1][1] + timedelta(days=1) == day:
            out[-1] = (out[-1][0], day)
        else:
            out.append((day, day))
    return out


def _day_start(day: date) -> str:
    return f"{day.isoformat()} 00:00:00"


def _just_before(day: date) -> str:
    """The lower bound for records of `day` and later. One second early, so records at
    00:00:00 are read whether Centra's "newer than"/"created after" includes the bound or
    not; records of the day before are dropped by their day."""
    return shift_local(_day_start(day), timedelta(seconds=-1))


# --- conversion ------------------------------------------------------------------------------
def _rows(
    spec: StreamSpec, records: list[RawRecord], tz: str
) -> Iterator[tuple[int | None, date | None, tuple[Any, ...]]]:
    """(id, store-local day, compared values) per record, as the pipeline would store them."""
    objs = [r.obj for r in records]
    ids = _stored(spec, spec.id_column, objs, tz).to_pylist()
    instants = _stored(spec, spec.day_column, objs, tz)
    days = pc.local_timestamp(instants.cast(pa.timestamp("us", tz=tz))).cast(pa.date32())
    columns = [_stored(spec, column, objs, tz).to_pylist() for column in spec.value_columns]
    values = zip(*columns, strict=True) if columns else (() for _ in objs)
    return zip(ids, days.to_pylist(), values, strict=False)


def _stored(spec: StreamSpec, column: Column, objs: list[dict[str, Any]], tz: str) -> pa.Array:
    """One column of a page, converted exactly as a load converts it (schema transform, then
    the quirks converter of the column's type)."""
    assert column.source is not None
    values = [obj.get(column.source) for obj in objs]
    if column.transform is not None:
        values = [column.transform(v) for v in values]
    label = f"{spec.table.name}.{column.name}"
    coercions = Coercions()
    # The schema's types are DuckDB type names; verify compares ids, texts, timestamps and
    # money only.
    if column.type == "BIGINT":
        return quirks.column_int(label, values, coercions)
    if column.type == "VARCHAR":
        return quirks.column_str(label, values, coercions)
    if column.type == "TIMESTAMPTZ":
        return quirks.column_timestamp(label, values, coercions, tz)
    if column.type.startswith("DECIMAL("):
        precision, scale = (int(x) for x in column.type[8:-1].split(","))
        return quirks.column_decimal(label, values, coercions, precision, scale)
    raise AssertionError(f"verify does not compare {column.type} columns ({label})")
