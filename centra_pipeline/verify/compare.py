"""The comparison: each stream's numbers per store-local day from both sides, then a re-read
of the few days that differ (just those days, consecutive days in one window), compared id
by id with the snapshot rows of those days, so the report can name the records.

`verify()` is the entry point for code and benchmarks; the command is
`centra_pipeline.cli.verify`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import duckdb

from centra_pipeline.centra.http import HttpConfig
from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.settings import Settings
from centra_pipeline.verify.centra_side import (
    ProgressCallback,
    ReadProgress,
    centra_days,
    centra_records,
)
from centra_pipeline.verify.results import (
    DayDifference,
    DayNumbers,
    IdDifference,
    StreamResult,
    VerifyError,
    VerifyResult,
)
from centra_pipeline.verify.snapshot_side import (
    check_snapshot_table,
    open_snapshot,
    snapshot_days,
    snapshot_records,
)
from centra_pipeline.verify.specs import SPECS, StreamSpec, check_streams, parse_since

ID_LIST_LIMIT = 20  # differing ids listed per day; beyond that only their number
DETAIL_DAYS_LIMIT = 100  # differing days re-read for ids (the most recent ones)
PROGRESS_INTERVAL = 3.0  # seconds between progress lines on long reads

StartRead = Callable[[str], ReadProgress]  # a label → the progress counter of a new read


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
    specs = [SPECS[name] for name in check_streams(streams)]
    if isinstance(since, str):
        since = parse_since(since)
    url, key = settings.require_order_api()
    path = _snapshot_file(settings)
    published = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    con = open_snapshot(path)
    api = _order_api(settings, url, key, http_config, page_size)
    start_read = partial(ReadProgress, report=progress, interval=progress_interval)
    results: dict[str, StreamResult] = {}
    try:
        for spec in specs:  # every table first: a missing one fails before any slow read
            check_snapshot_table(con, spec, path)
        for spec in specs:
            results[spec.name] = _verify_stream(
                spec, api, con, settings.timezone, since, start_read
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


def _snapshot_file(settings: Settings) -> Path:
    from centra_pipeline.storage.backends import fetch_snapshot

    path = fetch_snapshot(settings)
    if not path.is_file():
        raise VerifyError(
            f"no analyst snapshot at {path} yet: run `centra-pipeline sync` (or "
            "`centra-pipeline demo`) first, or point CENTRA_DATA_DIR at the data directory"
        )
    return path


def _order_api(
    settings: Settings, url: str, key: str, http_config: HttpConfig | None, page_size: int | None
) -> OrderApi:
    config = http_config or HttpConfig.from_settings(settings)
    sizing = {"page_size": page_size} if page_size else {}
    return OrderApi.connect(url, key, config=config, **sizing)


def _display_url(url: str) -> str:
    """The URL without any user:password part."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _verify_stream(
    spec: StreamSpec,
    api: OrderApi,
    con: duckdb.DuckDBPyConnection,
    tz: str,
    since: date | None,
    start_read: StartRead,
) -> StreamResult:
    snapshot = snapshot_days(con, spec, tz, since)
    centra = centra_days(spec, api, tz, since, start_read(spec.name))
    days = sorted(set(snapshot) | set(centra), key=_day_key)
    differences = [
        DayDifference(day, centra.get(day, DayNumbers()), snapshot.get(day, DayNumbers()))
        for day in days
        if centra.get(day, DayNumbers()) != snapshot.get(day, DayNumbers())
    ]
    _explain(spec, api, con, tz, differences, start_read)
    return StreamResult(
        spec.name,
        days_compared=len(days),
        centra_records=sum(n.count for n in centra.values()),
        snapshot_records=sum(n.count for n in snapshot.values()),
        differences=differences,
    )


def _day_key(day: date | None) -> date:
    return date.min if day is None else day


# --- naming the records behind a differing day -------------------------------------------
def _explain(
    spec: StreamSpec,
    api: OrderApi,
    con: duckdb.DuckDBPyConnection,
    tz: str,
    differences: list[DayDifference],
    start_read: StartRead,
) -> None:
    """Re-read the few differing days from Centra and name the records that differ."""
    chosen = _days_to_reread(spec, differences)
    if not chosen:
        return
    days = set(chosen)
    label = f"{spec.name} (re-reading {len(days)} day{'s' if len(days) != 1 else ''})"
    centra = centra_records(spec, api, tz, days, start_read(label))
    snapshot = snapshot_records(con, spec, tz, days)
    for day, diff in chosen.items():
        found = _id_differences(spec, centra.get(day, {}), snapshot.get(day, {}))
        _list_ids(spec, diff, found)


def _days_to_reread(
    spec: StreamSpec, differences: list[DayDifference]
) -> dict[date, DayDifference]:
    """The differing days worth a re-read, the most recent ones; every other differing day
    gets a note saying why its records are not named."""
    candidates: list[DayDifference] = []
    for diff in differences:
        at_least = _min_differing_ids(diff)
        if diff.day is None:
            diff.note = "records without a date cannot be re-read by day"
        elif at_least > ID_LIST_LIMIT:
            diff.note = _too_many(spec, f"at least {at_least:,}")
        else:
            candidates.append(diff)
    candidates.sort(key=lambda d: d.day or date.min, reverse=True)
    for diff in candidates[DETAIL_DAYS_LIMIT:]:
        diff.note = (
            f"ids not looked up: more than {DETAIL_DAYS_LIMIT} days differ and only the most "
            "recent are re-read; narrow the check with --since"
        )
    return {d.day: d for d in candidates[:DETAIL_DAYS_LIMIT] if d.day is not None}


def _min_differing_ids(diff: DayDifference) -> int:
    """A lower bound on the records that differ on a day, from its numbers alone."""
    c, s = diff.centra, diff.snapshot
    bound = abs(c.count - s.count)
    moved = sum(
        abs(c.statuses.get(k, 0) - s.statuses.get(k, 0)) for k in set(c.statuses) | set(s.statuses)
    )
    return max(bound, (moved + 1) // 2, 1)


def _id_differences(
    spec: StreamSpec, ours: dict[int, tuple], theirs: dict[int, tuple]
) -> list[IdDifference]:
    """The records of one day that differ between Centra (`ours`) and the snapshot."""
    return [
        IdDifference(
            record_id,
            spec.named(ours[record_id]) if record_id in ours else None,
            spec.named(theirs[record_id]) if record_id in theirs else None,
        )
        for record_id in sorted(set(ours) | set(theirs))
        if ours.get(record_id) != theirs.get(record_id)
    ]


def _list_ids(spec: StreamSpec, diff: DayDifference, found: list[IdDifference]) -> None:
    diff.differing_ids = len(found)
    if not found:
        diff.note = (
            "no single record differs on a re-read of this day: Centra changed during "
            "the check, or returned a record twice while paging; run verify again"
        )
    elif len(found) <= ID_LIST_LIMIT:
        diff.ids = found
    else:
        diff.note = _too_many(spec, f"{len(found):,}")


def _too_many(spec: StreamSpec, how_many: str) -> str:
    return f"{how_many} {spec.name} differ: too many to list (up to {ID_LIST_LIMIT} per day are)"
