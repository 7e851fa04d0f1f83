"""`centra-pipeline state show | reset STREAM`: the incremental state a data engineer can
inspect and reset: per stream its cursor, last load and last full reconciliation; when the
catalogue was last read in full; how far the webhook inbox is applied.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta

from centra_pipeline.cli.main import EXIT_OK, fail
from centra_pipeline.cli.per_store import each_store
from centra_pipeline.settings import ENV_CATALOGUE_FULL_READ_HOURS, Settings


# --- state -------------------------------------------------------------------------------
def cmd_state(args: argparse.Namespace) -> int:
    return each_store(args, lambda settings: _state(args, settings), fail=fail, secrets=False)


def _state(args: argparse.Namespace, settings: Settings) -> int:
    from centra_pipeline.storage.backends import warehouse_for

    warehouse = warehouse_for(settings)
    if args.state_command == "reset":
        return _reset_stream(warehouse, args.stream)
    exists = settings.warehouse_path.exists()
    rows = _stream_states(warehouse, exists)
    inbox = _inbox_state(settings, warehouse)
    last_full = warehouse.last_full_catalogue_read() if exists else None
    hours = settings.catalogue_full_read_hours
    if args.json:
        state = {
            "warehouse": str(settings.warehouse_path),
            "streams": rows,
            "catalogue": _catalogue_state(last_full, hours),
            "webhook_inbox": inbox,
        }
        print(json.dumps(state, indent=2))
        return EXIT_OK
    _print_stream_states(settings, rows)
    _print_catalogue_and_inbox(last_full, hours, inbox)
    return EXIT_OK


def _reset_stream(warehouse, stream: str) -> int:
    from centra_pipeline.streams import STREAMS

    if stream not in STREAMS:
        return fail(f"unknown stream {stream!r}; streams are {', '.join(STREAMS)}")
    before = warehouse.reset_state(stream)
    print(
        f"{stream}: cursor {before.cursor or '(none)'} forgotten; the next sync "
        "reads this stream in full. Its data stays in the warehouse until then."
    )
    return EXIT_OK


def _stream_states(warehouse, exists: bool) -> list[dict[str, object]]:
    """Per stream: its cursor, its last load and its last full reconciliation."""
    from centra_pipeline.streams import STREAMS

    log_rows = {}
    reconciled = {}
    if exists:
        for stream, load_id, merged_at, records in warehouse.query(
            """SELECT stream, arg_max(load_id, merged_at), max(merged_at),
                      sum(records_fetched) FROM pipeline.load_log GROUP BY stream"""
        ):
            log_rows[stream] = (load_id, merged_at, records)
        reconciled = dict(
            warehouse.query(
                "SELECT stream, max(extracted_from) FROM pipeline.load_log "
                "WHERE mode = 'reconcile' GROUP BY stream"
            )
        )
    by_stream = {s.stream: s for s in warehouse.all_states()}
    rows = []
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
    return rows


def _catalogue_state(last_full: datetime | None, hours: float) -> dict[str, object]:
    return {
        "last_full_read": last_full.isoformat() if last_full else None,
        "full_read_every_hours": hours,
        "next_full_read_after": (last_full + timedelta(hours=hours)).isoformat()
        if last_full
        else None,
    }


def _print_stream_states(settings: Settings, rows: list[dict[str, object]]) -> None:
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


def _print_catalogue_and_inbox(
    last_full: datetime | None, hours: float, inbox: dict[str, object] | None
) -> None:
    if last_full:
        print(
            f"catalogue: last read in full {last_full:%Y-%m-%d %H:%M} UTC; runs until "
            f"{last_full + timedelta(hours=hours):%Y-%m-%d %H:%M} UTC re-read only the products "
            f"the Order API reports changed ({ENV_CATALOGUE_FULL_READ_HOURS}={hours:g})"
        )
    if inbox:
        print(
            f"webhook inbox: {inbox['order_events']:,} order events stored, applied through "
            f"seq {inbox['applied_seq']} of {inbox['max_seq']} "
            f"({inbox['unapplied_order_events']:,} order events wait for the next sync or "
            "refresh run)"
        )


def _inbox_state(settings: Settings, warehouse) -> dict[str, object] | None:
    """How far the webhook inbox has been applied to the warehouse (None: no inbox)."""
    from centra_pipeline.webhooks.inbox import ORDER_REFRESH_TYPES
    from centra_pipeline.webhooks.inboxes import InboxRef

    ref = InboxRef.of(settings)
    if not ref.exists():
        return None
    inbox = ref.open(readonly=True)
    try:
        applied = warehouse.inbox_applied(inbox.inbox_id)
        return {
            "path": ref.location,
            "max_seq": inbox.max_seq(),
            "applied_seq": applied,
            "order_events": inbox.pending_count(0, ORDER_REFRESH_TYPES),
            "unapplied_order_events": inbox.pending_count(applied, ORDER_REFRESH_TYPES),
        }
    finally:
        inbox.close()
