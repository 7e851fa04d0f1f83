"""Run the Centra emulator in the foreground: Order API, Shop API, admin API and webhooks.

Prints the base URLs, the API keys and ready-to-paste `export CENTRA_...` lines, then serves
until Ctrl-C. With --tick-every the store changes by itself (a few new and updated orders,
returns, customers and products per tick), which is what a pipeline demo needs.
"""

from __future__ import annotations

import argparse
import random
import re
import shlex
import sys
import threading
import time
from typing import Any

from .config import (
    ALL_STATUSES,
    MARKET_IDS,
    ORDER_ENDPOINTS,
    SHOP_ENDPOINTS,
    EmulatorConfig,
    PluginSettings,
)
from .emulator import Emulator

DEFAULT_PORT = 8081


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def _int_list(choices: tuple[int, ...]) -> Any:
    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a comma-separated list of integers"
            ) from None
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(map(str, choices))}")
        return values

    return parse


def _retry_after(text: str) -> int | str:
    if text == "http-date":
        return text
    return _non_negative_int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    store = parser.add_argument_group("store")
    store.add_argument(
        "--orders", type=_non_negative_int, default=500, help="orders in the store (default 500)"
    )
    store.add_argument(
        "--customers", type=_non_negative_int, default=100, help="customers (default 100)"
    )
    store.add_argument(
        "--products",
        type=_non_negative_int,
        default=40,
        help="products, each with 1-3 variants (default 40)",
    )
    store.add_argument(
        "--returns", type=_non_negative_int, default=None, help="returns (default: orders / 10)"
    )
    store.add_argument(
        "--seed",
        type=_non_negative_int,
        default=7,
        help="random seed; same seed, same store (default 7)",
    )
    store.add_argument(
        "--now", default=None, help="store-local clock 'YYYY-MM-DD HH:MM:SS' (default: wall clock)"
    )
    store.add_argument(
        "--timezone",
        default="Europe/Stockholm",
        help="store timezone, IANA name (default Europe/Stockholm)",
    )
    store.add_argument(
        "--history-days",
        type=_non_negative_int,
        default=730,
        help="days of order history before now (default 730)",
    )

    net = parser.add_argument_group("network and keys")
    net.add_argument(
        "--host", default="127.0.0.1", help="bind address (default 127.0.0.1, loopback only)"
    )
    net.add_argument(
        "--port",
        type=_non_negative_int,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0 = any free port)",
    )
    net.add_argument("--order-api-key", default=None, help="Order API key (default: random)")
    net.add_argument("--shop-api-key", default=None, help="Shop API key (default: random)")

    api = parser.add_argument_group(
        "API behaviour where Centra's docs are silent (see docs/emulator.md)"
    )
    api.add_argument(
        "--max-limit",
        type=_non_negative_int,
        default=5000,
        help="larger `limit` values are clamped to this (default 5000)",
    )
    api.add_argument(
        "--status-format",
        choices=("code", "word"),
        default="code",
        help="orderStatus as '1'..'6' (code) or 'pending'... (word)",
    )
    api.add_argument(
        "--type-style",
        choices=("docs", "observed"),
        default="docs",
        help="docs: marketId/pricelistId/itemQty as ints; observed: as strings",
    )
    api.add_argument(
        "--orders-sort",
        choices=("asc", "desc"),
        default="asc",
        help="GET /orders sort by orderDate, orderId (default asc)",
    )
    api.add_argument(
        "--no-custom-attributes", action="store_true", help="no order_attr_* keys on orders"
    )
    api.add_argument(
        "--product-prices-as-numbers",
        action="store_true",
        help='GET /products prices[].price as JSON numbers (329) instead of strings ("329.00")',
    )
    api.add_argument(
        "--returns-offset",
        action="store_true",
        help="GET /returns also honours `offset` (it then takes precedence over `page`)",
    )

    plugin = parser.add_argument_group("plugin settings")
    plugin.add_argument(
        "--order-statuses",
        type=_int_list(ALL_STATUSES),
        default=None,
        help="statuses GET /orders returns, e.g. 1,2,3,4 (default all)",
    )
    plugin.add_argument(
        "--order-markets",
        type=_int_list(MARKET_IDS),
        default=None,
        help="market ids the Order API plugin serves (default all)",
    )
    plugin.add_argument(
        "--include-hold-wfp",
        action="store_true",
        help="also return orders on hold / waiting for payment",
    )
    plugin.add_argument(
        "--deny-endpoint",
        action="append",
        default=[],
        metavar="ENDPOINT",
        help=f"Order API endpoint to forbid (403), repeatable: {', '.join(ORDER_ENDPOINTS)}",
    )
    plugin.add_argument(
        "--deny-shop-endpoint",
        action="append",
        default=[],
        metavar="ENDPOINT",
        help=f"Shop API endpoint to forbid, repeatable; one of: {', '.join(SHOP_ENDPOINTS)}",
    )

    hooks = parser.add_argument_group("webhooks (Centra Webhook plugin, Integration API version)")
    hooks.add_argument(
        "--webhook-url", default=None, help="receiver URL; requires --webhook-secret"
    )
    hooks.add_argument("--webhook-secret", default=None, help="HMAC secret for X-Centra-Signature")
    hooks.add_argument(
        "--webhook-batch-size",
        type=_non_negative_int,
        default=100,
        help="max events per POST, 1-100 (default 100)",
    )
    hooks.add_argument(
        "--webhook-timeout", type=_positive_float, default=5.0, help="seconds per POST (default 5)"
    )
    hooks.add_argument(
        "--webhook-retries",
        type=_non_negative_int,
        default=3,
        help="retries after a failure, delays 1, 2, 4 s (default 3)",
    )
    hooks.add_argument(
        "--webhook-encoding",
        choices=("php", "rfc3986"),
        default="php",
        help="form encoding of the payload (default php: space as +)",
    )
    hooks.add_argument(
        "--webhook-duplicate-rate",
        type=_rate,
        default=0.0,
        help="share of events sent twice (default 0)",
    )
    hooks.add_argument(
        "--webhook-shuffle", action="store_true", help="shuffle events inside each batch"
    )

    faults = parser.add_argument_group("faults (API endpoints only)")
    faults.add_argument(
        "--latency-ms", type=_non_negative_int, default=0, help="added latency per API request"
    )
    faults.add_argument(
        "--rate-429", type=_rate, default=0.0, help="share of API requests answered 429"
    )
    faults.add_argument(
        "--retry-after",
        type=_retry_after,
        default=1,
        help="Retry-After of a 429: seconds or 'http-date' (default 1)",
    )
    faults.add_argument("--rate-500", type=_rate, default=0.0, help="share answered 500")
    faults.add_argument("--rate-503", type=_rate, default=0.0, help="share answered 503")
    faults.add_argument(
        "--rate-reset", type=_rate, default=0.0, help="share of connections reset (TCP RST)"
    )
    faults.add_argument(
        "--rate-truncate", type=_rate, default=0.0, help="share of bodies cut off halfway"
    )
    faults.add_argument(
        "--rate-slow", type=_rate, default=0.0, help="share of bodies dribbled over --slow-ms"
    )
    faults.add_argument(
        "--slow-ms",
        type=_non_negative_int,
        default=2000,
        help="duration of a slow body (default 2000)",
    )

    parser.add_argument(
        "--tick-every",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="tick automatically with small counts every SECONDS",
    )


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    """argparse namespace -> EmulatorConfig; raises ValueError with a readable message."""

    def allow_list(known: tuple[str, ...], denied: list[str], flag: str) -> tuple[str, ...] | None:
        unknown = [d for d in denied if d not in known]
        if unknown:
            raise ValueError(
                f"{flag} {unknown[0]!r} is not an endpoint; use one of: {', '.join(known)}"
            )
        return tuple(e for e in known if e not in denied) if denied else None

    order_plugin = PluginSettings(
        allowed_endpoints=allow_list(ORDER_ENDPOINTS, args.deny_endpoint, "--deny-endpoint"),
        statuses=args.order_statuses or ALL_STATUSES,
        markets=args.order_markets,
        include_hold_wfp=args.include_hold_wfp,
    )
    shop_plugin = PluginSettings(
        allowed_endpoints=allow_list(
            SHOP_ENDPOINTS, args.deny_shop_endpoint, "--deny-shop-endpoint"
        )
    )
    return EmulatorConfig(
        orders=args.orders,
        customers=args.customers,
        products=args.products,
        returns=args.returns,
        seed=args.seed,
        now=args.now,
        timezone=args.timezone,
        history_days=args.history_days,
        host=args.host,
        port=args.port,
        order_api_key=args.order_api_key,
        shop_api_key=args.shop_api_key,
        max_limit=args.max_limit,
        order_status_format=args.status_format,
        type_style=args.type_style,
        custom_attributes=not args.no_custom_attributes,
        orders_sort=args.orders_sort,
        product_prices_as_numbers=args.product_prices_as_numbers,
        returns_offset=args.returns_offset,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        webhook_batch_size=args.webhook_batch_size,
        webhook_timeout=args.webhook_timeout,
        webhook_retries=args.webhook_retries,
        webhook_encoding=args.webhook_encoding,
        webhook_duplicate_rate=args.webhook_duplicate_rate,
        webhook_shuffle=args.webhook_shuffle,
        order_plugin=order_plugin,
        shop_plugin=shop_plugin,
        latency_ms=args.latency_ms,
        rate_429=args.rate_429,
        retry_after=args.retry_after,
        rate_500=args.rate_500,
        rate_503=args.rate_503,
        rate_reset=args.rate_reset,
        rate_truncate=args.rate_truncate,
        rate_slow=args.rate_slow,
        slow_ms=args.slow_ms,
    )


def _banner(emu: Emulator) -> str:
    cfg = emu.config
    counts = emu.store.counts()
    exports = {
        "CENTRA_ORDER_API_URL": emu.order_api_url,
        "CENTRA_ORDER_API_KEY": emu.order_api_key,
        "CENTRA_SHOP_API_URL": emu.shop_api_url,
        "CENTRA_SHOP_API_KEY": emu.shop_api_key,
        "CENTRA_TIMEZONE": cfg.timezone,
    }
    if cfg.webhook_secret:
        exports["CENTRA_WEBHOOK_SECRET"] = cfg.webhook_secret
    lines = [
        f"Centra emulator: {counts['orders']} orders, {counts['customers']} customers, "
        f"{counts['products']} products ({counts['stock_items']} stock items), "
        f"{counts['returns']} returns; seed {cfg.seed}; store time {counts['now']} {cfg.timezone}",
        f"  Order API  {emu.order_api_url}  key {emu.order_api_key}",
        f"  Shop API   {emu.shop_api_url}  key {emu.shop_api_key}",
        f"  Admin API  {emu.base_url}/_emulator  (GET stats, POST tick/faults/plugin; no auth)",
    ]
    if cfg.webhook_url:
        lines.append(
            f"  Webhooks   -> {cfg.webhook_url} (signed, batches of {cfg.webhook_batch_size})"
        )
    lines.append("")
    lines.append("Paste into your shell (or .env without 'export'):")
    lines.extend(f"export {name}={shlex.quote(value)}" for name, value in exports.items())
    lines.append("")
    lines.append("Serving until Ctrl-C.")
    return "\n".join(lines)


def _auto_tick(emu: Emulator, every: float, stop: threading.Event) -> None:
    rng = random.Random(f"centra-emulator-cli-ticks-{emu.config.seed}")
    advance = max(1, round(every))
    while not stop.wait(every):
        result = emu.tick(
            new_orders=rng.randint(0, 5),
            updated_orders=rng.randint(0, 3),
            new_returns=rng.randint(0, 1),
            completed_returns=rng.randint(0, 1),
            updated_customers=rng.randint(0, 2),
            updated_products=rng.randint(0, 1),
            advance_seconds=advance,
        )
        print(
            f"[{result['now']}] tick: {len(result['new_order_ids'])} new orders, "
            f"{len(result['updated_order_ids'])} updated, "
            f"{len(result['new_return_ids'])} new returns, "
            f"{len(result['completed_return_ids'])} completed, "
            f"{len(result['updated_customer_ids'])} customers, "
            f"{len(result['updated_product_ids'])} products, "
            f"{result['webhook_events']} webhook events",
            flush=True,
        )


def _flag_names(message: str) -> str:
    """Speak in CLI flags: "webhook_url ..." -> "--webhook-url ..."."""
    return re.sub(
        r"\b(" + "|".join(sorted(_FIELD_FLAGS, key=len, reverse=True)) + r")\b",
        lambda m: _FIELD_FLAGS[m.group(1)],
        message,
    )


_FIELD_FLAGS = {
    name: "--" + name.replace("_", "-")
    for name in (
        "orders", "customers", "products", "returns", "seed", "now", "timezone", "history_days",
        "host", "port", "order_api_key", "shop_api_key", "max_limit", "webhook_url",
        "webhook_secret", "webhook_batch_size", "webhook_timeout", "webhook_retries",
        "webhook_duplicate_rate", "latency_ms", "rate_429", "retry_after", "rate_500",
        "rate_503", "rate_reset", "rate_truncate", "rate_slow", "slow_ms",
    )
}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        cfg = build_config(args)
    except ValueError as exc:
        print(f"centra-pipeline emulator: error: {_flag_names(str(exc))}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    emu = Emulator(cfg)
    try:
        emu.start()
    except OSError as exc:
        print(
            f"centra-pipeline emulator: error: cannot listen on {cfg.host}:{cfg.port} "
            f"({exc.strerror}); choose another --port (0 picks a free one) or --host",
            file=sys.stderr,
        )
        return 2
    print(_banner(emu), flush=True)
    print(f"(store built and server started in {time.perf_counter() - started:.2f} s)", flush=True)
    stop = threading.Event()
    ticker = None
    if args.tick_every:
        ticker = threading.Thread(target=_auto_tick, args=(emu, args.tick_every, stop), daemon=True)
        ticker.start()
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        print("\nStopping the emulator.", flush=True)
    finally:
        stop.set()
        if ticker is not None:
            ticker.join(5)
        emu.stop()
    return 0
