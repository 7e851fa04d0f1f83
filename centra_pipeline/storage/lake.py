"""The lake: every extracted batch as immutable Parquet (zstd), one file set per load.

Layout (hive-style, so one load or one day is a single directory to read):

    lake/<stream>/day=<YYYY-MM-DD>/load=<load_id>/<table>-<part>.parquet
                                                 /_manifest.json

A load is written into `load=<id>.tmp-<pid>/` and renamed into place after its manifest is
written and everything is fsynced: a directory without the `.tmp` suffix is complete, and
nothing is ever rewritten. Leftovers of killed writers (their pid is gone) are removed by the
next writer of the same stream.

The manifest says what the load read (mode, window, cursor before and the cursor the load
proves), how much (records, requests, retries, bytes) and what it saw (schema drift,
coercions, keys asked for that Centra did not return). The warehouse merges from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from centra_pipeline.centra.quirks import Coercions
from centra_pipeline.streams.model import Stream
from centra_pipeline.streams.rows import Batch, Drift, lake_schema
from centra_pipeline.testing.failpoints import failpoint

MANIFEST = "_manifest.json"
ROWS_PER_FILE = 500_000
ROW_GROUP_ROWS = 20_000
ROW_GROUP_BYTES = 24 * 1024 * 1024
_TMP = re.compile(r"^load=(?P<id>.+)\.tmp-(?P<pid>\d+)$")


def new_load_id(stream: str, now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S%f}Z-{stream}-{secrets.token_hex(3)}"


@dataclass
class LoadManifest:
    load_id: str
    stream: str
    mode: str  # incremental | full_refresh | backfill | refresh | reconcile | reconcile_open
    started_at: str
    finished_at: str = ""
    window: dict[str, Any] = field(default_factory=dict)
    cursor_before: str | None = None
    cursor_after: str | None = None  # None: this load does not move the cursor
    files: dict[str, list[str]] = field(default_factory=dict)  # table -> paths relative to load dir
    rows: dict[str, int] = field(default_factory=dict)
    records: int = 0  # records landed (a catalogue read lands only the changed ones)
    records_read: int = 0  # records Centra returned
    pages: int = 0
    requests: int = 0
    retries: int = 0
    rereads: int = 0  # pages re-requested because records left the result set mid-read
    bytes: int = 0
    requested_keys: list[Any] = field(default_factory=list)  # refresh: keys asked for
    missing_keys: list[Any] = field(default_factory=list)  # asked for / known, not returned
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)
    coercions: dict[str, Any] = field(default_factory=dict)
    # webhook events this load applied: {inbox_id, after_seq, through_seq, events, orders}
    inbox: dict[str, Any] | None = None
    path: str = ""  # absolute directory, filled in when read

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("path")
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def read(cls, directory: Path) -> LoadManifest:
        data = json.loads((directory / MANIFEST).read_text())
        manifest = cls(**data)
        manifest.path = str(directory)
        return manifest

    def file_paths(self, table: str) -> list[str]:
        return [str(Path(self.path) / rel) for rel in self.files.get(table, [])]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lake:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def stream_dir(self, stream: str) -> Path:
        return self.root / stream

    def loads(
        self, stream: str, since_day: str | None = None, skip: set[str] | frozenset = frozenset()
    ) -> list[LoadManifest]:
        """Complete loads of a stream, oldest first (load ids sort by time); with `since_day`
        ("YYYY-MM-DD"), only the day directories from that day on are read. Loads whose id
        is in `skip` are left out without reading their manifests."""
        base = self.stream_dir(stream)
        if not base.exists():
            return []
        found = []
        for day_dir in sorted(base.glob("day=*")):
            if since_day and day_dir.name.removeprefix("day=") < since_day:
                continue
            for manifest_path in day_dir.glob(f"load=*/{MANIFEST}"):
                name = manifest_path.parent.name
                if ".tmp-" in name or name.removeprefix("load=") in skip:
                    continue
                found.append(LoadManifest.read(manifest_path.parent))
        return sorted(found, key=lambda m: m.load_id)

    def clean_abandoned(self, stream: str) -> list[Path]:
        """Remove partial loads whose writer process is gone (killed mid-extraction)."""
        removed = []
        base = self.stream_dir(stream)
        if not base.exists():
            return removed
        for candidate in base.glob("day=*/load=*.tmp-*"):
            match = _TMP.match(candidate.name)
            if match and not pid_alive(int(match["pid"])):
                shutil.rmtree(candidate, ignore_errors=True)
                removed.append(candidate)
        return removed

    def writer(self, stream: Stream, load_id: str, mode: str, started_at: datetime) -> LoadWriter:
        return LoadWriter(self, stream, load_id, mode, started_at)


class LoadWriter:
    """Streams batches into Parquet files, buffering up to a row group per table."""

    def __init__(
        self, lake: Lake, stream: Stream, load_id: str, mode: str, started_at: datetime
    ) -> None:
        self.lake = lake
        self.stream = stream
        day = started_at.astimezone(UTC).strftime("%Y-%m-%d")
        self.final_dir = lake.stream_dir(stream.name) / f"day={day}" / f"load={load_id}"
        self.tmp_dir = self.final_dir.with_name(f"{self.final_dir.name}.tmp-{os.getpid()}")
        self.tmp_dir.mkdir(parents=True, exist_ok=False)
        self.manifest = LoadManifest(
            load_id=load_id,
            stream=stream.name,
            mode=mode,
            started_at=started_at.astimezone(UTC).isoformat(),
        )
        self._drift = Drift()
        self._coercions = Coercions()
        self._buffers: dict[str, list[pa.Table]] = {t.name: [] for t in stream.tables}
        self._buffered_rows: dict[str, int] = dict.fromkeys(self._buffers, 0)
        self._buffered_bytes: dict[str, int] = dict.fromkeys(self._buffers, 0)
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._file_rows: dict[str, int] = dict.fromkeys(self._buffers, 0)
        self._parts: dict[str, int] = dict.fromkeys(self._buffers, 0)
        self.manifest.rows = dict.fromkeys(self._buffers, 0)
        self.manifest.files = {name: [] for name in self._buffers}
        self._closed = False

    def write(self, batch: Batch) -> None:
        self.manifest.records += batch.records
        self._drift.merge(batch.drift)
        self._coercions.merge(batch.coercions)
        for name, table in batch.tables.items():
            if table.num_rows == 0:
                continue
            self._buffers[name].append(table)
            self._buffered_rows[name] += table.num_rows
            self._buffered_bytes[name] += table.nbytes
            if (
                self._buffered_rows[name] >= ROW_GROUP_ROWS
                or self._buffered_bytes[name] >= ROW_GROUP_BYTES
            ):
                self._flush(name)

    def _flush(self, name: str) -> None:
        if not self._buffers[name]:
            return
        table = pa.concat_tables(self._buffers[name])
        self._buffers[name] = []
        self._buffered_rows[name] = 0
        self._buffered_bytes[name] = 0
        writer = self._writers.get(name)
        if writer is not None and self._file_rows[name] >= ROWS_PER_FILE:
            writer.close()
            writer = None
        if writer is None:
            rel = f"{name}-{self._parts[name]:05d}.parquet"
            self._parts[name] += 1
            self.manifest.files[name].append(rel)
            writer = pq.ParquetWriter(
                self.tmp_dir / rel,
                lake_schema(_table(self.stream, name)),
                compression="zstd",
                compression_level=1,
            )
            self._writers[name] = writer
            self._file_rows[name] = 0
        writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self._file_rows[name] += table.num_rows
        self.manifest.rows[name] += table.num_rows

    def commit(self, **fields: Any) -> LoadManifest:
        """Close the files, write the manifest, fsync and move the load into place."""
        for name in self._buffers:
            self._flush(name)
        for writer in self._writers.values():
            writer.close()
        for key, value in fields.items():
            setattr(self.manifest, key, value)
        self.manifest.finished_at = datetime.now(UTC).isoformat()
        self.manifest.drift = self._drift.fields
        self.manifest.coercions = {
            column: {"count": n, "sample": self._coercions.samples.get(column, "")}
            for column, n in self._coercions.counts.items()
        }
        (self.tmp_dir / MANIFEST).write_text(self.manifest.to_json())
        failpoint("lake.before_commit")
        for path in self.tmp_dir.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(self.tmp_dir)
        os.rename(self.tmp_dir, self.final_dir)
        _fsync_dir(self.final_dir.parent)
        self._closed = True
        self.manifest.path = str(self.final_dir)
        return self.manifest

    def abort(self) -> None:
        if self._closed:
            return
        for writer in self._writers.values():
            with contextlib.suppress(Exception):  # best effort on an error path
                writer.close()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self._closed = True


def _table(stream: Stream, name: str):
    return next(t for t in stream.tables if t.name == name)
