"""Compare warehouse tables with the emulator's current truth.

The truth side takes the records the emulator would serve right now (its store accessors,
no HTTP), flattens them with the same schema, and compares every table's business columns
(all but the load metadata) row for row, in both directions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from centra_pipeline.centra.jsonstream import RawRecord
from centra_pipeline.emulator import Emulator
from centra_pipeline.streams import STREAMS, TABLES
from centra_pipeline.streams.rows import flatten

TRUTH_SOURCES = {
    "orders": lambda store: store.iter_orders(),
    "returns": lambda store: store.iter_returns(),
    "customers": lambda store: store.iter_customers(),
    "products": lambda store: store.iter_product_rows(),
    "stock": lambda store: store.iter_stock_rows(),
    "catalogue": lambda store: store.iter_shop_products(),
}


def truth_tables(emu: Emulator, tz: str, streams: list[str] | None = None) -> dict[str, pa.Table]:
    out: dict[str, pa.Table] = {}
    for name in streams or list(STREAMS):
        records = [RawRecord(obj, json.dumps(obj)) for obj in TRUTH_SOURCES[name](emu.store)]
        batch = flatten(
            STREAMS[name],
            records,
            load_id="truth",
            extracted_at=datetime.now(UTC),
            seq_start=0,
            tz=tz,
        )
        for table_name, table in batch.tables.items():
            out[table_name] = table.select(TABLES[table_name].column_names)
    return out


def table_differences(
    con: duckdb.DuckDBPyConnection, truth: dict[str, pa.Table], *, present_only: bool = True
) -> dict[str, dict[str, Any]]:
    """Per table: rows only in the warehouse / only in the truth (empty dict: all equal).

    With `present_only`, rows the pipeline marked `_missing_since` (no longer returned by
    Centra) are left out of the warehouse side, as an analyst filtering them would.
    """
    problems: dict[str, dict[str, Any]] = {}
    for name, expected in truth.items():
        table = TABLES[name]
        cols = ", ".join(f'"{c}"' for c in table.column_names)
        con.register("expected_rows", expected)
        where = ""
        if present_only and table.parent is None:
            where = "WHERE _missing_since IS NULL"
        elif present_only:
            parent = TABLES[table.parent]
            keys = ", ".join(f'"{k}"' for k in table.parent_key)
            pkeys = ", ".join(f'"{k}"' for k in parent.primary_key)
            where = (
                f'WHERE ({keys}) IN (SELECT {pkeys} FROM main."{parent.name}" '
                "WHERE _missing_since IS NULL)"
            )
        actual = f'SELECT {cols} FROM main."{name}" {where}'
        extra = con.execute(
            f"SELECT count(*) FROM ({actual} EXCEPT ALL SELECT {cols} FROM expected_rows)"
        ).fetchall()[0][0]
        missing = con.execute(
            f"SELECT count(*) FROM (SELECT {cols} FROM expected_rows EXCEPT ALL {actual})"
        ).fetchall()[0][0]
        con.unregister("expected_rows")
        if extra or missing:
            problems[name] = {
                "only_in_warehouse": extra,
                "only_in_truth": missing,
                "truth_rows": expected.num_rows,
            }
    return problems
