"""`centra-pipeline lake compact [--stream NAME ...] [--older-than DAYS]`: merge each stream's
small lake loads into one segment per month (storage/compact.py). It waits for the
warehouse's writer lock like a sync does, so it never runs beside one."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta

from centra_pipeline.cli.main import EXIT_OK, fail
from centra_pipeline.settings import ConfigError, Settings

DEFAULT_OLDER_THAN_DAYS = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lake_command", metavar="ACTION", required=True)
    compact = sub.add_parser(
        "compact", help="merge small loads into one segment per stream and month"
    )
    compact.add_argument(
        "--stream",
        action="append",
        metavar="NAME",
        help="only this stream (repeatable; default: every stream)",
    )
    compact.add_argument(
        "--older-than",
        type=float,
        default=DEFAULT_OLDER_THAN_DAYS,
        metavar="DAYS",
        help=f"only loads that finished at least this many days ago "
        f"(default {DEFAULT_OLDER_THAN_DAYS:g}; 0: every merged load)",
    )
    compact.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from centra_pipeline.storage.backends import lake_for, warehouse_for
    from centra_pipeline.storage.compact import compact_lake
    from centra_pipeline.streams import STREAMS

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return fail(str(exc))
    names = args.stream or list(STREAMS)
    unknown = [name for name in names if name not in STREAMS]
    if unknown:
        return fail(f"unknown stream {', '.join(unknown)}; streams are {', '.join(STREAMS)}")
    if args.older_than < 0:
        return fail(f"--older-than must be 0 or more days, not {args.older_than:g}")

    def on_month(stream: str, month: str, sources: int) -> None:
        if not args.json:
            print(f"{stream} {month}: compacting {sources} loads and segments", flush=True)

    results = compact_lake(
        warehouse_for(settings),
        lake_for(settings),
        [STREAMS[name] for name in names],
        older_than=timedelta(days=args.older_than),
        on_month=on_month,
    )
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
        return EXIT_OK
    print(f"{'stream':<10} {'loads':>7} {'files before':>13} {'after':>7} {'seconds':>8}")
    for r in results:
        print(
            f"{r.stream:<10} {r.loads:>7} {r.files_before:>13} {r.files_after:>7} {r.seconds:>8.1f}"
        )
    for r in results:
        if r.left_unmerged:
            print(f"{r.stream}: {r.left_unmerged} loads not merged into the warehouse yet are left")
        if r.left_older_schema:
            print(
                f"{r.stream}: {len(r.left_older_schema)} loads written with other columns "
                "are left as they are"
            )
    return EXIT_OK
