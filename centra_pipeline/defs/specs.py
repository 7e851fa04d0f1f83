"""The asset specs: what the UI shows of each asset before anything runs (descriptions,
groups, kinds, owners, lineage, column schemas and freshness)."""

import dagster as dg

from centra_pipeline.defs.keys import (
    API_LABELS,
    GROUPS,
    OWNERS,
    lake_key,
    source_key,
    table_key,
)
from centra_pipeline.streams import STREAMS, TABLES, Stream, Table
from centra_pipeline.streams.model import META_DESCRIPTIONS, META_TYPES, warehouse_meta


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


def stream_specs(stream: Stream, freshness: dg.FreshnessPolicy | None) -> list[dg.AssetSpec]:
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
    stream: Stream, table: Table, group: str, freshness: dg.FreshnessPolicy | None
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
