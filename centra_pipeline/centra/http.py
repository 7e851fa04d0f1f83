"""The HTTP session every Centra call goes through: auth header, timeouts, a proactive rate
limit, bounded retries with exponential backoff and jitter, and error mapping.

Why proactive limiting: Centra documents no REST rate limits, but a merchant's integrations
share Centra's capacity (its GraphQL limits are shared per environment), so we pace
ourselves instead of waiting to be throttled. Retries cover what is transient: connection
errors and resets, timeouts, HTTP 429 and 5xx (honouring `Retry-After` given in seconds or
as an HTTP date), and bodies that arrive truncated or malformed. Everything else maps to one
error type a user can act on.

The API key lives only in the session's default headers; nothing here formats headers into
logs or exceptions.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from queue import Empty, Queue
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests

from centra_pipeline.centra.errors import (
    CentraAuthError,
    CentraBusinessError,
    CentraConnectionError,
    CentraEndpointNotAllowed,
    CentraError,
    CentraMalformedResponse,
    CentraNotFound,
    CentraServerError,
    CentraURLError,
)
from centra_pipeline.centra.jsonstream import MalformedJSON, parse_document
from centra_pipeline.settings import Secret

log = logging.getLogger("centra_pipeline.centra")

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
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


class RateLimiter:
    """Paces request starts to `rate` per second (thread-safe; burst of one second's worth)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait > 0:
            time.sleep(wait)
        return wait


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


class _Retry(Exception):
    def __init__(
        self, reason: str, retry_after: float | None = None, final: CentraError | None = None
    ):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.final = final  # what to raise when the budget is spent


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds (`"30"`) or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _business_message(payload: Any) -> str | None:
    """Centra's failure bodies: `{"status":"no","msg":...}` or the Shop API's `{"errors":{...}}`."""
    if not isinstance(payload, dict):
        return None
    if payload.get("status") == "no":
        msg = payload.get("msg", "no message")
        return msg if isinstance(msg, str) else repr(msg)
    errors = payload.get("errors")
    if isinstance(errors, dict) and errors:
        return "; ".join(f"{k}: {v}" for k, v in errors.items())
    return None


def _looks_like_html(text: str) -> bool:
    # JSON never starts with "<"; web servers' error and landing pages do.
    return text.lstrip()[:1] == "<"


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
                "https://<store>.centra.com/api/<plugin uri>",
                api=api_name,
            )
        self.base_url = normalize_base_url(base_url)
        self._host = parts.netloc
        self.api_name = api_name
        self.key_env = key_env
        self.config = config or HttpConfig()
        self.stats = RequestStats()
        self.limiter = RateLimiter(self.config.max_requests_per_second)
        self._http = session or requests.Session()
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
            except _Retry as retry:
                elapsed = time.monotonic() - started
                delay = self._backoff(attempt, retry.retry_after)
                out_of_budget = (
                    attempt >= self.config.max_attempts
                    or elapsed + delay > self.config.max_retry_seconds
                )
                if out_of_budget:
                    raise self._give_up(retry, endpoint, attempt, elapsed) from None
                self.stats.count_retry(retry.reason)
                log.warning(
                    "%s %s: %s; retry %d/%d in %.1f s",
                    self.api_name,
                    endpoint,
                    retry.reason,
                    attempt,
                    self.config.max_attempts - 1,
                    delay,
                )
                time.sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        exp = min(self.config.backoff_max, self.config.backoff_base * (2 ** (attempt - 1)))
        jittered = self._rng.uniform(exp / 2, exp)  # "equal jitter": never zero, never in lockstep
        if retry_after is not None:
            return retry_after + self._rng.uniform(0, min(1.0, exp / 2))
        return jittered

    def _give_up(self, retry: _Retry, endpoint: str, attempts: int, elapsed: float) -> CentraError:
        if retry.final is not None:
            return retry.final
        return CentraServerError(
            f"{self.api_name} {endpoint}: gave up after {attempts} attempts in {elapsed:.0f} s "
            f"(last problem: {retry.reason})",
            api=self.api_name,
            endpoint=endpoint,
        )

    def _send(self, method: str, url: str, *, params, json_body) -> Response:
        waited = self.limiter.acquire()
        if waited:
            self.stats.count_wait(waited)
        fetched_at = datetime.now(UTC)
        host = self._host
        try:
            raw = self._http.request(
                method,
                url,
                params=params,
                json=json_body,
                timeout=(self.config.connect_timeout, self.config.read_timeout),
            )
            content = raw.content  # reads the whole body; a short read raises here
        except requests.exceptions.ConnectTimeout:
            raise _Retry(
                "connect timeout", final=self._unreachable(host, "timed out connecting")
            ) from None
        except requests.exceptions.ReadTimeout:
            raise _Retry(
                "read timeout", final=self._unreachable(host, "it did not answer in time")
            ) from None
        except requests.exceptions.SSLError as exc:
            raise CentraConnectionError(
                f"TLS error talking to {host}: {type(exc).__name__}", api=self.api_name
            ) from None
        except requests.exceptions.ChunkedEncodingError:
            raise _Retry(
                "truncated response body",
                final=CentraMalformedResponse(
                    f"the {self.api_name} at {host} kept sending truncated response bodies",
                    api=self.api_name,
                ),
            ) from None
        except requests.exceptions.ConnectionError as exc:
            text = str(exc)
            if (
                "Name or service not known" in text
                or "getaddrinfo" in text
                or "NameResolution" in text
            ):
                raise _Retry(
                    "DNS lookup failed",
                    final=self._unreachable(host, "the host name does not resolve"),
                ) from None
            if "Connection refused" in text:
                raise _Retry(
                    "connection refused",
                    final=self._unreachable(host, "the connection was refused"),
                ) from None
            raise _Retry(
                "connection error", final=self._unreachable(host, "the connection kept failing")
            ) from None
        except requests.exceptions.RequestException as exc:
            raise CentraConnectionError(
                f"{self.api_name} request failed: {type(exc).__name__}", api=self.api_name
            ) from None
        self.stats.count_request(len(content))
        text = content.decode(raw.encoding or "utf-8", errors="replace")
        return Response(
            status=raw.status_code,
            text=text,
            headers={k.lower(): v for k, v in raw.headers.items()},
            fetched_at=fetched_at,
        )

    def _unreachable(self, host: str, why: str) -> CentraConnectionError:
        env = f" (check {self.key_env.replace('_KEY', '_URL')})" if self.key_env else ""
        return CentraConnectionError(
            f"cannot reach the {self.api_name} at {host}: {why}{env}", api=self.api_name
        )

    def _handle(self, response: Response, endpoint: str, parse, not_found_ok: bool):
        status = response.status
        api = self.api_name
        if status in RETRYABLE_STATUS:
            reason = "HTTP 429 Too Many Requests" if status == 429 else f"HTTP {status}"
            raise _Retry(reason, retry_after=parse_retry_after(response.headers.get("retry-after")))
        if status == 401:
            raise CentraAuthError(
                f"the {api} refused the key (HTTP 401) for {endpoint}: copy the secret of the "
                f"{api} plugin in Centra into {self.key_env or 'the key setting'}",
                api=api,
                endpoint=endpoint,
            )
        if status == 403:
            payload = self._json_or_none(response.text)
            if isinstance(payload, dict) and payload.get("status") == "Not Allowed":
                raise CentraEndpointNotAllowed(
                    f"the {api} plugin does not allow {endpoint}: in Centra, open the {api} "
                    f"plugin's settings and enable {endpoint} under 'Allow access to the "
                    "following endpoints'",
                    api=api,
                    endpoint=endpoint,
                )
            raise CentraAuthError(
                f"the {api} refused access (HTTP 403) to {endpoint}: check that "
                f"{self.key_env or 'the key'} is the secret of this {api} plugin",
                api=api,
                endpoint=endpoint,
            )
        if status == 404:
            payload = self._json_or_none(response.text)
            # "Unknown endpoint" (Order API) or {"errors":{"endpoint":...}} (Shop API) says the
            # path is wrong, not the object: that is the URL, even for a lookup.
            wrong_path = "endpoint" in (_business_message(payload) or "").lower()
            if not_found_ok and isinstance(payload, dict) and not wrong_path:
                raise CentraNotFound(
                    f"{api} {endpoint}: not found ({_business_message(payload) or 'HTTP 404'})",
                    api=api,
                    endpoint=endpoint,
                    detail=payload,
                )
            raise CentraURLError(
                f"the {api} URL {self.base_url} answered HTTP 404 for {endpoint}: it does not "
                "point at a Centra plugin endpoint; it should look like "
                "https://<store>.centra.com/api/<plugin uri>",
                api=api,
                endpoint=endpoint,
            )
        if 400 <= status < 500:
            payload = self._json_or_none(response.text)
            message = _business_message(payload) or f"HTTP {status}"
            raise CentraBusinessError(
                f"the {api} rejected {endpoint}: {message}",
                api=api,
                endpoint=endpoint,
                detail=payload,
            )
        if not 200 <= status < 300:
            raise CentraError(
                f"the {api} answered HTTP {status} for {endpoint}", api=api, endpoint=endpoint
            )
        if _looks_like_html(response.text):
            raise CentraURLError(
                f"the {api} URL {self.base_url} answered with an HTML page, not the Centra API: "
                "check the URL (it should look like https://<store>.centra.com/api/<plugin uri>)",
                api=api,
                endpoint=endpoint,
            )
        try:
            return parse(response)
        except MalformedJSON as exc:
            raise _Retry(
                f"malformed JSON ({exc})",
                final=CentraMalformedResponse(
                    f"the {api} kept sending malformed or truncated JSON for {endpoint} ({exc})",
                    api=api,
                    endpoint=endpoint,
                ),
            ) from None

    @staticmethod
    def _json_or_none(text: str) -> Any:
        try:
            return parse_document(text)
        except MalformedJSON:
            return None

    def raise_for_business_error(self, payload: Any, endpoint: str) -> None:
        message = _business_message(payload)
        if message is not None:
            raise CentraBusinessError(
                f"the {self.api_name} answered {endpoint} with an error: {message}",
                api=self.api_name,
                endpoint=endpoint,
                detail=payload,
            )


def prefetch(pages: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Fetch the next page in a background thread while the caller processes this one.

    Memory stays bounded (`depth` pages in flight). HTTP waits release the GIL, so the
    network and the caller's parsing overlap. Errors surface in the caller, in order.
    """
    queue: Queue = Queue(maxsize=depth)
    # A bounded queue alone lets the producer fetch one more page and hold it while it waits
    # for room; taking a slot *before* fetching keeps fetched-but-untaken pages at `depth`.
    slots = threading.Semaphore(max(depth - 1, 0))
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                if stop.is_set():
                    return
                queue.put(("page", page))
                slots.acquire()  # released when the consumer takes a page (or stops)
                if stop.is_set():
                    return
            queue.put(("done", done))
        except BaseException as exc:  # re-raised in the consumer
            queue.put(("error", exc))

    thread = threading.Thread(target=produce, name="centra-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = queue.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            slots.release()
            yield item
    finally:
        stop.set()
        slots.release()  # wake a producer waiting for a slot so it sees `stop`
        # Unblock a producer waiting on a full queue so the thread can finish.
        while thread.is_alive():
            with contextlib.suppress(Empty):
                queue.get_nowait()
            thread.join(timeout=0.05)
