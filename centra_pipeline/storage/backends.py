"""Where a store's files are: the lake and the warehouse for its settings, on the local disk
(the default) or on object storage with the warehouse handed over through PostgreSQL when
`CENTRA_STORAGE_URL` is set (docs/architecture.md, "Workers anywhere"). Every caller gets
them here, so a worker's disk is never assumed by accident."""

from __future__ import annotations

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
