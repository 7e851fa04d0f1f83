"""The Dagster resources, one per external system: `centra` (the Order and Shop APIs) and
`storage` (the lake, the warehouse and the analyst snapshot).

Settings come from the environment (or the project's `.env`) and the stores file (a run
reads the settings of the store its partition names, centra_pipeline/stores.py), read once
per run, on first use, never from run config: run config is stored in Dagster's database and
shown in the UI, and secrets must not be (docs/architecture.md). Reading them at run time
also means the definitions load without Centra configured, and a run then fails with our
message saying exactly what to set, instead of a generic "environment variable not set".
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import PARTITION_NAME_TAG as PARTITION_TAG
from pydantic import PrivateAttr

from centra_pipeline.centra.http import HttpConfig
from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.centra.shop_api import ShopApi
from centra_pipeline.settings import ENV_DATA_DIR, Settings
from centra_pipeline.storage.backends import lake_for, warehouse_for
from centra_pipeline.storage.lake import Lake
from centra_pipeline.storage.warehouse import Warehouse
from centra_pipeline.stores import Stores, load_stores, settings_for


class _SettingsOnce(dg.ConfigurableResource):
    """Reads the settings once per run (per step process with the multiprocess executor)."""

    data_dir: str | None = None  # tests and the demo point a run at another directory

    _settings: Settings | None = PrivateAttr(default=None)
    _store: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Read on first use: a job that is no one store's (maintenance) never asks.
        run = context.run
        self._store = run.tags.get(PARTITION_TAG) if run else None
        self._settings = None

    def _read(self, store: str | None = None) -> Settings:
        """The settings of the run's store: its partition key (every run of the store
        assets has one), or the only store of a single-store deployment."""
        return settings_for(store, {ENV_DATA_DIR: self.data_dir} if self.data_dir else None)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = self._read(self._store)
        return self._settings


class CentraResource(_SettingsOnce):
    """Centra's Order API and Shop API, with timeouts, retries and a rate limit."""

    max_requests_per_second: float | None = None
    order_page_size: int = 1000
    shop_page_size: int = 100

    def http_config(self) -> HttpConfig:
        if self.max_requests_per_second:
            return HttpConfig.from_settings(
                self.settings, max_requests_per_second=self.max_requests_per_second
            )
        return HttpConfig.from_settings(self.settings)

    def order_api(self) -> OrderApi:
        url, key = self.settings.require_order_api()
        return OrderApi.connect(url, key, config=self.http_config(), page_size=self.order_page_size)

    def shop_api(self) -> ShopApi:
        url, key = self.settings.require_shop_api()
        return ShopApi.connect(url, key, config=self.http_config(), page_size=self.shop_page_size)


class StorageResource(_SettingsOnce):
    """The lake, the warehouse and the analyst snapshot under CENTRA_DATA_DIR."""

    warehouse_memory_limit: str = "192MB"  # see Warehouse

    def lake(self) -> Lake:
        return lake_for(self.settings)

    def warehouse(self, settings: Settings | None = None) -> Warehouse:
        """The run's store's warehouse (or that of `settings`, another store)."""
        return warehouse_for(settings or self.settings, memory_limit=self.warehouse_memory_limit)

    def stores(self) -> Stores:
        """Every store (for jobs that are not one store's, such as maintenance)."""
        return load_stores({ENV_DATA_DIR: self.data_dir} if self.data_dir else None)

    @property
    def snapshot_path(self) -> Path:
        return self.settings.snapshot_path
