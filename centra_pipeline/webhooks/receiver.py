"""Receive Centra's signed webhooks for every store of the deployment, each into its own inbox.

One server serves all stores (centra_pipeline/stores.py). `POST /webhooks/centra/<store>`
takes what that store's Centra Webhook plugin (version "Integration API") sends: a form body
`payload=<url-encoded JSON>` signed in `X-Centra-Signature` with THAT store's endpoint
secret (the variable its `webhook_secret_env` names in the stores file), and stores it in
THAT store's inbox (its data dir's webhooks/inbox.sqlite3, which records the store). The
path without a store, `POST /webhooks/centra`, is the store named `default`: the only store
without a stores file (secret in CENTRA_WEBHOOK_SECRET), or a stores file's store of that
name; without one it is a 404 like any unknown store. The receiver only verifies, parses
and stores; the Dagster sensor does the work later (Centra's advice: respond fast, process
asynchronously, docs/webhooks.md).

Each store has its own secret, inbox, writer thread and rejection counts: a delivery signed
with one store's secret and sent to another store's path fails that store's HMAC and is a
401 signature_mismatch like any bad signature; nothing is stored in either inbox.

Checks, cheapest first, and what each answers (every rejection stores nothing):

    404  unknown_store: no store of that name is served (the answer names no store)
    503  store_not_configured: the store has no webhook secret (no webhook_secret_env);
         503, not 404, so Centra retries and nothing is lost if the secret is set in time
    415  Content-Type is not application/x-www-form-urlencoded (a charset= is allowed)
    413  Content-Length above the limit, or the streamed body grows past it
    401  X-Centra-Signature missing or malformed
    401  HMAC over the raw body does not match the store's secret, or t= is stale (replay)
    400  body is not form data, no single `payload`, not JSON, no valid `events` list
    503  the inbox could not store the delivery (Centra should retry)
    200  {"status": "ok", "store": ..., "stored": new events, "duplicates": ..., ...}

A 200 means the delivery is on disk: concurrent deliveries to one store are committed
together by its writer thread (group commit, one fsync per batch), so the event loop never
waits on the disk and the throughput does not collapse on a disk with slow fsync.

Startup: the server starts when at least one store has a webhook secret. It opens the inbox
of each such store once (refusing an inbox file that records another store) and closes them
on shutdown; it logs each store's path and inbox, and the names of the stores without a
secret. `GET /healthz` reports each store's inbox counts and rejections.

Logging: one INFO line per stored delivery (store, event count, types, new/duplicate
counts, latency) and one WARNING line per rejection (store, status and reason). Neither a
secret, nor the signature, nor the body is ever logged.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import ExitStack, asynccontextmanager

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from centra_pipeline.centra.webhook import DEFAULT_TOLERANCE_SECONDS, WebhookEvent
from centra_pipeline.settings import ENV_WEBHOOK_SECRET, ConfigError, Settings
from centra_pipeline.stores import DEFAULT_STORE, Stores, load_stores

# Under its former name because benchmarks/bench_webhook_receiver.py swaps its `store` to
# measure the variant without group commit.
from centra_pipeline.webhooks.committer import GroupCommitter as _GroupCommitter  # noqa: F401
from centra_pipeline.webhooks.inbox import Delivery, Inbox, InboxStoreMismatch, StoreResult
from centra_pipeline.webhooks.store_endpoints import (
    MISSING_SECRET_MESSAGE,
    StoreEndpoint,
    StoreReceiver,
    check_some_secret,
    log_startup,
    open_endpoints,
)
from centra_pipeline.webhooks.validation import DEFAULT_MAX_BODY_BYTES, Rejected

logger = logging.getLogger("centra_pipeline.webhooks.receiver")  # also under `python -m`

WEBHOOK_PATH = "/webhooks/centra"  # the store named `default`
STORE_WEBHOOK_PATH = WEBHOOK_PATH + "/{store}"
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


_UNKNOWN_STORE = Rejected(404, "unknown_store", "no store of that name is served here")
_NOT_CONFIGURED = Rejected(
    503,
    "store_not_configured",
    "this store has no webhook secret configured on the receiver; nothing was stored, "
    "retry once it is configured",
)


class _Receiver:
    """The endpoints, and what they share: the stores, the limits and the rejection counts."""

    def __init__(self, endpoints: Sequence[StoreEndpoint], max_body_bytes: int) -> None:
        self._stores = {e.name: StoreReceiver(e, max_body_bytes) for e in endpoints}
        self._max_body_bytes = max_body_bytes
        self._rejected: Counter[int] = Counter()  # every store's, and unknown stores'
        self._started_at = time.time()
        only = next(iter(self._stores.values())) if len(self._stores) == 1 else None
        # The store whose inbox the health answer's top level shows, as it did before stores.
        self._primary = self._stores.get(DEFAULT_STORE, only)

    async def receive_webhook(self, request: Request) -> JSONResponse:
        started = time.perf_counter()
        name = request.path_params.get("store", DEFAULT_STORE)
        store = self._stores.get(name)
        if store is None:
            return self._reject(request, f"{name[:64]!r} (unknown)", None, _UNKNOWN_STORE)
        if store.validator is None or store.committer is None:
            return self._reject(request, store.name, store, _NOT_CONFIGURED)
        try:
            delivery = await store.validator.validate(request)
        except Rejected as exc:
            return self._reject(request, store.name, store, exc)
        try:
            result = await store.committer.store(delivery)
        except Exception as exc:
            return self._unavailable(store, exc)
        latency_ms = (time.perf_counter() - started) * 1000
        _log_stored(store.name, delivery, result, latency_ms=latency_ms)
        return JSONResponse(
            {
                "status": "ok",
                "store": store.name,
                "delivery_id": result.delivery_id,
                "events": len(delivery.events),
                "stored": result.new_events,
                "duplicates": result.duplicate_events,
                "duplicate_delivery": result.duplicate_delivery,
            }
        )

    def _reject(
        self, request: Request, label: str, store: StoreReceiver | None, exc: Rejected
    ) -> JSONResponse:
        self._rejected[exc.status] += 1
        if store is not None:
            store.rejected[exc.status] += 1
        client = request.client.host if request.client else "?"
        size = exc.body_size
        logger.warning(
            "store %s: webhook rejected: %d %s (%s) from %s%s",
            label,
            exc.status,
            exc.error,
            exc.detail,
            client,
            "" if size is None else f", {size} bytes",
        )
        # Close when the body was not read: the client may still be sending it.
        headers = {"Connection": "close"} if size is None or exc.status == 413 else None
        return _error(exc.status, exc.error, exc.detail, headers=headers)

    def _unavailable(self, store: StoreReceiver, exc: Exception) -> JSONResponse:
        self._rejected[503] += 1
        store.rejected[503] += 1
        logger.error(
            "store %s: webhook not stored, answering 503 so Centra retries: %s: %s",
            store.name,
            type(exc).__name__,
            exc,
        )
        detail = "the delivery could not be stored; retry later"
        return _error(503, "inbox_unavailable", detail)

    def _counts(self) -> dict[str, dict | None]:
        return {
            name: None if store.inbox is None else store.inbox.counts().to_dict()
            for name, store in self._stores.items()
        }

    async def healthz(self, request: Request) -> JSONResponse:
        try:
            counts = await anyio.to_thread.run_sync(self._counts)
        except Exception as exc:
            logger.error("healthz: inbox unreadable: %s: %s", type(exc).__name__, exc)
            return _error(503, "inbox_unavailable")
        health: dict[str, object] = {
            "status": "ok",
            "uptime_seconds": round(time.time() - self._started_at, 1),
            "max_body_bytes": self._max_body_bytes,
            "rejected": _by_status(self._rejected),
        }
        if self._primary is not None:
            health["tolerance_seconds"] = self._primary.tolerance_seconds
            health["inbox"] = counts[self._primary.name]
        health["stores"] = {
            name: {
                "configured": store.validator is not None,
                "tolerance_seconds": store.tolerance_seconds,
                "rejected": _by_status(store.rejected),
                "inbox": counts[name],
            }
            for name, store in self._stores.items()
        }
        return JSONResponse(health)

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for store in self._stores.values():
                if store.committer is not None:
                    store.committer.close()  # waits for a commit in progress


def _by_status(rejected: Counter[int]) -> dict[str, int]:
    return {str(status): n for status, n in sorted(rejected.items())}


def _log_stored(store: str, delivery: Delivery, result: StoreResult, *, latency_ms: float) -> None:
    logger.info(
        "store %s: webhook delivery %d stored: %d events (%s), %d new, %d duplicate%s, %.1f ms",
        store,
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
    """One store's receiver as an ASGI app: the store `inbox` records (`default` unless it
    records one), at /webhooks/centra/<store> (and /webhooks/centra for `default`). The
    caller owns `inbox` (and closes it after the app).

    `tolerance_seconds=None` disables the replay window; only tests should want that.
    """
    endpoint = StoreEndpoint(inbox.store_name, secret, inbox, tolerance_seconds)
    return create_stores_app([endpoint], max_body_bytes=max_body_bytes)


def create_stores_app(
    endpoints: Sequence[StoreEndpoint], *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> Starlette:
    """The receiver of these stores as an ASGI app; the caller owns (and closes) the inboxes."""
    if not endpoints:
        raise ValueError("the receiver needs at least one store")
    names = [endpoint.name for endpoint in endpoints]
    if len(set(names)) != len(names):
        raise ValueError(f"store names must be unique, got {names}")
    for endpoint in endpoints:
        if endpoint.secret is not None and not endpoint.secret:
            raise ValueError(
                f"store {endpoint.name!r}: the webhook secret is empty; set it (for the single "
                f"store, {ENV_WEBHOOK_SECRET}) to the endpoint secret of the Centra Webhook "
                "plugin (the receiver never runs unauthenticated)"
            )
        if (endpoint.secret is None) != (endpoint.inbox is None):
            raise ValueError(f"store {endpoint.name!r}: a secret and an inbox go together")
    if max_body_bytes <= 0:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
    receiver = _Receiver(endpoints, max_body_bytes)
    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, receiver.receive_webhook, methods=["POST"]),
            Route(STORE_WEBHOOK_PATH, receiver.receive_webhook, methods=["POST"]),
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


def run_server(host: str, port: int, stores: Stores | Settings) -> None:
    """Serve every store until SIGINT/SIGTERM. Port 0 picks a free port; the log says which.

    `stores` is the deployment's (load_stores()); one Settings is served as its one store.
    Raises ConfigError when no store has a webhook secret, InboxStoreMismatch when a store's
    inbox file records another store, and OSError if it cannot listen.
    """
    if isinstance(stores, Settings):
        stores = Stores({stores.store: stores}, data_dir=stores.data_dir)
    check_some_secret(stores)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    sock = _bind(host, port)
    with sock, ExitStack() as inboxes:
        endpoints = open_endpoints(stores, inboxes)  # closed after the server stops
        config = uvicorn.Config(
            create_stores_app(endpoints),
            log_config=None,  # our logging setup; uvicorn's loggers propagate to it
            access_log=False,  # the app logs one line per delivery instead
            server_header=False,
            limit_concurrency=MAX_CONNECTIONS,
            timeout_graceful_shutdown=10,
        )
        bound_host, bound_port = sock.getsockname()[:2]
        shown = bound_host if ":" not in bound_host else f"[{bound_host}]"
        log_startup(logger, f"http://{shown}:{bound_port}", WEBHOOK_PATH, endpoints)
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
    """`centra-pipeline webhook-server`: every store of the deployment (CENTRA_STORES_FILE,
    or the single store `default`). 2 for missing or wrong configuration (no store with a
    webhook secret, an inbox of another store), 1 if it cannot listen."""
    try:
        # The receiver needs only webhook secrets: a host without the API keys serves too,
        # and a store whose secret variable is unset answers 503 (named at startup).
        stores = load_stores(secrets=False)
        check_some_secret(stores)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        run_server(args.host, args.port, stores)
    except InboxStoreMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="centra-pipeline webhook-server", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


__all__ = ["MISSING_SECRET_MESSAGE", "StoreEndpoint", "create_app", "create_stores_app"]

if __name__ == "__main__":
    sys.exit(main())
