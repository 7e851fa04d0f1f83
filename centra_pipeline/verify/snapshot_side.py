"""The analyst snapshot's side of the comparison: its present rows (those the pipeline has
not marked `_missing_since`) by store-local day, read over one read-only connection."""

from __future__ import annotations

from datetime import date
from decimal import localcontext
from pathlib import Path
from typing import Any

import duckdb

from centra_pipeline.storage.sql import main_table, quote_ident
from centra_pipeline.verify.results import MONEY_CONTEXT, DayNumbers, DayRecords, VerifyError
from centra_pipeline.verify.specs import StreamSpec


def open_snapshot(path: Path) -> duckdb.DuckDBPyConnection:
    """One read-only connection for the whole check: a publish that swaps the file in the
    meantime does not change what the check sees. No temp directory: nothing spills."""
    try:
        return duckdb.connect(str(path), read_only=True, config={"temp_directory": ""})
    except duckdb.Error as exc:
        raise VerifyError(f"could not open the analyst snapshot {path}: {exc}") from None


def check_snapshot_table(con: duckdb.DuckDBPyConnection, spec: StreamSpec, path: Path) -> None:
    """VerifyError, saying what to run, when the stream's table or a compared column is not
    in the snapshot."""
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ?",
        [spec.table.name],
    ).fetchall()
    present = {r[0] for r in rows}
    needed = {
        spec.id_column.name,
        spec.day_column.name,
        *(column.name for column in spec.value_columns),
        "_missing_since",
    }
    if not present:
        raise VerifyError(
            f"the analyst snapshot {path} has no table {spec.table.name}: run "
            f"`centra-pipeline sync` to publish it, or leave it out with --stream"
        )
    missing = sorted(needed - present)
    if missing:
        raise VerifyError(
            f"the analyst snapshot {path} table {spec.table.name} lacks column(s) "
            f"{', '.join(missing)}: it was published by another version of the pipeline; "
            "run `centra-pipeline sync` to publish a current one"
        )


def _present_rows_sql(spec: StreamSpec) -> str:
    """Present rows with their store-local day (parameter 1: the timezone)."""
    values = "".join(f", {quote_ident(column.name)}" for column in spec.value_columns)
    return (
        f"SELECT {quote_ident(spec.id_column.name)} AS id, "
        f"CAST(timezone(?, {quote_ident(spec.day_column.name)}) AS DATE) AS day{values} "
        f"FROM {main_table(spec.table.name)} WHERE _missing_since IS NULL"
    )


def snapshot_days(
    con: duckdb.DuckDBPyConnection, spec: StreamSpec, tz: str, since: date | None
) -> dict[date | None, DayNumbers]:
    """The present rows' numbers per store-local day, for days on or after `since`."""
    where = "WHERE day >= ?::DATE" if since else ""
    params: list[Any] = [tz] + ([since] if since else [])
    if spec.values:
        return _day_numbers_with_values(con, spec, where, params)
    return _day_counts(con, spec, where, params)


def _day_numbers_with_values(
    con: duckdb.DuckDBPyConnection, spec: StreamSpec, where: str, params: list[Any]
) -> dict[date | None, DayNumbers]:
    """Orders: counted per status and summed per currency, grouped in DuckDB."""
    days: dict[date | None, DayNumbers] = {}
    status, currency, total = (quote_ident(column.name) for column in spec.value_columns)
    sql = (
        f"SELECT day, {status}, {currency}, count(*), coalesce(sum({total}), 0) "
        f"FROM ({_present_rows_sql(spec)}) {where} GROUP BY ALL"
    )
    with localcontext(MONEY_CONTEXT):
        for day, status_v, currency_v, n, amount in con.execute(sql, params).fetchall():
            days.setdefault(day, DayNumbers()).add((status_v, currency_v, amount), n)
    return days


def _day_counts(
    con: duckdb.DuckDBPyConnection, spec: StreamSpec, where: str, params: list[Any]
) -> dict[date | None, DayNumbers]:
    days: dict[date | None, DayNumbers] = {}
    sql = f"SELECT day, count(*) FROM ({_present_rows_sql(spec)}) {where} GROUP BY ALL"
    for day, n in con.execute(sql, params).fetchall():
        days.setdefault(day, DayNumbers()).add((), n)
    return days


def snapshot_records(
    con: duckdb.DuckDBPyConnection, spec: StreamSpec, tz: str, days: set[date]
) -> DayRecords:
    """The present rows of `days`: day → id → compared values."""
    found: DayRecords = {day: {} for day in days}
    sql = f"SELECT * FROM ({_present_rows_sql(spec)}) WHERE list_contains(?::DATE[], day)"
    for record_id, day, *values in con.execute(sql, [tz, sorted(days)]).fetchall():
        found[day][record_id] = tuple(values)
    return found
