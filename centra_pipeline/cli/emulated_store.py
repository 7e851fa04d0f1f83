"""The synthetic store that `demo`, `demo --ui` and `dev` run the pipeline against: its size
options and defaults, the emulator configuration they make, the environment that points the
pipeline at the running emulator, and the data directory it fills.

Defined once, below both commands, so that the three agree (the README promises `dev` is
`demo --ui`, and its Quickstart gives the demo's size).
"""

from __future__ import annotations

import argparse
import shutil
from typing import TYPE_CHECKING, Any

from centra_pipeline.settings import ENV_DATA_DIR, ENV_MAX_RPS, Settings, connection_env
from centra_pipeline.stores import ALL_STORES_FILE, STORES_DIR

if TYPE_CHECKING:
    from centra_pipeline.emulator import Emulator, EmulatorConfig

MARKER = ".centra-demo"
DEMO_STORES_FILE = "demo-stores.toml"  # `demo --stores N` writes it into the data directory
DEFAULT_ORDERS = 20_000
DEFAULT_PRODUCTS = 300
DEFAULT_SEED = 42
DEMO_TIMEZONE = "Europe/Stockholm"
# option: (default, help). Customers and products default to None: store_config derives them.
STORE_OPTIONS = {
    "orders": (DEFAULT_ORDERS, f"orders in the synthetic store (default {DEFAULT_ORDERS:,})"),
    "customers": (None, "customers (default orders / 5)"),
    "products": (None, f"products (default {DEFAULT_PRODUCTS})"),
    "seed": (DEFAULT_SEED, f"store seed (default {DEFAULT_SEED})"),
}


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """The store-size options, shared by `demo` (with and without --ui) and `dev`."""
    for name, (default, help_text) in STORE_OPTIONS.items():
        parser.add_argument(f"--{name}", type=int, default=default, help=help_text)


def demo_customers(orders: int) -> int:
    return max(1, orders // 5)


def store_config(args: argparse.Namespace, **settings: Any) -> EmulatorConfig:
    """The emulator configuration of the demo's store from the store-size options; `settings`
    adds the rest (port, webhooks)."""
    from centra_pipeline.emulator import EmulatorConfig

    return EmulatorConfig(
        orders=args.orders,
        customers=args.customers or demo_customers(args.orders),
        products=args.products or DEFAULT_PRODUCTS,
        seed=args.seed,
        timezone=DEMO_TIMEZONE,
        **settings,
    )


def emulator_env(
    emu: Emulator, settings: Settings, webhook_secret: str | None = None
) -> dict[str, str]:
    """The configuration that points the pipeline at a running emulator."""
    return {
        **connection_env(
            emu.order_api_url,
            emu.order_api_key,
            emu.shop_api_url,
            emu.shop_api_key,
            DEMO_TIMEZONE,
            webhook_secret,
        ),
        ENV_DATA_DIR: str(settings.data_dir),
        # The emulator is on loopback: no shared capacity to protect.
        ENV_MAX_RPS: "1000",
    }


def prepare_data_dir(settings: Settings) -> str | None:
    """Clean a previous demo's data; refuse a directory that holds other data (the problem,
    as a sentence), so a synthetic store is never mixed with a real one."""
    data = settings.data_dir
    marker = data / MARKER
    ours = [
        settings.lake_dir,
        settings.warehouse_path.parent,
        settings.snapshot_path,
        settings.inbox_path.parent,
        data / STORES_DIR,  # a many-store demo's (`demo --stores N`)
        data / ALL_STORES_FILE,
        data / DEMO_STORES_FILE,
    ]
    others = [settings.warehouse_path, *(data / STORES_DIR).glob("*/warehouse/warehouse.duckdb")]
    if any(path.exists() for path in others) and not marker.exists():
        return (
            f"{data} already holds a warehouse that the demo did not create; run the demo "
            f"with another data directory, e.g. {ENV_DATA_DIR}=data/demo centra-pipeline demo"
        )
    for path in ours:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    data.mkdir(parents=True, exist_ok=True)
    marker.write_text("this data directory holds the centra-pipeline demo's synthetic store\n")
    return None
