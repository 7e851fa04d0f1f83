"""The analyst file of a many-store deployment: `all_stores.duckdb`, every store's snapshot
tables in one, with a `store` column (storage/all_stores.py).

It is its own asset, not partitioned, downstream of every store's snapshot, and its sensor
republishes it when a store's snapshot has changed since the last publish, once no store run
is queued or in progress (or once a change has waited ALL_STORES_MAX_WAIT seconds, so a
steady trickle of webhook refreshes cannot hold it back), never while a publish is queued or
running, and at most once every ALL_STORES_MIN_INTERVAL seconds. A publish reads every
store's snapshot (about 25 s of a core at 100 stores), so publishing during an hourly
cycle would take that core from the stores' own runs; one publish follows the cycle's last
store instead, within a sensor interval. Only a deployment with a stores file has these.

(No `from __future__ import annotations`: Dagster reads the asset's context type at runtime.)
"""

import json
import time

import dagster as dg
from dagster._core.storage.tags import PARTITION_NAME_TAG

from centra_pipeline.defs.keys import OWNERS, SNAPSHOT_KEY
from centra_pipeline.defs.resources import StorageResource
from centra_pipeline.defs.sensors import UNFINISHED

ALL_STORES_KEY = dg.AssetKey(["analyst", "all_stores_duckdb"])
ALL_STORES_JOB_NAME = "centra_all_stores"
ALL_STORES_SENSOR_NAME = "centra_all_stores_sensor"
ALL_STORES_MIN_INTERVAL = 30
ALL_STORES_MAX_WAIT = 600


@dg.asset(
    key=ALL_STORES_KEY,
    deps=[SNAPSHOT_KEY],
    group_name="analyst",
    kinds={"duckdb"},
    owners=OWNERS,
    description=(
        "`$CENTRA_DATA_DIR/all_stores.duckdb`: every store's snapshot tables unioned, with "
        "a `store` column first; swapped in atomically, readable by DuckDB 1.5 and newer. "
        "Republished by centra_all_stores_sensor after store snapshots change."
    ),
)
def all_stores_snapshot(
    context: dg.AssetExecutionContext, storage: StorageResource
) -> dg.MaterializeResult:
    from centra_pipeline.storage.all_stores import publish_all_stores
    from centra_pipeline.storage.backends import fetch_snapshot, publish_union

    stores = storage.stores()
    snapshots = {name: fetch_snapshot(s) for name, s in stores.settings.items()}
    info = publish_all_stores(snapshots, stores.all_stores_path)
    url = publish_union(stores.storage_url, stores.all_stores_path)
    missing = info.get("missing") or {}
    if missing:
        context.log.warning(
            "not yet in all_stores (no snapshot or table yet): %s",
            ", ".join(f"{store}: {', '.join(tables)}" for store, tables in missing.items()),
        )
    rows = info.get("rows", {})
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(info["path"])),
            **({"url": dg.MetadataValue.url(url)} if url else {}),
            "bytes": info["bytes"],
            "seconds": info["seconds"],
            "stores": info["stores"],
            "dagster/row_count": sum(rows.values()),
            **{f"rows/{table}": count for table, count in rows.items()},
            "stores_missing_tables": len(missing),
        }
    )


all_stores_job = dg.define_asset_job(
    ALL_STORES_JOB_NAME,
    selection=[ALL_STORES_KEY],
    description="Publish all_stores.duckdb from every store's snapshot.",
    executor_def=dg.in_process_executor,
)


def build_all_stores_sensor(default_status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.sensor(
        name=ALL_STORES_SENSOR_NAME,
        job=all_stores_job,
        minimum_interval_seconds=ALL_STORES_MIN_INTERVAL,
        default_status=default_status,
        description="Republishes all_stores.duckdb when any store's snapshot has been "
        "published since and no store run is unfinished (or the change has waited "
        f"{ALL_STORES_MAX_WAIT} s), one publish at a time.",
    )
    def centra_all_stores_sensor(context: dg.SensorEvaluationContext):
        records = context.instance.fetch_materializations(SNAPSHOT_KEY, limit=1).records
        if not records:
            return dg.SkipReason("no store snapshot published yet")
        latest = records[0]
        cursor = json.loads(context.cursor) if context.cursor else {}
        if latest.storage_id <= cursor.get("snapshot_event", 0):
            return dg.SkipReason("all_stores is up to date with every store snapshot")
        busy = context.instance.get_runs(
            filters=dg.RunsFilter(job_name=ALL_STORES_JOB_NAME, statuses=UNFINISHED), limit=1
        )
        if busy:
            return dg.SkipReason(
                f"a publish (run {busy[0].run_id[:8]}) is still unfinished; the next one "
                "covers the snapshots published since"
            )
        now = time.time()
        pending_since = cursor.get("pending_since") or now
        store_runs = [
            run
            for run in context.instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED))
            if PARTITION_NAME_TAG in run.tags
        ]
        if store_runs and now - pending_since < ALL_STORES_MAX_WAIT:
            stores = sorted({run.tags[PARTITION_NAME_TAG] for run in store_runs})
            return dg.SensorResult(
                skip_reason=f"waiting for {len(store_runs)} unfinished store run(s) "
                f"({', '.join(stores[:5])}{', ...' if len(stores) > 5 else ''}) before "
                f"publishing; at the latest in {ALL_STORES_MAX_WAIT - (now - pending_since):.0f} s",
                cursor=json.dumps({**cursor, "pending_since": pending_since}),
            )
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"all-stores-{latest.storage_id}")],
            cursor=json.dumps({"snapshot_event": latest.storage_id, "at": now}),
        )

    return centra_all_stores_sensor
