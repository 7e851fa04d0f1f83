"""Assets: per stream, Centra endpoint → lake load (Parquet) → warehouse tables (DuckDB),
then the analyst snapshot.

Each stream is one multi-asset (one step): it extracts and lands the load, reports the lake
asset, then merges under the warehouse lock and reports every table with its checks. Streams
run as parallel steps; their merges queue on the warehouse lock, and whole runs that write
the warehouse are limited to one at a time by the run queue (see dagster.yaml), so a
webhook refresh waits for the hourly sync instead of failing.

The step is subsettable: selecting only `lake/<stream>` lands without merging; selecting only
the warehouse tables merges whatever landed loads are not merged yet (a rebuild from the
lake after a crash between landing and merging).
"""

import time
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import dagster as dg

from centra_pipeline.centra.errors import (
    CentraAuthError,
    CentraBusinessError,
    CentraEndpointNotAllowed,
    CentraURLError,
)
from centra_pipeline.centra.quirks import TypeDrift
from centra_pipeline.defs.resources import CentraResource
from centra_pipeline.settings import ConfigError, Settings
from centra_pipeline.storage import quality
from centra_pipeline.storage.lake import LoadManifest
from centra_pipeline.storage.sql import main_table
from centra_pipeline.storage.warehouse import MergeResult
from centra_pipeline.streams import STREAMS, TABLES, Stream, Table
from centra_pipeline.streams.rows import MissingKey
from centra_pipeline.sync.extract import ExtractOptions, Extractor, Progress
from centra_pipeline.sync.reconcile import Drift

GROUPS = {"order_api": "centra_order_api", "shop_api": "centra_shop_api"}
API_LABELS = {"order_api": "Order API", "shop_api": "Shop API"}
ENDPOINTS = {
    "orders": "GET /orders",
    "returns": "GET /returns",
    "customers": "GET /customers",
    "products": "GET /products",
    "stock": "GET /stock",
    "catalogue": "POST /products/filter",
}
WAREHOUSE_WRITER_TAG = "centra_pipeline/warehouse_writer"
RECONCILE_CHECK = "reconcile_drift"  # evaluated in reconciliation runs only
FRESHNESS_WINDOW = timedelta(hours=2)
OWNERS = ["team:data-engineering"]


class SyncConfig(dg.Config):
    """How a stream is read in this run (all optional; the default is an incremental read)."""

    # incremental | full_refresh | backfill | refresh | reconcile | reconcile_open |
    # reconcile_auto (the schedule: full pass when due, else the open pass)
    mode: str = "incremental"
    window_start: str | None = None  # backfill, store-local "YYYY-MM-DD[ HH:MM:SS]"
    window_end: str | None = None
    # refresh: order numbers (orders), return ids, customer ids
    keys: list[int] = []  # noqa: RUF012 - pydantic copies defaults per instance
    # orders/returns lookback (default CENTRA_ORDERS_LOOKBACK_DAYS)
    lookback_days: float | None = None
    page_size: int | None = None
    # refresh from the webhook sensor: apply the inbox's unapplied events up to this seq
    inbox_through: int | None = None

    def options(self, settings: Settings) -> ExtractOptions:
        days = self.lookback_days
        if days is None:
            days = settings.orders_lookback_days
        return ExtractOptions(
            mode=self.mode,
            window_start=self.window_start,
            window_end=self.window_end,
            keys=tuple(self.keys),
            lookback=timedelta(days=days),
            page_size=self.page_size,
            catalogue_full_read_every=timedelta(hours=settings.catalogue_full_read_hours),
            reconcile_full_every=timedelta(days=settings.reconcile_full_days),
            inbox_through=self.inbox_through,
        )


def source_key(stream: Stream) -> dg.AssetKey:
    return dg.AssetKey(["centra", stream.api, stream.name])


def lake_key(stream: Stream) -> dg.AssetKey:
    return dg.AssetKey(["lake", stream.name])


def table_key(table: Table) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", table.name])


SNAPSHOT_KEY = dg.AssetKey(["analyst", "centra_duckdb"])


def column_schema(table: Table) -> dg.TableSchema:
    from centra_pipeline.streams.model import META_DESCRIPTIONS, META_TYPES, warehouse_meta

    single_pk = table.primary_key[0] if len(table.primary_key) == 1 else None
    columns = [
        dg.TableColumn(
            col.name,
            col.type,
            description=col.description,
            constraints=dg.TableColumnConstraints(
                nullable=not (col.required or col.name in table.primary_key),
                unique=col.name == single_pk,
            ),
        )
        for col in table.columns
    ]
    columns += [
        dg.TableColumn(m, META_TYPES[m], description=META_DESCRIPTIONS.get(m, ""))
        for m in warehouse_meta(table)
    ]
    constraints = dg.TableConstraints(other=[f"primary key ({', '.join(table.primary_key)})"])
    return dg.TableSchema(columns=columns, constraints=constraints)


def source_specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            source_key(stream),
            description=f"Centra {API_LABELS[stream.api]} `{ENDPOINTS[stream.name]}`: "
            f"{stream.description.lower()}. Read by the pipeline, never written.",
            group_name=GROUPS[stream.api],
            kinds={"centra", "api"},
            metadata={"endpoint": ENDPOINTS[stream.name]},
        )
        for stream in STREAMS.values()
    ]


def _check_specs(stream: Stream) -> list[dg.AssetCheckSpec]:
    specs = []
    for table in stream.tables:
        key = table_key(table)
        specs.append(
            dg.AssetCheckSpec(
                "primary_key_unique",
                asset=key,
                blocking=True,
                description=f"({', '.join(table.primary_key)}) is unique and not null",
            )
        )
        specs.append(
            dg.AssetCheckSpec(
                "required_not_null", asset=key, description="required columns have no nulls"
            )
        )
        if table.parent:
            specs.append(
                dg.AssetCheckSpec(
                    f"references_{table.parent}",
                    asset=key,
                    description=f"every row belongs to a row of {table.parent}",
                )
            )
        specs.append(
            dg.AssetCheckSpec(
                "schema_drift",
                asset=key,
                description="warns when Centra sends fields that no column maps",
            )
        )
        if table.is_parent:
            specs.append(
                dg.AssetCheckSpec(
                    RECONCILE_CHECK,
                    asset=key,
                    description="warns when a reconciliation repaired (new, changed or missing) "
                    "more than CENTRA_RECONCILE_WARN_SHARE (default 1%) of what it read: the "
                    "lookback and the webhooks are missing changes",
                )
            )
    return specs


def _stream_specs(stream: Stream) -> list[dg.AssetSpec]:
    group = GROUPS[stream.api]
    specs = [
        dg.AssetSpec(
            lake_key(stream),
            deps=[source_key(stream)],
            description=(
                f"Every extraction of `{ENDPOINTS[stream.name]}` landed as immutable Parquet "
                "(zstd): "
                f"one directory per load under lake/{stream.name}/day=…/load=…, with each record's "
                "raw JSON and a manifest (window, cursor, counts)."
            ),
            group_name=group,
            kinds={"parquet", "python"},
            owners=OWNERS,
            skippable=True,
        )
    ]
    for table in stream.tables:
        deps = [lake_key(stream)]
        if table.parent:
            deps.append(table_key(TABLES[table.parent]))
        specs.append(
            dg.AssetSpec(
                table_key(table),
                deps=deps,
                description=f"{table.description} Source: {table.source}. "
                f"Primary key: {', '.join(table.primary_key)}.",
                group_name=group,
                kinds={"duckdb", "table"},
                owners=OWNERS,
                skippable=True,
                freshness_policy=(
                    dg.FreshnessPolicy.time_window(
                        fail_window=FRESHNESS_WINDOW, warn_window=timedelta(minutes=90)
                    )
                    if table.is_parent
                    else None
                ),
                metadata={
                    "dagster/column_schema": column_schema(table),
                    "dagster/table_name": f"centra.main.{table.name}",
                },
            )
        )
    return specs


def _lake_metadata(manifest: LoadManifest, seconds: float) -> dict[str, Any]:
    return {
        "load_id": manifest.load_id,
        "mode": manifest.mode,
        "window": dg.MetadataValue.json(manifest.window or {"read": "everything"}),
        "cursor_before": manifest.cursor_before or "",
        "cursor_after": manifest.cursor_after or "",
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
        "unmapped_fields": dg.MetadataValue.json(sorted(manifest.drift)),
        "coercions": dg.MetadataValue.json(manifest.coercions),
        "duration_seconds": round(seconds, 3),
        "path": dg.MetadataValue.path(manifest.path),
        "dagster/row_count": sum(manifest.rows.values()),
    }


def _merge_metadata(
    results: list[MergeResult],
    manifests: list[LoadManifest],
    table: Table,
    row_count: int,
    seconds: float,
) -> dict[str, Any]:
    is_parent = table.is_parent

    def total(attr: str) -> int:
        return sum(getattr(r, attr) for r in results)

    meta: dict[str, Any] = {
        "loads_merged": dg.MetadataValue.json([r.load_id for r in results if not r.skipped]),
        "duration_seconds": round(seconds, 3),
        "dagster/row_count": row_count,
    }
    if is_parent:
        meta.update(
            {
                "rows_fetched": total("staged"),
                "rows_new": total("new"),
                "rows_updated": total("updated"),
                "rows_unchanged": total("unchanged"),
                "rows_stale": total("stale"),
                "rows_marked_missing": total("missing"),
                "cursor_before": next((r.cursor_before for r in results if not r.skipped), None)
                or "",
                "cursor_after": next(
                    (r.cursor_after for r in reversed(results) if not r.skipped), None
                )
                or "",
                # What the merged loads read from Centra, so this table's history alone
                # tells the whole story of each run.
                "requests": sum(m.requests for m in manifests),
                "retries": sum(m.retries for m in manifests),
                "windows_read": dg.MetadataValue.json([m.window for m in manifests]),
            }
        )
        drifts = [r.drift for r in results if r.drift is not None]
        if drifts:
            found = Drift.total(drifts)
            meta.update(
                {
                    "reconcile_pass": ", ".join(sorted({r.mode for r in results if r.drift})),
                    "reconcile_read": found.read,
                    "reconcile_new": found.new,
                    "reconcile_changed": found.changed,
                    "reconcile_missing": found.missing,
                    "reconcile_share": dg.MetadataValue.float(round(found.share, 6)),
                }
            )
    else:
        meta["rows_written"] = sum(r.child_rows.get(table.name, 0) for r in results)
    return meta


def build_stream_asset(stream: Stream) -> dg.AssetsDefinition:
    specs = _stream_specs(stream)

    @dg.multi_asset(
        name=f"sync_{stream.name}",
        specs=specs,
        check_specs=_check_specs(stream),
        can_subset=True,
        retry_policy=dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL),
        op_tags={"centra_pipeline/stream": stream.name},
    )
    def _sync(context: dg.AssetExecutionContext, config: SyncConfig, centra: CentraResource):
        with _no_retry_for_mistakes():
            yield from _run_stream(context, config, centra)

    def _run_stream(context: dg.AssetExecutionContext, config: SyncConfig, centra: CentraResource):
        selected = context.selected_asset_keys
        settings = centra.settings()
        lake = centra.lake()
        warehouse = centra.warehouse()
        if lake_key(stream) in selected:
            started = time.monotonic()
            # The catalogue asks the Order API which products changed, when it is configured
            # (without it, every catalogue read is a full one; see extract.py).
            uses_order_api = stream.api == "order_api" or not settings.missing_order_api()
            api = centra.order_api() if uses_order_api else None
            shop = centra.shop_api() if stream.api == "shop_api" else None

            def report(progress: Progress) -> None:
                context.log.info(progress.line())

            try:
                manifest = Extractor(
                    lake=lake,
                    warehouse=warehouse,
                    timezone=settings.timezone,
                    order_api=api,
                    shop_api=shop,
                    progress=report,
                    inbox_path=settings.inbox_path,
                ).run(stream.name, config.options(settings))
            finally:
                for client in (api, shop):
                    if client is not None:
                        client.close()
            yield dg.MaterializeResult(
                asset_key=lake_key(stream),
                metadata=_lake_metadata(manifest, time.monotonic() - started),
            )
            if manifest.drift:
                context.log.warning(
                    "%s: Centra sent fields no column maps: %s",
                    stream.name,
                    ", ".join(sorted(manifest.drift)),
                )

        tables = [t for t in stream.tables if table_key(t) in selected]
        if not tables:
            return
        started = time.monotonic()
        pending = warehouse.pending_loads(lake, stream.name)
        context.log.info(
            "%s: merging %d landed load(s) into the warehouse", stream.name, len(pending)
        )
        results = warehouse.merge_loads(pending)
        drift: dict[str, dict[str, Any]] = {}
        for manifest in pending:
            drift.update(manifest.drift)
        seconds = time.monotonic() - started
        with warehouse.reader() as con:
            assert con is not None
            for table in tables:
                row_count = con.execute(
                    f"SELECT count(*) FROM {main_table(table.name)}"
                ).fetchall()[0][0]
                yield dg.MaterializeResult(
                    asset_key=table_key(table),
                    metadata=_merge_metadata(results, pending, table, row_count, seconds),
                )
                yield from _check_results(
                    context, con, table, drift, results, settings.reconcile_warn_share
                )

    return _sync


@contextmanager
def _no_retry_for_mistakes():
    """Configuration and permission problems fail at once with their message; retrying them
    only delays the message. Transient ones (server errors, timeouts) keep the retry policy."""
    try:
        yield
    except (
        ConfigError,
        CentraAuthError,
        CentraURLError,
        CentraEndpointNotAllowed,
        CentraBusinessError,
        TypeDrift,
        MissingKey,
        ValueError,
    ) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def _check_results(
    context, con, table: Table, drift, results: list[MergeResult], warn_share: float
) -> list[dg.AssetCheckResult]:
    key = table_key(table)
    outcomes: list[tuple[str, quality.CheckOutcome, dg.AssetCheckSeverity]] = [
        ("primary_key_unique", quality.primary_key_unique(con, table), dg.AssetCheckSeverity.ERROR),
        ("required_not_null", quality.required_not_null(con, table), dg.AssetCheckSeverity.ERROR),
    ]
    if table.parent:
        outcomes.append(
            (
                f"references_{table.parent}",
                quality.references_parent(con, table),
                dg.AssetCheckSeverity.ERROR,
            )
        )
    outcomes.append(
        ("schema_drift", quality.schema_drift(drift, table), dg.AssetCheckSeverity.WARN)
    )
    if table.is_parent:
        outcomes.append(
            (RECONCILE_CHECK, _reconcile_outcome(results, warn_share), dg.AssetCheckSeverity.WARN)
        )
    results = []
    selected_checks = context.selected_asset_check_keys
    for name, outcome, severity in outcomes:
        check_key = dg.AssetCheckKey(key, name)
        if check_key not in selected_checks:
            continue
        results.append(
            dg.AssetCheckResult(
                asset_key=key,
                check_name=name,
                passed=outcome.passed,
                severity=severity,
                description=outcome.description,
                metadata=outcome.metadata,
            )
        )
    return results


def _reconcile_outcome(results: list[MergeResult], warn_share: float) -> quality.CheckOutcome:
    drifts = [r.drift for r in results if r.drift is not None]
    if not drifts:
        return quality.CheckOutcome(True, "no reconciliation was merged in this run", {})
    found = Drift.total(drifts)
    metadata = {**found.as_dict(), "warn_share": warn_share}
    if found.share > warn_share:
        return quality.CheckOutcome(
            False,
            f"the reconciliation repaired {found.repaired:,} of {found.read:,} records "
            f"({found.share:.2%}, more than {warn_share:.2%}): {found.new:,} new, "
            f"{found.changed:,} changed, {found.missing:,} missing. Incremental reads and "
            "webhooks missed these changes; check the webhook receiver and the lookback",
            metadata,
        )
    return quality.CheckOutcome(
        True,
        f"repaired {found.repaired:,} of {found.read:,} records ({found.share:.2%})",
        metadata,
    )


STREAM_ASSETS = {name: build_stream_asset(stream) for name, stream in STREAMS.items()}


@dg.asset(
    key=SNAPSHOT_KEY,
    deps=[table_key(t) for t in TABLES.values()],
    group_name="analyst",
    kinds={"duckdb"},
    owners=OWNERS,
    description=(
        "The analyst snapshot `$CENTRA_DATA_DIR/centra.duckdb`: a copy of the warehouse, swapped "
        "in atomically after each successful run, readable by DuckDB 1.5 and newer. Analysts "
        "open it (read-only is best); the pipeline never waits on them."
    ),
)
def centra_snapshot(context: dg.AssetExecutionContext, centra: CentraResource):
    info = centra.warehouse().publish(centra.snapshot_path())
    counts = {}
    with centra.warehouse().reader() as con:
        if con is not None:
            for name in TABLES:
                counts[name] = con.execute(f"SELECT count(*) FROM {main_table(name)}").fetchall()[
                    0
                ][0]
    context.log.info(
        "published %s (%s bytes) in %.2f s", info["path"], info["bytes"], info["seconds"]
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(info["path"]),
            "bytes": info["bytes"],
            "publish_seconds": info["seconds"],
            "table_rows": dg.MetadataValue.json(counts),
            "dagster/row_count": counts.get("orders", 0),
        }
    )
