"""Run the Centra emulator in the foreground: Order API, Shop API, admin API and webhooks.

Prints the base URLs, the API keys and ready-to-paste `export` lines for the pipeline's
connection variables, then serves until Ctrl-C. With --tick-every the store changes by itself
(a few new and updated orders, returns, customers and products per tick), which is what a
pipeline demo needs. The options themselves are a table in `cli_options`.
"""

from __future__ import annotations

import argparse
import random
import shlex
import sys
import threading
import time

from centra_pipeline.settings import connection_env

from .cli_options import OPTION_GROUPS, config_values, flag_names
from .config import ALL_STATUSES, API_ENDPOINTS, SHOP_ENDPOINTS, EmulatorConfig, PluginSettings
from .emulator import Emulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for title, options in OPTION_GROUPS:
        target = parser if title is None else parser.add_argument_group(title)
        for option in options:
            option.add_to(target)


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    """argparse namespace -> EmulatorConfig; raises ValueError with a readable message."""
    order_plugin = PluginSettings(
        allowed_endpoints=_allow_list(
            API_ENDPOINTS["order"], args.deny_endpoint, "--deny-endpoint"
        ),
        statuses=args.order_statuses or ALL_STATUSES,
        markets=args.order_markets,
        include_hold_wfp=args.include_hold_wfp,
    )
    shop_plugin = PluginSettings(
        allowed_endpoints=_allow_list(
            SHOP_ENDPOINTS, args.deny_shop_endpoint, "--deny-shop-endpoint"
        )
    )
    return EmulatorConfig(
        **config_values(args),
        custom_attributes=not args.no_custom_attributes,
        order_plugin=order_plugin,
        shop_plugin=shop_plugin,
    )


def _allow_list(known: tuple[str, ...], denied: list[str], flag: str) -> tuple[str, ...] | None:
    unknown = [d for d in denied if d not in known]
    if unknown:
        raise ValueError(
            f"{flag} {unknown[0]!r} is not an endpoint; use one of: {', '.join(known)}"
        )
    return tuple(e for e in known if e not in denied) if denied else None


def run(args: argparse.Namespace) -> int:
    try:
        cfg = build_config(args)
    except ValueError as exc:
        print(f"centra-pipeline emulator: error: {flag_names(str(exc))}", file=sys.stderr)
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
    _serve_until_interrupted(emu, args.tick_every)
    return 0


def _serve_until_interrupted(emu: Emulator, tick_every: float | None) -> None:
    stop = threading.Event()
    ticker = None
    if tick_every:
        ticker = threading.Thread(target=_auto_tick, args=(emu, tick_every, stop), daemon=True)
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


def _banner(emu: Emulator) -> str:
    cfg = emu.config
    counts = emu.store.counts()
    exports = connection_env(
        emu.order_api_url,
        emu.order_api_key,
        emu.shop_api_url,
        emu.shop_api_key,
        cfg.timezone,
        webhook_secret=cfg.webhook_secret,
    )
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
