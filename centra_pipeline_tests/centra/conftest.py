"""Fixtures for the Centra API client tests: the emulator as a real HTTP server on loopback.

Fixture style follows `centra_pipeline_tests/emulator/conftest.py`: one read-only emulator per
module (`emu`), a private one for tests that mutate the store, its plugins or its faults
(`fresh`), and a factory for custom configurations (`start`). Stores are small so the whole
folder runs in seconds; retry tests use `FAST` (millisecond backoff) unless they prove that a
real `Retry-After` is honoured.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from centra_pipeline.centra.http import HttpConfig
from centra_pipeline.centra.order_api import OrderApi, Page
from centra_pipeline.centra.shop_api import ShopApi
from centra_pipeline.emulator import Emulator, EmulatorConfig

NOW = "2026-01-15 12:00:00"
TIMEZONE = "Europe/Stockholm"
# Distinctive keys, so a leak into a message or a log line cannot hide in ordinary text.
ORDER_KEY = "order-key-7f3a9c51e2d84b06"
SHOP_KEY = "shop-key-b81d2e04c9a7f315"
WEBHOOK_SECRET = "webhook-secret-5c0e9a7d13f2"
SECRETS = (ORDER_KEY, SHOP_KEY, WEBHOOK_SECRET)

# Short timeouts and millisecond backoff: retries cost nothing, the budget stays bounded.
FAST = HttpConfig(
    connect_timeout=2.0,
    read_timeout=10.0,
    max_attempts=4,
    max_retry_seconds=10.0,
    backoff_base=0.01,
    backoff_max=0.05,
    max_requests_per_second=1000.0,
)


def make_config(**overrides: Any) -> EmulatorConfig:
    settings: dict[str, Any] = {
        "orders": 150,
        "customers": 30,
        "products": 6,
        "seed": 11,
        "now": NOW,
        "timezone": TIMEZONE,
        "order_api_key": ORDER_KEY,
        "shop_api_key": SHOP_KEY,
    }
    settings.update(overrides)
    return EmulatorConfig(**settings)


def fast(**overrides: Any) -> HttpConfig:
    return replace(FAST, **overrides)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """One read-only emulator per test module: do not tick, fault or change plugins on it."""
    with Emulator(make_config()) as emulator:
        yield emulator


@pytest.fixture
def fresh() -> Iterator[Emulator]:
    """A private emulator for tests that mutate the store, its plugins or its faults."""
    with Emulator(make_config()) as emulator:
        yield emulator


@pytest.fixture
def start() -> Iterator[Callable[..., Emulator]]:
    """Start emulators with custom config; all are stopped at the end of the test."""
    started: list[Emulator] = []

    def _start(**overrides: Any) -> Emulator:
        emulator = Emulator(make_config(**overrides)).start()
        started.append(emulator)
        return emulator

    yield _start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def clients() -> Iterator[Any]:
    """Build Order/Shop API clients for an emulator; all are closed at the end of the test."""
    opened: list[OrderApi | ShopApi] = []

    class _Clients:
        def order(
            self,
            emulator: Emulator,
            *,
            url: str | None = None,
            key: str | None = None,
            config: HttpConfig = FAST,
            page_size: int = 1000,
        ) -> OrderApi:
            api = OrderApi.connect(
                url or emulator.order_api_url,
                key or emulator.order_api_key,
                config=config,
                page_size=page_size,
            )
            opened.append(api)
            return api

        def shop(
            self,
            emulator: Emulator,
            *,
            url: str | None = None,
            key: str | None = None,
            config: HttpConfig = FAST,
            page_size: int = 100,
        ) -> ShopApi:
            api = ShopApi.connect(
                url or emulator.shop_api_url,
                key or emulator.shop_api_key,
                config=config,
                page_size=page_size,
            )
            opened.append(api)
            return api

    yield _Clients()
    for api in opened:
        api.close()


# --- helpers -----------------------------------------------------------------------------
def served(emulator: Emulator, api: str = "order") -> int:
    """How many requests the emulator has answered on one API (faults included)."""
    prefix = f"{api} "
    return sum(n for label, n in emulator.stats()["requests"].items() if label.startswith(prefix))


def served_endpoint(emulator: Emulator, api: str, endpoint: str) -> int:
    return emulator.stats()["requests"].get(f"{api} {endpoint}", 0)


def objs(pages: Iterable[Page]) -> list[dict[str, Any]]:
    return [record.obj for page in pages for record in page.records]


def raws(pages: Iterable[Page]) -> list[str]:
    return [record.raw for page in pages for record in page.records]


# --- a plain web server, for answers the emulator never gives ------------------------------
class PlainServer:
    """A real HTTP server on loopback that answers every request with a scripted response.

    The emulator always answers like Centra; this stands in for the *other* servers a wrong
    setting or a broken proxy can put on the line: a web page answering 200, a body that is
    complete but not JSON, a body cut short without a Content-Length.
    """

    def __init__(self) -> None:
        self.status = 200
        self.body = b""
        self.content_type = "application/json"
        self.send_length = True
        self.requests = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with outer._lock:
                    outer.requests += 1
                self.send_response(outer.status)
                self.send_header("Content-Type", outer.content_type)
                if outer.send_length:
                    self.send_header("Content-Length", str(len(outer.body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(outer.body)

            do_GET = _answer
            do_POST = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/order"

    def answer(
        self,
        body: bytes,
        *,
        status: int = 200,
        content_type: str = "application/json",
        send_length: bool = True,
    ) -> None:
        self.body, self.status = body, status
        self.content_type, self.send_length = content_type, send_length

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def plain() -> Iterator[PlainServer]:
    server = PlainServer()
    yield server
    server.stop()
