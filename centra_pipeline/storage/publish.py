"""Publishing the analyst snapshot: a checkpointed copy of the warehouse, swapped in with
`os.replace` so that an analyst never sees a half-written file and never blocks a run."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from centra_pipeline.storage.lake import pid_alive
from centra_pipeline.storage.warehouse_schema import ensure_schema
from centra_pipeline.testing.failpoints import failpoint

if TYPE_CHECKING:
    from centra_pipeline.storage.warehouse import Warehouse


def publish(warehouse: Warehouse, snapshot_path: Path) -> dict[str, Any]:
    """Copy the warehouse to the analyst snapshot and swap it in atomically.

    Analysts hold the old file open (or not) without noticing: `os.replace` swaps the
    directory entry, an open connection keeps reading the old inode, and a reconnect
    sees the new data. We never open the snapshot, so an analyst never blocks us.
    """
    snapshot_path = Path(snapshot_path)
    snapshot_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _remove_abandoned_copies(snapshot_path)
    tmp = snapshot_path.with_name(f".{snapshot_path.name}.tmp-{os.getpid()}")
    with warehouse.locked(exclusive=True):
        con = warehouse.connect(read_only=False)
        try:
            ensure_schema(con)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        wal = warehouse.path.with_name(warehouse.path.name + ".wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise RuntimeError(f"{wal} still holds changes after a checkpoint; not publishing")
        shutil.copyfile(warehouse.path, tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    failpoint("warehouse.before_publish")
    os.replace(tmp, snapshot_path)
    dir_fd = os.open(snapshot_path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return {
        "path": str(snapshot_path),
        "bytes": snapshot_path.stat().st_size,
        "seconds": round(time.monotonic() - started, 3),
    }


def _remove_abandoned_copies(snapshot_path: Path) -> None:
    """Half-written snapshot copies of publishers that died (their pid is gone)."""
    for candidate in snapshot_path.parent.glob(f".{snapshot_path.name}.tmp-*"):
        pid = candidate.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            candidate.unlink(missing_ok=True)
