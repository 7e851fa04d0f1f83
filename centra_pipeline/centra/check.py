"""`centra-pipeline check`: is each API and each endpoint the pipeline uses reachable with the
configured key? For every failure, say exactly what to fix in the environment or in the
Centra plugin's settings. One small request per endpoint (`limit=1`), short retry budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from centra_pipeline.centra.errors import (
    CentraAuthError,
    CentraConnectionError,
    CentraEndpointNotAllowed,
    CentraError,
    CentraURLError,
)
from centra_pipeline.centra.http import HttpConfig
from centra_pipeline.centra.order_api import (
    ENDPOINT_CUSTOMER,
    ENDPOINT_CUSTOMERS,
    ENDPOINT_ORDERS,
    ENDPOINT_PRODUCTS,
    ENDPOINT_RETURNS,
    ENDPOINT_STOCK,
    OrderApi,
)
from centra_pipeline.centra.shop_api import ENDPOINT_PRODUCTS_FILTER, ShopApi
from centra_pipeline.settings import (
    ENV_ORDER_API_KEY,
    ENV_ORDER_API_URL,
    ENV_SHOP_API_KEY,
    ENV_SHOP_API_URL,
    ENV_WEBHOOK_SECRET,
    Settings,
)

CHECK_HTTP = HttpConfig(
    connect_timeout=5,
    read_timeout=20,
    max_attempts=3,
    max_retry_seconds=15,
    max_requests_per_second=5,
)


@dataclass(frozen=True)
class CheckLine:
    api: str
    what: str
    ok: bool
    message: str


def _probe(api: str, endpoint: str, call: Callable[[], Any]) -> CheckLine:
    started = time.monotonic()
    try:
        detail = call()
    except CentraEndpointNotAllowed as exc:
        return CheckLine(api, endpoint, False, str(exc))
    except (CentraAuthError, CentraURLError, CentraConnectionError, CentraError) as exc:
        return CheckLine(api, endpoint, False, str(exc))
    ms = (time.monotonic() - started) * 1000
    return CheckLine(api, endpoint, True, f"OK ({detail}, {ms:.0f} ms)")


def _first_page(pages) -> str:
    page = next(iter(pages))
    return f"{len(page.records)} record{'s' if len(page.records) != 1 else ''} in a limit=1 read"


def _connect(lines: list[CheckLine], api: str, client: Any, url: str | None, key: Any) -> Any:
    """A URL that is not http(s) fails before any request: a FIX line, not a traceback."""
    try:
        return client.connect(url or "", key or "", config=CHECK_HTTP, page_size=1)
    except CentraURLError as exc:
        lines.append(CheckLine(api, "configuration", False, str(exc)))
        return None


def run_checks(settings: Settings) -> list[CheckLine]:
    lines: list[CheckLine] = []
    _check_api(
        lines,
        "Order API",
        OrderApi,
        settings.missing_order_api(),
        settings.order_api_url,
        settings.order_api_key,
        _probe_order_api,
    )
    _check_api(
        lines,
        "Shop API",
        ShopApi,
        settings.missing_shop_api(),
        settings.shop_api_url,
        settings.shop_api_key,
        _probe_shop_api,
    )
    lines.append(_check_webhook(settings))
    return lines


def _check_api(
    lines: list[CheckLine],
    api: str,
    client: Any,
    missing: list[str],
    url: str | None,
    key: Any,
    probes: Callable[[Any], list[CheckLine]],
) -> None:
    """A line naming what is not configured, or the probes' lines."""
    if missing:
        lines.append(
            CheckLine(
                api,
                "configuration",
                False,
                f"set {' and '.join(missing)} (the {api} plugin's endpoint URL and secret)",
            )
        )
        return
    connected = _connect(lines, api, client, url, key)
    if connected is None:
        return
    try:
        lines.extend(probes(connected))
    finally:
        connected.close()


def _probe_order_api(api: OrderApi) -> list[CheckLine]:
    first = _probe("Order API", ENDPOINT_ORDERS, lambda: _first_page(api.iter_orders()))
    # A key or URL that reaches no endpoint would fail every probe the same way: one line says
    # it. An endpoint the plugin does not allow says nothing about the others.
    if not (first.ok or "not allow" in first.message):
        return [first]
    return [first, *_probe_order_endpoints(api)]


def _probe_order_endpoints(api: OrderApi) -> list[CheckLine]:
    """Every Order API endpoint after GET /orders; the customer lookup uses a listed id."""
    lines = [_probe("Order API", ENDPOINT_RETURNS, lambda: _first_page(api.iter_returns()))]
    customer_ids: list[Any] = []

    def customers() -> str:
        page = next(iter(api.iter_customers()))
        customer_ids.extend(r.obj.get("customerId") for r in page.records)
        return f"{len(page.records)} record(s) in a limit=1 read"

    lines.append(_probe("Order API", ENDPOINT_CUSTOMERS, customers))
    if customer_ids:
        lines.append(
            _probe(
                "Order API",
                ENDPOINT_CUSTOMER,
                lambda: "found" if api.get_customer(customer_ids[0]) else "not found",
            )
        )
    else:
        lines.append(
            CheckLine("Order API", ENDPOINT_CUSTOMER, True, "skipped (no customer to look up)")
        )
    lines.append(_probe("Order API", ENDPOINT_PRODUCTS, lambda: _first_page(api.iter_products())))
    lines.append(_probe("Order API", ENDPOINT_STOCK, lambda: _first_page(api.iter_stock())))
    return lines


def _probe_shop_api(shop: ShopApi) -> list[CheckLine]:
    return [_probe("Shop API", ENDPOINT_PRODUCTS_FILTER, lambda: _first_page(shop.iter_products()))]


def _check_webhook(settings: Settings) -> CheckLine:
    if settings.webhook_secret:
        return CheckLine("Webhook", ENV_WEBHOOK_SECRET, True, "OK (set)")
    return CheckLine(
        "Webhook",
        ENV_WEBHOOK_SECRET,
        False,
        f"set {ENV_WEBHOOK_SECRET} to the endpoint secret of the Centra Webhook plugin "
        "(version 'Integration API', Order trigger on); without it the webhook receiver "
        "refuses to start and changes to old orders wait for the hourly lookback",
    )


def format_lines(lines: list[CheckLine]) -> str:
    width = max(len(f"{line.api} {line.what}") for line in lines) if lines else 0
    out = []
    for line in lines:
        label = f"{line.api} {line.what}"
        status = "ok  " if line.ok else "FIX "
        out.append(f"{status} {label:<{width}}  {line.message}")
    return "\n".join(out)


__all__ = [
    "ENV_ORDER_API_KEY",
    "ENV_ORDER_API_URL",
    "ENV_SHOP_API_KEY",
    "ENV_SHOP_API_URL",
    "CheckLine",
    "format_lines",
    "run_checks",
]
