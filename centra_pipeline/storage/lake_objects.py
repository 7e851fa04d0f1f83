"""The lake on object storage (`CENTRA_STORAGE_URL`): the same layout and the same loads as
the local lake (storage/lake.py), under `<storage url>/lake/`.

A load is written as on the local disk, into a staging directory under CENTRA_DATA_DIR, and
committed by uploading its files and then its manifest: a load is complete once its
`_manifest.json` exists, and no reader looks at a load directory without one. An upload cut
short leaves files without a manifest; `clean_abandoned` removes them once they are older
than any upload takes (`ABANDONED_AFTER`). Merges, erasure and rebuilds read the files from
object storage through pyarrow; nothing of the lake stays on the worker's disk.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from centra_pipeline.storage.lake import (
    MANIFEST,
    Lake,
    LoadManifest,
    LoadWriter,
    Segment,
)
from centra_pipeline.storage.objects import ObjectStore
from centra_pipeline.streams.model import Stream

# A load's files without its manifest, older than this, belong to an upload that died.
ABANDONED_AFTER = 6 * 3600.0


class ObjectLake(Lake):
    """`root` is the local staging directory; `store` the lake's prefix in object storage."""

    def __init__(self, store: ObjectStore, staging: Path) -> None:
        super().__init__(staging)
        self.store = store

    @property
    def location(self) -> str:
        return self.store.url

    def loads(
        self, stream: str, since_day: str | None = None, skip: set[str] | frozenset = frozenset()
    ) -> list[LoadManifest]:
        found = []
        for day in self._days(stream):
            if since_day and day < since_day:
                continue
            for info in self.store.list(f"{stream}/day={day}"):
                parts = self.store.relative(info.path).split("/")
                if len(parts) != 4 or parts[3] != MANIFEST:
                    continue
                load_id = parts[2].removeprefix("load=")
                if load_id in skip:
                    continue
                directory = "/".join(parts[:3])
                manifest = LoadManifest(
                    **json.loads(self.store.read_text(f"{directory}/{MANIFEST}"))
                )
                manifest.path = self.store.path(directory)
                manifest.filesystem = self.store.fs
                found.append(manifest)
        return sorted(found, key=lambda m: m.load_id)

    def segments(self, stream: str, since_day: str | None = None) -> list[Segment]:
        return []  # compaction on object storage writes none yet (storage/compact.py refuses)

    def clean_abandoned(self, stream: str) -> list[Path]:
        removed = super().clean_abandoned(stream)  # the staging directory's dead writers
        cutoff = time.time() - ABANDONED_AFTER
        for day in self._days(stream)[-2:]:
            by_load: dict[str, list[pafs.FileInfo]] = {}
            for info in self.store.list(f"{stream}/day={day}"):
                directory = info.path.rsplit("/", 1)[0]
                by_load.setdefault(directory, []).append(info)
            for directory, infos in by_load.items():
                names = {i.path.rsplit("/", 1)[1] for i in infos}
                newest = max((i.mtime.timestamp() for i in infos if i.mtime), default=0.0)
                if MANIFEST not in names and newest < cutoff:
                    self.store.delete_prefix(self.store.relative(directory))
                    removed.append(Path(directory))
        return removed

    def writer(self, stream: Stream, load_id: str, mode: str, started_at: datetime) -> LoadWriter:
        return ObjectLoadWriter(self, stream, load_id, mode, started_at)

    def open_file(self, path: str) -> Any:
        return self.store.fs.open_input_file(path)

    def scratch_for(self, path: str, why: str) -> Path:
        scratch = self.root / ".scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch / f"{path.rsplit('/', 1)[1]}.{why}-{time.time_ns()}"

    def replace_file(self, path: str, source: Path) -> None:
        try:
            self.store.upload(source, self.store.relative(path))  # one PUT replaces it whole
        finally:
            source.unlink(missing_ok=True)

    def _days(self, stream: str) -> list[str]:
        selector = pafs.FileSelector(self.store.path(stream), allow_not_found=True)
        infos = self.store.fs.get_file_info(selector)
        names = [i.path.rsplit("/", 1)[1] for i in infos if i.type == pafs.FileType.Directory]
        return sorted(n.removeprefix("day=") for n in names if n.startswith("day="))


class ObjectLoadWriter(LoadWriter):
    """Writes the load in the staging directory, then uploads it, manifest last."""

    lake: ObjectLake

    def _place(self) -> str:
        store = self.lake.store
        directory = self.final_dir.relative_to(self.lake.root).as_posix()
        files = sorted(p for p in self.tmp_dir.iterdir() if p.name != MANIFEST)
        for path in files:
            store.upload(path, f"{directory}/{path.name}")
        store.upload(self.tmp_dir / MANIFEST, f"{directory}/{MANIFEST}")  # complete from here
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.manifest.filesystem = store.fs
        return store.path(directory)
