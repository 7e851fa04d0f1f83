"""The Dagster resources, one per external system: `centra` (the Order and Shop APIs) and
`storage` (the lake, the warehouse and the analyst snapshot).

Settings come from the environment (or the project's `.env`), read once when a run's
resources are set up, never from run config: run config is stored in Dagster's database and
shown in the UI, and secrets must not be (docs/architecture.md). Reading them at run time
also means the definitions load without Centra configured, and a run then fails with our
message saying exactly what to set, instead of a generic "environment variable not set".
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from centra_pipeline.centra.http import HttpConfig
from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.centra.shop_api import ShopApi
from centra_pipeline.settings import ENV_DATA_DIR, Settings
from centra_pipeline.storage.lake import Lake
from centra_pipeline.storage.warehouse import Warehouse


class _SettingsOnce(dg.ConfigurableResource):
    """Reads the settings once per run (per step process with the multiprocess executor)."""

    data_dir: str | None = None  # tests and the demo point a run at another directory

    _settings: Settings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._settings = self._read()

    def _read(self) -> Settings:
        return Settings.from_env({ENV_DATA_DIR: self.data_dir} if self.data_dir else None)

    @property
    def settings(self) -> Settings:
        if self._settings is None:  # used outside a run (e.g. called directly in a test)
            self._settings = self._read()
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
        return Lake(self.settings.lake_dir)

    def warehouse(self) -> Warehouse:
        return Warehouse(self.settings.warehouse_path, memory_limit=self.warehouse_memory_limit)

    @property
    def snapshot_path(self) -> Path:
        return self.settings.snapshot_path
