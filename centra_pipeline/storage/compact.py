"""Lake compaction: a stream's small loads become one segment per month.

An hourly sync and the webhook refreshes land thousands of loads a month, one directory each,
and every lake read pays for all of them. Compaction copies the loads of a month, rows and
raw JSON untouched, into a segment: a few large Parquet files per table, rows in load order,
with every load's manifest beside them. A segment reads back as the loads it holds
(`Lake.loads`), so a table rebuilt from the lake is the same before and after.

Crash safety (docs/architecture.md, "The lake over years"): the segment is written into
`segment=<first day>_<last day>-<token>.tmp-<pid>/`, fsynced, and renamed into place; on
object storage (no rename) it is written in the staging directory and uploaded, its
`_segment.json` last. Until that rename or PUT the lake is as before; from it on, readers take
the segment and ignore the loads and older segments it holds, so the lake is as after, even
while those still exist. Removing them is the last step, and the next run finishes it if a
kill came first, along with any segment directory a dead compaction left without its marker.

Only loads the warehouse has merged are compacted: a run that landed a load and waits to
merge it (for the writer lock the caller holds) still finds its files where it left them.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from centra_pipeline.storage.lake import (
    MANIFEST,
    SEGMENT,
    SEGMENT_DIR,
    SEGMENT_LOADS,
    Lake,
    LoadManifest,
    PartWriter,
    Segment,
)
from centra_pipeline.streams.model import Stream
from centra_pipeline.streams.rows import lake_schema
from centra_pipeline.testing.failpoints import failpoint

if TYPE_CHECKING:
    from centra_pipeline.storage.warehouse import Warehouse

log = logging.getLogger(__name__)

# Smaller row groups than a load's: a compacted load is read back by its `_load_id`, and the
# row groups' min/max statistics let a reader skip all but the one or two that hold it.
SEGMENT_ROW_GROUP_ROWS = 2_000
READ_BATCH_ROWS = 2_000


@dataclass
class StreamCompaction:
    """What one stream's compaction did."""

    stream: str
    loads: int = 0  # loads copied into the segments written
    segments: list[str] = field(default_factory=list)  # segment directories written
    files_before: int = 0  # Parquet files of the stream before and after
    files_after: int = 0
    removed: int = 0  # directories removed: compacted loads, superseded segments, leftovers
    left_unmerged: int = 0  # old enough, but not merged into the warehouse yet
    left_older_schema: list[str] = field(default_factory=list)  # loads with other columns
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "loads_compacted": self.loads,
            "segments_written": len(self.segments),
            "files_before": self.files_before,
            "files_after": self.files_after,
            "directories_removed": self.removed,
            "left_unmerged": self.left_unmerged,
            "left_older_schema": len(self.left_older_schema),
            "seconds": round(self.seconds, 2),
        }


def compact_lake(
    warehouse: Warehouse,
    lake: Lake,
    streams: list[Stream],
    *,
    older_than: timedelta,
    now: datetime | None = None,
    on_month: Callable[[str, str, int], None] | None = None,
) -> list[StreamCompaction]:
    """Compact each stream, holding the warehouse's writer lock: a compaction queues with the
    syncs and refreshes, and two compactions never run at once."""
    merged = {stream.name: _merged_load_ids(warehouse, stream.name) for stream in streams}
    with warehouse.locked(exclusive=True):
        return [
            compact_stream(
                lake,
                stream,
                merged=merged[stream.name],
                older_than=older_than,
                now=now,
                on_month=(lambda m, n, s=stream.name: on_month(s, m, n)) if on_month else None,
            )
            for stream in streams
        ]


def _merged_load_ids(warehouse: Warehouse, stream: str) -> set[str]:
    if not warehouse.has_table("load_log", "pipeline"):
        return set()
    sql = "SELECT load_id FROM pipeline.load_log WHERE stream = ?"
    return {row[0] for row in warehouse.query(sql, [stream])}


def parquet_files(lake: Lake, stream: str) -> int:
    """Parquet files the stream's complete loads and segments hold."""
    names: dict[str, set[str]] = defaultdict(set)
    for path in lake.files(stream):
        directory, _, name = path.rpartition("/")
        names[directory].add(name)
    return sum(
        sum(name.endswith(".parquet") for name in found)
        for directory, found in names.items()
        if ".tmp-" not in directory and found & {MANIFEST, SEGMENT}
    )


def compact_stream(
    lake: Lake,
    stream: Stream,
    *,
    merged: Collection[str],
    older_than: timedelta,
    now: datetime | None = None,
    on_month: Callable[[str, int], None] | None = None,
) -> StreamCompaction:
    """Compact the stream's loads that finished before `now - older_than` and whose ids are in
    `merged`, one segment per month (a month's earlier segment is taken into the new one)."""
    started = time.perf_counter()
    result = StreamCompaction(stream.name, files_before=parquet_files(lake, stream.name))
    lake.clean_abandoned(stream.name)
    result.removed += finish_switch(lake, stream.name)
    cutoff = (now or datetime.now(UTC)) - older_than
    months: dict[str, list[Segment | LoadManifest]] = defaultdict(list)
    for segment in lake.segments(stream.name):
        months[segment.info["month"]].append(segment)
    for manifest in lake.loads(stream.name):
        if manifest.segment:
            continue
        if datetime.fromisoformat(manifest.finished_at or manifest.started_at) >= cutoff:
            continue
        if manifest.load_id not in merged:
            result.left_unmerged += 1
        elif not _has_current_schema(lake, stream, manifest):
            result.left_older_schema.append(manifest.load_id)
        else:
            months[_day_of(manifest)[:7]].append(manifest)
    for month, sources in sorted(months.items()):
        if len(sources) < 2:  # one load or one segment: nothing to merge
            continue
        if on_month:
            on_month(month, len(sources))
        name, loads = _write_segment(lake, stream, month, sources)
        result.segments.append(name)
        result.loads += loads
        result.removed += finish_switch(lake, stream.name)
    result.files_after = parquet_files(lake, stream.name)
    result.seconds = time.perf_counter() - started
    return result


def finish_switch(lake: Lake, stream: str) -> int:
    """Remove what live segments have taken in: superseded segments and compacted loads
    (the last step of a compaction, or what a killed one left), and segment directories
    without their marker, which only a dead compaction leaves (the caller holds the writer
    lock: no other compaction is running). Returns directories removed."""
    live = lake.segments(stream)
    live_names = {segment.path.name for segment in live}
    covered = {load_id for segment in live for load_id in segment.load_ids}
    doomed = []
    for name in lake.subdirs(stream):
        if SEGMENT_DIR.match(name) and name not in live_names:
            doomed.append(lake.path_of(stream, name))
        elif name.startswith("day="):
            doomed += [
                lake.path_of(stream, name, load)
                for load in lake.subdirs(stream, name)
                if ".tmp-" not in load and load.removeprefix("load=") in covered
            ]
    for path in doomed:
        lake.remove_dir(path)
    return len(doomed)


def _day_of(manifest: LoadManifest) -> str:
    return Path(manifest.path).parent.name.removeprefix("day=")


def _has_current_schema(lake: Lake, stream: Stream, manifest: LoadManifest) -> bool:
    for table in stream.tables:
        expected = lake_schema(table)
        for path in manifest.file_paths(table.name):
            with lake.open_file(path) as handle:
                if not pq.read_schema(handle).equals(expected, check_metadata=False):
                    return False
    return True


def _source_files(source: Segment | LoadManifest, table: str) -> list[str]:
    if isinstance(source, Segment):
        return [str(source.path / rel) for rel in source.files.get(table, [])]
    return source.file_paths(table)


def _source_entries(source: Segment | LoadManifest) -> list[dict[str, Any]]:
    return source.entries() if isinstance(source, Segment) else [source.as_dict()]


def _source_days(source: Segment | LoadManifest) -> tuple[str, str]:
    if isinstance(source, Segment):
        return source.info["first_day"], source.info["last_day"]
    day = _day_of(source)
    return day, day


def _write_segment(
    lake: Lake, stream: Stream, month: str, sources: list[Segment | LoadManifest]
) -> tuple[str, int]:
    """Write one segment from `sources` and switch to it; returns its name and loads."""
    # Earlier segments first (they hold older loads), then loose loads, each in id order:
    # the rows end up in load order, which keeps each load within a row group or two.
    sources = sorted(
        sources,
        key=lambda s: (
            isinstance(s, LoadManifest),
            s.load_ids[0] if isinstance(s, Segment) else s.load_id,
        ),
    )
    days = [day for source in sources for day in _source_days(source)]
    first, last = min(days), max(days)
    base = lake.stream_dir(stream.name)  # on object storage, its staging directory
    name = f"segment={first}_{last}-{secrets.token_hex(3)}"
    tmp = base / f"{name}.tmp-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        entries = sorted(
            (entry for source in sources for entry in _source_entries(source)),
            key=lambda e: e["load_id"],
        )
        files, rows = {}, {}
        for table in stream.tables:
            part = PartWriter(
                tmp, table.name, lake_schema(table), row_group_rows=SEGMENT_ROW_GROUP_ROWS
            )
            for source in sources:
                for path in _source_files(source, table.name):
                    with lake.open_file(path) as handle:
                        for batch in pq.ParquetFile(handle).iter_batches(READ_BATCH_ROWS):
                            part.add(batch)
            files[table.name], rows[table.name] = part.close()
            expected = sum(entry["rows"].get(table.name, 0) for entry in entries)
            if rows[table.name] != expected:
                raise RuntimeError(
                    f"compacting {stream.name} {month}: {table.name} has {rows[table.name]} "
                    f"rows in the segment, its loads say {expected}; nothing was changed"
                )
        replaces = sorted(
            {s.path.name for s in sources if isinstance(s, Segment)}
            | {old for s in sources if isinstance(s, Segment) for old in s.replaces}
        )
        (tmp / SEGMENT_LOADS).write_text(json.dumps(entries, sort_keys=True))
        info = {
            "stream": stream.name,
            "month": month,
            "first_day": first,
            "last_day": last,
            "created_at": datetime.now(UTC).isoformat(),
            "load_ids": [entry["load_id"] for entry in entries],
            "replaces": replaces,
            "files": files,
            "rows": rows,
        }
        (tmp / SEGMENT).write_text(json.dumps(info, indent=1, sort_keys=True))
        lake.place(tmp, base / name, SEGMENT, "compact.before_switch")  # the switch
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("%s %s: %s loads compacted into %s", stream.name, month, len(entries), name)
    failpoint("compact.after_switch")
    return name, len(entries)
