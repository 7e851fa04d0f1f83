"""The receiver's checks on one webhook request, cheapest first, each raising `Rejected`.

The order matters: nothing reads the body before the headers have passed, so a client
without the signature header, or with an oversized body, costs no more than its headers.
The statuses each check answers are listed in the receiver's module docstring and in
docs/webhooks.md.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request

from centra_pipeline.centra.webhook import (
    SIGNATURE_HEADER,
    PayloadError,
    SignatureError,
    WebhookEvent,
    decode_payload,
    parse_events,
    parse_signature_header,
    verify_signature,
)
from centra_pipeline.webhooks.inbox import Delivery

DEFAULT_MAX_BODY_BYTES = 1_048_576  # 100 events with `data` fit many times over
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_ALLOWED_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii"})


class Rejected(Exception):
    """A request the receiver answers with an error, storing nothing."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail
        # None while the body is unread: the client may still be sending it.
        self.body_size: int | None = None


def _unsupported_media_type(detail: str) -> Rejected:
    return Rejected(415, "unsupported_media_type", detail)


def check_content_type(value: str | None) -> None:
    if not value:
        raise _unsupported_media_type(f"Content-Type must be {FORM_CONTENT_TYPE}")
    media_type, *params = (part.strip() for part in value.split(";"))
    if media_type.lower() != FORM_CONTENT_TYPE:
        raise _unsupported_media_type(
            f"Content-Type must be {FORM_CONTENT_TYPE} (Centra's webhook format), "
            f"not {media_type[:80]!r}"
        )
    for param in params:
        name, _, param_value = param.partition("=")
        name, param_value = name.strip().lower(), param_value.strip().strip('"').lower()
        if not name:
            continue
        if name != "charset":
            raise _unsupported_media_type(f"Content-Type parameter {name[:40]!r} not allowed")
        if param_value not in _ALLOWED_CHARSETS:
            raise _unsupported_media_type(f"charset {param_value[:40]!r} is not UTF-8")


def check_declared_length(value: str | None, limit: int) -> None:
    if value is None:
        return  # chunked: counted while streaming
    if not value.isdigit():
        raise Rejected(400, "bad_content_length", "Content-Length is not a number")
    if int(value) > limit:
        raise Rejected(
            413, "body_too_large", f"body of {int(value)} bytes is over the {limit}-byte limit"
        )


def _signature_rejected(exc: SignatureError) -> Rejected:
    return Rejected(401, f"signature_{exc.reason}", str(exc))


def check_signature_header(header: str | None) -> None:
    """Only the header's form: a request without a usable one is turned away unread."""
    try:
        parse_signature_header(header)
    except SignatureError as exc:
        raise _signature_rejected(exc) from None


async def read_body(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Rejected(413, "body_too_large", f"body is over the {limit}-byte limit")
    return bytes(body)


def verify(secret: str, body: bytes, header: str | None, tolerance: float | None) -> int:
    """The HMAC and the replay window; the signed timestamp."""
    try:
        return verify_signature(secret, body, header, tolerance_seconds=tolerance)
    except SignatureError as exc:
        raise _signature_rejected(exc) from None


def parse(body: bytes) -> list[WebhookEvent]:
    try:
        return parse_events(decode_payload(body))
    except PayloadError as exc:
        raise Rejected(400, "bad_payload", str(exc)) from None


class DeliveryValidator:
    """Runs every check on a request and turns one that passes into a Delivery to store."""

    def __init__(self, secret: str, *, tolerance_seconds: float | None, max_body_bytes: int):
        self._secret = secret
        self._tolerance = tolerance_seconds
        self._max_body = max_body_bytes

    async def validate(self, request: Request) -> Delivery:
        headers = request.headers
        check_content_type(headers.get("content-type"))
        check_declared_length(headers.get("content-length"), self._max_body)
        signature = headers.get(SIGNATURE_HEADER)
        check_signature_header(signature)
        body = await read_body(request, self._max_body)
        try:
            signed_at = verify(self._secret, body, signature, self._tolerance)
            events = parse(body)
        except Rejected as exc:
            exc.body_size = len(body)
            raise
        return Delivery(hashlib.sha256(body).hexdigest(), signed_at, events)
