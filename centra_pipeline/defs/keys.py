"""Names the Dagster UI shows: asset keys mirror where data lives (`centra/<api>/<stream>`
is the endpoint, `lake/<stream>` the Parquet loads, `warehouse/<table>` the DuckDB tables,
`analyst/centra_duckdb` the snapshot), groups follow the API, and run tags say what they hold.
"""

from __future__ import annotations

import dagster as dg

from centra_pipeline.streams import STREAMS, TABLES, Stream, Table

GROUPS = {"order_api": "centra_order_api", "shop_api": "centra_shop_api"}
API_LABELS = {"order_api": "Order API", "shop_api": "Shop API"}
OWNERS = ["team:data-engineering"]
SNAPSHOT_KEY = dg.AssetKey(["analyst", "centra_duckdb"])

# Run tags. Runs that write the warehouse carry WAREHOUSE_WRITER_TAG; the instance's run queue
# (dagster.yaml) lets one such run in progress at a time.
WAREHOUSE_WRITER_TAG = "centra_pipeline/warehouse_writer"
INBOX_SEQ_TAG = "centra_pipeline/inbox_seq"  # the webhook events a refresh run applies
ORDER_COUNT_TAG = "centra_pipeline/order_count"  # how many orders a refresh run re-reads


def source_key(stream: Stream) -> dg.AssetKey:
    return dg.AssetKey(["centra", stream.api, stream.name])


def lake_key(stream: Stream) -> dg.AssetKey:
    return dg.AssetKey(["lake", stream.name])


def table_key(table: Table) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", table.name])


# The one step that reads and merges every stream (defs/assets.py).
SYNC_STEP = "sync_streams"
# Which stream each lake and table asset belongs to, by asset key path.
STREAM_OF_ASSET: dict[tuple[str, ...], str] = {
    **{tuple(lake_key(s).path): s.name for s in STREAMS.values()},
    **{tuple(table_key(t).path): t.stream for t in TABLES.values()},
}
