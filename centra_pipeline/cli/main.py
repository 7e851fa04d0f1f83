"""The `centra-pipeline` console script (the README): one entry point, one function per
command. Heavy modules (Dagster, the emulator) are imported by the command that needs them,
so `centra-pipeline check` answers quickly.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

from centra_pipeline.cli.per_store import add_store_option, each_store, selected
from centra_pipeline.settings import (
    ENV_DATA_DIR,
    ConfigError,
    Settings,
)
from centra_pipeline.stores import DEFAULT_STORE, load_stores
from centra_pipeline.sync.allocators import lean_allocators

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"centra-pipeline: {message}", file=sys.stderr)
    return code


# --- check -------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from centra_pipeline.centra.check import format_lines, run_checks

    def check(settings: Settings) -> int:
        lines = run_checks(settings)
        print(format_lines(lines))
        problems = sum(not line.ok for line in lines)
        if problems:
            print(f"\n{problems} thing(s) to fix.")
            return EXIT_FAILED
        print("\nEverything the pipeline needs is reachable.")
        return EXIT_OK

    return each_store(args, check, fail=lambda message: fail(message, EXIT_FAILED))


# --- sync --------------------------------------------------------------------------------
def _stream_config(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    from centra_pipeline.streams import STREAMS

    config: dict[str, object] = {}
    if args.full_refresh:
        config["mode"] = "full_refresh"
    if args.reconcile:
        config["mode"] = "reconcile"
    if args.backfill:
        config.update(mode="backfill", window_start=args.backfill[0], window_end=args.backfill[1])
    if args.lookback_days is not None:
        config["lookback_days"] = args.lookback_days
    return {name: dict(config) for name in (args.stream or STREAMS)}


def cmd_sync(args: argparse.Namespace) -> int:
    from centra_pipeline.cli.runs import print_summary, run_sync
    from centra_pipeline.streams import STREAMS
    from centra_pipeline.sync.extract import ExtractOptions

    try:
        _, stores = selected(args)
    except ConfigError as exc:
        return fail(str(exc))
    streams = args.stream or list(STREAMS)
    unknown = [s for s in streams if s not in STREAMS]
    if unknown:
        return fail(f"unknown stream {', '.join(unknown)}; streams are {', '.join(STREAMS)}")
    needs_order = any(STREAMS[s].api == "order_api" for s in streams)
    needs_shop = any(STREAMS[s].api == "shop_api" for s in streams)
    for settings in stores:
        missing = (settings.missing_order_api() if needs_order else []) + (
            settings.missing_shop_api() if needs_shop else []
        )
        if missing:
            where = "" if settings.store == DEFAULT_STORE else f" for store {settings.store}"
            return fail(
                f"Centra is not configured{where}: set {', '.join(missing)} (environment or "
                ".env). To try the pipeline without a store, run `centra-pipeline demo`."
            )
    chosen = [
        flag
        for flag, on in (
            ("--full-refresh", args.full_refresh),
            ("--reconcile", args.reconcile),
            ("--backfill", bool(args.backfill)),
        )
        if on
    ]
    if len(chosen) > 1:
        return fail(f"{' and '.join(chosen)} cannot be combined: choose one")
    config = _stream_config(args)
    try:  # validate options before starting a run
        for name, options in config.items():
            if args.backfill and not STREAMS[name].backfills:
                return fail(
                    f"the stream {name} has no date filter to backfill by; backfill the "
                    "other streams with --stream"
                )
            ExtractOptions(
                **{k: v for k, v in options.items() if k in ("mode", "window_start", "window_end")}
            )
    except ValueError as exc:
        return fail(str(exc))

    def sync(settings: Settings) -> int:
        summary = run_sync(
            streams=streams, stream_config=config, reconcile=args.reconcile, store=settings.store
        )
        print_summary(summary)
        return EXIT_OK if summary.success else EXIT_FAILED

    return each_store(args, sync, fail=fail)


# --- query -------------------------------------------------------------------------------
def cmd_query(args: argparse.Namespace) -> int:
    try:
        stores = load_stores(secrets=False)  # a query reads local files only
    except ConfigError as exc:
        return fail(str(exc))
    from centra_pipeline.storage.backends import fetch_snapshot

    if stores.multi and not args.store:  # every store: the union, with a `store` column
        return _query(args, stores.all_stores_path)
    return each_store(
        args, lambda settings: _query(args, fetch_snapshot(settings)), fail=fail, secrets=False
    )


def _query(args: argparse.Namespace, path: Path) -> int:
    import duckdb

    if not path.exists():
        return fail(
            f"no analyst snapshot at {path} yet: run `centra-pipeline demo` or "
            "`centra-pipeline sync` first"
        )
    con = duckdb.connect(str(path), read_only=True)
    try:
        relation = con.sql(args.sql)
        if relation is None:
            return EXIT_OK
        if args.csv:
            import csv

            writer = csv.writer(sys.stdout)
            writer.writerow(relation.columns)
            writer.writerows(relation.fetchall())
        else:
            relation.show(max_rows=args.max_rows, max_width=200)
    except duckdb.Error as exc:
        return fail(f"query failed: {exc}", EXIT_FAILED)
    finally:
        con.close()
    return EXIT_OK


# --- parser ------------------------------------------------------------------------------
def _lazy(module_name: str, function: str) -> Callable[[argparse.Namespace], int]:
    """A command whose module is imported only when it runs."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module_name), function)(args)

    return run


def _module_command(module_name: str) -> tuple[Callable, Callable]:
    module = importlib.import_module(module_name)
    return module.add_arguments, module.run


MODULE_COMMANDS = {
    # name: (module with add_arguments/run, help)
    "demo": ("centra_pipeline.cli.demo", f"run the emulator and a full sync into {ENV_DATA_DIR}"),
    "emulator": ("centra_pipeline.emulator.cli", "run the bundled Centra emulator"),
    "webhook-server": ("centra_pipeline.webhooks.receiver", "run the webhook receiver"),
    "dev": ("centra_pipeline.cli.dev", "emulator + webhook receiver + Dagster UI, wired together"),
    "verify": (
        "centra_pipeline.cli.verify",
        "compare Centra with the analyst snapshot, per day",
    ),
    "lake": ("centra_pipeline.cli.lake", "lake maintenance: `lake compact` merges small loads"),
    "forget": (
        "centra_pipeline.cli.forget",
        "erase a person's personal data everywhere (GDPR) and keep it erased",
    ),
    "schema-drift": (
        "centra_pipeline.cli.schema_drift",
        "list the fields Centra sends that no column maps; acknowledge known ones",
    ),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; a module command's options are loaded only when that command runs (or
    when `command` is None, e.g. for documentation)."""
    parser = argparse.ArgumentParser(
        prog="centra-pipeline",
        description="Extract a Centra store into Parquet and DuckDB, orchestrated by Dagster.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sync = sub.add_parser("sync", help="one run of the sync job against the configured Centra")
    sync.add_argument(
        "--full-refresh",
        action="store_true",
        help="ignore the cursors and read every stream in full",
    )
    sync.add_argument(
        "--reconcile",
        action="store_true",
        help="one full reconciliation now: re-read every order, return, customer, product, "
        "stock item and the catalogue, land only what changed, mark what Centra no longer "
        "serves as missing, and report the drift repaired",
    )
    sync.add_argument(
        "--stream",
        action="append",
        metavar="NAME",
        help="only this stream (repeatable); `centra-pipeline state show` lists the streams",
    )
    sync.add_argument(
        "--backfill",
        nargs=2,
        metavar=("START", "END"),
        help="re-read an explicit window (store-local dates, END exclusive) "
        "without moving the incremental cursor",
    )
    sync.add_argument(
        "--lookback-days",
        type=float,
        help="how far behind the cursor orders and returns are re-read",
    )
    sync.set_defaults(_run=cmd_sync)

    add_store_option(sync)
    check = sub.add_parser("check", help="verify configuration, keys and endpoints")
    add_store_option(check)
    check.set_defaults(_run=cmd_check)

    state = sub.add_parser("state", help="show or reset incremental state")
    state_sub = state.add_subparsers(dest="state_command", required=True)
    show = state_sub.add_parser("show", help="cursor and last load per stream")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    reset = state_sub.add_parser("reset", help="forget a stream's cursor (next sync reads it all)")
    reset.add_argument("stream")
    for subcommand in (show, reset):
        add_store_option(subcommand)
    state.set_defaults(_run=_lazy("centra_pipeline.cli.state", "cmd_state"))

    query = sub.add_parser("query", help="run SQL on the analyst snapshot (read-only)")
    query.add_argument("sql", help='the SQL to run, e.g. "SELECT count(*) FROM orders"')
    query.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    query.add_argument("--max-rows", type=int, default=40, help="rows shown in table mode")
    query.add_argument(
        "--store",
        action="append",
        metavar="NAME",
        help="query this store's own snapshot (repeatable); without it, with a stores file, "
        "the query runs on all_stores.duckdb, every store's tables with a `store` column",
    )
    query.set_defaults(_run=cmd_query)

    for name, (module_name, help_text) in MODULE_COMMANDS.items():
        subparser = sub.add_parser(name, help=help_text)
        if command is None or command == name:
            add_arguments, run = _module_command(module_name)
            add_arguments(subparser)
            subparser.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    lean_allocators()  # before any thread starts (sync/allocators.py)
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        return fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
