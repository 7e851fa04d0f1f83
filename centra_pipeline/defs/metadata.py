"""Materialization metadata: what a data engineer reads on an asset's page.

Centra's timestamps carry no offset; cursors and windows are naive store-local times. The UI
shows each with its timezone and in UTC (`2026-11-30 10:00:00 Europe/Stockholm =
2026-11-30 09:00:00 UTC`), so nobody has to guess which clock a cursor is on.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from centra_pipeline.centra.quirks import parse_local_datetime
from centra_pipeline.streams import Table
from centra_pipeline.sync.stream_step import Landed, Merged

NOT_RETURNED_LISTED = 50  # keys named in metadata; the log line names them all


def local_time(value: str | None, tz: str) -> str:
    """A store-local timestamp with its timezone and in UTC; "" for none."""
    if not value:
        return ""
    try:
        moment = parse_local_datetime(value, tz)
    except ValueError:  # not a timestamp (a window's other entries): shown as it is
        return value
    if moment is None:
        return value
    return f"{value} {tz} = {moment.strftime('%Y-%m-%d %H:%M:%S')} UTC"


def window_metadata(window: dict[str, Any] | None, tz: str) -> dg.MetadataValue:
    """The window a read asked Centra for, its timestamps with timezone and UTC."""
    if not window:
        return dg.MetadataValue.json({"read": "everything", "timezone": tz})
    shown = {k: local_time(v, tz) if isinstance(v, str) else v for k, v in window.items()}
    return dg.MetadataValue.json({**shown, "timezone": tz})


def lake_metadata(landed: Landed, tz: str) -> dict[str, Any]:
    manifest = landed.manifest
    return {
        "load_id": manifest.load_id,
        "mode": manifest.mode,
        "window": window_metadata(manifest.window, tz),
        "cursor_before": local_time(manifest.cursor_before, tz),
        "cursor_after": local_time(manifest.cursor_after, tz),
        "records_fetched": max(manifest.records_read, manifest.records),
        "records_landed": manifest.records,
        "rows_landed": dg.MetadataValue.json(manifest.rows),
        "pages": manifest.pages,
        "requests": manifest.requests,
        "retries": manifest.retries,
        # Pages asked again because records left the result set during the read (the store
        # changed mid-read; the read stepped back so that it skipped nothing).
        "rereads": manifest.rereads,
        "bytes": manifest.bytes,
        "missing_keys": len(manifest.missing_keys),
        "not_returned": dg.MetadataValue.json(landed.not_returned[:NOT_RETURNED_LISTED]),
        "unmapped_fields": dg.MetadataValue.json(sorted(manifest.drift)),
        "coercions": dg.MetadataValue.json(manifest.coercions),
        "duration_seconds": round(landed.seconds, 3),
        "path": dg.MetadataValue.path(manifest.path),
        "dagster/row_count": sum(manifest.rows.values()),
    }


def endpoint_observation(landed: Landed) -> dict[str, Any]:
    """What one read saw of a Centra endpoint (reported as an observation of its asset)."""
    manifest = landed.manifest
    return {
        "load_id": manifest.load_id,
        "mode": manifest.mode,
        "records_read": max(manifest.records_read, manifest.records),
        "requests": manifest.requests,
        "retries": manifest.retries,
        "bytes": manifest.bytes,
        "seconds": round(landed.seconds, 3),
    }


def table_metadata(merged: Merged, table: Table, tz: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "loads_merged": dg.MetadataValue.json([r.load_id for r in merged.merged]),
        "duration_seconds": round(merged.seconds, 3),
        "dagster/row_count": merged.row_counts.get(table.name, 0),
    }
    if not table.is_parent:
        meta["rows_written"] = sum(r.child_rows.get(table.name, 0) for r in merged.results)
        return meta
    first = next(iter(merged.merged), None)
    last = next(reversed(merged.merged), None) if merged.merged else None
    meta.update(
        {
            "rows_fetched": merged.total("staged"),
            "rows_new": merged.total("new"),
            "rows_updated": merged.total("updated"),
            "rows_unchanged": merged.total("unchanged"),
            "rows_stale": merged.total("stale"),
            "rows_marked_missing": merged.total("missing"),
            "cursor_before": local_time(first.cursor_before if first else None, tz),
            "cursor_after": local_time(last.cursor_after if last else None, tz),
            # What the merged loads read from Centra, so this table's history alone tells
            # the whole story of each run.
            "requests": sum(m.requests for m in merged.loads),
            "retries": sum(m.retries for m in merged.loads),
            "windows_read": dg.MetadataValue.json(
                [window_metadata(m.window, tz).value for m in merged.loads]
            ),
        }
    )
    found = merged.drift
    if found is not None:
        meta.update(
            {
                "reconcile_pass": ", ".join(sorted({r.mode for r in merged.results if r.drift})),
                "reconcile_read": found.read,
                "reconcile_new": found.new,
                "reconcile_changed": found.changed,
                "reconcile_missing": found.missing,
                "reconcile_share": dg.MetadataValue.float(round(found.share, 6)),
            }
        )
    return meta


def snapshot_metadata(info: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    """The snapshot is a file of many tables: its row count is theirs summed, and each
    table's count is listed (and plotted) on its own."""
    return {
        "path": dg.MetadataValue.path(info["path"]),
        "bytes": info["bytes"],
        "publish_seconds": info["seconds"],
        "personal_data": info.get("personal_data", "keep"),
        "table_rows": dg.MetadataValue.json(counts),
        **{f"rows/{name}": rows for name, rows in counts.items()},
        "tables": len(counts),
        "dagster/row_count": sum(counts.values()),
    }
