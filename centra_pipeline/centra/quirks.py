"""Centra's value quirks, parsed once, here (scalar helpers and vectorised column converters).

What Centra sends (its Order API reference, and what clients in the wild report):
- ids as strings in orders and customers (`"83651"`) but ints in returns (`20059`);
- money as JSON numbers (`3978.75`) or as strings (`"329.00"`), sometimes with a
  currency suffix in display fields (`"-150.00 USD"`, which we keep as text);
- flags as `0`/`1`, booleans as `true`/`false`, sometimes as `"0"`/`"1"`;
- timestamps as naive `"YYYY-MM-DD HH:MM:SS"` in the store's timezone (CENTRA_TIMEZONE),
  `"0000-00-00 00:00:00"` meaning "no date", and webhook dates with microseconds;
- `\\/` escapes (handled by the JSON parser).

Known quirks convert silently. Anything else that does not fit the column's type either
raises `TypeDrift` (a value we cannot convert without guessing: never a silent wrong value)
or is converted and *counted* as a coercion (lossless-but-unexpected, like a number in a text
column, or money with more decimals than the column keeps, which is rounded) so the load
can record it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

ZERO_DATES = frozenset({"0000-00-00 00:00:00", "0000-00-00", ""})
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class TypeDrift(ValueError):
    """A value does not fit its column and cannot be converted without guessing."""

    def __init__(self, column: str, value: Any, expected: str, record_key: Any = None) -> None:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        where = f" in record {record_key}" if record_key is not None else ""
        super().__init__(
            f"column {column}: expected {expected}, got {shown} ({type(value).__name__}){where}"
        )
        self.column = column
        self.value = value
        self.expected = expected
        self.record_key = record_key


@dataclass
class Coercions:
    """Per-column counts of unexpected-but-lossless (or rounded) conversions, with a sample."""

    counts: dict[str, int] = field(default_factory=dict)
    samples: dict[str, str] = field(default_factory=dict)

    def add(self, column: str, n: int, sample: str) -> None:
        if n:
            self.counts[column] = self.counts.get(column, 0) + n
            self.samples.setdefault(column, sample)

    def merge(self, other: Coercions) -> None:
        for column, n in other.counts.items():
            self.add(column, n, other.samples.get(column, ""))


# --- scalar helpers (cursors, query parameters, webhook dates) ----------------------------
def parse_local_datetime(value: Any, tz: str | ZoneInfo) -> datetime | None:
    """A Centra naive local timestamp as an aware UTC datetime; None for "no date".

    Ambiguous wall times (the autumn DST hour) resolve to the first occurrence, like the
    vectorised converter below, so cursors and table values agree.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeDrift("timestamp", value, "a 'YYYY-MM-DD HH:MM:SS' string")
    text = value.strip()
    if text in ZERO_DATES:
        return None
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    for fmt in (DATETIME_FORMAT + ".%f", DATETIME_FORMAT, "%Y-%m-%d"):
        try:
            naive = datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    else:
        raise TypeDrift("timestamp", value, "a 'YYYY-MM-DD HH:MM:SS' string")
    moment = naive.replace(tzinfo=zone, fold=0)
    if moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        # The spring DST gap: this wall time does not exist. Take the next valid instant,
        # as column_timestamp does (zoneinfo alone would shift it by the gap's length).
        return column_timestamp("timestamp", [text], Coercions(), zone.key)[0].as_py()
    return moment.astimezone(UTC)


def format_local_datetime(moment: datetime, tz: str | ZoneInfo) -> str:
    """An aware datetime as Centra's naive local `YYYY-MM-DD HH:MM:SS` (for query params)."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    if moment.tzinfo is None:
        raise ValueError("format_local_datetime needs an aware datetime")
    return moment.astimezone(zone).strftime(DATETIME_FORMAT)


def shift_local(text: str, delta: timedelta) -> str:
    """Shift a naive local timestamp string by `delta` in wall-clock terms (for overlaps)."""
    return (datetime.strptime(text, DATETIME_FORMAT) + delta).strftime(DATETIME_FORMAT)


def normalize_local(text: str) -> str:
    """Accept `YYYY-MM-DD` or `YYYY-MM-DD HH:MM:SS`, return the latter; ValueError otherwise."""
    text = text.strip()
    for fmt in (DATETIME_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).strftime(DATETIME_FORMAT)
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or datetime (YYYY-MM-DD HH:MM:SS)")


def to_int(value: Any) -> int | None:
    """Centra ids: `"83651"`, `83651`, `""`/None (no id)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeDrift("id", value, "an integer id")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise TypeDrift("id", value, "an integer id") from None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise TypeDrift("id", value, "an integer id")


def to_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeDrift("number", value, "a number")
    if isinstance(value, int | float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            raise TypeDrift("number", value, "a number") from None
    raise TypeDrift("number", value, "a number")


# --- vectorised converters ------------------------------------------------------------------
def _drift(column: str, values: list[Any], index: int, expected: str, keys) -> TypeDrift:
    key = keys[index] if keys is not None and index < len(keys) else None
    return TypeDrift(column, values[index], expected, key)


def column_int(column: str, values: list[Any], coercions: Coercions, keys=None) -> pa.Array:
    try:
        return pa.array(values, type=pa.int64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        pass
    try:  # ids as strings ("83651"), the Order API's usual form; "" means none
        trimmed = pc.utf8_trim_whitespace(pa.array(values, type=pa.string()))
        trimmed = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
        return pc.cast(trimmed, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        pass
    out: list[int | None] = []
    coerced = 0
    for i, v in enumerate(values):
        if v is None or v == "":
            out.append(None)
        elif isinstance(v, bool):
            raise _drift(column, values, i, "an integer", keys)
        elif isinstance(v, int):
            out.append(v)
        elif isinstance(v, str):
            try:
                out.append(int(v.strip()))
            except ValueError:
                raise _drift(column, values, i, "an integer", keys) from None
        elif isinstance(v, float) and v.is_integer():
            out.append(int(v))
            coerced += 1
        else:
            raise _drift(column, values, i, "an integer", keys)
    coercions.add(column, coerced, "float with an integral value")
    return pa.array(out, type=pa.int64())


def column_float(column: str, values: list[Any], coercions: Coercions, keys=None) -> pa.Array:
    try:
        return pa.array(values, type=pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        pass
    out: list[float | None] = []
    for i, v in enumerate(values):
        if v is None or v == "":
            out.append(None)
        elif isinstance(v, bool):
            raise _drift(column, values, i, "a number", keys)
        elif isinstance(v, int | float):
            out.append(float(v))
        elif isinstance(v, str):
            try:
                out.append(float(v.strip()))
            except ValueError:
                raise _drift(column, values, i, "a number", keys) from None
        else:
            raise _drift(column, values, i, "a number", keys)
    return pa.array(out, type=pa.float64())


def column_decimal(
    column: str, values: list[Any], coercions: Coercions, precision: int, scale: int, keys=None
) -> pa.Array:
    """Money and rates as DECIMAL(precision, scale).

    Numbers arrive as JSON numbers (`329.1`, parsed as the nearest float64) or strings
    (`"329.10"`). Both go through float64, which holds every value Centra prints with <= 15
    significant digits as the float nearest to it, and Arrow rounds that float to `scale`
    decimals, so `329.1` and `"329.10"` give the same DECIMAL 329.1000, never 329.0999...
    A value that changes under that rounding is counted as a coercion, never passed silently.
    "Changes" allows for float64's own precision: the decimal read back as a float may be one
    unit in the last place off, which from about 500,000 up exceeds 10^-(scale+6) (e.g. at
    1234567.89) without any digit having been dropped.
    """
    floats = column_float(column, values, coercions, keys)
    dec_type = pa.decimal128(precision, scale)
    # An unsafe cast does not check overflow (it yields garbage such as 0.00): check first.
    too_big = pc.greater_equal(pc.abs(floats), float(10 ** (precision - scale)))
    if pc.any(too_big).as_py():
        bad = pc.index(too_big, True).as_py()
        raise _drift(column, values, bad, f"a number below 10^{precision - scale}", keys)
    try:
        decimals = pc.cast(floats, dec_type, safe=False)
    except pa.ArrowInvalid:
        bad = next(
            i
            for i, v in enumerate(floats.to_pylist())
            if v is not None and abs(v) >= 10 ** (precision - scale)
        )
        raise _drift(column, values, bad, f"a number below 10^{precision - scale}", keys) from None
    back = pc.cast(decimals, pa.float64())
    # 2^-50 of the value is 4 units in the last place of a float64: above float noise, far
    # below a dropped decimal (>= 10^-(scale+1) for a value with one decimal too many).
    tolerance = pc.max_element_wise(pc.multiply(pc.abs(floats), 2.0**-50), 0.5 * 10 ** -(scale + 6))
    changed = pc.and_kleene(
        pc.is_valid(floats), pc.greater(pc.abs(pc.subtract(floats, back)), tolerance)
    )
    n_changed = pc.sum(changed).as_py() or 0
    if n_changed:
        idx = pc.index(changed, True).as_py()
        coercions.add(column, n_changed, f"{values[idx]!r} rounded to {scale} decimals")
    return decimals


_TRUE = frozenset({1, "1", "true", "True", "yes"})
_FALSE = frozenset({0, "0", "false", "False", "no", ""})


def column_bool(column: str, values: list[Any], coercions: Coercions, keys=None) -> pa.Array:
    try:
        return pa.array(values, type=pa.bool_())  # true/false, 0/1 ints
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        pass
    out: list[bool | None] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
        elif isinstance(v, bool):
            out.append(v)
        elif isinstance(v, int | str) and v in _TRUE:
            out.append(True)
        elif isinstance(v, int | str) and v in _FALSE:
            out.append(False)
        else:
            raise _drift(column, values, i, "a boolean (true/false or 0/1)", keys)
    return pa.array(out, type=pa.bool_())


def column_str(column: str, values: list[Any], coercions: Coercions, keys=None) -> pa.Array:
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        pass
    out: list[str | None] = []
    coerced = 0
    sample = ""
    for i, v in enumerate(values):
        if v is None or isinstance(v, str):
            out.append(v)
        elif isinstance(v, bool | int | float):
            # ids and codes sometimes arrive as numbers: lossless as text, but recorded.
            text = json.dumps(v)
            out.append(text)
            coerced += 1
            sample = sample or f"{v!r} ({type(v).__name__})"
        else:
            raise _drift(column, values, i, "text", keys)
    coercions.add(column, coerced, sample)
    return pa.array(out, type=pa.string())


_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def column_json(column: str, values: list[Any], coercions: Coercions, keys=None) -> pa.Array:
    return pa.array(
        [None if v is None else _encode_json(v) for v in values],
        type=pa.string(),
    )


def column_timestamp(
    column: str, values: list[Any], coercions: Coercions, tz: str, keys=None
) -> pa.Array:
    """Naive store-local timestamps → UTC instants (Arrow timestamp[us, UTC]).

    Ambiguous wall times (autumn DST) take the first occurrence; times that do not exist
    (spring DST gap) take the next valid instant. "0000-00-00 00:00:00" and "" are null.
    """
    try:
        strings = pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        bad = next(i for i, v in enumerate(values) if v is not None and not isinstance(v, str))
        raise _drift(column, values, bad, "a 'YYYY-MM-DD HH:MM:SS' timestamp", keys) from None
    is_zero = pc.is_in(strings, value_set=pa.array(sorted(ZERO_DATES)))
    strings = pc.if_else(is_zero, pa.scalar(None, pa.string()), strings)
    # Normalise the three spellings Centra uses to one: date only, seconds, microseconds.
    lengths = pc.utf8_length(strings)
    date_only = pc.equal(lengths, 10)
    strings = pc.if_else(date_only, pc.binary_join_element_wise(strings, " 00:00:00", ""), strings)
    has_fraction = pc.greater(pc.utf8_length(strings), 19)
    seconds = pc.if_else(has_fraction, pc.utf8_slice_codeunits(strings, 0, 19), strings)
    try:
        parsed = pc.strptime(seconds, format=DATETIME_FORMAT, unit="us", error_is_null=False)
    except pa.ArrowInvalid:
        checked = pc.strptime(seconds, format=DATETIME_FORMAT, unit="us", error_is_null=True)
        bad_mask = pc.and_(pc.is_valid(seconds), pc.is_null(checked))
        raise _drift(
            column,
            values,
            pc.index(bad_mask, True).as_py(),
            "a 'YYYY-MM-DD HH:MM:SS' timestamp",
            keys,
        ) from None
    # strptime rolls impossible days over ("2026-04-31" -> May 1st): the day then differs.
    rolled = pc.not_equal(
        pc.day(parsed), pc.cast(pc.utf8_slice_codeunits(seconds, 8, 10), pa.int64())
    )
    if pc.any(rolled).as_py():
        raise _drift(
            column,
            values,
            pc.index(rolled, True).as_py(),
            "a 'YYYY-MM-DD HH:MM:SS' timestamp",
            keys,
        )
    if pc.any(has_fraction).as_py():
        micros = pc.utf8_slice_codeunits(
            pc.if_else(has_fraction, strings, "0000000000000000000.0"), 20, 26
        )
        micros = pc.utf8_rpad(micros, width=6, padding="0")
        offset = pc.cast(pc.cast(micros, pa.int64()), pa.duration("us"))
        parsed = pc.if_else(has_fraction, pc.add(parsed, offset), parsed)
    local = pc.assume_timezone(parsed, timezone=tz, ambiguous="earliest", nonexistent="latest")
    return pc.cast(local, pa.timestamp("us", tz="UTC"))
