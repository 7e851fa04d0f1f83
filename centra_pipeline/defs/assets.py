"""Assets: per stream, Centra endpoint → lake load (Parquet) → warehouse tables (DuckDB),
then the analyst snapshot.

The streams share one multi-asset, `sync_streams` (one step): it reads the selected streams
at once, and as each read lands in the lake it reports the lake asset and an observation of
the endpoint, merges the stream and reports every table with its checks. The work is in
sync/stream_step.py; the step is subsettable per asset: selecting only `lake/<stream>` lands
without merging; selecting only a stream's warehouse tables merges whatever landed loads are
not merged yet (a rebuild from the lake after a crash between landing and merging). Whole
runs that write the warehouse are limited to one at a time by the run queue (dagster.yaml),
so a webhook refresh waits for the sync.
"""

import warnings
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import timedelta
from queue import Empty, Queue
from typing import Any

import dagster as dg
import duckdb

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
    OWNERS,
    SNAPSHOT_KEY,
    SYNC_STEP,
    lake_key,
    source_key,
    table_key,
)
from centra_pipeline.defs.resources import CentraResource, StorageResource
from centra_pipeline.defs.specs import source_specs, stream_specs
from centra_pipeline.settings import ConfigError, Settings
from centra_pipeline.storage.lake import Lake
from centra_pipeline.storage.suppression import snapshot_pii
from centra_pipeline.storage.warehouse import Warehouse, unmapped_fields
from centra_pipeline.storage.warehouse_shared import SharedWarehouse
from centra_pipeline.streams import STREAMS, TABLES, Stream, Table
from centra_pipeline.streams.rows import MissingKey
from centra_pipeline.sync import stream_step
from centra_pipeline.sync.plan import ExtractOptions


class StreamConfig(dg.Config):
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


class SyncConfig(StreamConfig):
    """The read of every selected stream; `streams` gives one stream a read of its own
    (replacing these fields for it, e.g. `{"orders": {"mode": "refresh", "keys": [...]}}`)."""

    streams: dict[str, StreamConfig] = {}  # noqa: RUF012 - pydantic copies defaults

    def for_stream(self, name: str) -> StreamConfig:
        if name in self.streams:
            return self.streams[name]
        return StreamConfig(**self.model_dump(exclude={"streams"}))


def build_sync_asset(
    freshness: dg.FreshnessPolicy | None, stores: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    """Every stream's lake load and tables in one step: the selected streams are read from
    Centra at once (threads; the two APIs' rate limits are shared by all of them), and each
    is merged and reported as soon as its read has landed, while the others still read.
    One step instead of one per stream: each step costs a run seconds of start-up and
    events, and in one process the rate limit is one limit (docs/architecture.md)."""
    specs = [spec for stream in STREAMS.values() for spec in stream_specs(stream, freshness)]
    checks = [spec for table in TABLES.values() for spec in check_specs(table, stores)]

    @dg.multi_asset(
        name=SYNC_STEP,
        specs=specs,
        check_specs=checks,
        can_subset=True,
        partitions_def=stores,
        retry_policy=dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL),
    )
    def _sync(
        context: dg.AssetExecutionContext,
        config: SyncConfig,
        centra: CentraResource,
        storage: StorageResource,
    ):
        yield from held_sync_streams(context, config, centra, storage)

    return _sync


def held_sync_streams(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    centra: CentraResource,
    storage: StorageResource,
) -> Iterator[Any]:
    """`sync_streams` under one hold of the warehouse. On object storage the step's merges
    reach other workers when the hold ends (one upload of the file, not one per stream), so
    the step's materializations and checks are reported then, not before: the UI never
    shows a table materialized that a worker dying now would take back. Logs go out at once."""
    warehouse = storage.warehouse()
    deferred = isinstance(warehouse, SharedWarehouse)
    events: list[Any] = []
    failure: Exception | None = None
    with warehouse.held():
        try:
            for event in sync_streams(context, config, centra, storage, warehouse):
                if deferred:
                    events.append(event)
                else:
                    yield event
        except Exception as exc:  # what merged is handed over first, then reported
            failure = exc
    yield from events
    if failure is not None:
        raise failure


def sync_streams(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    centra: CentraResource,
    storage: StorageResource,
    warehouse: Warehouse,
) -> Iterator[Any]:
    """Land the selected streams concurrently; merge and report each as it lands. A stream
    that fails does not stop the others: they land, merge and report, and the step fails
    at the end naming every stream that did not."""
    settings, lake = centra.settings, storage.lake()
    selected = context.selected_asset_keys
    streams = [s for s in STREAMS.values() if _stream_keys(s) & selected]
    progress: Queue[str] = Queue()
    failed: dict[str, BaseException] = {}

    def land(stream: Stream) -> stream_step.Landed:
        return stream_step.land(
            stream,
            config.for_stream(stream.name).options(settings),
            settings=settings,
            lake=lake,
            warehouse=warehouse,
            order_api=centra.order_api,
            shop_api=centra.shop_api,
            progress=lambda p: progress.put(p.line()),
        )

    def merged_and_reported(stream: Stream, landed: stream_step.Landed | None) -> Iterator[Any]:
        try:
            if landed is not None:
                yield from _report_landed(context, stream, landed, settings.timezone)
            tables = [t for t in stream.tables if table_key(t) in selected]
            if tables:
                yield from _merged_tables(context, stream, tables, lake, warehouse, settings)
        except Exception as exc:
            failed[stream.name] = exc
            context.log.error("%s: FAILED: %s", stream.name, exc)

    reading = [s for s in streams if lake_key(s) in selected]
    for stream in streams:  # tables only: merge what landed before (a rebuild after a crash)
        if stream not in reading:
            yield from merged_and_reported(stream, None)
    with ThreadPoolExecutor(max(1, len(reading)), thread_name_prefix="centra-stream") as pool:
        futures: dict[Future, Stream] = {pool.submit(land, s): s for s in reading}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            _log_progress(context, progress)
            for future in done:
                stream = futures[future]
                try:
                    landed = future.result()
                except Exception as exc:
                    failed[stream.name] = exc
                    context.log.error("%s: FAILED: %s", stream.name, exc)
                    continue
                yield from merged_and_reported(stream, landed)
    _log_progress(context, progress)
    if failed:
        raise _failure(failed)


def _stream_keys(stream: Stream) -> set[dg.AssetKey]:
    return {lake_key(stream), *(table_key(t) for t in stream.tables)}


def _log_progress(context: dg.AssetExecutionContext, progress: Queue[str]) -> None:
    """Progress lines of the reading threads, logged from the step's own thread."""
    while True:
        try:
            line = progress.get_nowait()
        except Empty:
            return
        context.log.info(line)


# Configuration and permission problems fail at once with their message; retrying them only
# delays the message. Transient ones (server errors, timeouts) keep the retry policy.
MISTAKES = (
    ConfigError,
    CentraAuthError,
    CentraURLError,
    CentraEndpointNotAllowed,
    CentraBusinessError,
    TypeDrift,
    MissingKey,
    ValueError,
)


def _failure(failed: dict[str, BaseException]) -> dg.Failure:
    names = ", ".join(failed)
    lines = "; ".join(f"{name}: {exc}" for name, exc in failed.items())
    return dg.Failure(
        description=f"{len(failed)} stream(s) failed ({names}); the others were merged. {lines}",
        allow_retries=not all(isinstance(exc, MISTAKES) for exc in failed.values()),
    )


def _merged_tables(
    context: dg.AssetExecutionContext,
    stream: Stream,
    tables: list[Table],
    lake: Lake,
    warehouse: Warehouse,
    settings: Settings,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Merge the stream; then each table's materialization, followed by the results of its
    checks, evaluated on the merge's own connection."""

    def checks(con: duckdb.DuckDBPyConnection, merged: stream_step.Merged) -> dict[str, list]:
        unmapped = unmapped_fields(con, stream.name)
        inputs = CheckInputs(con, merged, unmapped, settings.reconcile_warn_share)
        return {t.name: check_results(context.selected_asset_check_keys, inputs, t) for t in tables}

    merged = stream_step.merge(stream, tables, lake=lake, warehouse=warehouse, inspect=checks)
    if stream.name == "customers":
        erasure = stream_step.erase_anonymised(
            merged, settings=settings, lake=lake, warehouse=warehouse
        )
        if erasure is not None:
            context.log.info(
                f"{len(erasure.customer_ids)} customers anonymised in Centra: their older "
                f"copies erased ({erasure.lake_records_erased} lake records, "
                f"{sum(erasure.warehouse_rows_erased.values())} warehouse rows)"
            )
    for table in tables:
        yield dg.MaterializeResult(
            asset_key=table_key(table),
            metadata=metadata.table_metadata(merged, table, settings.timezone),
        )
        yield from merged.inspected[table.name]


def _report_landed(
    context: dg.AssetExecutionContext, stream: Stream, landed: stream_step.Landed, tz: str
) -> Iterator[dg.MaterializeResult]:
    """The lake asset's materialization, an observation of the endpoint it read, and log
    lines for what the data engineer should know."""
    context.log_event(
        dg.AssetObservation(
            asset_key=source_key(stream),
            metadata=metadata.endpoint_observation(landed),
            partition=context.partition_key,
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
    """A mistake (MISTAKES) fails at once with its message; others keep the retry policy."""
    try:
        yield
    except MISTAKES as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def build_endpoint_assets(stores: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """The endpoints as observable sources: each sync's read observes its endpoint, and
    "Observe" in the UI probes the selected ones (a request for one record each)."""

    # Dagster marks multi_observable_source_asset as beta; it is the one way to make several
    # external assets observable from one function.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.BetaWarning)

        @dg.multi_observable_source_asset(
            specs=source_specs(), name="centra_endpoints", can_subset=True, partitions_def=stores
        )
        def centra_endpoints(context: dg.AssetExecutionContext, centra: CentraResource):
            for stream in STREAMS.values():
                if source_key(stream) in context.selected_asset_keys:
                    with _no_retry_for_mistakes():
                        seen = stream_step.probe(stream, centra.order_api, centra.shop_api)
                    yield dg.ObserveResult(asset_key=source_key(stream), metadata=seen)

    return centra_endpoints


def build_snapshot_asset(stores: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=SNAPSHOT_KEY,
        partitions_def=stores,
        deps=[table_key(t) for t in TABLES.values()],
        group_name="analyst",
        kinds={"duckdb"},
        owners=OWNERS,
        description=(
            "The analyst snapshot of one store (the partition): `$CENTRA_DATA_DIR/centra.duckdb`"
            ", or `stores/<store>/centra.duckdb` with a stores file; a copy of the warehouse, "
            "swapped in atomically after each successful run, readable by DuckDB 1.5 and "
            "newer. Analysts open it (read-only is best); the pipeline never waits on them. "
            "Its row count is every table's rows summed; `rows/<table>` lists each. "
            "`personal_data` says whether personal columns are kept, hashed or left out "
            "(CENTRA_PII)."
        ),
    )
    def centra_snapshot(context: dg.AssetExecutionContext, storage: StorageResource):
        warehouse = storage.warehouse()
        info = warehouse.publish(storage.snapshot_path, *snapshot_pii(storage.settings))
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


def all_assets(freshness: dg.FreshnessPolicy | None, stores: dg.PartitionsDefinition) -> list[Any]:
    """Every asset, partitioned by store: the endpoints, the streams' lake loads and tables
    (one step), the snapshot."""
    return [
        build_endpoint_assets(stores),
        build_sync_asset(freshness, stores),
        build_snapshot_asset(stores),
    ]
