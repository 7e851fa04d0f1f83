"""SQL text the storage layer builds: identifiers are quoted here, values are always bound
parameters."""

from __future__ import annotations

from typing import Any


def quote_ident(name: str) -> str:
    """`name` as a DuckDB identifier, quoted (column names come from the schema, where some
    are SQL keywords such as `date` or `order`)."""
    return '"' + name.replace('"', '""') + '"'


def main_table(name: str) -> str:
    """A table of the analyst-facing schema `main`, quoted."""
    return f"main.{quote_ident(name)}"


def ident_list(names: list[str], prefix: str = "") -> str:
    """Comma-separated quoted identifiers, each optionally qualified (`c."order_id"`)."""
    return ", ".join(prefix + quote_ident(n) for n in names)


def string_list(values: list[Any]) -> str:
    """A DuckDB list literal of strings, `['a', 'b']`, for values the schema defines (status
    names), never for values read from Centra."""
    return "[" + ", ".join(string_literal(v) for v in values) + "]"


def string_literal(value: Any) -> str:
    """A DuckDB string literal for a value the pipeline made (a load id, a path)."""
    return "'" + str(value).replace("'", "''") + "'"


def parquet_scan(con: Any, name: str, files: list[str], filesystem: Any = None) -> str:
    """SQL reading these Parquet files: DuckDB's `read_parquet` for local files; for files on
    object storage (a pyarrow `filesystem`), a pyarrow dataset registered as `name`, which
    DuckDB scans with projection and filter pushdown (DuckDB's own S3 reader is an extension
    that is not installed everywhere). The caller unregisters `name` when done."""
    if filesystem is None:
        return f"read_parquet({string_list(files)})"
    import pyarrow.dataset as ds

    con.register(name, ds.dataset(files, filesystem=filesystem, format="parquet"))
    return quote_ident(name)
