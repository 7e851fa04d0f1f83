"""Centra webhook signatures and payloads (Centra Webhook plugin, version "Integration API").

Centra POSTs `Content-Type: application/x-www-form-urlencoded` with exactly one form field,
`payload=<url-encoded JSON>`, and the header

    X-Centra-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

The HMAC covers the raw request bytes *exactly as received*. Never re-encode the decoded
payload to check it: Centra's PHP form encoder writes a space as `+` where
`encodeURIComponent` writes `%20`, and the signatures would differ (docs/webhooks.md).

Documented example (Centra Webhook plugin docs): secret `test123`, t `12345678`, body
`payload=%7B%22x%22%3A%22test%22%7D` gives
`0b9cd84f5d583e5e1aadfb9f160aa8080b51d5b85ff85808d6b75bdac356c549`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

SIGNATURE_HEADER = "X-Centra-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale or does not match."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # "missing" | "malformed" | "stale" | "mismatch"


class PayloadError(ValueError):
    """The form body or its `payload` JSON is not what Centra sends."""


@dataclass(frozen=True)
class WebhookEvent:
    type: str
    action: str
    id: str
    date: str | None
    data: Any = None


def compute_signature(secret: str, timestamp: int | str, raw_body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + raw_body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, raw_body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={compute_signature(secret, t, raw_body)}"


def parse_signature_header(value: str | None) -> tuple[int, list[str]]:
    """Split `t=<unix>,v1=<hex>[,v1=<hex>...]` into the timestamp and the v1 signatures."""
    if value is None or not value.strip():
        raise SignatureError("missing", f"missing {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed", f"malformed {SIGNATURE_HEADER} header")
        if key == "t":
            try:
                timestamp = int(item)
            except ValueError:
                raise SignatureError(
                    "malformed", f"{SIGNATURE_HEADER} timestamp is not an integer"
                ) from None
        elif key == "v1":
            signatures.append(item.strip().lower())
    if timestamp is None or not signatures:
        raise SignatureError("malformed", f"{SIGNATURE_HEADER} needs both t= and v1=")
    return timestamp, signatures


def verify_signature(
    secret: str,
    raw_body: bytes,
    header_value: str | None,
    *,
    tolerance_seconds: float | None = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check the header against the raw body in constant time; return the signed timestamp.

    `tolerance_seconds=None` disables the replay window (used for the documented example,
    whose timestamp is from 1970).
    """
    timestamp, signatures = parse_signature_header(header_value)
    expected = compute_signature(secret, timestamp, raw_body)
    # Compare against every v1 (Centra may rotate secrets); compare_digest is constant time.
    # Compare bytes: compare_digest raises TypeError on non-ASCII str, and the header is
    # attacker-controlled (a latin-1 byte in it must be a mismatch, not a crash).
    expected_bytes = expected.encode("ascii")
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected_bytes, candidate.encode("utf-8", "replace"))
    if not matched:
        raise SignatureError("mismatch", "signature does not match the request body")
    if tolerance_seconds is not None:
        current = time.time() if now is None else now
        if abs(current - timestamp) > tolerance_seconds:
            raise SignatureError(
                "stale",
                f"signature timestamp is {int(current - timestamp)} s away from now "
                f"(tolerance {int(tolerance_seconds)} s)",
            )
    return timestamp


def encode_payload(payload: dict[str, Any], style: Literal["php", "rfc3986"] = "php") -> bytes:
    """Build the form body Centra sends: `payload=` + the form-encoded compact JSON.

    `php` mimics PHP's `http_build_query`/`urlencode` (space as `+`) and PHP's `json_encode`
    (slashes escaped as `\\/`); `rfc3986` encodes a space as `%20`.
    """
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=True)
    if style == "php":
        text = text.replace("/", "\\/")
        encoded = urllib.parse.quote_plus(text, safe="-_.")
    elif style == "rfc3986":
        encoded = urllib.parse.quote(text, safe="-_.~")
    else:  # pragma: no cover - guarded by Literal
        raise ValueError(f"unknown encoding style {style!r}")
    return b"payload=" + encoded.encode("ascii")


def decode_payload(raw_body: bytes) -> dict[str, Any]:
    """Parse the form body into the payload JSON object; PayloadError says what is wrong."""
    try:
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("body is not UTF-8 form data") from None
    try:
        # errors="strict": a percent-encoded byte sequence that is not UTF-8 is an error,
        # not silently replaced with U+FFFD in data we then store as Centra's.
        fields = urllib.parse.parse_qs(
            text, keep_blank_values=True, strict_parsing=True, errors="strict"
        )
    except UnicodeDecodeError:
        raise PayloadError("a percent-encoded value in the body is not UTF-8") from None
    except ValueError:
        raise PayloadError("body is not application/x-www-form-urlencoded") from None
    values = fields.get("payload")
    if not values:
        raise PayloadError("body has no `payload` field")
    if len(values) > 1:
        raise PayloadError("body has more than one `payload` field")
    try:
        payload = json.loads(values[0])
    except ValueError as exc:
        raise PayloadError(f"`payload` is not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise PayloadError("`payload` JSON is nested too deeply") from None
    if not isinstance(payload, dict):
        raise PayloadError("`payload` JSON is not an object")
    return payload


def parse_events(payload: dict[str, Any]) -> list[WebhookEvent]:
    """The Integration-API event list: `{"events":[{"type","action","date","id"[,"data"]}]}`."""
    events = payload.get("events")
    if not isinstance(events, list):
        raise PayloadError(
            "`payload` has no `events` list (is the plugin version 'Integration API'?)"
        )
    parsed: list[WebhookEvent] = []
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise PayloadError(f"event {index} is not an object")
        kind, action, object_id = event.get("type"), event.get("action"), event.get("id")
        if not isinstance(kind, str) or not kind:
            raise PayloadError(f"event {index} has no `type`")
        if not isinstance(action, str) or not action:
            raise PayloadError(f"event {index} has no `action`")
        if isinstance(object_id, bool) or not isinstance(object_id, int | str) or object_id == "":
            raise PayloadError(f"event {index} has no `id`")
        date = event.get("date")
        if date is not None and not isinstance(date, str):
            raise PayloadError(f"event {index} has a non-string `date`")
        parsed.append(WebhookEvent(kind, action, str(object_id), date, event.get("data")))
    return parsed
