"""The HTTP session every Centra call goes through: auth header, timeouts, the API's shared
rate limit (`ratelimit`), a pool of `max_connections` connections, bounded retries with
exponential backoff and jitter, and error mapping (`failures`: what is retried, and what each
error tells the user to fix).

The API key lives only in the session's default headers; nothing here formats headers into
logs or exceptions.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from centra_pipeline.centra.errors import CentraURLError
from centra_pipeline.centra.failures import PLUGIN_URL_SHAPE, Failures, Retry
from centra_pipeline.centra.jsonstream import MalformedJSON
from centra_pipeline.centra.prefetch import Staged
from centra_pipeline.centra.prefetch import prefetch as prefetch  # the pipeline imports it here
from centra_pipeline.centra.ratelimit import request_sent, shared_limiter
from centra_pipeline.settings import Secret, Settings

log = logging.getLogger("centra_pipeline.centra")

T = TypeVar("T")

USER_AGENT = "centra-pipeline/0.1 (+https://github.com/centra-pipeline)"


@dataclass(frozen=True)
class HttpConfig:
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 8
    max_retry_seconds: float = 180.0  # total time budget across retries of one call
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_requests_per_second: float = 10.0
    # Connections long reads page with at once (1: one request at a time). The pipeline
    # passes CENTRA_MAX_CONNECTIONS (default 4).
    max_connections: int = 1

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> HttpConfig:
        """The configured limit and connections (CENTRA_MAX_REQUESTS_PER_SECOND,
        CENTRA_MAX_CONNECTIONS), over the defaults of everything else."""
        return cls(
            **{
                "max_requests_per_second": settings.max_requests_per_second,
                "max_connections": settings.max_connections,
                **overrides,
            }
        )


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    bytes: int = 0
    rate_limited_seconds: float = 0.0
    retry_reasons: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_request(self, n_bytes: int) -> None:
        with self._lock:
            self.requests += 1
            self.bytes += n_bytes

    def count_wait(self, seconds: float) -> None:
        with self._lock:
            self.rate_limited_seconds += seconds

    def count_retry(self, reason: str) -> None:
        with self._lock:
            self.retries += 1
            self.retry_reasons[reason] = self.retry_reasons.get(reason, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "bytes": self.bytes,
                "rate_limited_seconds": round(self.rate_limited_seconds, 3),
                "retry_reasons": dict(self.retry_reasons),
            }


@dataclass(frozen=True)
class Response:
    status: int
    text: str
    headers: dict[str, str]
    fetched_at: datetime


def normalize_base_url(base_url: str) -> str:
    """A configured plugin URL without trailing slashes and with runs of slashes in its path
    merged: `https://x.centra.com/api/order/` and `.../api//order` both become
    `https://x.centra.com/api/order`, so every request path is built the same way."""
    parts = urlsplit(base_url.strip())
    path = re.sub(r"/{2,}", "/", parts.path).rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def join_url(base_url: str, path: str) -> str:
    """`base_url` + `/` + `path`, with exactly one slash between them."""
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}"


class _ReportsSend:
    """Tells the rate limiter when a request has been written (ratelimit.request_sent)."""

    def send(self, data) -> None:
        super().send(data)  # type: ignore[misc]
        request_sent()


class _SentHTTPConnection(_ReportsSend, urllib3.connection.HTTPConnection):
    pass


class _SentHTTPSConnection(_ReportsSend, urllib3.connection.HTTPSConnection):
    pass


class _SentHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _SentHTTPConnection


class _SentHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _SentHTTPSConnection


def _pooled_session(connections: int) -> requests.Session:
    """A session that keeps up to `connections` connections per host open for reuse, on
    connections that report each request's send to the rate limiter."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(1, connections))
    adapter.poolmanager.pool_classes_by_scheme = {"http": _SentHTTPPool, "https": _SentHTTPSPool}
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class CentraSession:
    """One plugin endpoint (Order API or Shop API) and its key."""

    def __init__(
        self,
        base_url: str,
        key: Secret | str,
        *,
        api_name: str,
        key_env: str = "",
        config: HttpConfig | None = None,
        session: requests.Session | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CentraURLError(
                f"{api_name} URL {base_url!r} is not an http(s) URL; it should look like "
                f"{PLUGIN_URL_SHAPE}",
                api=api_name,
            )
        self.base_url = normalize_base_url(base_url)
        self.api_name = api_name
        self.key_env = key_env
        self.config = config or HttpConfig()
        self.stats = RequestStats()
        # Every session of this API in the process shares one limit (ratelimit.py).
        self.limiter = shared_limiter(self.base_url, self.config.max_requests_per_second)
        self._failures = Failures(api_name, self.base_url, parts.netloc, key_env)
        self._http = session or _pooled_session(self.config.max_connections)
        secret = key.get() if isinstance(key, Secret) else key
        self._http.headers.update({"API-Authorization": secret, "User-Agent": USER_AGENT})
        self._rng = random.Random()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CentraSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------
    def call(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        parse: Callable[[Response], T],
        not_found_ok: bool = False,
    ) -> T:
        """Make one logical call with retries; `parse` turns a 2xx response into the result.

        `parse` runs inside the retry loop, so a truncated or malformed body is retried like
        a dropped connection. With `not_found_ok`, HTTP 404 with a JSON body raises
        CentraNotFound instead of CentraURLError (single-object lookups).
        """
        url = join_url(self.base_url, path)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send(method, url, params=params, json_body=json_body)
                return self._handle(response, endpoint, parse, not_found_ok)
            except Retry as retry:
                self._wait_to_retry(retry, endpoint, attempt, time.monotonic() - started)

    def staged(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        parse: Callable[[Response], T],
        not_found_ok: bool = False,
        request: Callable[..., dict[str, Any]],
    ) -> Staged:
        """`call` as a `prefetch.Staged` fetch: `request(*args)` gives the call's `params`
        or `json_body`. The send stage makes the call up to its checked response (retries,
        HTTP errors and all), the finish stage parses it; a body that does not parse is
        counted as a retry and fetched again with `call`, which parses inside its retries."""

        def parsed_by(how: Callable[[Response], Any]) -> Callable[..., Any]:
            def fetch(*args: Any) -> Any:
                return self.call(
                    method,
                    path,
                    endpoint=endpoint,
                    parse=how,
                    not_found_ok=not_found_ok,
                    **request(*args),
                )

            return fetch

        whole, send = parsed_by(parse), parsed_by(_unparsed)

        def finish(args: tuple, response: Response) -> T:
            try:
                return parse(response)
            except MalformedJSON as exc:
                retry = self._failures.of_malformed_json(exc, endpoint)
                self.stats.count_retry(retry.reason)
                log.warning("%s %s: %s; fetching it again", self.api_name, endpoint, retry.reason)
                return whole(*args)

        return Staged(whole, send, finish)

    def _wait_to_retry(self, retry: Retry, endpoint: str, attempt: int, elapsed: float) -> None:
        """Sleep until the next attempt, or raise when the retry budget would be spent."""
        delay = self._backoff(attempt, retry.retry_after)
        out_of_budget = (
            attempt >= self.config.max_attempts or elapsed + delay > self.config.max_retry_seconds
        )
        if out_of_budget:
            raise self._failures.of_retries_spent(retry, endpoint, attempt, elapsed) from None
        self.stats.count_retry(retry.reason)
        if retry.retry_after is not None or retry.reason.startswith("HTTP 429"):
            # The server throttles the API, not this call: every thread waits it out, and
            # this call then retries in its turn (`acquire` in `_send`).
            self.limiter.hold(delay)
            delay = 0.0
        log.warning(
            "%s %s: %s; retry %d/%d in %.1f s",
            self.api_name,
            endpoint,
            retry.reason,
            attempt,
            self.config.max_attempts - 1,
            delay or self.limiter.held_for,
        )
        if delay:
            time.sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        exp = min(self.config.backoff_max, self.config.backoff_base * (2 ** (attempt - 1)))
        jittered = self._rng.uniform(exp / 2, exp)  # "equal jitter": never zero, never in lockstep
        if retry_after is not None:
            return retry_after + self._rng.uniform(0, min(1.0, exp / 2))
        return jittered

    def _send(self, method: str, url: str, *, params, json_body) -> Response:
        waited = self.limiter.acquire()
        try:
            if waited:
                self.stats.count_wait(waited)
            fetched_at = datetime.now(UTC)
            raw = self._http.request(
                method,
                url,
                params=params,
                json=json_body,
                timeout=(self.config.connect_timeout, self.config.read_timeout),
            )
            content = raw.content  # reads the whole body; a short read raises here
        except requests.exceptions.RequestException as exc:
            raise self._failures.of_transport(exc) from None
        finally:
            self.limiter.done()
        self.stats.count_request(len(content))
        text = content.decode(raw.encoding or "utf-8", errors="replace")
        return Response(
            status=raw.status_code,
            text=text,
            headers={k.lower(): v for k, v in raw.headers.items()},
            fetched_at=fetched_at,
        )

    def _handle(self, response: Response, endpoint: str, parse, not_found_ok: bool):
        failure = self._failures.of_answer(response, endpoint, not_found_ok=not_found_ok)
        if failure is not None:
            raise failure
        try:
            return parse(response)
        except MalformedJSON as exc:
            raise self._failures.of_malformed_json(exc, endpoint) from None

    def raise_for_business_error(self, payload: Any, endpoint: str) -> None:
        failure = self._failures.of_business_error(payload, endpoint)
        if failure is not None:
            raise failure


def _unparsed(response: Response) -> Response:
    return response
