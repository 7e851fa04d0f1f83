"""The one Dagster resource: Centra connection settings and the storage they point at.

Keys come from the environment (or the project's `.env`) when a run starts, never from run
config: run config is stored in Dagster's database and shown in the UI, and secrets must not
be (docs/architecture.md). Resolving at run time also means the definitions load without Centra
configured, and a run then fails with our message saying exactly what to set, instead of a
generic "environment variable not set".
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from centra_pipeline.centra.http import HttpConfig
from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.centra.shop_api import ShopApi
from centra_pipeline.settings import Settings
from centra_pipeline.storage.lake import Lake
from centra_pipeline.storage.warehouse import Warehouse


class CentraResource(dg.ConfigurableResource):
    """Centra APIs and the pipeline's storage (lake, warehouse, analyst snapshot).

    Everything defaults to the environment (see the README's configuration table); the
    optional fields let tests and the demo point a run at another data directory.
    """

    data_dir: str | None = None
    max_requests_per_second: float | None = None
    order_page_size: int = 1000
    shop_page_size: int = 100
    warehouse_memory_limit: str = "256MB"

    def settings(self) -> Settings:
        extra = {}
        if self.data_dir:
            extra["CENTRA_DATA_DIR"] = self.data_dir
        return Settings.from_env(extra)

    def http_config(self) -> HttpConfig:
        settings = self.settings()
        rate = self.max_requests_per_second or settings.max_requests_per_second
        return HttpConfig(max_requests_per_second=rate)

    def order_api(self) -> OrderApi:
        url, key = self.settings().require_order_api()
        return OrderApi.connect(url, key, config=self.http_config(), page_size=self.order_page_size)

    def shop_api(self) -> ShopApi:
        url, key = self.settings().require_shop_api()
        return ShopApi.connect(url, key, config=self.http_config(), page_size=self.shop_page_size)

    def lake(self) -> Lake:
        return Lake(self.settings().lake_dir)

    def warehouse(self) -> Warehouse:
        return Warehouse(self.settings().warehouse_path, memory_limit=self.warehouse_memory_limit)

    def snapshot_path(self) -> Path:
        return self.settings().snapshot_path
