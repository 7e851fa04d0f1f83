"""Receive Centra's signed webhooks and store them in the durable inbox.

`POST /webhooks/centra` takes what the Centra Webhook plugin (version "Integration API")
sends: a form body `payload=<url-encoded JSON>` signed in `X-Centra-Signature`. The receiver
only verifies, parses and stores; the Dagster sensor does the work later (Centra's advice:
respond fast, process asynchronously, docs/webhooks.md).

Checks, cheapest first, and what each answers (every rejection stores nothing):

    415  Content-Type is not application/x-www-form-urlencoded (a charset= is allowed)
    413  Content-Length above the limit, or the streamed body grows past it
    401  X-Centra-Signature missing or malformed
    401  HMAC over the raw body does not match, or t= is outside the tolerance (replay)
    400  body is not form data, no single `payload`, not JSON, no valid `events` list
    503  the inbox could not store the delivery (Centra should retry)
    200  {"status": "ok", "stored": new events, "duplicates": events already stored, ...}

A 200 means the delivery is on disk: concurrent deliveries are committed together by one
writer thread (group commit, one fsync per batch), so the event loop never waits on the
disk and the throughput does not collapse on a disk with slow fsync.

Logging: one INFO line per stored delivery (event count, types, new/duplicate counts,
latency) and one WARNING line per rejection (status and reason). Neither the secret, nor the
signature, nor the body is ever logged.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from centra_pipeline.centra.webhook import (
    DEFAULT_TOLERANCE_SECONDS,
    SIGNATURE_HEADER,
    PayloadError,
    SignatureError,
    decode_payload,
    parse_events,
    parse_signature_header,
    verify_signature,
)
from centra_pipeline.settings import ENV_WEBHOOK_SECRET, ConfigError, Settings
from centra_pipeline.webhooks.inbox import Delivery, Inbox, StoreResult

logger = logging.getLogger("centra_pipeline.webhooks.receiver")  # also under `python -m`

WEBHOOK_PATH = "/webhooks/centra"
HEALTH_PATH = "/healthz"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
DEFAULT_MAX_BODY_BYTES = 1_048_576  # 100 events with `data` fit many times over
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_ALLOWED_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii"})
# Open connections uvicorn accepts before answering 503; with the body limit this bounds
# the memory that half-sent bodies can hold (about 128 x 1 MiB).
MAX_CONNECTIONS = 128
# Deliveries committed in one transaction at most; bounds how long one commit holds others.
MAX_COMMIT_BATCH = 256


class _GroupCommitter:
    """Stores deliveries on one writer thread, committing everything that queued meanwhile.

    While a commit is on disk, new deliveries wait in `_pending`; the next commit takes them
    all. One delivery alone is committed at once (no added delay); under load a commit holds
    many, so the fsync cost is shared. Each caller gets its own StoreResult, or the error.
    """

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-writer")
        self._pending: list[tuple[Delivery, asyncio.Future[StoreResult]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def store(self, delivery: Delivery) -> StoreResult:
        future: asyncio.Future[StoreResult] = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        # shield: a client that disconnects must not cancel a commit others wait on.
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch = self._pending[:MAX_COMMIT_BATCH]
                del self._pending[:MAX_COMMIT_BATCH]
                deliveries = [delivery for delivery, _ in batch]
                try:
                    results = await loop.run_in_executor(
                        self._executor, self._inbox.store_many, deliveries
                    )
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        if not future.done():
                            future.set_result(result)
        finally:
            self._flusher = None

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class _Rejected(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def _check_content_type(value: str | None) -> None:
    if not value:
        raise _Rejected(415, "unsupported_media_type", f"Content-Type must be {FORM_CONTENT_TYPE}")
    media_type, *params = (part.strip() for part in value.split(";"))
    if media_type.lower() != FORM_CONTENT_TYPE:
        raise _Rejected(
            415,
            "unsupported_media_type",
            f"Content-Type must be {FORM_CONTENT_TYPE} (Centra's webhook format), "
            f"not {media_type[:80]!r}",
        )
    for param in params:
        name, _, param_value = param.partition("=")
        name, param_value = name.strip().lower(), param_value.strip().strip('"').lower()
        if not name:
            continue
        if name != "charset":
            raise _Rejected(
                415, "unsupported_media_type", f"Content-Type parameter {name[:40]!r} not allowed"
            )
        if param_value not in _ALLOWED_CHARSETS:
            raise _Rejected(
                415, "unsupported_media_type", f"charset {param_value[:40]!r} is not UTF-8"
            )


def _check_declared_length(value: str | None, limit: int) -> None:
    if value is None:
        return  # chunked: counted while streaming
    if not value.isdigit():
        raise _Rejected(400, "bad_content_length", "Content-Length is not a number")
    if int(value) > limit:
        raise _Rejected(
            413, "body_too_large", f"body of {int(value)} bytes is over the {limit}-byte limit"
        )


async def _read_body(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _Rejected(413, "body_too_large", f"body is over the {limit}-byte limit")
    return bytes(body)


def _describe(events: list[Any]) -> str:
    kinds = Counter(f"{event.type[:40]}/{event.action[:40]}" for event in events)
    return ", ".join(f"{kind}={count}" for kind, count in sorted(kinds.items())) or "none"


def create_app(
    secret: str,
    inbox: Inbox,
    *,
    tolerance_seconds: float | None = DEFAULT_TOLERANCE_SECONDS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """The receiver as an ASGI app. The caller owns `inbox` (and closes it after the app).

    `tolerance_seconds=None` disables the replay window; only tests should want that.
    """
    if not secret:
        raise ValueError(
            f"the webhook secret is empty; set {ENV_WEBHOOK_SECRET} to the endpoint secret of "
            "the Centra Webhook plugin (the receiver never runs unauthenticated)"
        )
    if max_body_bytes <= 0:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
    committer = _GroupCommitter(inbox)
    rejected: Counter[int] = Counter()
    started_at = time.time()

    def reject(request: Request, exc: _Rejected, size: int | None = None) -> JSONResponse:
        rejected[exc.status] += 1
        client = request.client.host if request.client else "?"
        logger.warning(
            "webhook rejected: %d %s (%s) from %s%s",
            exc.status,
            exc.error,
            exc.detail,
            client,
            "" if size is None else f", {size} bytes",
        )
        # Close when the body was not read: the client may still be sending it.
        headers = {"Connection": "close"} if size is None or exc.status == 413 else None
        return JSONResponse(
            {"status": "error", "error": exc.error, "detail": exc.detail},
            status_code=exc.status,
            headers=headers,
        )

    async def receive_webhook(request: Request) -> JSONResponse:
        started = time.perf_counter()
        body: bytes | None = None
        try:
            _check_content_type(request.headers.get("content-type"))
            _check_declared_length(request.headers.get("content-length"), max_body_bytes)
            header = request.headers.get(SIGNATURE_HEADER)
            try:
                parse_signature_header(header)  # cheap: no body read for a missing header
                body = await _read_body(request, max_body_bytes)
                signed_at = verify_signature(
                    secret, body, header, tolerance_seconds=tolerance_seconds
                )
            except SignatureError as exc:
                raise _Rejected(401, f"signature_{exc.reason}", str(exc)) from None
            try:
                events = parse_events(decode_payload(body))
            except PayloadError as exc:
                raise _Rejected(400, "bad_payload", str(exc)) from None
        except _Rejected as exc:
            return reject(request, exc, None if body is None else len(body))

        delivery = Delivery(hashlib.sha256(body).hexdigest(), signed_at, events)
        try:
            result = await committer.store(delivery)
        except Exception as exc:
            rejected[503] += 1
            logger.error(
                "webhook not stored, answering 503 so Centra retries: %s: %s",
                type(exc).__name__,
                exc,
            )
            return JSONResponse(
                {
                    "status": "error",
                    "error": "inbox_unavailable",
                    "detail": "the delivery could not be stored; retry later",
                },
                status_code=503,
            )
        latency_ms = (time.perf_counter() - started) * 1000
        logger.info(
            "webhook delivery %d stored: %d events (%s), %d new, %d duplicate%s, %.1f ms",
            result.delivery_id,
            len(events),
            _describe(events),
            result.new_events,
            result.duplicate_events,
            " (identical re-delivery)" if result.duplicate_delivery else "",
            latency_ms,
        )
        return JSONResponse(
            {
                "status": "ok",
                "delivery_id": result.delivery_id,
                "events": len(events),
                "stored": result.new_events,
                "duplicates": result.duplicate_events,
                "duplicate_delivery": result.duplicate_delivery,
            }
        )

    async def healthz(request: Request) -> JSONResponse:
        try:
            counts = await anyio.to_thread.run_sync(inbox.counts)
        except Exception as exc:
            logger.error("healthz: inbox unreadable: %s: %s", type(exc).__name__, exc)
            return JSONResponse({"status": "error", "error": "inbox_unavailable"}, status_code=503)
        return JSONResponse(
            {
                "status": "ok",
                "uptime_seconds": round(time.time() - started_at, 1),
                "tolerance_seconds": tolerance_seconds,
                "max_body_bytes": max_body_bytes,
                "rejected": {str(status): n for status, n in sorted(rejected.items())},
                "inbox": counts.to_dict(),
            }
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        logger.info("%s %r: %d", request.method, request.url.path[:200], exc.status_code)
        return JSONResponse(
            {"status": "error", "error": exc.detail.lower().replace(" ", "_")},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            committer.close()  # waits for a commit in progress

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, receive_webhook, methods=["POST"]),
            Route(HEALTH_PATH, healthz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


MISSING_SECRET_MESSAGE = (
    f"{ENV_WEBHOOK_SECRET} is not set: set it to the endpoint secret of the Centra Webhook "
    "plugin (in the environment or in .env in the project root); the receiver never runs "
    "unauthenticated"
)


def run_server(host: str, port: int, settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM. Port 0 picks a free port; the log line says which.

    Raises ConfigError without a webhook secret and OSError if it cannot listen.
    """
    if not settings.webhook_secret:
        raise ConfigError(MISSING_SECRET_MESSAGE)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    sock = _bind(host, port)
    with sock, Inbox(settings.inbox_path) as inbox:
        app = create_app(
            settings.webhook_secret.get(),
            inbox,
            tolerance_seconds=settings.webhook_tolerance_seconds,
        )
        config = uvicorn.Config(
            app,
            log_config=None,  # our logging setup; uvicorn's loggers propagate to it
            access_log=False,  # the app logs one line per delivery instead
            server_header=False,
            limit_concurrency=MAX_CONNECTIONS,
            timeout_graceful_shutdown=10,
        )
        bound_host, bound_port = sock.getsockname()[:2]
        logger.info(
            "centra webhook receiver listening on http://%s:%d%s (inbox %s, tolerance %d s)",
            bound_host if ":" not in bound_host else f"[{bound_host}]",
            bound_port,
            WEBHOOK_PATH,
            settings.inbox_path,
            settings.webhook_tolerance_seconds,
        )
        uvicorn.Server(config).run(sockets=[sock])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)",
    )


def run(args: argparse.Namespace) -> int:
    """`centra-pipeline webhook-server`: 2 for missing configuration, 1 if it cannot listen."""
    try:
        settings = Settings.from_env()
        if not settings.webhook_secret:
            raise ConfigError(MISSING_SECRET_MESSAGE)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        run_server(args.host, args.port, settings)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="centra-pipeline webhook-server", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
