"""Routing between the three areas (Order API, Shop API, admin API) and request statistics.

Paths: `/api/order/...`, `/api/shop/...`, `/_emulator/...`; anything else gets the HTML 404 a
user with a wrong base URL would see from a web server. Runs of slashes in a path count as one
(`/api/order//orders` is `/api/order/orders`), as Centra's web server merges them and clients
such as tap-centra rely on it. The admin API has no authentication: the emulator binds to
loopback by default and the admin API is for tests and demos.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from collections import Counter
from email.message import Message
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from . import order_api, shop_api
from .responses import Response, json_response
from .store import TickError

if TYPE_CHECKING:
    from .emulator import Emulator

ORDER_PREFIX = "/api/order"
SHOP_PREFIX = "/api/shop"
ADMIN_PREFIX = "/_emulator"
_HTML_404 = (
    "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>\n"
    "<h1>Not Found</h1>\n<p>The requested URL {path} was not found on this server.</p>\n"
    "<p>Centra emulator: the Order API is under /api/order, the Shop API under /api/shop.</p>\n"
    "</body></html>\n"
)
_SLASHES = re.compile(r"/{2,}")


def split_target(target: str) -> tuple[str, dict[str, list[str]]]:
    """An HTTP request target -> (path with runs of slashes merged, query parameters).

    An origin-form target (`/api/order//orders?limit=5`) is split by hand: `urlsplit` would
    read a leading `//api` as a host name. Absolute-form targets (`http://host/path`) keep
    only their path.
    """
    if target.startswith("/"):
        path, _, query = target.partition("?")
        path = path.partition("#")[0]
        query = query.partition("#")[0]
    else:
        parts = urllib.parse.urlsplit(target)
        path, query = parts.path or "/", parts.query
    return _SLASHES.sub("/", path), urllib.parse.parse_qs(query, keep_blank_values=True)


class App:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.store = emulator.store
        self.faults = emulator.faults
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()

    # routing ------------------------------------------------------------------------------
    @staticmethod
    def area(path: str) -> str:
        for prefix, name in (
            (ORDER_PREFIX, "order"),
            (SHOP_PREFIX, "shop"),
            (ADMIN_PREFIX, "admin"),
        ):
            if path == prefix or path.startswith(prefix + "/"):
                return name
        return "other"

    def count(self, area: str, label: str) -> None:
        with self._lock:
            self.requests[f"{area} {label}"] += 1

    def request_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.requests.items()))

    # API ----------------------------------------------------------------------------------
    def before_api(self) -> str | None:
        """Apply the configured latency and pick this request's fault, if any."""
        latency = self.faults.latency_ms
        if latency:
            time.sleep(latency / 1000)
        return self.faults.next_fault()

    def fault_response(self, kind: str) -> Response:
        if kind == "429":
            retry_after = self.faults.retry_after
            value = (
                formatdate(time.time() + 1, usegmt=True)
                if retry_after == "http-date"
                else str(retry_after)
            )
            body = b'{"status":"no","msg":"Too Many Requests"}'
            return Response(429, body, headers=(("Retry-After", value),))
        if kind == "503":
            return Response(
                503,
                b"<html><body><h1>503 Service Unavailable</h1></body></html>\n",
                "text/html; charset=utf-8",
                (("Retry-After", "1"),),
            )
        return Response(
            500,
            b"<html><body><h1>500 Internal Server Error</h1></body></html>\n",
            "text/html; charset=utf-8",
        )

    def handle_api(
        self,
        area: str,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: Message,
        body: bytes,
    ) -> Response:
        api_key = headers.get("API-Authorization")
        if area == "order":
            sub = path[len(ORDER_PREFIX) :] or "/"
            label, response = order_api.handle(self.store, method, sub, query, api_key)
        else:
            sub = path[len(SHOP_PREFIX) :] or "/"
            label, response = shop_api.handle(self.store, method, sub, body, api_key)
        self.count(area, label)
        return response

    def not_found_html(self, path: str) -> Response:
        self.count("other", "404")
        text = _HTML_404.format(path=path.replace("<", "&lt;").replace(">", "&gt;"))
        return Response(404, text.encode(), "text/html; charset=utf-8")

    # admin --------------------------------------------------------------------------------
    def handle_admin(self, method: str, path: str, body: bytes) -> Response:
        route = path[len(ADMIN_PREFIX) :].rstrip("/")
        handlers = {
            ("POST", "/tick"): self._tick,
            ("GET", "/stats"): lambda _: json_response(200, self.emulator.stats()),
            ("GET", "/health"): lambda _: json_response(200, {"status": "ok"}),
            ("POST", "/faults"): self._faults,
            ("POST", "/plugin"): self._plugin,
        }
        handler = handlers.get((method, route))
        if handler is None:
            if any(r == route for _, r in handlers):
                return json_response(405, {"error": f"{method} is not supported on {path}"})
            known = ", ".join(f"{m} {ADMIN_PREFIX}{r}" for m, r in handlers)
            return json_response(404, {"error": f"unknown admin endpoint {path}; known: {known}"})
        self.count("admin", f"{method} {route}")
        try:
            return handler(body)
        except (TickError, ValueError, TypeError) as exc:
            return json_response(400, {"error": str(exc)})

    @staticmethod
    def _json_object(body: bytes, what: str) -> dict[str, Any]:
        if not body.strip():
            return {}
        try:
            value = json.loads(body)
        except ValueError as exc:
            raise ValueError(f"{what} body is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError(f"{what} body must be a JSON object")
        return value

    def _tick(self, body: bytes) -> Response:
        return json_response(200, self.emulator.tick(**self._json_object(body, "tick")))

    def _faults(self, body: bytes) -> Response:
        request = self._json_object(body, "faults")
        queue = request.pop("queue", [])
        clear = request.pop("clear", False)
        if not isinstance(queue, list) or not isinstance(clear, bool):
            raise ValueError("faults: `queue` must be a list of fault kinds and `clear` a boolean")
        self.faults.apply(queue=queue, clear=clear, settings=request)
        return json_response(200, self.faults.stats())

    def _plugin(self, body: bytes) -> Response:
        request = self._json_object(body, "plugin")
        api = request.pop("api", None)
        settings = self.emulator.set_plugin(api, **request)  # type: ignore[arg-type]
        return json_response(
            200,
            {
                "api": api,
                "allowed_endpoints": settings.allowed_endpoints,
                "statuses": settings.statuses,
                "markets": settings.markets,
                "include_hold_wfp": settings.include_hold_wfp,
            },
        )
