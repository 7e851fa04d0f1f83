"""`centra-pipeline schema-drift`: the fields Centra sends that no column maps, and
acknowledging the ones you know about so that their check stops warning.

Unmapped fields are never lost (they are kept in each row's `_extra` column and in the lake's
raw JSON); the `schema_drift` check warns until someone has looked at them. Acknowledging a
field is recorded in the warehouse (pipeline.schema_drift.acknowledged_at); a field that
appears later is not acknowledged by it.
"""

from __future__ import annotations

import argparse
import json

from centra_pipeline.settings import Settings
from centra_pipeline.storage.backends import warehouse_for
from centra_pipeline.storage.warehouse_schema import UnmappedField

EXIT_OK, EXIT_USAGE = 0, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--acknowledge",
        nargs="+",
        metavar="TABLE.FIELD",
        help="stop warning about these unmapped fields (as listed, e.g. orders.order_attr_gift)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    warehouse = warehouse_for(settings)
    if not settings.warehouse_path.exists():
        print(f"no warehouse at {settings.warehouse_path} yet: run `centra-pipeline sync` first")
        return EXIT_USAGE if args.acknowledge else EXIT_OK
    if args.acknowledge:
        try:
            warehouse.acknowledge_fields(list(args.acknowledge))
        except ValueError as exc:
            print(f"error: {exc}")
            return EXIT_USAGE
    fields = warehouse.unmapped_fields()
    if args.json:
        print(json.dumps([_as_json(f) for f in fields], indent=2))
    else:
        _print_table(fields)
    return EXIT_OK


def _as_json(f: UnmappedField) -> dict[str, object]:
    return {
        "stream": f.stream,
        "field": f.field,
        "json_types": f.json_types.split(",") if f.json_types else [],
        "occurrences": f.occurrences,
        "first_seen": f.first_seen.isoformat() if f.first_seen else None,
        "last_seen": f.last_seen.isoformat() if f.last_seen else None,
        "acknowledged_at": f.acknowledged_at.isoformat() if f.acknowledged_at else None,
    }


def _print_table(fields: list[UnmappedField]) -> None:
    if not fields:
        print("every field Centra has sent is mapped to a column")
        return
    print(f"{'field':<44} {'types':<12} {'seen':>8}  {'last seen (UTC)':<19}  status")
    for f in fields:
        last = f.last_seen.strftime("%Y-%m-%d %H:%M:%S") if f.last_seen else ""
        status = "acknowledged" if f.acknowledged_at else "warning"
        print(f"{f.field:<44} {f.json_types:<12} {f.occurrences:>8}  {last:<19}  {status}")
    waiting = [f.field for f in fields if not f.acknowledged_at]
    if waiting:
        print(
            "\nThese fields are kept in `_extra` and the lake's raw JSON. To stop the warning "
            "for one you know about: centra-pipeline schema-drift --acknowledge "
            + " ".join(waiting[:3])
        )
