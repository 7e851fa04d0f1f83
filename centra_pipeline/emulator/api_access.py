"""What every Order API and Shop API request goes through: the access checks, then its endpoint
under the store lock.

Checks in this order, our choice (docs/emulator.md): API key (401) -> known endpoint (404) ->
plugin allow-list (403). Each API supplies its router and its own error bodies. The payload is
built under the store lock, so it shows one version of the store, and encoded after it.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .responses import Response, json_response
from .store import Store

# (method, path) -> (endpoint name as used in the plugin allow-list, path parameter) or None
Router = Callable[[str, str], tuple[str, str | None] | None]
# (endpoint, path parameter) -> (HTTP status, JSON payload)
Endpoint = Callable[[str, str | None], tuple[int, Any]]

NOT_ALLOWED = {"status": "Not Allowed"}


@dataclass(frozen=True)
class Api:
    name: str  # "order" or "shop": the key of its API key and plugin settings in the store
    route: Router
    auth_failed: dict[str, Any]
    unknown_endpoint: dict[str, Any]


def serve(
    store: Store, api: Api, method: str, path: str, api_key: str | None, endpoint: Endpoint
) -> tuple[str, Response]:
    """Run the checks, then the endpoint; returns (stats label, response)."""
    path = path.rstrip("/") or "/"
    expected = store.keys[api.name]
    if api_key is None or not hmac.compare_digest(api_key.encode(), expected.encode()):
        return "auth failed", json_response(401, api.auth_failed)
    routed = api.route(method, path)
    if routed is None:
        return "unknown", json_response(404, api.unknown_endpoint)
    name, param = routed
    allowed = store.plugins[api.name].allowed_endpoints
    if allowed is not None and name not in allowed:
        return name, json_response(403, NOT_ALLOWED)
    with store.lock:
        status, payload = endpoint(name, param)
    return name, json_response(status, payload)
