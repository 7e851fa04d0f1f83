"""`centra-pipeline demo`: the bundled emulator on loopback, a full sync into CENTRA_DATA_DIR,
then a summary, row counts and three queries to try. `--ui` starts the live setup instead
(emulator ticking, webhook receiver, Dagster UI with schedule and sensor; see dev.py).
`--stores N` runs N emulated stores from one emulator instead, each synced into its own
directory under CENTRA_DATA_DIR/stores/, then all_stores.duckdb and queries across stores;
its stores file is written into the data directory (`demo-stores.toml`) and names the
variables holding the emulated keys, which are set only in this process.

The demo never mixes its synthetic store with a real one: it refuses a data directory that
already holds a warehouse it did not create, and it starts each demo from a clean slate.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import duckdb

from centra_pipeline.cli import dev
from centra_pipeline.cli.emulated_store import (
    DEMO_STORES_FILE,
    add_store_arguments,
    emulator_env,
    prepare_data_dir,
    store_config,
)
from centra_pipeline.settings import ENV_DATA_DIR, ENV_MAX_RPS, Settings
from centra_pipeline.stores import ENV_STORES_FILE, load_stores

EXAMPLE_QUERIES = [
    (
        "Revenue per month and currency (cancelled orders excluded)",
        """SELECT date_trunc('month', order_date) AS month, order_currency,
       count(*) AS orders, sum(grand_total_value) AS revenue
FROM orders WHERE order_status_name <> 'cancelled'
GROUP BY ALL ORDER BY month DESC, revenue DESC LIMIT 8""",
    ),
    (
        "Return rate per brand (returned units / sold units)",
        """SELECT l.brand, sum(l.qty) AS sold,
       coalesce(sum(r.returned), 0) AS returned,
       round(100.0 * coalesce(sum(r.returned), 0) / sum(l.qty), 1) AS return_rate_pct
FROM order_lines l
LEFT JOIN (SELECT order_line_id, sum(quantity) AS returned
           FROM return_lines GROUP BY ALL) r ON r.order_line_id = l.line_id
GROUP BY ALL ORDER BY sold DESC LIMIT 8""",
    ),
    (
        "Top customers by lifetime value per currency, net of refunded items",
        """SELECT o.customer_id, c.country, o.order_currency AS currency,
       count(*) AS orders, sum(o.grand_total_value) AS gross,
       coalesce(max(r.refunded), 0) AS refunded_items
FROM orders o JOIN customers c USING (customer_id)
LEFT JOIN (SELECT r.customer_id, r.currency, sum(rl.quantity * rl.price) AS refunded
           FROM returns r JOIN return_lines rl USING (return_id)
           WHERE r.completed GROUP BY ALL) r
       ON r.customer_id = o.customer_id AND r.currency = o.order_currency
WHERE o.order_status_name <> 'cancelled'
GROUP BY ALL ORDER BY gross DESC LIMIT 5""",
    ),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store_arguments(parser)
    parser.add_argument(
        "--ui",
        action="store_true",
        help="start the live demo: emulator ticking every few seconds, webhook "
        "receiver and the Dagster UI with schedule and sensor on",
    )
    parser.add_argument(
        "--stores",
        type=int,
        default=0,
        metavar="N",
        help="N emulated stores from one emulator (different seeds, keys, timezones and "
        "sizes, together about 3/4 of --orders), each synced into its own directory under "
        "CENTRA_DATA_DIR/stores/, then all_stores.duckdb",
    )
    dev.add_live_arguments(parser)  # the --ui options


def run(args: argparse.Namespace) -> int:
    if args.ui:
        return dev.run(args)
    from centra_pipeline.cli.runs import print_summary, run_sync
    from centra_pipeline.emulator import Emulator

    if args.orders < 1:
        print("centra-pipeline: --orders must be at least 1", file=sys.stderr)
        return 2
    if args.stores < 0 or (args.stores and args.ui):
        print("centra-pipeline: --stores is a number of stores, without --ui", file=sys.stderr)
        return 2
    os.environ.pop(ENV_STORES_FILE, None)  # the demo's stores are its own
    settings = Settings.from_env()
    problem = prepare_data_dir(settings)
    if problem:
        print(f"centra-pipeline: {problem}", file=sys.stderr)
        return 2
    if args.stores:
        return run_stores(args, settings)
    started = time.monotonic()
    config = store_config(args)
    print(
        f"Starting the Centra emulator: {config.orders:,} orders, "
        f"{config.customers:,} customers, {config.products:,} products (seed {config.seed})"
    )
    with Emulator(config) as emu:
        os.environ.update(emulator_env(emu, settings))
        print(f"Emulator on {emu.base_url}; syncing into {settings.data_dir}\n")
        summary = run_sync()
    print_summary(summary)
    if not summary.success:
        return 1
    _print_tour(settings.snapshot_path, time.monotonic() - started)
    return 0


def _print_tour(snapshot: Path, seconds: float, queries: list | None = None) -> None:
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                "ORDER BY table_name"
            ).fetchall()
        ]
        print("\nRows per table in the analyst snapshot:")
        for name in tables:
            n = con.execute(f'SELECT count(*) FROM main."{name}"').fetchall()[0][0]
            print(f"  {name:<24} {n:>10,}")
        for title, sql in EXAMPLE_QUERIES if queries is None else queries:
            print(f"\n-- {title}\n{sql};")
            con.sql(sql).show(max_width=160)
    finally:
        con.close()
    rel = os.path.relpath(snapshot)
    if rel.startswith(".."):
        rel = str(snapshot)
    print(f"Demo finished in {seconds:.0f} s.")
    print("\nQuery it yourself (DuckDB 1.5+ or this project's environment):")
    print(
        '  uv run centra-pipeline query "SELECT order_status_name, count(*) FROM orders '
        'GROUP BY ALL"'
    )
    print(f"  duckdb -readonly {rel}")
    if queries is None:  # the live demo is of one store
        print("See it live in the Dagster UI (emulator ticking, webhooks, schedule and sensor):")
        print("  uv run centra-pipeline demo --ui")


# --- demo --stores N: several emulated stores, each its own shard, then all_stores ---------
ACROSS_STORES = [
    (
        "Orders and revenue per store and currency (cancelled orders excluded)",
        """SELECT store, order_currency, count(*) AS orders,
       round(sum(grand_total_value), 2) AS revenue
FROM orders WHERE order_status_name <> 'cancelled'
GROUP BY ALL ORDER BY store, revenue DESC LIMIT 20""",
    ),
    (
        "Return rate per store (returned units / sold units)",
        """SELECT l.store, sum(l.qty) AS sold, coalesce(sum(r.returned), 0) AS returned,
       round(100.0 * coalesce(sum(r.returned), 0) / sum(l.qty), 1) AS return_rate_pct
FROM order_lines l
LEFT JOIN (SELECT store, order_line_id, sum(quantity) AS returned
           FROM return_lines GROUP BY ALL) r
       ON r.store = l.store AND r.order_line_id = l.line_id
GROUP BY ALL ORDER BY l.store""",
    ),
]


def run_stores(args: argparse.Namespace, settings: Settings) -> int:
    from centra_pipeline.cli.runs import print_summary, run_sync
    from centra_pipeline.emulator.fleet import (
        Fleet,
        fleet_configs,
        store_secret_env,
        stores_file_text,
    )
    from centra_pipeline.storage.all_stores import publish_all_stores

    started = time.monotonic()
    low = max(20, args.orders // (2 * args.stores))
    high = max(low, args.orders // args.stores)
    configs = fleet_configs(args.stores, seed=args.seed, orders=(low, high))
    print(
        f"Starting the Centra emulator with {args.stores} stores of {low:,} to {high:,} "
        "orders (timezones: " + ", ".join(sorted({c.timezone for c in configs.values()})) + ")"
    )
    failed = []
    with Fleet(configs) as fleet:
        stores_file = settings.data_dir / DEMO_STORES_FILE
        stores_file.write_text(stores_file_text(fleet))
        os.environ.update(store_secret_env(fleet))
        os.environ.update(
            {
                ENV_STORES_FILE: str(stores_file),
                ENV_DATA_DIR: str(settings.data_dir),
                ENV_MAX_RPS: "1000",  # the emulator is on loopback
            }
        )
        print(f"Emulator on {fleet.base_url}; stores file {stores_file}\n")
        for name in fleet.names:
            print(f"== store {name} ==")
            summary = run_sync(store=name)
            print_summary(summary)
            if not summary.success:
                failed.append(name)
            print()
    stores = load_stores()
    info = publish_all_stores(
        {name: s.snapshot_path for name, s in stores.settings.items()}, stores.all_stores_path
    )
    print(
        f"all_stores: {info['path']} ({info['bytes'] / 1e6:.1f} MB, {info['stores']} stores) "
        f"in {info['seconds']:.2f} s"
    )
    if failed:
        print(f"centra-pipeline: the sync of {', '.join(failed)} failed")
        return 1
    _print_tour(stores.all_stores_path, time.monotonic() - started, ACROSS_STORES)
    print(f"One store's own snapshot: {stores.get(fleet.names[0]).snapshot_path}")
    print(
        f"Queries from another shell need the stores file: {ENV_STORES_FILE}={stores_file} "
        "centra-pipeline query ..."
    )
    return 0
