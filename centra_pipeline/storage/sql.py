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
