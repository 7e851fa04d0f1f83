"""The admin API under /_emulator: tick, stats, health, faults and live plugin settings.

It has no authentication: the emulator binds to loopback by default and the admin API is for
tests and demos. It drives the emulator through `Controls`, which `Emulator` provides and
passes in, so this module does not depend on the emulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from .config import PluginSettings
from .faults import Faults
from .responses import Response, json_response
from .store import Store
from .ticks import TickError

ADMIN_PREFIX = "/_emulator"


class Controls(Protocol):
    """What the HTTP app and its admin API act on."""

    store: Store
    faults: Faults

    def tick(self, **counts: Any) -> dict[str, Any]: ...

    def set_plugin(self, api: str, **settings: Any) -> PluginSettings: ...

    def stats(self) -> dict[str, Any]: ...

    def requests_seen(self) -> dict[str, dict]: ...


def handle(
    controls: Controls, method: str, path: str, body: bytes, count: Callable[[str], None]
) -> Response:
    """Answer one admin request. `count(label)` runs before a known endpoint does, so
    GET /stats includes itself in the request counts."""
    route = path[len(ADMIN_PREFIX) :].rstrip("/")
    handlers: dict[tuple[str, str], Callable[[Controls, bytes], Response]] = {
        ("POST", "/tick"): _tick,
        ("GET", "/stats"): lambda c, _: json_response(200, c.stats()),
        ("GET", "/health"): lambda _c, _b: json_response(200, {"status": "ok"}),
        # Arrival times of the API requests kept, per API, and the most in any one second.
        ("GET", "/requests"): lambda c, _: json_response(200, c.requests_seen()),
        ("POST", "/faults"): _faults,
        ("POST", "/plugin"): _plugin,
    }
    handler = handlers.get((method, route))
    if handler is None:
        if any(r == route for _, r in handlers):
            return json_response(405, {"error": f"{method} is not supported on {path}"})
        known = ", ".join(f"{m} {ADMIN_PREFIX}{r}" for m, r in handlers)
        return json_response(404, {"error": f"unknown admin endpoint {path}; known: {known}"})
    count(f"{method} {route}")
    try:
        return handler(controls, body)
    except (TickError, ValueError, TypeError) as exc:
        return json_response(400, {"error": str(exc)})


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


def _tick(controls: Controls, body: bytes) -> Response:
    return json_response(200, controls.tick(**_json_object(body, "tick")))


def _faults(controls: Controls, body: bytes) -> Response:
    request = _json_object(body, "faults")
    queue = request.pop("queue", [])
    clear = request.pop("clear", False)
    if not isinstance(queue, list) or not isinstance(clear, bool):
        raise ValueError("faults: `queue` must be a list of fault kinds and `clear` a boolean")
    controls.faults.apply(queue=queue, clear=clear, settings=request)
    return json_response(200, controls.faults.stats())


def _plugin(controls: Controls, body: bytes) -> Response:
    request = _json_object(body, "plugin")
    api = request.pop("api", None)
    settings = controls.set_plugin(api, **request)  # type: ignore[arg-type]
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
