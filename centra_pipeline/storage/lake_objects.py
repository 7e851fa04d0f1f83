"""The lake on object storage (`CENTRA_STORAGE_URL`): the same layout and the same loads as
the local lake (storage/lake.py), under `<storage url>/lake/`.

A load is written as on the local disk, into a staging directory under CENTRA_DATA_DIR, and
committed by uploading its files and then its manifest: a load is complete once its
`_manifest.json` exists, and no reader looks at a load directory without one. An upload cut
short leaves files without a manifest; `clean_abandoned` removes them once they are older
than any upload takes (`ABANDONED_AFTER`). A compacted segment is staged and uploaded the same
way, its `_segment.json` last (storage/compact.py). Merges, erasure, compaction and rebuilds
read the files from object storage through pyarrow; nothing of the lake stays on the worker's
disk.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import pyarrow.fs as pafs

from centra_pipeline.storage.lake import MANIFEST, Lake
from centra_pipeline.storage.objects import ObjectStore
from centra_pipeline.testing.failpoints import failpoint

# A load's files without its manifest, older than this, belong to an upload that died.
ABANDONED_AFTER = 6 * 3600.0


class ObjectLake(Lake):
    """`root` is the local staging directory; `store` the lake's prefix in object storage.
    Reading loads and segments, compacting and erasing are Lake's own code (and
    storage/compact.py's), on the directory operations below."""

    def __init__(self, store: ObjectStore, staging: Path) -> None:
        super().__init__(staging)
        self.store = store

    @property
    def location(self) -> str:
        return self.store.url

    def clean_abandoned(self, stream: str) -> list[Path]:
        removed = super().clean_abandoned(stream)  # the staging directory's dead writers
        cutoff = time.time() - ABANDONED_AFTER
        days = [d for d in self.subdirs(stream) if d.startswith("day=")]
        for day in days[-2:]:
            by_load: dict[str, list[pafs.FileInfo]] = {}
            for info in self.store.list(f"{stream}/{day}"):
                directory = info.path.rsplit("/", 1)[0]
                by_load.setdefault(directory, []).append(info)
            for directory, infos in by_load.items():
                names = {i.path.rsplit("/", 1)[1] for i in infos}
                newest = max((i.mtime.timestamp() for i in infos if i.mtime), default=0.0)
                if MANIFEST not in names and newest < cutoff:
                    self.remove_dir(PurePosixPath(directory))
                    removed.append(Path(directory))
        return removed

    # --- the directories: prefixes in object storage ---------------------------------------
    @property
    def filesystem(self) -> Any:
        return self.store.fs

    def path_of(self, *parts: str) -> PurePath:
        return PurePosixPath(self.store.path("/".join(parts)))

    def subdirs(self, *parts: str) -> list[str]:
        return self.store.directories("/".join(parts))

    def manifest_dirs(self, stream: str, day: str) -> list[str]:
        found = []  # one listing of the day, not one request per load
        for info in self.store.list(f"{stream}/{day}"):
            parts = self.store.relative(info.path).split("/")
            if len(parts) == 4 and parts[3] == MANIFEST:
                found.append(parts[2])
        return found

    def files(self, stream: str) -> list[str]:
        return [info.path for info in self.store.list(stream)]

    def remove_dir(self, path: PurePath) -> None:
        self.store.delete_dir(self.store.relative(str(path)))

    def place(self, tmp: Path, final: Path, marker: str, point: str | None = None) -> str:
        """Upload the directory written in the staging area, `marker` last: complete from that
        PUT on, as S3 has no rename. `point`: a failpoint before the marker's upload."""
        directory = final.relative_to(self.root).as_posix()
        for path in sorted(p for p in tmp.iterdir() if p.name != marker):
            self.store.upload(path, f"{directory}/{path.name}")
        if point:
            failpoint(point)
        self.store.upload(tmp / marker, f"{directory}/{marker}")
        shutil.rmtree(tmp, ignore_errors=True)
        return self.store.path(directory)

    # --- one file --------------------------------------------------------------------------
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
