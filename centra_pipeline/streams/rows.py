"""Records → typed Arrow tables, one per schema table, with load metadata.

A page of Centra records becomes one Arrow table per table of its stream (parent and
children), typed by the stream schemas (`streams/model.py`) through the converters in
`centra/quirks.py`. Alongside it:
- `_raw` (parent rows): the record's JSON exactly as Centra sent it, so the lake is the record;
- `_hash`: a hash of that text, to tell changed records from unchanged ones;
- `_extra`: the fields no column maps, per row (custom attributes, new Centra fields);
- `_seq`: the record's position in the load, which child rows share with their parent row,
  so a record that appears twice in one load (offset paging over a changing result set)
  is de-duplicated together with its children.
Unmapped fields are also reported as schema drift; values that do not fit their column raise
`TypeDrift` with the table, column and record (never a silent wrong value).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

import pyarrow as pa

from centra_pipeline.centra import quirks
from centra_pipeline.centra.jsonstream import RawRecord
from centra_pipeline.centra.quirks import Coercions, TypeDrift
from centra_pipeline.streams.model import (
    BIGINT,
    BOOL,
    DOUBLE,
    JSON,
    META_LAKE_CHILD,
    META_LAKE_PARENT,
    TEXT,
    TS,
    Column,
    Stream,
    Table,
)


class MissingKey(ValueError):
    """A record lacks its primary key, so it cannot be merged."""


def arrow_type(sql_type: str) -> pa.DataType:
    if sql_type == BIGINT:
        return pa.int64()
    if sql_type in (TEXT, JSON):
        return pa.string()
    if sql_type == TS:
        return pa.timestamp("us", tz="UTC")
    if sql_type == BOOL:
        return pa.bool_()
    if sql_type == DOUBLE:
        return pa.float64()
    if sql_type.startswith("DECIMAL("):
        precision, scale = (int(x) for x in sql_type[8:-1].split(","))
        return pa.decimal128(precision, scale)
    raise ValueError(f"no Arrow type for {sql_type}")


def lake_schema(table: Table) -> pa.Schema:
    fields = [pa.field(col.name, arrow_type(col.type)) for col in table.columns]
    meta = META_LAKE_PARENT if table.is_parent else META_LAKE_CHILD
    fields += [pa.field(name, _LAKE_META_TYPES[name]) for name in meta]
    return pa.schema(fields)


_LAKE_META_TYPES = {
    "_load_id": pa.string(),
    "_extracted_at": pa.timestamp("us", tz="UTC"),
    "_seq": pa.int64(),
    "_hash": pa.string(),
    "_extra": pa.string(),
    "_raw": pa.string(),
}


@dataclass
class Drift:
    """Fields seen that no column maps: `table.field` → count and the JSON types seen."""

    fields: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, table: str, name: str, value: Any) -> None:
        entry = self.fields.setdefault(f"{table}.{name}", {"count": 0, "types": []})
        entry["count"] += 1
        kind = type(value).__name__
        if kind not in entry["types"]:
            entry["types"].append(kind)

    def merge(self, other: Drift) -> None:
        for key, entry in other.fields.items():
            mine = self.fields.setdefault(key, {"count": 0, "types": []})
            mine["count"] += entry["count"]
            for kind in entry["types"]:
                if kind not in mine["types"]:
                    mine["types"].append(kind)


@dataclass
class Batch:
    tables: dict[str, pa.Table]
    records: int
    drift: Drift
    coercions: Coercions


def record_hash(raw: str) -> str:
    return hashlib.blake2b(raw.encode("utf-8"), digest_size=12).hexdigest()


def _convert(
    column: Column,
    values: list[Any],
    tz: str,
    coercions: Coercions,
    keys: Sequence[Any] | None,
    table: str,
) -> pa.Array:
    name = f"{table}.{column.name}"
    if column.transform is not None:
        values = [column.transform(v) for v in values]
    t = column.type
    if t == BIGINT:
        return quirks.column_int(name, values, coercions, keys)
    if t == TEXT:
        return quirks.column_str(name, values, coercions, keys)
    if t == JSON:
        return quirks.column_json(name, values, coercions, keys)
    if t == TS:
        return quirks.column_timestamp(name, values, coercions, tz, keys)
    if t == BOOL:
        return quirks.column_bool(name, values, coercions, keys)
    if t == DOUBLE:
        return quirks.column_float(name, values, coercions, keys)
    if t.startswith("DECIMAL("):
        precision, scale = (int(x) for x in t[8:-1].split(","))
        return quirks.column_decimal(name, values, coercions, precision, scale, keys)
    raise ValueError(f"unsupported type {t}")


def _column_values(
    rows: list[dict[str, Any]], injected: list[dict[str, Any]] | None, sources: list[str | None]
) -> list[list[Any]]:
    """Transpose rows into one value list per source (None where a row lacks the key).

    This is the hot loop of a load: one C-level itemgetter call per row for the keys every
    row has; dict.get loops only for keys some rows lack (optional fields) and for nested
    `a.b` paths; `@`-sources come from the injected context of child rows.
    """
    n = len(rows)
    if not n:
        return [[] for _ in sources]
    plain = [s for s in sources if s and not s.startswith("@") and "." not in s]
    seen_lengths = {len(row) for row in rows}
    common = set(plain)
    if len(seen_lengths) > 1 or not common.issubset(rows[0].keys()):
        for row in rows:
            if not common.issubset(row.keys()):
                common &= row.keys()
    present = [s for s in plain if s in common]
    out: dict[str, list[Any]] = {}
    if len(present) == 1:
        out[present[0]] = [row[present[0]] for row in rows]
    elif present:
        getter = itemgetter(*present)
        for name, column in zip(present, zip(*map(getter, rows)), strict=True):  # noqa: B905
            out[name] = list(column)
    for name in sources:
        if name is None or name in out:
            continue
        if name.startswith("@"):
            assert injected is not None, f"{name} needs a child row's context"
            out[name] = [ctx.get(name) for ctx in injected]
        elif "." in name:
            head, tail = name.split(".", 1)
            out[name] = [
                (row.get(head) or {}).get(tail) if isinstance(row.get(head), dict) else None
                for row in rows
            ]
        else:
            out[name] = [row.get(name) for row in rows]
    return [out[s] if s is not None else [None] * n for s in sources]


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _extras(table: Table, rows: list[dict[str, Any]], drift: Drift) -> list[str | None]:
    """Per row, the fields no column maps, as JSON (None when there are none)."""
    seen: set[str] = set()
    for row in rows:
        seen.update(row.keys())
    unknown = seen - table.known_keys()
    nested = {head: tails for head, tails in table.known_nested_keys().items() if head in seen}
    if not unknown and not nested:
        return [None] * len(rows)
    out: list[str | None] = []
    for row in rows:
        extra = {k: row[k] for k in unknown if k in row}
        for head, tails in nested.items():
            inner = row.get(head)
            if isinstance(inner, dict) and not tails.issuperset(inner.keys()):
                for key in inner.keys() - tails:
                    extra[f"{head}.{key}"] = inner[key]
        for k, v in extra.items():
            drift.add(table.name, k, v)
        out.append(_encode(extra) if extra else None)
    return out


def flatten(
    stream: Stream,
    records: Sequence[RawRecord],
    *,
    load_id: str,
    extracted_at: datetime,
    seq_start: int,
    tz: str,
) -> Batch:
    """Flatten one page (or any list of records fetched at `extracted_at`)."""
    drift = Drift()
    coercions = Coercions()
    n = len(records)
    seqs = list(range(seq_start, seq_start + n))
    objs = [record.obj for record in records]
    tables: dict[str, pa.Table] = {}
    parent = stream.parent
    pk_source = parent.columns[0].source
    assert pk_source is not None
    parent_keys = [obj.get(pk_source) for obj in objs]
    for i, key in enumerate(parent_keys):
        if key is None or key == "":
            raise MissingKey(
                f"{stream.name}: record {seq_start + i} has no `{pk_source}` "
                f"(primary key of {parent.name}); it cannot be merged"
            )

    for table in stream.tables:
        injected: list[dict[str, Any]] | None = None
        if table.rows is None:
            rows = objs
            row_seqs = seqs
            keys = parent_keys
        else:
            rows, injected, row_seqs, keys = [], [], [], []
            for seq, obj, key in zip(seqs, objs, parent_keys, strict=True):
                for item, context in table.rows(obj):
                    rows.append(item)
                    injected.append(context)
                    row_seqs.append(seq)
                    keys.append(key)
        values = _column_values(rows, injected, [col.source for col in table.columns])
        arrays = [
            _convert(col, column, tz, coercions, keys, table.name)
            for col, column in zip(table.columns, values, strict=True)
        ]
        for col, array in zip(table.columns, arrays, strict=True):
            if col.name in table.primary_key and array.null_count:
                idx = next(i for i, v in enumerate(array.to_pylist()) if v is None)
                raise MissingKey(
                    f"{table.name}: a row of record {keys[idx]} has no {col.name} "
                    f"(`{col.source}`), part of the primary key"
                )
        m = len(rows)
        arrays.append(pa.array([load_id] * m, pa.string()))
        arrays.append(pa.array([extracted_at] * m, pa.timestamp("us", tz="UTC")))
        arrays.append(pa.array(row_seqs, pa.int64()))
        if table.is_parent:
            arrays.append(pa.array([record_hash(r.raw) for r in records], pa.string()))
        arrays.append(pa.array(_extras(table, rows, drift), pa.string()))
        if table.is_parent:
            arrays.append(pa.array([r.raw for r in records], pa.string()))
        tables[table.name] = pa.Table.from_arrays(arrays, schema=lake_schema(table))
    return Batch(tables=tables, records=n, drift=drift, coercions=coercions)


__all__ = ["Batch", "Drift", "MissingKey", "TypeDrift", "arrow_type", "flatten", "lake_schema"]
