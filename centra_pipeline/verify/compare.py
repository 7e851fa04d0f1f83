"""`centra-pipeline verify`: compare Centra with the analyst snapshot, per store-local day.

For each stream it compares day by day:

| stream    | Centra (Order API)                 | snapshot  | numbers per day           |
|-----------|------------------------------------|-----------|---------------------------|
| orders    | `GET /orders`, day of `orderDate`  | orders    | count per status, and     |
|           |                                    |           | total per currency        |
| returns   | `GET /returns`, day of `date`      | returns   | count                     |
| customers | `GET /customers`, day of `created` | customers | count                     |

Both sides go through the same conversions: Centra's raw values are typed with the column
definitions of `schema.py` and the converters of `centra/quirks.py`, exactly as a load would
store them (money as DECIMAL(18,4), the status name, timestamps from the store's timezone),
and a day is the store-local date of the converted timestamp. The snapshot side counts only
rows the pipeline has not marked `_missing_since`.

Memory stays flat: the full read keeps per-day numbers only. The days that differ are then
re-read from Centra (just those days, consecutive days in one window) and compared id by id
with the snapshot rows of those days, so the report can name the records when there are few.

Nothing is written anywhere: the snapshot is opened read-only (and without a spill
directory), and Centra is only read. `verify()` is the entry point for code and benchmarks;
`add_arguments`/`run` are the CLI command.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal, localcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from centra_pipeline.centra import quirks
from centra_pipeline.centra.errors import CentraError
from centra_pipeline.centra.http import HttpConfig, prefetch
from centra_pipeline.centra.jsonstream import RawRecord
from centra_pipeline.centra.order_api import OrderApi, Page
from centra_pipeline.centra.quirks import Coercions, TypeDrift, shift_local
from centra_pipeline.settings import ConfigError, Settings
from centra_pipeline.streams.model import (
    BIGINT,
    CUSTOMERS,
    ORDERS,
    RETURNS,
    TEXT,
    TS,
    Column,
    Table,
)

EXIT_AGREE = 0
EXIT_DRIFT = 1
EXIT_CANNOT_VERIFY = 2

ID_LIST_LIMIT = 20  # differing ids listed per day; beyond that only their number
DETAIL_DAYS_LIMIT = 100  # differing days re-read for ids (the most recent ones)
PROGRESS_INTERVAL = 3.0  # seconds between progress lines on long reads

ProgressCallback = Callable[[str], None]


class VerifyError(Exception):
    """The comparison could not be made (no snapshot, a table missing, bad input); the
    message says what to do."""


# --- what is compared ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Spec:
    name: str
    singular: str
    table: Table
    id_column: str
    day_column: str
    value_columns: tuple[str, ...]  # per-id values compared (orders: status, currency, total)
    value_names: tuple[str, ...]
    read: Callable[[OrderApi, str | None, str | None], Iterator[Page]]  # (api, after, before)

    def column(self, name: str) -> Column:
        return next(col for col in self.table.columns if col.name == name)


SPECS: dict[str, _Spec] = {
    spec.name: spec
    for spec in (
        _Spec(
            "orders",
            "order",
            ORDERS,
            "order_id",
            "order_date",
            ("order_status_name", "order_currency", "grand_total_value"),
            ("status", "currency", "total"),
            lambda api, after, before: api.iter_orders(newer_than=after, older_than=before),
        ),
        _Spec(
            "returns",
            "return",
            RETURNS,
            "return_id",
            "date",
            (),
            (),
            lambda api, after, before: api.iter_returns(newer_than=after, older_than=before),
        ),
        _Spec(
            "customers",
            "customer",
            CUSTOMERS,
            "customer_id",
            "created",
            (),
            (),
            # `created` means "created after"; there is no upper bound: callers keep the days.
            lambda api, after, before: api.iter_customers(created=after),
        ),
    )
}
STREAM_NAMES = tuple(SPECS)


# --- results ---------------------------------------------------------------------------------
@dataclass
class DayNumbers:
    """One side's numbers for one day."""

    count: int = 0
    statuses: dict[str | None, int] = field(default_factory=dict)
    totals: dict[str | None, Decimal] = field(default_factory=dict)

    def add(self, value: tuple[Any, ...], n: int = 1) -> None:
        """Count `n` records with these values (orders: status, currency and their amount)."""
        self.count += n
        if value:
            status, currency, amount = value
            self.statuses[status] = self.statuses.get(status, 0) + n
            self.totals[currency] = self.totals.get(currency, Decimal(0)) + (amount or 0)

    def to_json(self, with_values: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count}
        if with_values:
            out["statuses"] = {_label(k): v for k, v in sorted(self.statuses.items(), key=_key)}
            out["totals"] = {
                _label(k): _money_json(v) for k, v in sorted(self.totals.items(), key=_key)
            }
        return out


@dataclass(frozen=True)
class IdDifference:
    """A record that is on one side only (the other is None) or differs between them."""

    id: int
    centra: dict[str, Any] | None
    snapshot: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "centra": _jsonable(self.centra),
            "snapshot": _jsonable(self.snapshot),
        }


@dataclass
class DayDifference:
    day: date | None
    centra: DayNumbers
    snapshot: DayNumbers
    differing_ids: int | None = None  # found on the re-read; None when not re-read
    ids: list[IdDifference] | None = None  # None when not looked up or too many to list
    note: str | None = None


@dataclass
class StreamResult:
    stream: str
    days_compared: int
    centra_records: int
    snapshot_records: int
    differences: list[DayDifference]

    @property
    def agree(self) -> bool:
        return not self.differences


@dataclass
class VerifyResult:
    snapshot_path: Path
    snapshot_published_at: datetime | None
    order_api_url: str
    timezone: str
    since: date | None
    streams: dict[str, StreamResult]
    seconds: float = 0.0

    @property
    def agree(self) -> bool:
        return all(s.agree for s in self.streams.values())

    @property
    def days_compared(self) -> int:
        return sum(s.days_compared for s in self.streams.values())

    @property
    def days_differing(self) -> int:
        return sum(len(s.differences) for s in self.streams.values())

    @property
    def exit_code(self) -> int:
        return EXIT_AGREE if self.agree else EXIT_DRIFT

    @property
    def verdict(self) -> str:
        names = ", ".join(self.streams)
        window = f" since {self.since.isoformat()}" if self.since else ""
        if self.agree:
            return (
                f"Centra and the snapshot agree: {self.days_compared:,} days of {names}"
                f"{window} compared, no differences."
            )
        per_stream = ", ".join(
            f"{name} {len(s.differences):,}" for name, s in self.streams.items() if s.differences
        )
        return (
            f"Drift: {self.days_differing:,} of {self.days_compared:,} days{window} differ "
            f"between Centra and the snapshot ({per_stream})."
        )

    def to_json(self) -> dict[str, Any]:
        streams = {}
        for name, result in self.streams.items():
            with_values = bool(SPECS[name].value_columns)
            streams[name] = {
                "days_compared": result.days_compared,
                "days_differing": len(result.differences),
                "records": {"centra": result.centra_records, "snapshot": result.snapshot_records},
                "differences": [
                    {
                        "day": d.day.isoformat() if d.day else None,
                        "centra": d.centra.to_json(with_values),
                        "snapshot": d.snapshot.to_json(with_values),
                        "differing_ids": d.differing_ids,
                        "ids": None if d.ids is None else [i.to_json() for i in d.ids],
                        "note": d.note,
                    }
                    for d in result.differences
                ],
            }
        return {
            "status": "agree" if self.agree else "drift",
            "verdict": self.verdict,
            "snapshot": str(self.snapshot_path),
            "snapshot_published_at": self.snapshot_published_at.isoformat()
            if self.snapshot_published_at
            else None,
            "order_api_url": self.order_api_url,
            "timezone": self.timezone,
            "since": self.since.isoformat() if self.since else None,
            "seconds": round(self.seconds, 3),
            "totals": {
                "days_compared": self.days_compared,
                "days_differing": self.days_differing,
                "streams_differing": [n for n, s in self.streams.items() if s.differences],
            },
            "streams": streams,
        }


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


# --- the comparison --------------------------------------------------------------------------
def verify(
    settings: Settings,
    streams: Sequence[str] | None = None,
    since: date | str | None = None,
    progress: ProgressCallback | None = None,
    *,
    progress_interval: float = PROGRESS_INTERVAL,
    http_config: HttpConfig | None = None,
    page_size: int | None = None,
) -> VerifyResult:
    """Compare Centra with the analyst snapshot for `streams` (default all three), for days
    on or after `since` (default all). Reads only; writes nothing.

    Raises ValueError for bad arguments, ConfigError for missing configuration, VerifyError
    when the snapshot cannot be read, CentraError from the Order API, and TypeDrift when
    Centra sends a value the pipeline could not store either.
    """
    started = time.monotonic()
    names = check_streams(streams)
    if isinstance(since, str):
        since = parse_since(since)
    url, key = settings.require_order_api()
    path = settings.snapshot_path
    if not path.is_file():
        raise VerifyError(
            f"no analyst snapshot at {path} yet: run `centra-pipeline sync` (or "
            "`centra-pipeline demo`) first, or point CENTRA_DATA_DIR at the data directory"
        )
    published = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    try:
        # One read-only connection for the whole check: a publish that swaps the file in the
        # meantime does not change what this check sees. No temp directory: nothing spills.
        con = duckdb.connect(str(path), read_only=True, config={"temp_directory": ""})
    except duckdb.Error as exc:
        raise VerifyError(f"could not open the analyst snapshot {path}: {exc}") from None
    config = http_config or HttpConfig(max_requests_per_second=settings.max_requests_per_second)
    sizing = {"page_size": page_size} if page_size else {}
    api = OrderApi.connect(url, key, config=config, **sizing)
    results: dict[str, StreamResult] = {}
    try:
        specs = [SPECS[n] for n in names]
        for spec in specs:
            _check_snapshot_table(con, spec, path)
        for spec in specs:
            results[spec.name] = _verify_stream(
                spec, api, con, settings.timezone, since, progress, progress_interval
            )
    finally:
        api.close()
        con.close()
    return VerifyResult(
        snapshot_path=path,
        snapshot_published_at=published,
        order_api_url=_display_url(url),
        timezone=settings.timezone,
        since=since,
        streams=results,
        seconds=time.monotonic() - started,
    )


def _verify_stream(
    spec: _Spec,
    api: OrderApi,
    con: duckdb.DuckDBPyConnection,
    tz: str,
    since: date | None,
    progress: ProgressCallback | None,
    interval: float,
) -> StreamResult:
    snapshot = _snapshot_days(con, spec, tz, since)
    centra = _centra_days(spec, api, tz, since, _Progress(spec.name, progress, interval))
    days = sorted(set(snapshot) | set(centra), key=_day_key)
    differences = [
        DayDifference(day, centra.get(day, DayNumbers()), snapshot.get(day, DayNumbers()))
        for day in days
        if centra.get(day, DayNumbers()) != snapshot.get(day, DayNumbers())
    ]
    _explain(spec, api, con, tz, differences, progress, interval)
    return StreamResult(
        spec.name,
        days_compared=len(days),
        centra_records=sum(n.count for n in centra.values()),
        snapshot_records=sum(n.count for n in snapshot.values()),
        differences=differences,
    )


def _explain(
    spec: _Spec,
    api: OrderApi,
    con: duckdb.DuckDBPyConnection,
    tz: str,
    differences: list[DayDifference],
    progress: ProgressCallback | None,
    interval: float,
) -> None:
    """Re-read the few differing days from Centra and name the records that differ."""
    candidates: list[DayDifference] = []
    for diff in differences:
        at_least = _min_differing_ids(diff)
        if diff.day is None:
            diff.note = "records without a date cannot be re-read by day"
        elif at_least > ID_LIST_LIMIT:
            diff.note = (
                f"at least {at_least:,} {spec.name} differ: too many to list "
                f"(up to {ID_LIST_LIMIT} per day are)"
            )
        else:
            candidates.append(diff)
    candidates.sort(key=lambda d: d.day or date.min, reverse=True)
    for diff in candidates[DETAIL_DAYS_LIMIT:]:
        diff.note = (
            f"ids not looked up: more than {DETAIL_DAYS_LIMIT} days differ and only the most "
            "recent are re-read; narrow the check with --since"
        )
    chosen = {d.day: d for d in candidates[:DETAIL_DAYS_LIMIT] if d.day is not None}
    if not chosen:
        return
    days = set(chosen)
    label = f"{spec.name} (re-reading {len(days)} day{'s' if len(days) != 1 else ''})"
    centra = _centra_records(spec, api, tz, days, _Progress(label, progress, interval))
    snapshot = _snapshot_records(con, spec, tz, days)
    for day, diff in chosen.items():
        ours, theirs = centra.get(day, {}), snapshot.get(day, {})
        found = [
            IdDifference(
                record_id,
                _values(spec, ours[record_id]) if record_id in ours else None,
                _values(spec, theirs[record_id]) if record_id in theirs else None,
            )
            for record_id in sorted(set(ours) | set(theirs))
            if ours.get(record_id) != theirs.get(record_id)
        ]
        diff.differing_ids = len(found)
        if not found:
            diff.note = (
                "no single record differs on a re-read of this day: Centra changed during "
                "the check, or returned a record twice while paging; run verify again"
            )
        elif len(found) <= ID_LIST_LIMIT:
            diff.ids = found
        else:
            diff.note = (
                f"{len(found):,} {spec.name} differ: too many to list "
                f"(up to {ID_LIST_LIMIT} per day are)"
            )


def _min_differing_ids(diff: DayDifference) -> int:
    """A lower bound on the records that differ on a day, from its numbers alone."""
    c, s = diff.centra, diff.snapshot
    bound = abs(c.count - s.count)
    moved = sum(
        abs(c.statuses.get(k, 0) - s.statuses.get(k, 0)) for k in set(c.statuses) | set(s.statuses)
    )
    return max(bound, (moved + 1) // 2, 1)


# --- Centra side -----------------------------------------------------------------------------
class _Progress:
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


def _day_start(day: date) -> str:
    return f"{day.isoformat()} 00:00:00"


def _just_before(day: date) -> str:
    """The lower bound for records of `day` and later. One second early, so records at
    00:00:00 are read whether Centra's "newer than"/"created after" includes the bound or
    not; records of the day before are dropped by their day."""
    return shift_local(_day_start(day), timedelta(seconds=-1))


def _rows(
    spec: _Spec, records: list[RawRecord], tz: str
) -> Iterator[tuple[int | None, date | None, tuple[Any, ...]]]:
    """(id, store-local day, compared values) per record, as the pipeline would store them."""
    objs = [r.obj for r in records]
    ids = _stored(spec, spec.id_column, objs, tz).to_pylist()
    instants = _stored(spec, spec.day_column, objs, tz)
    days = pc.local_timestamp(instants.cast(pa.timestamp("us", tz=tz))).cast(pa.date32())
    columns = [_stored(spec, name, objs, tz).to_pylist() for name in spec.value_columns]
    values = zip(*columns, strict=True) if columns else (() for _ in objs)
    return zip(ids, days.to_pylist(), values, strict=False)


def _stored(spec: _Spec, name: str, objs: list[dict[str, Any]], tz: str) -> pa.Array:
    """One column of a page, converted exactly as a load converts it (schema transform, then
    the quirks converter of the column's type)."""
    column = spec.column(name)
    assert column.source is not None
    values = [obj.get(column.source) for obj in objs]
    if column.transform is not None:
        values = [column.transform(v) for v in values]
    label = f"{spec.table.name}.{name}"
    coercions = Coercions()
    if column.type == BIGINT:
        return quirks.column_int(label, values, coercions)
    if column.type == TEXT:
        return quirks.column_str(label, values, coercions)
    if column.type == TS:
        return quirks.column_timestamp(label, values, coercions, tz)
    if column.type.startswith("DECIMAL("):
        precision, scale = (int(x) for x in column.type[8:-1].split(","))
        return quirks.column_decimal(label, values, coercions, precision, scale)
    raise AssertionError(f"verify does not compare {column.type} columns ({label})")


def _centra_days(
    spec: _Spec, api: OrderApi, tz: str, since: date | None, progress: _Progress
) -> dict[date | None, DayNumbers]:
    days: dict[date | None, DayNumbers] = {}
    pages = spec.read(api, _just_before(since) if since else None, None)
    with localcontext(_MONEY_CONTEXT):
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


def _windows(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days as (first, last) ranges."""
    out: list[tuple[date, date]] = []
    for day in sorted(days):
        if out and out[-1][1] + timedelta(days=1) == day:
            out[-1] = (out[-1][0], day)
        else:
            out.append((day, day))
    return out


def _centra_records(
    spec: _Spec, api: OrderApi, tz: str, days: set[date], progress: _Progress
) -> dict[date, dict[int, tuple[Any, ...]]]:
    """The records of `days` as Centra serves them now: day → id → compared values."""
    found: dict[date, dict[int, tuple[Any, ...]]] = {day: {} for day in days}
    if spec.name == "customers":  # "created after" only: one read from the earliest day
        reads = [spec.read(api, _just_before(min(days)), None)]
    else:
        reads = [
            spec.read(api, _just_before(first), _day_start(last + timedelta(days=1)))
            for first, last in _windows(days)
        ]
    for pages in reads:
        for page in prefetch(pages):
            progress.page(len(page.records))
            for record_id, day, value in _rows(spec, page.records, tz):
                if day in found and record_id is not None:
                    found[day][record_id] = value
    progress.done()
    return found


# --- snapshot side ---------------------------------------------------------------------------
def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_snapshot_table(con: duckdb.DuckDBPyConnection, spec: _Spec, path: Path) -> None:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ?",
        [spec.table.name],
    ).fetchall()
    present = {r[0] for r in rows}
    needed = {spec.id_column, spec.day_column, *spec.value_columns, "_missing_since"}
    if not present:
        raise VerifyError(
            f"the analyst snapshot {path} has no table {spec.table.name}: run "
            f"`centra-pipeline sync` to publish it, or leave it out with --stream"
        )
    missing = sorted(needed - present)
    if missing:
        raise VerifyError(
            f"the analyst snapshot {path} table {spec.table.name} lacks column(s) "
            f"{', '.join(missing)}: it was published by another version of the pipeline; "
            "run `centra-pipeline sync` to publish a current one"
        )


def _snapshot_rows_sql(spec: _Spec) -> str:
    """Present rows with their store-local day (parameter 1: the timezone)."""
    values = "".join(f", {_q(c)}" for c in spec.value_columns)
    return (
        f"SELECT {_q(spec.id_column)} AS id, "
        f"CAST(timezone(?, {_q(spec.day_column)}) AS DATE) AS day{values} "
        f"FROM main.{_q(spec.table.name)} WHERE _missing_since IS NULL"
    )


def _snapshot_days(
    con: duckdb.DuckDBPyConnection, spec: _Spec, tz: str, since: date | None
) -> dict[date | None, DayNumbers]:
    days: dict[date | None, DayNumbers] = {}
    where = "WHERE day >= ?::DATE" if since else ""
    params: list[Any] = [tz] + ([since] if since else [])
    if spec.value_columns:
        status, currency, total = (_q(c) for c in spec.value_columns)
        sql = (
            f"SELECT day, {status}, {currency}, count(*), coalesce(sum({total}), 0) "
            f"FROM ({_snapshot_rows_sql(spec)}) {where} GROUP BY ALL"
        )
        with localcontext(_MONEY_CONTEXT):
            for day, status_v, currency_v, n, amount in con.execute(sql, params).fetchall():
                days.setdefault(day, DayNumbers()).add((status_v, currency_v, amount), n)
    else:
        sql = f"SELECT day, count(*) FROM ({_snapshot_rows_sql(spec)}) {where} GROUP BY ALL"
        for day, n in con.execute(sql, params).fetchall():
            days.setdefault(day, DayNumbers()).add((), n)
    return days


def _snapshot_records(
    con: duckdb.DuckDBPyConnection, spec: _Spec, tz: str, days: set[date]
) -> dict[date, dict[int, tuple[Any, ...]]]:
    found: dict[date, dict[int, tuple[Any, ...]]] = {day: {} for day in days}
    sql = f"SELECT * FROM ({_snapshot_rows_sql(spec)}) WHERE list_contains(?::DATE[], day)"
    for record_id, day, *values in con.execute(sql, [tz, sorted(days)]).fetchall():
        found[day][record_id] = tuple(values)
    return found


# --- formatting ------------------------------------------------------------------------------
_MONEY_CONTEXT = Context(prec=60)  # sums of DECIMAL(18,4) stay exact


def _money(value: Decimal) -> str:
    cents = value.quantize(Decimal("0.01"))
    return f"{cents:,.2f}" if cents == value else f"{value.normalize():,f}"


def _money_json(value: Decimal) -> str:
    return _money(value).replace(",", "")


def _label(value: Any) -> str:
    return "(none)" if value is None else str(value)


def _key(item: tuple[Any, Any]) -> tuple[bool, str]:
    return (item[0] is not None, str(item[0]))


def _day_key(day: date | None) -> date:
    return date.min if day is None else day


def _values(spec: _Spec, values: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(spec.value_names, values, strict=True))


def _jsonable(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: _money_json(v) if isinstance(v, Decimal) else v for k, v in values.items()}


def _display_url(url: str) -> str:
    """The URL without any user:password part."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _describe(values: dict[str, Any]) -> str:
    if not values:
        return ""
    total = values.get("total")
    return " ".join(
        [
            _label(values.get("status")),
            _label(values.get("currency")),
            "-" if total is None else _money(total),
        ]
    )


def _day_line(spec: _Spec, diff: DayDifference) -> str:
    c, s = diff.centra, diff.snapshot
    parts = []
    if c.count != s.count:
        parts.append(f"{spec.name} {c.count:,} vs {s.count:,}")
    for status in sorted(set(c.statuses) | set(s.statuses), key=lambda v: _label(v)):
        a, b = c.statuses.get(status, 0), s.statuses.get(status, 0)
        if a != b:
            parts.append(f"{_label(status)} {a:,} vs {b:,}")
    for currency in sorted(set(c.totals) | set(s.totals), key=lambda v: _label(v)):
        a, b = c.totals.get(currency, Decimal(0)), s.totals.get(currency, Decimal(0))
        if a != b:
            parts.append(f"{_label(currency)} {_money(a)} vs {_money(b)}")
    day = diff.day.isoformat() if diff.day else "(no date)"
    return f"  {day}: {'; '.join(parts)}"


def _id_line(spec: _Spec, item: IdDifference) -> str:
    name = f"{spec.singular} {item.id}"
    if item.snapshot is None:
        detail = _describe(item.centra or {})
        return f"    {name}: only in Centra" + (f" ({detail})" if detail else "")
    if item.centra is None:
        detail = _describe(item.snapshot)
        return f"    {name}: only in the snapshot" + (f" ({detail})" if detail else "")
    return f"    {name}: Centra {_describe(item.centra)}, snapshot {_describe(item.snapshot)}"


def format_text(result: VerifyResult) -> str:
    """The report: the days that differ with both sides' numbers (Centra vs snapshot), the
    records that differ when there are few, and a one-sentence verdict on the last line."""
    published = (
        f" (published {result.snapshot_published_at:%Y-%m-%d %H:%M} UTC)"
        if result.snapshot_published_at
        else ""
    )
    window = f"days since {result.since.isoformat()}" if result.since else "all days"
    lines = [
        f"Centra: {result.order_api_url}",
        f"snapshot: {result.snapshot_path}{published}",
        f"Compared per store-local day ({result.timezone}), {window}; numbers are Centra vs "
        "snapshot.",
    ]
    latest_differing: date | None = None
    for name, stream in result.streams.items():
        spec = SPECS[name]
        records = f"Centra {stream.centra_records:,} {name}, snapshot {stream.snapshot_records:,}"
        if stream.agree:
            lines.append(f"{name}: {stream.days_compared:,} days compared, all agree ({records})")
            continue
        k = len(stream.differences)
        lines.append(
            f"{name}: {stream.days_compared:,} days compared, {k:,} differ{'s' if k == 1 else ''}"
            f" ({records})"
        )
        for diff in stream.differences:
            lines.append(_day_line(spec, diff))
            lines.extend(_id_line(spec, item) for item in diff.ids or [])
            if diff.note:
                lines.append(f"    {diff.note}")
            if diff.day and (latest_differing is None or diff.day > latest_differing):
                latest_differing = diff.day
    if latest_differing and result.snapshot_published_at:
        local_publish = result.snapshot_published_at.astimezone(ZoneInfo(result.timezone)).date()
        if latest_differing >= local_publish:
            lines.append(
                "Note: records Centra created or changed after the snapshot was published "
                "show as differences until the next sync and publish."
            )
    lines.append(result.verdict)
    return "\n".join(lines)


# --- CLI -------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Compare Centra (Order API) with the analyst snapshot per store-local day: orders "
        "per status and totals per currency, returns and customers per day. Reads only. "
        "Exit 0: they agree; 1: drift; 2: could not verify."
    )
    parser.add_argument(
        "--since",
        metavar="YYYY-MM-DD",
        help="only days on or after this store-local date (default: all days)",
    )
    parser.add_argument(
        "--stream",
        action="append",
        metavar="NAME",
        help=f"only this stream (repeatable): {', '.join(STREAM_NAMES)} (default all)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def _progress_line(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """`centra-pipeline verify`: 0 when Centra and the snapshot agree, 1 on drift, 2 when it
    could not verify (bad input, configuration, no snapshot, Centra unreachable or refusing)."""
    as_json = bool(getattr(args, "json", False))
    try:  # bad input: refused before anything is read
        streams = check_streams(args.stream)
        since = parse_since(args.since) if args.since is not None else None
    except ValueError as exc:
        return _cannot_verify(str(exc), as_json)
    try:
        settings = Settings.from_env()
        result = verify(settings, streams, since, progress=_progress_line)
    except (ConfigError, VerifyError, CentraError) as exc:
        return _cannot_verify(str(exc), as_json)
    except TypeDrift as exc:
        return _cannot_verify(
            f"Centra sent a value the pipeline cannot store ({exc}); a sync fails on it too",
            as_json,
        )
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(format_text(result))
    return result.exit_code


def _cannot_verify(message: str, as_json: bool) -> int:
    print(f"centra-pipeline verify: {message}", file=sys.stderr)
    verdict = f"Could not verify: {message}"
    if as_json:
        print(json.dumps({"status": "could_not_verify", "verdict": verdict, "error": message}))
    else:
        print(verdict)
    return EXIT_CANNOT_VERIFY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="centra-pipeline verify")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
