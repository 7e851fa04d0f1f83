"""Loopback emulator fixtures: real HTTP servers on 127.0.0.1, one per test unless shared."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from centra_pipeline.emulator import Emulator, EmulatorConfig

NOW = "2026-01-15 12:00:00"
ORDER_KEY = "order-key-for-tests"
SHOP_KEY = "shop-key-for-tests"


def make_config(**overrides: Any) -> EmulatorConfig:
    settings: dict[str, Any] = {
        "orders": 500,
        "customers": 100,
        "products": 40,
        "seed": 7,
        "now": NOW,
        "timezone": "Europe/Stockholm",
        "order_api_key": ORDER_KEY,
        "shop_api_key": SHOP_KEY,
    }
    settings.update(overrides)
    return EmulatorConfig(**settings)


class Client:
    """Thin requests wrapper that knows the emulator's URLs and keys."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.session = requests.Session()
        self.session.trust_env = False  # never route loopback traffic through a proxy

    def order(self, path: str, key: str | None = ORDER_KEY, **params: Any) -> requests.Response:
        headers = {} if key is None else {"API-Authorization": key}
        return self.session.get(
            self.emu.order_api_url + path, params=params, headers=headers, timeout=30
        )

    def shop(
        self, path: str, key: str | None = SHOP_KEY, json: Any = None, method: str = "GET"
    ) -> requests.Response:
        headers = {} if key is None else {"API-Authorization": key}
        return self.session.request(
            method, self.emu.shop_api_url + path, json=json, headers=headers, timeout=30
        )

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(
            method, self.emu.base_url + "/_emulator" + path, timeout=30, **kwargs
        )

    def orders(self, **params: Any) -> list[dict[str, Any]]:
        body = self.order("/orders", **params).json()
        assert body["status"] == "ok", body
        return body["orders"]


@contextmanager
def serving(**overrides: Any) -> Iterator[Client]:
    """A running emulator (make_config with these overrides) and a client for it."""
    with Emulator(make_config(**overrides)) as emu:
        client = Client(emu)
        yield client
        client.session.close()


@pytest.fixture(scope="module")
def shared() -> Iterator[Client]:
    """One read-only emulator per test module: do not tick or change plugins through it."""
    with serving() as client:
        yield client


@pytest.fixture
def fresh() -> Iterator[Client]:
    """A private emulator for tests that mutate the store or its settings."""
    with serving() as client:
        yield client


@pytest.fixture
def start() -> Iterator[Any]:
    """Start emulators with custom config; all are stopped at the end of the test."""
    started: list[Emulator] = []

    def _start(**overrides: Any) -> Client:
        emu = Emulator(make_config(**overrides)).start()
        started.append(emu)
        return Client(emu)

    yield _start
    for emu in started:
        emu.stop()
