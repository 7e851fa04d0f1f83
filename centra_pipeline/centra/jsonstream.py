"""Split a Centra response into records *and* each record's exact JSON text.

The lake keeps every record's raw JSON (docs/architecture.md). Re-serialising parsed dicts would
cost as much as parsing and would not be what Centra sent (key order, `\\/` escapes, number
spelling). Instead we walk the top-level object with `JSONDecoder.raw_decode`, which parses
one value at a position in C and returns where it ended: the record's text is the slice.

Two shapes exist:
- Order API envelopes: `{"status":"ok","orders":[{...},{...}],"next":"?limit=..."}`;
- Shop API maps keyed by id: `{"1":{...},"2":{...}}` (and bare arrays such as product ids).
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class MalformedJSON(ValueError):
    """The text is not complete, valid JSON of the expected shape (no body text in the message)."""


class RawRecord(NamedTuple):
    obj: dict[str, Any]
    raw: str


def _skip_ws(text: str, idx: int) -> int:
    return _WS.match(text, idx).end()  # type: ignore[union-attr]


def _decode_at(text: str, idx: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, idx)
    except json.JSONDecodeError as exc:
        raise MalformedJSON(f"invalid JSON at character {exc.pos} of {len(text)}") from None


def _expect(text: str, idx: int, char: str) -> int:
    idx = _skip_ws(text, idx)
    if idx >= len(text):
        raise MalformedJSON(f"JSON ends early at character {idx} (truncated response?)")
    if text[idx] != char:
        raise MalformedJSON(f"expected {char!r} at character {idx} of {len(text)}")
    return idx + 1


def _walk_object(text: str, idx: int, on_member) -> int:
    """Walk the object starting at `idx` ('{'); `on_member(key, value_start) -> value_end`
    consumes each member's value. Returns the index after the closing brace."""
    idx = _skip_ws(text, _expect(text, idx, "{"))
    if idx < len(text) and text[idx] == "}":
        return idx + 1
    while True:
        idx = _skip_ws(text, idx)
        key, idx = _decode_at(text, idx)
        if not isinstance(key, str):
            raise MalformedJSON(f"object key at character {idx} is not a string")
        idx = _skip_ws(text, _expect(text, idx, ":"))
        idx = _skip_ws(text, on_member(key, idx))
        if idx >= len(text):
            raise MalformedJSON("JSON ends inside an object (truncated response?)")
        if text[idx] == "}":
            return idx + 1
        if text[idx] != ",":
            raise MalformedJSON(f"expected ',' or '}}' at character {idx} of {len(text)}")
        idx += 1


def _take_record(text: str, start: int, out: list[RawRecord]) -> int:
    """Decode the object at `start` into `out` with its exact text; returns the end."""
    obj, end = _decode_at(text, start)
    if not isinstance(obj, dict):
        raise MalformedJSON(f"record at character {start} is not an object")
    out.append(RawRecord(obj, text[start:end]))
    return end


def _records_from_array(text: str, idx: int, out: list[RawRecord]) -> int:
    idx = _expect(text, idx, "[")
    idx = _skip_ws(text, idx)
    if idx < len(text) and text[idx] == "]":
        return idx + 1
    while True:
        idx = _skip_ws(text, _take_record(text, _skip_ws(text, idx), out))
        if idx >= len(text):
            raise MalformedJSON("JSON ends inside an array (truncated response?)")
        if text[idx] == "]":
            return idx + 1
        if text[idx] != ",":
            raise MalformedJSON(f"expected ',' or ']' at character {idx} of {len(text)}")
        idx += 1


def _records_from_keyed_object(text: str, idx: int, out: list[RawRecord]) -> int:
    return _walk_object(text, idx, lambda _key, start: _take_record(text, start, out))


def _finish(text: str, idx: int) -> None:
    if _skip_ws(text, idx) != len(text):
        raise MalformedJSON(f"unexpected data after the JSON document at character {idx}")


def parse_envelope(
    text: str, records_key: str, *, single: bool = False
) -> tuple[dict[str, Any], list[RawRecord]]:
    """Parse an Order API envelope into (other top-level members, records).

    Records come from `records_key`, which may hold an array of objects or an object keyed by
    id; with `single`, it holds one record object (`{"status":"ok","customer":{...}}`).
    A missing records key yields no records (the caller checks `status`).
    """
    envelope: dict[str, Any] = {}
    records: list[RawRecord] = []
    start = _skip_ws(text, 0)
    if start >= len(text):
        raise MalformedJSON("empty response body")

    def member(key: str, value_start: int) -> int:
        if key == records_key and value_start < len(text) and text[value_start] in "[{":
            if single:
                return _take_record(text, value_start, records)
            if text[value_start] == "[":
                return _records_from_array(text, value_start, records)
            return _records_from_keyed_object(text, value_start, records)
        value, end = _decode_at(text, value_start)
        envelope[key] = value
        return end

    end = _walk_object(text, start, member)
    _finish(text, end)
    return envelope, records


def parse_keyed_records(text: str) -> list[RawRecord]:
    """Parse a Shop API map `{"<id>": {...}, ...}` (or an empty array `[]`) into records."""
    start = _skip_ws(text, 0)
    if start >= len(text):
        raise MalformedJSON("empty response body")
    records: list[RawRecord] = []
    if text[start] == "[":
        end = _records_from_array(text, start, records)
    else:
        end = _records_from_keyed_object(text, start, records)
    _finish(text, end)
    return records


def parse_document(text: str) -> Any:
    """Parse a whole small JSON document (errors, id lists) with the same error type."""
    start = _skip_ws(text, 0)
    if start >= len(text):
        raise MalformedJSON("empty response body")
    value, end = _decode_at(text, start)
    _finish(text, end)
    return value
