"""Run the Centra emulator in the foreground: Order API, Shop API, admin API and webhooks.

Prints the base URLs, the API keys and ready-to-paste `export` lines for the pipeline's
connection variables, then serves until Ctrl-C. With --tick-every the store changes by itself
(a few new and updated orders, returns, customers and products per tick), which is what a
pipeline demo needs. With --stores N it serves N different stores from one port instead,
each under /stores/<name>, and prints (and with --stores-file writes) what points the
pipeline at all of them (`fleet`). The options themselves are a table in `cli_options`.
"""

from __future__ import annotations

import argparse
import random
import shlex
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol

from centra_pipeline.settings import connection_env

from . import cli_options
from .cli_options import OPTION_GROUPS, config_values, flag_names
from .config import ALL_STATUSES, API_ENDPOINTS, SHOP_ENDPOINTS, EmulatorConfig, PluginSettings
from .emulator import Emulator
from .fleet import (
    FLEET_ORDERS,
    Fleet,
    fleet_configs,
    store_names,
    store_secret_env,
    stores_file_text,
)

# The pipeline's variable for a stores file (centra_pipeline.stores.ENV_STORES_FILE).
ENV_STORES_FILE = "CENTRA_STORES_FILE"
# EmulatorConfig fields a fleet sets per store (fleet_configs) or for itself (host, port).
_PER_STORE = (
    "orders", "customers", "returns", "seed", "now", "timezone", "host", "port",
    "order_api_key", "shop_api_key", "webhook_url", "webhook_secret",
)  # fmt: skip


class _UsageError(ValueError):
    """A message that already speaks in flags (flag_names would mangle `--store-orders`)."""


def _message(exc: ValueError) -> str:
    return str(exc) if isinstance(exc, _UsageError) else flag_names(str(exc))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for title, options in OPTION_GROUPS:
        target = parser if title is None else parser.add_argument_group(title)
        for option in options:
            option.add_to(target)


def build_config(args: argparse.Namespace, **overrides: Any) -> EmulatorConfig:
    """argparse namespace -> EmulatorConfig (`overrides` replace fields the options set);
    raises ValueError with a readable message."""
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
        **(config_values(args) | overrides),
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


def build_fleet(args: argparse.Namespace) -> Fleet:
    """argparse namespace with --stores -> a Fleet, not started: `fleet_configs` stores,
    every other option applying to each of them; ValueError with a readable message.

    --seed is the first store's seed; --customers, --returns and --timezone, when given,
    apply to every store instead of the derived ones; --webhook-url is a base URL (each
    store posts to `<url>/<name>`) and --webhook-secret, when given, every store's secret.
    """
    defaults = {o.dest: o.default for o in cli_options.options()}
    if args.orders != defaults["orders"]:
        raise _UsageError("with --stores, store sizes come from --store-orders MIN,MAX")
    for flag in ("--order-api-key", "--shop-api-key"):
        if getattr(args, flag[2:].replace("-", "_")) is not None:
            raise _UsageError(f"{flag} cannot be given with --stores: each store has its own")
    if args.webhook_secret is not None and args.webhook_url is None:
        raise _UsageError("--webhook-secret needs --webhook-url (a base URL with --stores)")
    if args.stores_file is not None and not args.stores_file.endswith(".toml"):
        raise _UsageError(f"--stores-file {args.stores_file!r}: the stores file is TOML, *.toml")
    base = build_config(
        args, order_api_key=None, shop_api_key=None, webhook_url=None, webhook_secret=None
    )
    common = {f.name: getattr(base, f.name) for f in fields(base) if f.name not in _PER_STORE}
    for dest in ("customers", "returns", "timezone"):
        if getattr(args, dest) != defaults[dest]:
            common[dest] = getattr(args, dest)
    names = store_names(args.stores)
    secrets = dict.fromkeys(names, args.webhook_secret) if args.webhook_secret else None
    configs = fleet_configs(
        args.stores,
        seed=args.seed,
        now=args.now,
        orders=args.store_orders or FLEET_ORDERS,
        webhook_base_url=args.webhook_url,
        webhook_secrets=secrets,
        **common,
    )
    return Fleet(configs, host=args.host, port=args.port)


def run(args: argparse.Namespace) -> int:
    if args.stores is not None:
        return _run_fleet(args)
    try:
        for flag in ("--store-orders", "--stores-file"):
            if getattr(args, flag[2:].replace("-", "_")) is not None:
                raise _UsageError(f"{flag} needs --stores N")
        cfg = build_config(args)
    except ValueError as exc:
        return _error(_message(exc))
    started = time.perf_counter()
    emu = Emulator(cfg)
    try:
        emu.start()
    except OSError as exc:
        return _cannot_listen(cfg.host, cfg.port, exc)
    print(_banner(emu), flush=True)
    print(f"(store built and server started in {time.perf_counter() - started:.2f} s)", flush=True)
    _serve_until_interrupted(emu, {"": emu}, args.tick_every)
    return 0


def _run_fleet(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        fleet = build_fleet(args)
    except ValueError as exc:
        return _error(_message(exc))
    try:
        fleet.start()
    except OSError as exc:
        return _cannot_listen(args.host, args.port, exc)
    path = None
    if args.stores_file is not None:
        path = Path(args.stores_file).expanduser().resolve()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(stores_file_text(fleet), encoding="utf-8")
        except OSError as exc:
            fleet.stop()
            return _error(f"cannot write --stores-file {path}: {exc.strerror or exc}")
    print(_fleet_banner(fleet, path), flush=True)
    print(f"(stores built and server started in {time.perf_counter() - started:.2f} s)", flush=True)
    _serve_until_interrupted(fleet, fleet.stores, args.tick_every)
    return 0


def _error(message: str) -> int:
    print(f"centra-pipeline emulator: error: {message}", file=sys.stderr)
    return 2


def _cannot_listen(host: str, port: int, exc: OSError) -> int:
    return _error(
        f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port "
        "(0 picks a free one) or --host"
    )


class _Stoppable(Protocol):
    def stop(self) -> None: ...


def _serve_until_interrupted(
    server: _Stoppable, stores: dict[str, Emulator], tick_every: float | None
) -> None:
    """Serve until Ctrl-C; with `tick_every`, tick each store (by label) in its own thread."""
    stop = threading.Event()
    tickers = [
        threading.Thread(target=_auto_tick, args=(emu, tick_every, stop, label), daemon=True)
        for label, emu in (stores.items() if tick_every else ())
    ]
    for ticker in tickers:
        ticker.start()
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        print("\nStopping the emulator.", flush=True)
    finally:
        stop.set()
        for ticker in tickers:
            ticker.join(5)
        server.stop()


def _summary(emu: Emulator) -> str:
    cfg = emu.config
    counts = emu.store.counts()
    return (
        f"{counts['orders']} orders, {counts['customers']} customers, "
        f"{counts['products']} products ({counts['stock_items']} stock items), "
        f"{counts['returns']} returns; seed {cfg.seed}; store time {counts['now']} {cfg.timezone}"
    )


def _api_lines(emu: Emulator, indent: str) -> list[str]:
    cfg = emu.config
    lines = [
        f"{indent}Order API  {emu.order_api_url}  key {emu.order_api_key}",
        f"{indent}Shop API   {emu.shop_api_url}  key {emu.shop_api_key}",
        f"{indent}Admin API  {emu.base_url}/_emulator  "
        "(GET stats, POST tick/faults/plugin; no auth)",
    ]
    if cfg.webhook_url:
        lines.append(
            f"{indent}Webhooks   -> {cfg.webhook_url} (signed, batches of {cfg.webhook_batch_size})"
        )
    return lines


def _fleet_banner(fleet: Fleet, stores_file: Path | None) -> str:
    lines = [
        f"Centra emulator: {len(fleet.stores)} stores on {fleet.base_url}, "
        "each under /stores/<name>"
    ]
    for name, emu in fleet.stores.items():
        lines.append(f"  {name}: {_summary(emu)}")
        lines.extend(_api_lines(emu, "    "))
    lines.append("")
    exports = store_secret_env(fleet)
    if stores_file is not None:
        lines.append(f"Stores file {stores_file} (names the variables below, holds no secret).")
        exports = {ENV_STORES_FILE: str(stores_file), **exports}
    else:
        lines.append("(--stores-file PATH writes a stores file that names these variables.)")
    lines.append("Paste into your shell (or .env without 'export'):")
    lines.extend(f"export {name}={shlex.quote(value)}" for name, value in exports.items())
    lines.append("")
    lines.append("Serving until Ctrl-C.")
    return "\n".join(lines)


def _banner(emu: Emulator) -> str:
    cfg = emu.config
    exports = connection_env(
        emu.order_api_url,
        emu.order_api_key,
        emu.shop_api_url,
        emu.shop_api_key,
        cfg.timezone,
        webhook_secret=cfg.webhook_secret,
    )
    lines = [f"Centra emulator: {_summary(emu)}", *_api_lines(emu, "  "), ""]
    lines.append("Paste into your shell (or .env without 'export'):")
    lines.extend(f"export {name}={shlex.quote(value)}" for name, value in exports.items())
    lines.append("")
    lines.append("Serving until Ctrl-C.")
    return "\n".join(lines)


def _auto_tick(emu: Emulator, every: float, stop: threading.Event, label: str = "") -> None:
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
        store = f"{label} " if label else ""
        print(
            f"[{result['now']}] {store}tick: {len(result['new_order_ids'])} new orders, "
            f"{len(result['updated_order_ids'])} updated, "
            f"{len(result['new_return_ids'])} new returns, "
            f"{len(result['completed_return_ids'])} completed, "
            f"{len(result['updated_customer_ids'])} customers, "
            f"{len(result['updated_product_ids'])} products, "
            f"{result['webhook_events']} webhook events",
            flush=True,
        )
