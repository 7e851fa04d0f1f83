"""Routing between the three areas (Order API, Shop API, admin API), request statistics and
the responses of the faults the app answers itself (429, 500, 503).

Paths: `/api/order/...`, `/api/shop/...`, `/_emulator/...`; anything else gets the HTML 404 a
user with a wrong base URL would see from a web server. Runs of slashes in a path count as one
(`/api/order//orders` is `/api/order/orders`), as Centra's web server merges them and clients
such as tap-centra rely on it.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
from collections import Counter
from email.message import Message
from email.utils import formatdate

from . import admin_api, order_api, shop_api
from .admin_api import ADMIN_PREFIX, Controls
from .request_log import RequestLog
from .responses import Response

ORDER_PREFIX = "/api/order"
SHOP_PREFIX = "/api/shop"
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


def not_found_page(path: str) -> Response:
    """The HTML 404 of a path no store serves (`App.not_found_html` also counts it)."""
    text = _HTML_404.format(path=path.replace("<", "&lt;").replace(">", "&gt;"))
    return Response(404, text.encode(), "text/html; charset=utf-8")


class App:
    def __init__(self, controls: Controls) -> None:
        self.controls = controls
        self.store = controls.store
        self.faults = controls.faults
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.request_log = RequestLog()  # when each API request arrived

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
        return not_found_page(path)

    # admin --------------------------------------------------------------------------------
    def handle_admin(self, method: str, path: str, body: bytes) -> Response:
        return admin_api.handle(
            self.controls, method, path, body, lambda label: self.count("admin", label)
        )
