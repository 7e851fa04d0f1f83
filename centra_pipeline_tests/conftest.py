"""Shared fixtures: a Centra emulator on loopback, an isolated data directory and Dagster home,
and a `Pipeline` that runs the real extraction, landing, merge and publish code.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from centra_pipeline.centra.http import HttpConfig
from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.centra.shop_api import ShopApi
from centra_pipeline.defs.instance_storage import project_instance_settings
from centra_pipeline.emulator import Emulator, EmulatorConfig
from centra_pipeline.settings import Settings
from centra_pipeline.storage.lake import Lake, LoadManifest
from centra_pipeline.storage.warehouse import MergeResult, Warehouse
from centra_pipeline.streams import STREAMS
from centra_pipeline.sync.extract import Extractor
from centra_pipeline.sync.plan import ExtractOptions
from centra_pipeline.webhooks.inboxes import InboxRef

TZ = "Europe/Stockholm"
NOW = "2026-01-15 12:00:00"
ORDER_KEY = "order-key-8f3a1c"
SHOP_KEY = "shop-key-29bd77"
WEBHOOK_SECRET = "webhook-secret-5e0c42"

# Tests stop servers with Ctrl-C (SIGINT). A shell's background job starts with SIGINT
# ignored, and an ignored signal is inherited across exec: a child Python then never sees
# KeyboardInterrupt. The suite's children get SIGINT's default, however pytest was started.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

FAST_HTTP = HttpConfig(
    max_requests_per_second=1000, backoff_base=0.01, backoff_max=0.05, max_retry_seconds=10
)


def emulator_config(**overrides: Any) -> EmulatorConfig:
    values: dict[str, Any] = {
        "orders": 1500,
        "customers": 300,
        "products": 30,
        "seed": 11,
        "now": NOW,
        "timezone": TZ,
        "order_api_key": ORDER_KEY,
        "shop_api_key": SHOP_KEY,
    }
    values.update(overrides)
    return EmulatorConfig(**values)


@contextmanager
def running_emulator(**overrides: Any) -> Iterator[Emulator]:
    with Emulator(emulator_config(**overrides)) as emu:
        yield emu


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with running_emulator() as emulator:
        yield emulator


def isolated_dagster_home(directory: Path) -> Path:
    """A DAGSTER_HOME with the project's instance settings but its own storage."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "dagster.yaml").write_text(project_instance_settings(directory))
    return directory


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CENTRA_DATA_DIR and DAGSTER_HOME in tmp_path; no Centra settings from the developer's
    environment or .env leak in."""
    data = tmp_path / "data"
    data.mkdir()
    for name in list(os.environ):
        if name.startswith("CENTRA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CENTRA_DATA_DIR", str(data))
    monkeypatch.setenv("CENTRA_TIMEZONE", TZ)
    monkeypatch.setenv("DAGSTER_HOME", str(isolated_dagster_home(tmp_path / "dagster_home")))
    monkeypatch.chdir(tmp_path)  # a stray .env in the developer's cwd must not apply
    return data


@pytest.fixture
def centra_env(data_dir: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """Environment pointing at the emulator, as a user would configure it."""
    point_env_at(emu, monkeypatch)
    return emu


def point_env_at(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CENTRA_ORDER_API_URL", emu.order_api_url)
    monkeypatch.setenv("CENTRA_ORDER_API_KEY", emu.order_api_key)
    monkeypatch.setenv("CENTRA_SHOP_API_URL", emu.shop_api_url)
    monkeypatch.setenv("CENTRA_SHOP_API_KEY", emu.shop_api_key)
    monkeypatch.setenv("CENTRA_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("CENTRA_MAX_REQUESTS_PER_SECOND", "1000")


class Pipeline:
    """The pipeline's own functions (no Dagster): extract → land → merge → publish."""

    def __init__(self, emu: Emulator, data: Path, *, page_size: int = 400) -> None:
        self.emu = emu
        self.data = data
        self.settings = Settings(data_dir=data, timezone=TZ)
        self.lake = Lake(self.settings.lake_dir)
        self.warehouse = Warehouse(self.settings.warehouse_path)
        self.page_size = page_size

    def extractor(self) -> Extractor:
        return Extractor(
            lake=self.lake,
            warehouse=self.warehouse,
            timezone=TZ,
            order_api=OrderApi.connect(
                self.emu.order_api_url,
                self.emu.order_api_key,
                config=FAST_HTTP,
                page_size=self.page_size,
            ),
            shop_api=ShopApi.connect(
                self.emu.shop_api_url, self.emu.shop_api_key, config=FAST_HTTP, page_size=50
            ),
            inbox=InboxRef.of(self.settings),
        )

    def extract(self, stream: str, **options: Any) -> LoadManifest:
        if "lookback" in options and not isinstance(options["lookback"], timedelta):
            options["lookback"] = timedelta(days=options["lookback"])
        return self.extractor().run(stream, ExtractOptions(**options))

    def sync(
        self, streams: list[str] | None = None, **options: Any
    ) -> dict[str, tuple[LoadManifest, MergeResult]]:
        out = {}
        for stream in streams or list(STREAMS):
            manifest = self.extract(stream, **options)
            (result,) = self.warehouse.merge_loads([manifest])
            out[stream] = (manifest, result)
        return out

    def refresh_orders(self, numbers: list[int]) -> tuple[LoadManifest, MergeResult]:
        manifest = self.extract("orders", mode="refresh", keys=tuple(numbers))
        (result,) = self.warehouse.merge_loads([manifest])
        return manifest, result

    def publish(self) -> dict[str, Any]:
        return self.warehouse.publish(self.settings.snapshot_path)

    def differences(self, streams: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Warehouse tables vs what the emulator serves now (empty: equal); see truth.py."""
        from centra_pipeline_tests.truth import table_differences, truth_tables

        truth = truth_tables(self.emu, TZ, streams)
        with self.warehouse.reader() as con:
            return table_differences(con, truth)


@pytest.fixture
def pipeline(emu: Emulator, data_dir: Path) -> Pipeline:
    return Pipeline(emu, data_dir)


@contextmanager
def emulator_process(*args: str) -> Iterator[str]:
    """The emulator in a process of its own, as Centra is (its base URL): the arrival times
    it logs are not delayed by the client's threads holding a shared process's GIL. `args`
    are `centra-pipeline emulator` options; the keys are the test keys."""
    command = [
        sys.executable,
        "-m",
        "centra_pipeline.cli",
        "emulator",
        "--port",
        "0",
        "--order-api-key",
        ORDER_KEY,
        "--shop-api-key",
        SHOP_KEY,
        *args,
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    base = None
    for line in proc.stdout:
        match = re.search(r"CENTRA_ORDER_API_URL=(http://[^/]+)/api/order", line)
        base = match.group(1) if match else base
        if line.startswith("Serving"):
            break
    try:
        assert base, "the emulator did not start"
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def requests_seen(base: str, since: float) -> dict[str, list[float]]:
    """Arrival times the emulator at `base` logged after `since`, per API."""
    with urllib.request.urlopen(f"{base}/_emulator/requests", timeout=30) as response:
        seen = json.loads(response.read())
    return {api: [t for t in seen[api]["arrivals"] if t >= since] for api in ("order", "shop")}


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One real PostgreSQL server on loopback for the session (centra_pipeline/testing)."""
    from centra_pipeline.testing.postgres import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture
def inbox_url(postgres: Any) -> str:
    """A new, empty database on the session's server: its URL (with its password)."""
    import uuid

    return postgres.create_database(f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def s3() -> Iterator[Any]:
    """One real S3 API server (moto's) on loopback for the session (centra_pipeline/testing)."""
    from centra_pipeline.testing.s3 import S3Server

    with S3Server() as server:
        yield server


@dataclass
class SharedStorage:
    """A deployment's shared parts for one test: a bucket on the S3 server and a database on
    the PostgreSQL server, with the environment that points the pipeline at them."""

    s3: Any
    bucket: str
    inbox_url: str
    pii_key: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/centra"

    def env(self) -> dict[str, str]:
        return {
            **self.s3.env(),
            "CENTRA_STORAGE_URL": self.url,
            "CENTRA_INBOX_URL": self.inbox_url,
            "CENTRA_PII_KEY": self.pii_key,
        }

    def objects(self, prefix: str = "centra/") -> dict[str, bytes]:
        return self.s3.objects(self.bucket, prefix)


@pytest.fixture
def shared_storage(
    s3: Any, inbox_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> SharedStorage:
    """CENTRA_STORAGE_URL on a new bucket, CENTRA_INBOX_URL on a new database, in the
    environment (after `data_dir`, which clears every CENTRA_ variable)."""
    import secrets

    shared = SharedStorage(s3, s3.create_bucket(), inbox_url, secrets.token_hex(16))
    for name, value in shared.env().items():
        monkeypatch.setenv(name, value)
    return shared
