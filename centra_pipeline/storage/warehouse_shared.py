"""A store's warehouse when its storage is object storage: versions of the DuckDB file on
object storage, a pointer and a lease in PostgreSQL, and a working copy on the worker's disk
that is only a cache (docs/architecture.md, "Workers anywhere").

- **Taking it.** A writer holds the store's lease (storage/lease.py) exclusively: a sync
  step for the whole step (`held`), anything else for one connection. Readers hold it
  shared, one connection at a time; inside a hold this process's connections take only the
  local file lock (threads and other processes of the worker share the working copy).
  Under the lease the working copy is checked against the pointer: a copy is used only if
  its `.version` file names the current object; otherwise it is removed and the current
  object downloaded.
- **Handing it over.** When the hold ends, every connection is closed and DuckDB has
  checkpointed the file; if it changed, it is uploaded under a new key, the pointer is
  moved from the version the hold started from (on the lease's session, so a writer that
  lost its lease moves nothing), and the versions before it are deleted. Only then does
  the working copy get its `.version` again. One upload per step, however many streams it
  merged: other workers see the step's merges together, at its end.
- **Failure.** A worker killed while writing leaves the pointer at the last version handed
  over and its working copy without a `.version` (never trusted again). Its loads are in the
  lake, so the next writer, on any worker, merges them as pending loads (invariant 1 holds:
  a version's cursors and rows are one committed state). The lease is free as soon as
  PostgreSQL sees the dead worker's session end.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from centra_pipeline.storage.lease import Lease, LeaseBusy, Version
from centra_pipeline.storage.objects import SNAPSHOT_OBJECT, ObjectStore
from centra_pipeline.storage.warehouse import Warehouse, WarehouseBusy
from centra_pipeline.testing.failpoints import failpoint

# The leases this process holds for a step, by (PostgreSQL URL, store): every
# SharedWarehouse of that store in the process works under it.
_HOLDS: dict[tuple[str, str], Lease] = {}


class SharedWarehouse(Warehouse):
    def __init__(
        self,
        path: Path,
        *,
        objects: ObjectStore,
        lease_url: str,
        store: str,
        **options: Any,
    ) -> None:
        super().__init__(path, **options)
        self.objects = objects  # the store's prefix: warehouse/ and the snapshot below it
        self.versions = objects.child("warehouse")
        self.lease_url, self.store = lease_url, store
        self.version_path = self.path.with_name(self.path.name + ".version")
        self.location = self.versions.url
        self._key = (lease_url, store)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the store's writer lease for a whole step: its connections only take the local
        lock, and what they changed is handed over once, when the hold ends (also when the
        step failed: every merge is a transaction of its own, committed or rolled back)."""
        if self._key in _HOLDS:  # nested: the outer hold hands over
            yield
            return
        lease = self._take_lease(exclusive=True)
        try:
            with super().locked(True):
                current = lease.current()
                stamp = self._fetch(current)
                self.version_path.unlink(missing_ok=True)  # untrusted until handed over
            _HOLDS[self._key] = lease
            try:
                yield
            except Exception:
                self._hand_over_locked(lease, current, stamp)
                raise
            finally:
                del _HOLDS[self._key]
            self._hand_over_locked(lease, current, stamp)
        finally:
            lease.release()

    @contextmanager
    def locked(self, exclusive: bool) -> Iterator[None]:
        if self._key in _HOLDS:  # this process holds the lease: its copy is the newest
            with super().locked(exclusive):
                yield
            return
        if exclusive:  # one connection's hold
            with self.held(), super().locked(True):
                yield
            return
        lease = self._take_lease(exclusive=False)
        try:
            with super().locked(False):
                self._fetch(lease.current())
                yield
        finally:
            lease.release()

    def _take_lease(self, exclusive: bool) -> Lease:
        lease = Lease(self.lease_url, self.store)
        try:
            lease.acquire(exclusive=exclusive, timeout=self.lock_timeout)
        except LeaseBusy as busy:
            raise WarehouseBusy(str(busy)) from None
        return lease

    # --- the working copy ------------------------------------------------------------------
    def _fetch(self, current: Version | None) -> tuple[int, int] | None:
        """Make the working copy the current version; returns its (size, mtime) stamp."""
        if current is not None and self._copy_is(current.object):
            return _stamp(self.path)
        self._remove_copy()
        if current is None:
            return None
        self.versions.download(current.object, self.path)
        self.version_path.write_text(current.object)
        return _stamp(self.path)

    def _copy_is(self, name: str) -> bool:
        try:
            return self.path.exists() and self.version_path.read_text() == name
        except FileNotFoundError:
            return False

    def _remove_copy(self) -> None:
        for path in (self.path, self.path.with_name(self.path.name + ".wal"), self.version_path):
            path.unlink(missing_ok=True)

    def _hand_over_locked(self, lease: Lease, previous: Version | None, stamp: Any) -> None:
        with super().locked(True):  # no connection of this process is open
            self._hand_over(lease, previous, stamp)

    def _hand_over(self, lease: Lease, previous: Version | None, stamp: Any) -> None:
        if not self.path.exists() or _stamp(self.path) == stamp:
            if previous is not None:
                self.version_path.write_text(previous.object)
            return
        wal = self.path.with_name(self.path.name + ".wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise RuntimeError(f"{wal} holds changes after the writer closed; not handing over")
        number = (previous.version if previous else 0) + 1
        name = f"v{number:010d}-{secrets.token_hex(4)}.duckdb"
        size = self.path.stat().st_size
        self.versions.upload(self.path, name)
        failpoint("warehouse.before_handover")
        try:
            lease.advance(previous, name, size)
        except BaseException:
            self.versions.delete(name)
            self._remove_copy()
            raise
        self.version_path.write_text(name)
        for info in self.versions.list():  # older versions and uploads that died
            key = self.versions.relative(info.path)
            if key != name:
                self.versions.delete(key)

    # --- the snapshot ----------------------------------------------------------------------
    def publish(
        self, snapshot_path: Path, pii: str = "keep", key: bytes | None = None
    ) -> dict[str, Any]:
        """Publish the local snapshot as before, then put it on object storage in one PUT,
        where analysts and all_stores read it."""
        info = super().publish(snapshot_path, pii, key)
        self.objects.upload(Path(snapshot_path), SNAPSHOT_OBJECT)
        info["url"] = self.objects.uri(SNAPSHOT_OBJECT)
        return info


def _stamp(path: Path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_size, status.st_mtime_ns
