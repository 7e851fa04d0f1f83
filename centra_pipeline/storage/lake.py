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
from pathlib import Path, PurePath
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
_TMP = re.compile(r"^(load|segment)=(?P<id>.+)\.tmp-(?P<pid>\d+)$")
SEGMENT = "_segment.json"  # a segment is complete once this file is in its directory
SEGMENT_LOADS = "_loads.json"  # the manifests of the loads it holds
SEGMENT_DIR = re.compile(
    r"^segment=(?P<first>\d{4}-\d{2}-\d{2})_(?P<last>\d{4}-\d{2}-\d{2})-(?P<token>[0-9a-f]+)$"
)


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
    # The segment directory holding the load once compacted: its files hold many loads'
    # rows, so a reader takes the rows whose `_load_id` is this load's.
    segment: str = ""
    # Where `path` is: None for the local disk, else the object store's pyarrow filesystem
    # (storage/lake_objects.py).
    filesystem: Any = None

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1, sort_keys=True)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for local in ("path", "segment", "filesystem"):
            data.pop(local)
        return data

    @classmethod
    def read(cls, directory: PurePath, filesystem: Any = None) -> LoadManifest:
        manifest = cls(**json.loads(read_text(directory / MANIFEST, filesystem)))
        manifest.path, manifest.filesystem = str(directory), filesystem
        return manifest

    def file_paths(self, table: str) -> list[str]:
        return [f"{self.path.rstrip('/')}/{rel}" for rel in self.files.get(table, [])]


def read_text(path: PurePath, filesystem: Any = None) -> str:
    """A small lake file on the local disk, or through a pyarrow `filesystem`."""
    if filesystem is None:
        return Path(path).read_text()
    with filesystem.open_input_stream(str(path)) as stream:
        return stream.read().decode()


def fsync_dir(path: Path) -> None:
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


@dataclass
class Segment:
    """Loads compacted into one directory (storage/compact.py): a few large files per table,
    rows ordered by load, and every load's manifest, so each load reads back as it was
    (on object storage, `path` is its store path, read through `filesystem`)."""

    path: PurePath
    info: dict[str, Any]
    filesystem: Any = None

    @classmethod
    def read(cls, path: PurePath, filesystem: Any = None) -> Segment:
        return cls(path, json.loads(read_text(path / SEGMENT, filesystem)), filesystem)

    @property
    def load_ids(self) -> list[str]:
        return self.info["load_ids"]

    @property
    def replaces(self) -> list[str]:
        return self.info.get("replaces", [])

    @property
    def files(self) -> dict[str, list[str]]:
        return self.info["files"]

    def entries(self) -> list[dict[str, Any]]:  # the manifests of its loads, as written
        return json.loads(read_text(self.path / SEGMENT_LOADS, self.filesystem))

    def manifests(self) -> list[LoadManifest]:
        out = []
        for entry in self.entries():
            manifest = LoadManifest(**entry)
            manifest.files = {
                table: list(self.files.get(table, [])) if manifest.rows.get(table) else []
                for table in manifest.files
            }
            manifest.path, manifest.segment = str(self.path), self.path.name
            manifest.filesystem = self.filesystem
            out.append(manifest)
        return out


class Lake:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def stream_dir(self, stream: str) -> Path:
        return self.root / stream

    def loads(
        self, stream: str, since_day: str | None = None, skip: set[str] | frozenset = frozenset()
    ) -> list[LoadManifest]:
        """Complete loads of a stream, oldest first (load ids sort by time), loose or compacted
        into a segment; with `since_day` ("YYYY-MM-DD"), only the days from that day on are read.
        Loads whose id is in `skip` are left out without reading their manifests."""
        segments = self.segments(stream, since_day)
        covered = {load_id for segment in segments for load_id in segment.load_ids}
        found = [m for segment in segments for m in segment.manifests() if m.load_id not in skip]
        for day in self.subdirs(stream):
            if not day.startswith("day=") or (since_day and day.removeprefix("day=") < since_day):
                continue
            for name in self.manifest_dirs(stream, day):
                load_id = name.removeprefix("load=")
                if ".tmp-" in name or load_id in skip or load_id in covered:
                    continue
                found.append(LoadManifest.read(self.path_of(stream, day, name), self.filesystem))
        return sorted(found, key=lambda m: m.load_id)

    def segments(self, stream: str, since_day: str | None = None) -> list[Segment]:
        """The stream's live segments (complete, not superseded by a newer one); with
        `since_day`, only those holding loads of that day or later."""
        complete = []
        for name in self.subdirs(stream):
            match = SEGMENT_DIR.match(name)
            if match is None or (since_day and match["last"] < since_day):
                continue
            with contextlib.suppress(FileNotFoundError):  # no marker: not a segment (yet)
                complete.append(Segment.read(self.path_of(stream, name), self.filesystem))
        superseded = {name for segment in complete for name in segment.replaces}
        return [segment for segment in complete if segment.path.name not in superseded]

    def clean_abandoned(self, stream: str) -> list[Path]:
        """Remove partial loads and segments whose writer process is gone (killed)."""
        removed = []
        base = self.stream_dir(stream)
        if not base.exists():
            return removed
        for candidate in [*base.glob("day=*/load=*.tmp-*"), *base.glob("segment=*.tmp-*")]:
            match = _TMP.match(candidate.name)
            if match and not pid_alive(int(match["pid"])):
                shutil.rmtree(candidate, ignore_errors=True)
                removed.append(candidate)
        return removed

    def writer(self, stream: Stream, load_id: str, mode: str, started_at: datetime) -> LoadWriter:
        return LoadWriter(self, stream, load_id, mode, started_at)

    # --- directories and files, here or on object storage (ObjectLake); erasure rewrites files
    @property
    def filesystem(self) -> Any:
        return None  # the pyarrow filesystem of the paths below; None: the local disk

    def path_of(self, *parts: str) -> PurePath:
        return self.root.joinpath(*parts)  # stream, day or segment, load, file

    def subdirs(self, *parts: str) -> list[str]:  # the names of the directories in `parts`
        path = Path(self.path_of(*parts))
        return sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []

    def manifest_dirs(self, stream: str, day: str) -> list[str]:  # the day's complete loads
        return [p.parent.name for p in Path(self.path_of(stream, day)).glob(f"load=*/{MANIFEST}")]

    def files(self, stream: str) -> list[str]:  # every file of the stream, complete or not
        return [p.as_posix() for p in self.stream_dir(stream).rglob("*") if p.is_file()]

    def remove_dir(self, path: PurePath) -> None:  # a load's or a segment's, and its empty day
        shutil.rmtree(path)
        if path.parent.name.startswith("day="):
            with contextlib.suppress(OSError):  # only if empty; a load landing there keeps it
                Path(path.parent).rmdir()

    def place(self, tmp: Path, final: Path, marker: str, point: str | None = None) -> str:
        """Make `tmp` (its `marker` written) complete as `final`: fsync, failpoint, rename."""
        for path in tmp.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(tmp)
        if point:
            failpoint(point)
        os.rename(tmp, final)
        fsync_dir(final.parent)
        return str(final)

    def open_file(self, path: str) -> Any:
        """A lake file (a path from `LoadManifest.file_paths`) opened for pyarrow."""
        return open(path, "rb")

    def scratch_for(self, path: str, why: str) -> Path:
        """A local file to write a new version of the lake file `path` into."""
        return Path(path).with_name(f".{Path(path).name}.{why}-{os.getpid()}")

    def replace_file(self, path: str, source: Path) -> None:
        """Put the local file `source` in the place of the lake file `path`, atomically."""
        with open(source, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(source, path)
        fsync_dir(Path(path).parent)


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
        self._parts = {
            t.name: PartWriter(self.tmp_dir, t.name, lake_schema(t)) for t in stream.tables
        }
        self._closed = False

    def write(self, batch: Batch) -> None:
        self.manifest.records += batch.records
        self._drift.merge(batch.drift)
        self._coercions.merge(batch.coercions)
        for name, table in batch.tables.items():
            self._parts[name].add(table)

    def commit(self, **fields: Any) -> LoadManifest:
        """Close the files, write the manifest, fsync and move the load into place."""
        for name, part in self._parts.items():
            self.manifest.files[name], self.manifest.rows[name] = part.close()
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
        self.manifest.path = self.lake.place(self.tmp_dir, self.final_dir, MANIFEST)
        self.manifest.filesystem = self.lake.filesystem
        self._closed = True
        return self.manifest

    def abort(self) -> None:
        if self._closed:
            return
        for part in self._parts.values():
            with contextlib.suppress(Exception):  # best effort on an error path
                part.close()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self._closed = True


class PartWriter:
    """One table's rows of a load (or a compacted segment) as zstd Parquet files in
    `directory`: buffered up to a row group, a new file every ROWS_PER_FILE rows."""

    def __init__(
        self, directory: Path, name: str, schema: pa.Schema, row_group_rows: int = ROW_GROUP_ROWS
    ) -> None:
        self.directory, self.name, self.schema = directory, name, schema
        self.row_group_rows = row_group_rows
        self.files: list[str] = []
        self.rows = 0
        self._buffer: list[pa.Table | pa.RecordBatch] = []
        self._buffered_rows = self._buffered_bytes = self._file_rows = 0
        self._writer: pq.ParquetWriter | None = None

    def add(self, table: pa.Table | pa.RecordBatch) -> None:
        if table.num_rows == 0:
            return
        self._buffer.append(table)
        self._buffered_rows += table.num_rows
        self._buffered_bytes += table.nbytes
        if self._buffered_rows >= self.row_group_rows or self._buffered_bytes >= ROW_GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        table = pa.Table.from_batches(
            [b for part in self._buffer for b in _batches(part)], schema=self.schema
        )
        self._buffer, self._buffered_rows, self._buffered_bytes = [], 0, 0
        if self._writer is not None and self._file_rows >= ROWS_PER_FILE:
            self._writer.close()
            self._writer = None
        if self._writer is None:
            rel = f"{self.name}-{len(self.files):05d}.parquet"
            self.files.append(rel)
            self._writer = pq.ParquetWriter(
                self.directory / rel, self.schema, compression="zstd", compression_level=1
            )
            self._file_rows = 0
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self._file_rows += table.num_rows
        self.rows += table.num_rows

    def close(self) -> tuple[list[str], int]:
        """Write what is buffered and close the file: (file names, rows written)."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.files, self.rows


def _batches(part: pa.Table | pa.RecordBatch) -> list[pa.RecordBatch]:
    return part.to_batches() if isinstance(part, pa.Table) else [part]
