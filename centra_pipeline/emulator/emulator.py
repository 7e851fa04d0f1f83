"""`Emulator`: the store, the HTTP server thread, faults and the webhook sender, as one object.

with Emulator(EmulatorConfig(orders=500, seed=7, now="2026-01-15 12:00:00")) as emu:
    requests.get(emu.order_api_url + "/orders",
                 headers={"API-Authorization": emu.order_api_key})
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .app import App
from .config import EmulatorConfig, PluginSettings
from .faults import Faults
from .server import EmulatorHTTPServer, serve_in_thread, shut_down
from .store import Store
from .ticks import parse_tick
from .webhooks import WebhookSender


class Emulator:
    """Also the `admin_api.Controls` its HTTP app acts on: the app is handed this object
    rather than importing this module."""

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any) -> None:
        cfg = config or EmulatorConfig()
        if overrides:
            cfg = replace(cfg, **overrides)
        self.config = cfg
        self.store = Store(cfg)
        self.faults = Faults(cfg)
        self.webhooks = WebhookSender(cfg) if cfg.webhook_url else None
        self.app = App(self)
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Where it is served: (host, port) of the running server, and the path prefix of its
        # URLs. Its own server by default; `mount` hands both to another (a fleet's).
        self._address: Callable[[], tuple[str, int]] = self._own_address
        self.prefix = ""
        self.mounted = False

    def mount(self, address: Callable[[], tuple[str, int]], prefix: str) -> None:
        """Be served by someone else's server (a `fleet.Fleet`) under `prefix` (`/stores/x`):
        `address()` gives that server's (host, port), or raises RuntimeError while it is not
        running. URLs and `port` then point there; `start()` is refused, the owner serves
        `self.app` and starts `self.webhooks`."""
        if self._server is not None:
            raise RuntimeError("a running emulator cannot be mounted elsewhere")
        self._address = address
        self.prefix = prefix.rstrip("/")
        self.mounted = True

    # lifecycle ----------------------------------------------------------------------------
    def start(self) -> Emulator:
        if self.mounted:
            raise RuntimeError("this emulator is mounted in a fleet; start the fleet instead")
        if self._server is not None:
            return self
        self._server = EmulatorHTTPServer((self.config.host, self.config.port), self.app)
        self._thread = serve_in_thread(self._server, "centra-emulator-http")
        if self.webhooks is not None:
            self.webhooks.start()
        return self

    def stop(self) -> None:
        shut_down(self._server, self._thread)
        self._server = self._thread = None
        if self.webhooks is not None:
            self.webhooks.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # addresses and keys ---------------------------------------------------------------------
    def _own_address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() or use `with`")
        return self.config.host, int(self._server.server_address[1])

    @property
    def port(self) -> int:
        return self._address()[1]

    @property
    def base_url(self) -> str:
        """`http://host:port`, plus the mount prefix when mounted (`.../stores/<name>`)."""
        return http_url(*self._address()) + self.prefix

    @property
    def order_api_url(self) -> str:
        return f"{self.base_url}/api/order"

    @property
    def shop_api_url(self) -> str:
        return f"{self.base_url}/api/shop"

    @property
    def order_api_key(self) -> str:
        return self.store.keys["order"]

    @property
    def shop_api_key(self) -> str:
        return self.store.keys["shop"]

    # control ------------------------------------------------------------------------------
    def tick(self, **counts: Any) -> dict[str, Any]:
        """Advance the clock and change the store (same as POST /_emulator/tick).

        Raises TickError (a ValueError) for unknown keys or bad counts; nothing changes then.
        """
        request = parse_tick(counts)
        result, events = self.store.tick(request)
        if self.webhooks is not None:
            self.webhooks.enqueue(events)
        result["webhook_events"] = len(events) if self.webhooks is not None else 0
        return result

    def set_plugin(self, api: str, **settings: Any) -> PluginSettings:
        """Change an API plugin's settings live (statuses, markets, include_hold_wfp,
        allowed_endpoints, secret)."""
        return self.store.set_plugin(api, **settings)

    def wait_webhooks(self, timeout: float = 10.0) -> bool:
        """Block until the webhook queue is drained (delivered or dropped)."""
        return True if self.webhooks is None else self.webhooks.wait_idle(timeout)

    def requests_seen(self) -> dict[str, dict]:
        """When each API request arrived, per API, and the most in any one second."""
        return self.app.request_log.summary()

    def stats(self) -> dict[str, Any]:
        counts = self.store.counts()
        requests = self.app.request_counts()
        return {
            "now": counts["now"],
            "ticks": counts["ticks"],
            "orders": {"total": counts["orders"], "visible": counts["orders_visible"]},
            "customers": counts["customers"],
            "products": counts["products"],
            "stock_items": counts["stock_items"],
            "shop_products": counts["shop_products"],
            "returns": {
                "total": counts["returns"],
                "open": counts["returns_open"],
                "visible": counts["returns_visible"],
            },
            "requests": requests,
            "faults": self.faults.stats(),
            "webhooks": {"enabled": False}
            if self.webhooks is None
            else {"enabled": True, **self.webhooks.stats()},
        }


def http_url(host: str, port: int) -> str:
    """The URL clients use for a server bound to (host, port)."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - only for display: the wildcard is reachable here
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
