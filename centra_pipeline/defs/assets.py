"""Assets: per stream, Centra endpoint → lake load (Parquet) → warehouse tables (DuckDB),
then the analyst snapshot.

Each stream is one multi-asset (one step): it lands a read in the lake, reports the lake
asset and an observation of the endpoint, then merges under the warehouse lock and reports
every table with its checks. The work is in sync/stream_step.py; the step is subsettable:
selecting only `lake/<stream>` lands without merging; selecting only the warehouse tables
merges whatever landed loads are not merged yet (a rebuild from the lake after a crash
between landing and merging). Whole runs that write the warehouse are limited to one at a
time by the run queue (dagster.yaml), so a webhook refresh waits for the sync.
"""

import warnings
from collections.abc import Iterator
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
from centra_pipeline.defs import metadata
from centra_pipeline.defs.checks import CheckInputs, check_results, check_specs
from centra_pipeline.defs.keys import (
    API_LABELS,
    GROUPS,
    OWNERS,
    SNAPSHOT_KEY,
    STREAM_TAG,
    lake_key,
    source_key,
    table_key,
)
from centra_pipeline.defs.resources import CentraResource, StorageResource
from centra_pipeline.settings import ConfigError, Settings
from centra_pipeline.storage.warehouse import Warehouse
from centra_pipeline.streams import STREAMS, TABLES, Stream, Table
from centra_pipeline.streams.model import META_DESCRIPTIONS, META_TYPES, warehouse_meta
from centra_pipeline.streams.rows import MissingKey
from centra_pipeline.sync import stream_step
from centra_pipeline.sync.plan import ExtractOptions


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
        days = settings.orders_lookback_days if self.lookback_days is None else self.lookback_days
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


def build_stream_asset(stream: Stream, freshness: dg.FreshnessPolicy) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=f"sync_{stream.name}",
        specs=_stream_specs(stream, freshness),
        check_specs=[spec for table in stream.tables for spec in check_specs(table)],
        can_subset=True,
        retry_policy=dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL),
        op_tags={STREAM_TAG: stream.name},
    )
    def _sync(
        context: dg.AssetExecutionContext,
        config: SyncConfig,
        centra: CentraResource,
        storage: StorageResource,
    ):
        settings, lake, warehouse = centra.settings, storage.lake(), storage.warehouse()
        with _no_retry_for_mistakes():
            if lake_key(stream) in context.selected_asset_keys:
                landed = stream_step.land(
                    stream,
                    config.options(settings),
                    settings=settings,
                    lake=lake,
                    warehouse=warehouse,
                    order_api=centra.order_api,
                    shop_api=centra.shop_api,
                    progress=lambda progress: context.log.info(progress.line()),
                )
                yield from _report_landed(context, stream, landed, settings.timezone)
            tables = [t for t in stream.tables if table_key(t) in context.selected_asset_keys]
            if tables:
                merged = stream_step.merge(stream, tables, lake=lake, warehouse=warehouse)
                yield from _report_merged(context, stream, tables, merged, warehouse, settings)

    return _sync


def _report_merged(
    context: dg.AssetExecutionContext,
    stream: Stream,
    tables: list[Table],
    merged: stream_step.Merged,
    warehouse: Warehouse,
    settings: Settings,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Each merged table's materialization, followed by the results of its checks."""
    unmapped = warehouse.unmapped_fields(stream.name)
    with warehouse.reader() as con:
        inputs = CheckInputs(con, merged, unmapped, settings.reconcile_warn_share)
        for table in tables:
            yield dg.MaterializeResult(
                asset_key=table_key(table),
                metadata=metadata.table_metadata(merged, table, settings.timezone),
            )
            yield from check_results(context.selected_asset_check_keys, inputs, table)


def _report_landed(
    context: dg.AssetExecutionContext, stream: Stream, landed: stream_step.Landed, tz: str
) -> Iterator[dg.MaterializeResult]:
    """The lake asset's materialization, an observation of the endpoint it read, and log
    lines for what the data engineer should know."""
    context.log_event(
        dg.AssetObservation(
            asset_key=source_key(stream), metadata=metadata.endpoint_observation(landed)
        )
    )
    yield dg.MaterializeResult(
        asset_key=lake_key(stream), metadata=metadata.lake_metadata(landed, tz)
    )
    if landed.manifest.drift:
        context.log.warning(
            "%s: Centra sent fields no column maps: %s",
            stream.name,
            ", ".join(sorted(landed.manifest.drift)),
        )
    if landed.not_returned:
        context.log.warning(
            "%s: Centra did not return %d record(s) this read asked for by key (a webhook's "
            "order, a refreshed id): %s; they are marked missing in the warehouse",
            stream.name,
            len(landed.not_returned),
            ", ".join(str(k) for k in landed.not_returned),
        )


@contextmanager
def _no_retry_for_mistakes() -> Iterator[None]:
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


# --- specs -----------------------------------------------------------------------------------
def source_specs() -> list[dg.AssetSpec]:
    """The Centra endpoints: read, never written."""
    return [
        dg.AssetSpec(
            source_key(stream),
            description=f"Centra {API_LABELS[stream.api]} `{stream.endpoint}`: "
            f"{stream.description.lower()}. Read by the pipeline, never written; every read "
            "reports an observation (records, requests, retries, seconds), and observing it "
            "on its own asks for one record.",
            group_name=GROUPS[stream.api],
            kinds={"centra", "api"},
            owners=OWNERS,
            metadata={"endpoint": stream.endpoint},
        )
        for stream in STREAMS.values()
    ]


def build_endpoint_assets() -> dg.AssetsDefinition:
    """The endpoints as observable sources: each sync's read observes its endpoint, and
    "Observe" in the UI probes the selected ones (a request for one record each)."""

    # Dagster marks multi_observable_source_asset as beta; it is the one way to make several
    # external assets observable from one function.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.BetaWarning)

        @dg.multi_observable_source_asset(
            specs=source_specs(), name="centra_endpoints", can_subset=True
        )
        def centra_endpoints(context: dg.AssetExecutionContext, centra: CentraResource):
            for stream in STREAMS.values():
                if source_key(stream) in context.selected_asset_keys:
                    with _no_retry_for_mistakes():
                        seen = stream_step.probe(stream, centra.order_api, centra.shop_api)
                    yield dg.ObserveResult(asset_key=source_key(stream), metadata=seen)

    return centra_endpoints


def _stream_specs(stream: Stream, freshness: dg.FreshnessPolicy) -> list[dg.AssetSpec]:
    group = GROUPS[stream.api]
    lake = dg.AssetSpec(
        lake_key(stream),
        deps=[source_key(stream)],
        description=(
            f"Every extraction of `{stream.endpoint}` landed as immutable Parquet (zstd): one "
            f"directory per load under lake/{stream.name}/day=…/load=…, with each record's "
            "raw JSON and a manifest (window, cursor, counts)."
        ),
        group_name=group,
        kinds={"parquet", "python"},
        owners=OWNERS,
        skippable=True,
    )
    return [lake, *(_table_spec(stream, table, group, freshness) for table in stream.tables)]


def _table_spec(
    stream: Stream, table: Table, group: str, freshness: dg.FreshnessPolicy
) -> dg.AssetSpec:
    deps = [lake_key(stream)]
    if table.parent:
        deps.append(table_key(TABLES[table.parent]))
    return dg.AssetSpec(
        table_key(table),
        deps=deps,
        description=f"{table.description} Source: {table.source}. "
        f"Primary key: {', '.join(table.primary_key)}.",
        group_name=group,
        kinds={"duckdb", "table"},
        owners=OWNERS,
        skippable=True,
        freshness_policy=freshness if table.is_parent else None,
        metadata={
            "dagster/column_schema": column_schema(table),
            "dagster/table_name": f"centra.main.{table.name}",
        },
    )


def column_schema(table: Table) -> dg.TableSchema:
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


def build_snapshot_asset() -> dg.AssetsDefinition:
    @dg.asset(
        key=SNAPSHOT_KEY,
        deps=[table_key(t) for t in TABLES.values()],
        group_name="analyst",
        kinds={"duckdb"},
        owners=OWNERS,
        description=(
            "The analyst snapshot `$CENTRA_DATA_DIR/centra.duckdb`: a copy of the warehouse, "
            "swapped in atomically after each successful run, readable by DuckDB 1.5 and "
            "newer. Analysts open it (read-only is best); the pipeline never waits on them. "
            "Its row count is every table's rows summed; `rows/<table>` lists each."
        ),
    )
    def centra_snapshot(context: dg.AssetExecutionContext, storage: StorageResource):
        warehouse = storage.warehouse()
        info = warehouse.publish(storage.snapshot_path)
        counts = warehouse.row_counts(list(TABLES))
        context.log.info(
            "published %s (%s bytes, %s rows in %d tables) in %.2f s",
            info["path"],
            info["bytes"],
            sum(counts.values()),
            len(counts),
            info["seconds"],
        )
        return dg.MaterializeResult(metadata=metadata.snapshot_metadata(info, counts))

    return centra_snapshot


def all_assets(freshness: dg.FreshnessPolicy) -> list[Any]:
    """Every asset: the endpoints, one multi-asset per stream, the snapshot."""
    return [
        build_endpoint_assets(),
        *(build_stream_asset(stream, freshness) for stream in STREAMS.values()),
        build_snapshot_asset(),
    ]
