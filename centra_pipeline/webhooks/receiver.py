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
import logging
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from centra_pipeline.centra.webhook import DEFAULT_TOLERANCE_SECONDS, WebhookEvent
from centra_pipeline.settings import ENV_WEBHOOK_SECRET, ConfigError, Settings

# Under its former name because benchmarks/bench_webhook_receiver.py swaps its `store` to
# measure the variant without group commit.
from centra_pipeline.webhooks.committer import GroupCommitter as _GroupCommitter
from centra_pipeline.webhooks.inbox import Delivery, Inbox, StoreResult
from centra_pipeline.webhooks.validation import (
    DEFAULT_MAX_BODY_BYTES,
    DeliveryValidator,
    Rejected,
)

logger = logging.getLogger("centra_pipeline.webhooks.receiver")  # also under `python -m`

WEBHOOK_PATH = "/webhooks/centra"
HEALTH_PATH = "/healthz"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
# Open connections uvicorn accepts before answering 503; with the body limit this bounds
# the memory that half-sent bodies can hold (about 128 x 1 MiB).
MAX_CONNECTIONS = 128


def _describe(events: Sequence[WebhookEvent]) -> str:
    kinds = Counter(f"{event.type[:40]}/{event.action[:40]}" for event in events)
    return ", ".join(f"{kind}={count}" for kind, count in sorted(kinds.items())) or "none"


def _error(
    status: int,
    error: str,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"status": "error", "error": error}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)


class _Receiver:
    """The endpoints, and what they share: the writer, the limits and the rejection counts."""

    def __init__(
        self, secret: str, inbox: Inbox, tolerance_seconds: float | None, max_body_bytes: int
    ) -> None:
        self._inbox = inbox
        self._tolerance_seconds = tolerance_seconds
        self._max_body_bytes = max_body_bytes
        self._validator = DeliveryValidator(
            secret, tolerance_seconds=tolerance_seconds, max_body_bytes=max_body_bytes
        )
        self._committer = _GroupCommitter(inbox)
        self._rejected: Counter[int] = Counter()
        self._started_at = time.time()

    async def receive_webhook(self, request: Request) -> JSONResponse:
        started = time.perf_counter()
        try:
            delivery = await self._validator.validate(request)
        except Rejected as exc:
            return self._reject(request, exc)
        try:
            result = await self._committer.store(delivery)
        except Exception as exc:
            return self._unavailable(exc)
        _log_stored(delivery, result, latency_ms=(time.perf_counter() - started) * 1000)
        return JSONResponse(
            {
                "status": "ok",
                "delivery_id": result.delivery_id,
                "events": len(delivery.events),
                "stored": result.new_events,
                "duplicates": result.duplicate_events,
                "duplicate_delivery": result.duplicate_delivery,
            }
        )

    def _reject(self, request: Request, exc: Rejected) -> JSONResponse:
        self._rejected[exc.status] += 1
        client = request.client.host if request.client else "?"
        size = exc.body_size
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
        return _error(exc.status, exc.error, exc.detail, headers=headers)

    def _unavailable(self, exc: Exception) -> JSONResponse:
        self._rejected[503] += 1
        logger.error(
            "webhook not stored, answering 503 so Centra retries: %s: %s",
            type(exc).__name__,
            exc,
        )
        detail = "the delivery could not be stored; retry later"
        return _error(503, "inbox_unavailable", detail)

    async def healthz(self, request: Request) -> JSONResponse:
        try:
            counts = await anyio.to_thread.run_sync(self._inbox.counts)
        except Exception as exc:
            logger.error("healthz: inbox unreadable: %s: %s", type(exc).__name__, exc)
            return _error(503, "inbox_unavailable")
        return JSONResponse(
            {
                "status": "ok",
                "uptime_seconds": round(time.time() - self._started_at, 1),
                "tolerance_seconds": self._tolerance_seconds,
                "max_body_bytes": self._max_body_bytes,
                "rejected": {str(status): n for status, n in sorted(self._rejected.items())},
                "inbox": counts.to_dict(),
            }
        )

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            self._committer.close()  # waits for a commit in progress


def _log_stored(delivery: Delivery, result: StoreResult, *, latency_ms: float) -> None:
    logger.info(
        "webhook delivery %d stored: %d events (%s), %d new, %d duplicate%s, %.1f ms",
        result.delivery_id,
        len(delivery.events),
        _describe(delivery.events),
        result.new_events,
        result.duplicate_events,
        " (identical re-delivery)" if result.duplicate_delivery else "",
        latency_ms,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """404, 405 and the like, in the same JSON shape as the receiver's own errors."""
    assert isinstance(exc, HTTPException)
    logger.info("%s %r: %d", request.method, request.url.path[:200], exc.status_code)
    error = exc.detail.lower().replace(" ", "_")
    return _error(exc.status_code, error, headers=exc.headers)


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
    receiver = _Receiver(secret, inbox, tolerance_seconds, max_body_bytes)
    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, receiver.receive_webhook, methods=["POST"]),
            Route(HEALTH_PATH, receiver.healthz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=receiver.lifespan,
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
