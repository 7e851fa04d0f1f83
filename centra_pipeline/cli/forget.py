"""`centra-pipeline forget --customer ID ... --email ADDRESS ...`: erase a person everywhere the
pipeline wrote their personal data, keep them erased in later syncs, and republish the
snapshot (storage/erasure.py). Prints what was erased, never the person's data."""

from __future__ import annotations

import argparse
import json

from centra_pipeline.cli.main import EXIT_OK, fail
from centra_pipeline.cli.per_store import add_store_option, each_store
from centra_pipeline.settings import ConfigError, Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--customer",
        action="append",
        type=_customer_id,
        default=[],
        metavar="ID",
        help="a Centra customer id (repeatable)",
    )
    parser.add_argument(
        "--email",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="an e-mail address: the customers holding it and the orders placed with it, "
        "guest orders included (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_store_option(parser)


def _customer_id(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a customer id is a number, not {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"a customer id is positive, not {number}")
    return number


def run(args: argparse.Namespace) -> int:
    if not args.customer and not args.email:
        return fail("name the person to forget: --customer ID and/or --email ADDRESS")
    return each_store(args, lambda settings: _forget(args, settings), fail=fail)


def _forget(args: argparse.Namespace, settings: Settings) -> int:
    from centra_pipeline.storage.backends import lake_for, warehouse_for
    from centra_pipeline.storage.erasure import forget
    from centra_pipeline.storage.suppression import snapshot_pii

    warehouse = warehouse_for(settings)
    try:
        erasure = forget(
            settings, warehouse, lake_for(settings), set(args.customer), set(args.email)
        )
    except (ValueError, ConfigError) as exc:
        return fail(str(exc))
    published = (
        warehouse.publish(settings.snapshot_path, *snapshot_pii(settings))
        if warehouse.path.exists()
        else None
    )
    if args.json:
        print(json.dumps({**erasure.as_dict(), "snapshot": published}, indent=2))
        return EXIT_OK
    rows = ", ".join(f"{n} {t}" for t, n in erasure.warehouse_rows_erased.items()) or "none"
    print(
        f"Erased customer ids {', '.join(map(str, erasure.customer_ids)) or '(none)'} and "
        f"{erasure.emails} e-mail address(es):\n"
        f"  warehouse rows: {rows}\n"
        f"  lake: {erasure.lake_records_erased} records in "
        f"{erasure.lake_files_rewritten} files rewritten\n"
        f"  webhook payloads cleared: {erasure.inbox_payloads_cleared}\n"
        f"  snapshot: {'republished' if published else 'none yet'}\n"
        f"Later syncs keep them erased ({settings.erasure_dir / 'suppression.json'})."
    )
    return EXIT_OK
