"""The `centra-pipeline` console script (the README): one entry point, one function per
command. Heavy modules (Dagster, the emulator) are imported by the command that needs them,
so `centra-pipeline check` answers quickly.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from datetime import timedelta

from centra_pipeline.settings import ConfigError, Settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"centra-pipeline: {message}", file=sys.stderr)
    return code


# --- check -------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from centra_pipeline.centra.check import format_lines, run_checks

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return _fail(str(exc), EXIT_FAILED)
    lines = run_checks(settings)
    print(format_lines(lines))
    problems = sum(not line.ok for line in lines)
    if problems:
        print(f"\n{problems} thing(s) to fix.")
        return EXIT_FAILED
    print("\nEverything the pipeline needs is reachable.")
    return EXIT_OK


# --- sync --------------------------------------------------------------------------------
def _stream_config(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    from centra_pipeline.streams.model import STREAMS

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
    from centra_pipeline.streams.model import STREAMS
    from centra_pipeline.sync.extract import ExtractOptions

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return _fail(str(exc))
    streams = args.stream or list(STREAMS)
    unknown = [s for s in streams if s not in STREAMS]
    if unknown:
        return _fail(f"unknown stream {', '.join(unknown)}; streams are {', '.join(STREAMS)}")
    needs_order = any(STREAMS[s].api == "order_api" for s in streams)
    needs_shop = any(STREAMS[s].api == "shop_api" for s in streams)
    missing = (settings.missing_order_api() if needs_order else []) + (
        settings.missing_shop_api() if needs_shop else []
    )
    if missing:
        return _fail(
            f"Centra is not configured: set {', '.join(missing)} (environment or .env). "
            "To try the pipeline without a store, run `centra-pipeline demo`."
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
        return _fail(f"{' and '.join(chosen)} cannot be combined: choose one")
    config = _stream_config(args)
    try:  # validate options before starting a run
        for name, options in config.items():
            if args.backfill and name == "catalogue":
                return _fail(
                    "the Shop API catalogue has no date filter; backfill the Order "
                    "API streams with --stream"
                )
            ExtractOptions(
                **{k: v for k, v in options.items() if k in ("mode", "window_start", "window_end")}
            )
    except ValueError as exc:
        return _fail(str(exc))
    summary = run_sync(streams=streams, stream_config=config, reconcile=args.reconcile)
    print_summary(summary)
    return EXIT_OK if summary.success else EXIT_FAILED


# --- state -------------------------------------------------------------------------------
def cmd_state(args: argparse.Namespace) -> int:
    from centra_pipeline.storage.warehouse import Warehouse
    from centra_pipeline.streams.model import STREAMS

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return _fail(str(exc))
    warehouse = Warehouse(settings.warehouse_path)
    if args.state_command == "reset":
        if args.stream not in STREAMS:
            return _fail(f"unknown stream {args.stream!r}; streams are {', '.join(STREAMS)}")
        before = warehouse.reset_state(args.stream)
        print(
            f"{args.stream}: cursor {before.cursor or '(none)'} forgotten; the next sync "
            "reads this stream in full. Its data stays in the warehouse until then."
        )
        return EXIT_OK
    states = warehouse.all_states()
    rows = []
    log_rows = {}
    if settings.warehouse_path.exists():
        for stream, load_id, merged_at, records in warehouse.query(
            """SELECT stream, arg_max(load_id, merged_at), max(merged_at),
                      sum(records_fetched) FROM pipeline.load_log GROUP BY stream"""
        ):
            log_rows[stream] = (load_id, merged_at, records)
    reconciled = {}
    if settings.warehouse_path.exists():
        reconciled = dict(
            warehouse.query(
                "SELECT stream, max(extracted_from) FROM pipeline.load_log "
                "WHERE mode = 'reconcile' GROUP BY stream"
            )
        )
    by_stream = {s.stream: s for s in states}
    for name in STREAMS:
        state = by_stream.get(name)
        last = log_rows.get(name)
        full_pass = reconciled.get(name)
        rows.append(
            {
                "stream": name,
                "cursor": state.cursor if state else None,
                "cursor_updated_at": state.updated_at.isoformat()
                if state and state.updated_at
                else None,
                "last_load_id": last[0] if last else None,
                "last_merged_at": last[1].isoformat() if last else None,
                "records_fetched_total": int(last[2]) if last else 0,
                "last_full_reconcile": full_pass.isoformat() if full_pass else None,
            }
        )
    inbox = _inbox_state(settings, warehouse)
    last_full = warehouse.last_full_catalogue_read() if settings.warehouse_path.exists() else None
    hours = settings.catalogue_full_read_hours
    catalogue = {
        "last_full_read": last_full.isoformat() if last_full else None,
        "full_read_every_hours": hours,
        "next_full_read_after": (last_full + timedelta(hours=hours)).isoformat()
        if last_full
        else None,
    }
    if args.json:
        print(
            json.dumps(
                {
                    "warehouse": str(settings.warehouse_path),
                    "streams": rows,
                    "catalogue": catalogue,
                    "webhook_inbox": inbox,
                },
                indent=2,
            )
        )
        return EXIT_OK
    print(
        f"warehouse: {settings.warehouse_path}"
        + ("" if settings.warehouse_path.exists() else " (not created yet)")
    )
    print(
        f"{'stream':<10} {'cursor':<20} {'last merged (UTC)':<26} {'records read':>12}  "
        "last full reconcile (UTC)"
    )
    for row in rows:
        print(
            f"{row['stream']:<10} {row['cursor'] or '-':<20} "
            f"{(row['last_merged_at'] or '-')[:26]:<26} {row['records_fetched_total']:>12,}  "
            f"{(row['last_full_reconcile'] or '-')[:19]}"
        )
    if last_full:
        print(
            f"catalogue: last read in full {last_full:%Y-%m-%d %H:%M} UTC; runs until "
            f"{last_full + timedelta(hours=hours):%Y-%m-%d %H:%M} UTC re-read only the products "
            f"the Order API reports changed (CENTRA_CATALOGUE_FULL_READ_HOURS={hours:g})"
        )
    if inbox:
        print(
            f"webhook inbox: {inbox['order_events']:,} order events stored, applied through "
            f"seq {inbox['applied_seq']} of {inbox['max_seq']} "
            f"({inbox['unapplied_order_events']:,} order events wait for the next sync or "
            "refresh run)"
        )
    return EXIT_OK


def _inbox_state(settings: Settings, warehouse) -> dict[str, object] | None:
    """How far the webhook inbox has been applied to the warehouse (None: no inbox)."""
    from centra_pipeline.webhooks.inbox import ORDER_REFRESH_TYPES, Inbox

    if not settings.inbox_path.exists():
        return None
    inbox = Inbox(settings.inbox_path, readonly=True)
    try:
        applied = warehouse.inbox_applied(inbox.inbox_id)
        return {
            "path": str(settings.inbox_path),
            "max_seq": inbox.max_seq(),
            "applied_seq": applied,
            "order_events": inbox.pending_count(0, ORDER_REFRESH_TYPES),
            "unapplied_order_events": inbox.pending_count(applied, ORDER_REFRESH_TYPES),
        }
    finally:
        inbox.close()


# --- query -------------------------------------------------------------------------------
def cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return _fail(str(exc))
    path = settings.snapshot_path
    if not path.exists():
        return _fail(
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
        return _fail(f"query failed: {exc}", EXIT_FAILED)
    finally:
        con.close()
    return EXIT_OK


# --- parser ------------------------------------------------------------------------------
def _module_command(module_name: str) -> tuple[Callable, Callable]:
    module = importlib.import_module(module_name)
    return module.add_arguments, module.run


MODULE_COMMANDS = {
    # name: (module with add_arguments/run, help)
    "demo": ("centra_pipeline.cli.demo", "run the emulator and a full sync into CENTRA_DATA_DIR"),
    "emulator": ("centra_pipeline.emulator.cli", "run the bundled Centra emulator"),
    "webhook-server": ("centra_pipeline.webhooks.receiver", "run the webhook receiver"),
    "dev": ("centra_pipeline.cli.dev", "emulator + webhook receiver + Dagster UI, wired together"),
    "verify": (
        "centra_pipeline.verify.compare",
        "compare Centra with the analyst snapshot, per day",
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
        help="only this stream (repeatable): orders, returns, customers, products, "
        "stock, catalogue",
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

    check = sub.add_parser("check", help="verify configuration, keys and endpoints")
    check.set_defaults(_run=cmd_check)

    state = sub.add_parser("state", help="show or reset incremental state")
    state_sub = state.add_subparsers(dest="state_command", required=True)
    show = state_sub.add_parser("show", help="cursor and last load per stream")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    reset = state_sub.add_parser("reset", help="forget a stream's cursor (next sync reads it all)")
    reset.add_argument("stream")
    state.set_defaults(_run=cmd_state)

    query = sub.add_parser("query", help="run SQL on the analyst snapshot (read-only)")
    query.add_argument("sql", help='the SQL to run, e.g. "SELECT count(*) FROM orders"')
    query.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    query.add_argument("--max-rows", type=int, default=40, help="rows shown in table mode")
    query.set_defaults(_run=cmd_query)

    for name, (module_name, help_text) in MODULE_COMMANDS.items():
        subparser = sub.add_parser(name, help=help_text)
        if command is None or command == name:
            add_arguments, run = _module_command(module_name)
            add_arguments(subparser)
            subparser.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        return _fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
