"""The report of a comparison: text for people (the days that differ with both sides'
numbers, Centra vs snapshot, then a one-sentence verdict on the last line), or one JSON
document with the same content. Money prints with exactly the decimals it has beyond cents."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from centra_pipeline.verify.results import (
    DayDifference,
    DayNumbers,
    IdDifference,
    StreamResult,
    VerifyResult,
)
from centra_pipeline.verify.specs import SPECS, StreamSpec


# --- values ----------------------------------------------------------------------------------
def _money(value: Decimal) -> str:
    cents = value.quantize(Decimal("0.01"))
    return f"{cents:,.2f}" if cents == value else f"{value.normalize():,f}"


def _money_json(value: Decimal) -> str:
    return _money(value).replace(",", "")


def _label(value: Any) -> str:
    return "(none)" if value is None else str(value)


def _key(item: tuple[Any, Any]) -> tuple[bool, str]:
    """Sorts a mapping's items by key, the None key first."""
    return (item[0] is not None, str(item[0]))


# --- text ------------------------------------------------------------------------------------
def format_text(result: VerifyResult) -> str:
    """The report: the days that differ with both sides' numbers (Centra vs snapshot), the
    records that differ when there are few, and a one-sentence verdict on the last line."""
    lines = _header(result)
    for name, stream in result.streams.items():
        lines.extend(_stream_lines(SPECS[name], stream))
    if _may_be_newer_than_the_snapshot(result):
        lines.append(
            "Note: records Centra created or changed after the snapshot was published "
            "show as differences until the next sync and publish."
        )
    lines.append(result.verdict)
    return "\n".join(lines)


def _header(result: VerifyResult) -> list[str]:
    published = (
        f" (published {result.snapshot_published_at:%Y-%m-%d %H:%M} UTC)"
        if result.snapshot_published_at
        else ""
    )
    window = f"days since {result.since.isoformat()}" if result.since else "all days"
    return [
        f"Centra: {result.order_api_url}",
        f"snapshot: {result.snapshot_path}{published}",
        f"Compared per store-local day ({result.timezone}), {window}; numbers are Centra vs "
        "snapshot.",
    ]


def _stream_lines(spec: StreamSpec, stream: StreamResult) -> list[str]:
    name = spec.name
    records = f"Centra {stream.centra_records:,} {name}, snapshot {stream.snapshot_records:,}"
    if stream.agree:
        return [f"{name}: {stream.days_compared:,} days compared, all agree ({records})"]
    k = len(stream.differences)
    lines = [
        f"{name}: {stream.days_compared:,} days compared, {k:,} differ{'s' if k == 1 else ''}"
        f" ({records})"
    ]
    for diff in stream.differences:
        lines.append(_day_line(spec, diff))
        lines.extend(_id_line(spec, item) for item in diff.ids or [])
        if diff.note:
            lines.append(f"    {diff.note}")
    return lines


def _may_be_newer_than_the_snapshot(result: VerifyResult) -> bool:
    """Whether a differing day is on or after the store-local day the snapshot was published,
    when a difference may just be a record the snapshot cannot have yet."""
    latest_differing: date | None = None
    for stream in result.streams.values():
        for diff in stream.differences:
            if diff.day and (latest_differing is None or diff.day > latest_differing):
                latest_differing = diff.day
    if not (latest_differing and result.snapshot_published_at):
        return False
    local_publish = result.snapshot_published_at.astimezone(ZoneInfo(result.timezone)).date()
    return latest_differing >= local_publish


def _day_line(spec: StreamSpec, diff: DayDifference) -> str:
    c, s = diff.centra, diff.snapshot
    parts = []
    if c.count != s.count:
        parts.append(f"{spec.name} {c.count:,} vs {s.count:,}")
    for status in sorted(set(c.statuses) | set(s.statuses), key=lambda v: _label(v)):
        a, b = c.statuses.get(status, 0), s.statuses.get(status, 0)
        if a != b:
            parts.append(f"{_label(status)} {a:,} vs {b:,}")
    for currency in sorted(set(c.totals) | set(s.totals), key=lambda v: _label(v)):
        a, b = c.totals.get(currency, Decimal(0)), s.totals.get(currency, Decimal(0))
        if a != b:
            parts.append(f"{_label(currency)} {_money(a)} vs {_money(b)}")
    day = diff.day.isoformat() if diff.day else "(no date)"
    return f"  {day}: {'; '.join(parts)}"


def _id_line(spec: StreamSpec, item: IdDifference) -> str:
    name = f"{spec.singular} {item.id}"
    if item.snapshot is None:
        detail = _describe(item.centra or {})
        return f"    {name}: only in Centra" + (f" ({detail})" if detail else "")
    if item.centra is None:
        detail = _describe(item.snapshot)
        return f"    {name}: only in the snapshot" + (f" ({detail})" if detail else "")
    return f"    {name}: Centra {_describe(item.centra)}, snapshot {_describe(item.snapshot)}"


def _describe(values: dict[str, Any]) -> str:
    if not values:
        return ""
    total = values.get("total")
    return " ".join(
        [
            _label(values.get("status")),
            _label(values.get("currency")),
            "-" if total is None else _money(total),
        ]
    )


# --- JSON ------------------------------------------------------------------------------------
def to_json(result: VerifyResult) -> dict[str, Any]:
    """The report as one JSON-ready document; `status` is agree or drift."""
    return {
        "status": "agree" if result.agree else "drift",
        "verdict": result.verdict,
        "snapshot": str(result.snapshot_path),
        "snapshot_published_at": result.snapshot_published_at.isoformat()
        if result.snapshot_published_at
        else None,
        "order_api_url": result.order_api_url,
        "timezone": result.timezone,
        "since": result.since.isoformat() if result.since else None,
        "seconds": round(result.seconds, 3),
        "totals": {
            "days_compared": result.days_compared,
            "days_differing": result.days_differing,
            "streams_differing": [n for n, s in result.streams.items() if s.differences],
        },
        "streams": {
            name: _stream_json(SPECS[name], stream) for name, stream in result.streams.items()
        },
    }


def _stream_json(spec: StreamSpec, stream: StreamResult) -> dict[str, Any]:
    with_values = bool(spec.values)
    return {
        "days_compared": stream.days_compared,
        "days_differing": len(stream.differences),
        "records": {"centra": stream.centra_records, "snapshot": stream.snapshot_records},
        "differences": [_difference_json(d, with_values) for d in stream.differences],
    }


def _difference_json(diff: DayDifference, with_values: bool) -> dict[str, Any]:
    return {
        "day": diff.day.isoformat() if diff.day else None,
        "centra": _numbers_json(diff.centra, with_values),
        "snapshot": _numbers_json(diff.snapshot, with_values),
        "differing_ids": diff.differing_ids,
        "ids": None if diff.ids is None else [_id_json(i) for i in diff.ids],
        "note": diff.note,
    }


def _numbers_json(numbers: DayNumbers, with_values: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"count": numbers.count}
    if with_values:
        out["statuses"] = {_label(k): v for k, v in sorted(numbers.statuses.items(), key=_key)}
        out["totals"] = {
            _label(k): _money_json(v) for k, v in sorted(numbers.totals.items(), key=_key)
        }
    return out


def _id_json(item: IdDifference) -> dict[str, Any]:
    return {
        "id": item.id,
        "centra": _values_json(item.centra),
        "snapshot": _values_json(item.snapshot),
    }


def _values_json(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: _money_json(v) if isinstance(v, Decimal) else v for k, v in values.items()}
