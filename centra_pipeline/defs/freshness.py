"""Freshness per store: whether each stream's main table was merged recently enough, for
every store (partition) on its own.

Dagster's freshness-check builder and its `FreshnessPolicy` look at a table's latest
materialization of any partition, so with a stores file a table would count as fresh while
one store had stopped syncing. Here each (table, store) is evaluated from that store's
latest materialization (docs/architecture.md, "Freshness"):

- merged within the warn window: passes;
- older than the warn window: fails with severity WARN;
- older than the fail window, or never merged: fails with severity ERROR.

`centra_freshness_checks_sensor` evaluates every (table, store) each minute from the event
log and records an evaluation, without a run, when a store's status changes or its table was
merged again. The job `centra_freshness_checks` evaluates one store's checks on demand
(launched with the tag `dagster/partition=<store>`: Dagster does not yet infer a partition
for a job of partitioned checks alone).
"""

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from centra_pipeline.defs.checks import store_check_spec
from centra_pipeline.defs.keys import table_key
from centra_pipeline.streams import STREAMS

FRESHNESS_SENSOR_NAME = "centra_freshness_checks_sensor"
FRESHNESS_JOB_NAME = "centra_freshness_checks"
FRESHNESS_CHECK_NAME = "freshness_check"
PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass(frozen=True)
class Windows:
    warn: timedelta
    fail: timedelta

    def describe(self) -> str:
        return f"warns after {_words(self.warn)}, fails after {_words(self.fail)} without a merge"


@dataclass(frozen=True)
class Merge:
    """A store's latest materialization of a table."""

    storage_id: int
    run_id: str
    timestamp: float


def parent_keys() -> list[dg.AssetKey]:
    return [table_key(stream.parent) for stream in STREAMS.values()]


def status(merge: Merge | None, now: float, windows: Windows) -> str:
    if merge is None or now - merge.timestamp > windows.fail.total_seconds():
        return FAIL
    return WARN if now - merge.timestamp > windows.warn.total_seconds() else PASS


def evaluation(
    key: dg.AssetKey, store: str, merge: Merge | None, now: float, windows: Windows
) -> dg.AssetCheckEvaluation:
    """The freshness check's evaluation for one table of one store at `now`."""
    state = status(merge, now, windows)
    metadata: dict[str, dg.RawMetadataValue] = {"store": store}
    if merge is None:
        description = f"Store {store} has never merged this table ({windows.describe()})."
        target = None
    else:
        age = _words(timedelta(seconds=max(0.0, now - merge.timestamp)))
        description = (
            f"Store {store} last merged this table {age} ago, at {_utc(merge.timestamp)} "
            f"({windows.describe()})."
        )
        metadata["dagster/last_updated_timestamp"] = dg.MetadataValue.timestamp(merge.timestamp)
        deadline = merge.timestamp + windows.fail.total_seconds()
        metadata["dagster/fresh_until_timestamp"] = dg.MetadataValue.timestamp(deadline)
        target = AssetCheckEvaluationTargetMaterializationData(
            storage_id=merge.storage_id, run_id=merge.run_id, timestamp=merge.timestamp
        )
    return dg.AssetCheckEvaluation(
        asset_key=key,
        check_name=FRESHNESS_CHECK_NAME,
        passed=state == PASS,
        severity=dg.AssetCheckSeverity.WARN if state == WARN else dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
        target_materialization_data=target,
        partition=store,
    )


def latest_merges(
    instance: dg.DagsterInstance, key: dg.AssetKey, stores: Iterable[str], known: dict[int, Merge]
) -> dict[str, Merge]:
    """Each store's latest materialization of `key`: one query for the storage ids, and one
    more for the timestamps of those not in `known`."""
    ids = dict(
        instance.get_latest_storage_id_by_partition(
            key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(stores)
        )
    )
    missing = [i for i in ids.values() if i not in known]
    if missing:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, storage_ids=missing), limit=len(missing)
        ).records
        for record in records:
            known[record.storage_id] = Merge(record.storage_id, record.run_id, record.timestamp)
    return {store: known[i] for store, i in ids.items() if i in known}


def sensor_tick(
    instance: dg.DagsterInstance,
    stores: Sequence[str],
    windows: Windows,
    cursor: str | None,
    now: float,
) -> tuple[list[dg.AssetCheckEvaluation], str]:
    """The evaluations to record at `now`, and the next cursor. The cursor keeps, per table
    and store, the latest merge seen and the status last recorded, so an evaluation is
    recorded only when one of them changes."""
    seen: dict[str, dict[str, list]] = json.loads(cursor) if cursor else {}
    events, nxt = [], {}
    for key in parent_keys():
        table = key.to_user_string()
        before = seen.get(table, {})
        known = {
            entry[0]: Merge(entry[0], entry[1], entry[2])
            for entry in before.values()
            if entry[0] is not None
        }
        merges = latest_merges(instance, key, stores, known)
        nxt[table] = {}
        for store in stores:
            merge = merges.get(store)
            state = status(merge, now, windows)
            entry = [merge.storage_id, merge.run_id, merge.timestamp] if merge else [None] * 3
            nxt[table][store] = [*entry, state]
            if before.get(store) != nxt[table][store]:
                events.append(evaluation(key, store, merge, now, windows))
    return events, json.dumps(nxt, separators=(",", ":"))


def check_specs(stores: dg.PartitionsDefinition, windows: Windows) -> list[dg.AssetCheckSpec]:
    describe = f"This store merged the table recently: {windows.describe()}."
    return [store_check_spec(FRESHNESS_CHECK_NAME, key, describe, stores) for key in parent_keys()]


def build_freshness(
    stores: dg.StaticPartitionsDefinition,
    windows: Windows,
    default_status: dg.DefaultSensorStatus,
) -> tuple[dg.AssetChecksDefinition, dg.SensorDefinition, Any]:
    """The per-store freshness checks, the sensor that evaluates them, and the job that
    evaluates one store's on demand."""

    @dg.multi_asset_check(
        specs=check_specs(stores, windows), name="centra_freshness", can_subset=True
    )
    def freshness_checks(context: dg.AssetCheckExecutionContext):
        if not context.has_partition_key:
            raise dg.Failure(
                "Freshness is evaluated per store: launch this job with the tag "
                f"dagster/partition=<store>, one of {stores.get_partition_keys()}. "
                f"{FRESHNESS_SENSOR_NAME} evaluates every store each minute."
            )
        store, now = context.partition_key, time.time()
        for check_key in context.selected_asset_check_keys:
            key = check_key.asset_key
            merge = latest_merges(context.instance, key, [store], {}).get(store)
            e = evaluation(key, store, merge, now, windows)
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=e.check_name,
                passed=e.passed,
                severity=e.severity,
                description=e.description,
                metadata=e.metadata,
            )

    def tick(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        events, cursor = sensor_tick(
            context.instance, stores.get_partition_keys(), windows, context.cursor, time.time()
        )
        if not events:
            return dg.SensorResult(skip_reason="No store's freshness changed.", cursor=cursor)
        return dg.SensorResult(asset_events=events, cursor=cursor)

    sensor = dg.SensorDefinition(
        name=FRESHNESS_SENSOR_NAME,
        evaluation_fn=tick,
        minimum_interval_seconds=60,
        default_status=default_status,
        description="Evaluates, per store, whether each stream's main table ("
        + ", ".join(s.parent.name for s in STREAMS.values())
        + f") was merged recently: {windows.describe()}, windows derived from "
        "CENTRA_SYNC_CRON. Records an evaluation, without a run, when a store's status "
        "changes or its table is merged again.",
    )
    job = dg.define_asset_job(
        FRESHNESS_JOB_NAME,
        selection=dg.AssetSelection.checks(freshness_checks),
        description="Evaluate now whether one store's main tables were merged recently enough "
        "(launch with the tag dagster/partition=<store>).",
    )
    return freshness_checks, sensor, job


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _words(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    if minutes >= 120:
        return f"{minutes / 60:.3g} h"
    return f"{minutes:.3g} min" if minutes >= 1 else f"{delta.total_seconds():.0f} s"
