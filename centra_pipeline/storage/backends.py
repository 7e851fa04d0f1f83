"""Where a store's files are: the lake and the warehouse for its settings, on the local disk
(the default) or on object storage with the warehouse handed over through PostgreSQL when
`CENTRA_STORAGE_URL` is set (docs/architecture.md, "Workers anywhere"). Every caller gets
them here, so a worker's disk is never assumed by accident."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from centra_pipeline.settings import Settings
from centra_pipeline.storage.lake import Lake
from centra_pipeline.storage.warehouse import Warehouse


def object_store(settings: Settings) -> Any:
    """The store's prefix on object storage (an `ObjectStore`), or None for the local disk."""
    if settings.storage_url is None:
        return None
    from centra_pipeline.storage.objects import ObjectStore

    return ObjectStore.for_url(settings.storage_url)


def lake_for(settings: Settings) -> Lake:
    objects = object_store(settings)
    if objects is None:
        return Lake(settings.lake_dir)
    from centra_pipeline.storage.lake_objects import ObjectLake

    return ObjectLake(objects.child("lake"), settings.data_dir / "staging" / "lake")


def warehouse_for(settings: Settings, **options: Any) -> Warehouse:
    objects = object_store(settings)
    if objects is None:
        return Warehouse(settings.warehouse_path, **options)
    from centra_pipeline.storage.warehouse_shared import SharedWarehouse

    assert settings.inbox_url is not None  # Settings.from_env requires it with storage_url
    return SharedWarehouse(
        settings.warehouse_path,
        objects=objects,
        lease_url=settings.inbox_url.get(),
        store=settings.store,
        **options,
    )


def fetch_snapshot(settings: Settings) -> Path:
    """The store's analyst snapshot on this machine. With object storage the published
    object is the snapshot, and the local file a copy of it: downloaded (and swapped in, as
    a publish does) when the object is newer than the copy. A store never published leaves
    the path as it is, for the caller's own message."""
    objects = object_store(settings)
    if objects is None:
        return settings.snapshot_path
    from centra_pipeline.storage.objects import SNAPSHOT_OBJECT

    return _fetch(objects, SNAPSHOT_OBJECT, settings.snapshot_path)


def _fetch(objects: Any, key: str, target: Path) -> Path:
    import pyarrow.fs as pafs

    info = objects.info(key)
    if info.type != pafs.FileType.File:
        return target
    stamp = f"{info.size}:{info.mtime_ns}"
    seen = target.with_name(f".{target.name}.fetched")
    if target.exists() and seen.exists() and seen.read_text() == stamp:
        return target
    objects.download(key, target)
    seen.write_text(stamp)
    return target


def publish_union(storage_url: str | None, path: Path) -> str | None:
    """Put the all-stores union on object storage, beside the stores; its URL."""
    if storage_url is None:
        return None
    from centra_pipeline.storage.objects import ALL_STORES_OBJECT, ObjectStore

    objects = ObjectStore.for_url(storage_url)
    objects.upload(path, ALL_STORES_OBJECT)
    return objects.uri(ALL_STORES_OBJECT)
