"""What a failed exchange with a Centra plugin means: a retry, or an error a user can act on.

Retries cover what is transient: connection errors and resets, timeouts, HTTP 429 and 5xx
(honouring `Retry-After` given in seconds or as an HTTP date), and bodies that arrive
truncated or malformed. Everything else maps to one error type whose message says what to fix
in the environment or in the plugin's settings. Messages are built from the API's name, its
URL and the name of the key's environment variable, never from headers: the key stays out.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from centra_pipeline.centra.http import Response

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
PLUGIN_URL_SHAPE = "https://<store>.centra.com/api/<plugin uri>"


class Retry(Exception):
    """A transient failure: worth another attempt, within the session's retry budget."""

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


def business_message(payload: Any) -> str | None:
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


def _json_or_none(text: str) -> Any:
    try:
        return parse_document(text)
    except MalformedJSON:
        return None


def _connection_problem(exc: requests.exceptions.ConnectionError) -> tuple[str, str]:
    """(the retry's reason, why the host cannot be reached) for a failed connection."""
    text = str(exc)
    if "Name or service not known" in text or "getaddrinfo" in text or "NameResolution" in text:
        return "DNS lookup failed", "the host name does not resolve"
    if "Connection refused" in text:
        return "connection refused", "the connection was refused"
    return "connection error", "the connection kept failing"


@dataclass(frozen=True)
class Failures:
    """The retries and errors of one plugin endpoint (Order API or Shop API)."""

    api: str
    base_url: str
    host: str
    key_env: str

    def of_transport(self, exc: requests.exceptions.RequestException) -> Retry | CentraError:
        """A request that got no complete answer."""
        # Subclasses first: a connect timeout and a TLS error are connection errors too.
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return self._retry_unreachable("connect timeout", "timed out connecting")
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return self._retry_unreachable("read timeout", "it did not answer in time")
        if isinstance(exc, requests.exceptions.SSLError):
            return CentraConnectionError(
                f"TLS error talking to {self.host}: {type(exc).__name__}", api=self.api
            )
        if isinstance(exc, requests.exceptions.ChunkedEncodingError):
            return Retry(
                "truncated response body",
                final=CentraMalformedResponse(
                    f"the {self.api} at {self.host} kept sending truncated response bodies",
                    api=self.api,
                ),
            )
        if isinstance(exc, requests.exceptions.ConnectionError):
            return self._retry_unreachable(*_connection_problem(exc))
        return CentraConnectionError(
            f"{self.api} request failed: {type(exc).__name__}", api=self.api
        )

    def of_answer(
        self, response: Response, endpoint: str, *, not_found_ok: bool
    ) -> Retry | CentraError | None:
        """What an answer's status and body say went wrong; None for a 2xx JSON answer."""
        status = response.status
        if status in RETRYABLE_STATUS:
            reason = "HTTP 429 Too Many Requests" if status == 429 else f"HTTP {status}"
            return Retry(reason, retry_after=parse_retry_after(response.headers.get("retry-after")))
        if status == 401:
            return self._key_refused(endpoint)
        if status == 403:
            return self._access_refused(_json_or_none(response.text), endpoint)
        if status == 404:
            return self._not_found(_json_or_none(response.text), endpoint, not_found_ok)
        if 400 <= status < 500:
            payload = _json_or_none(response.text)
            message = business_message(payload) or f"HTTP {status}"
            return CentraBusinessError(
                f"the {self.api} rejected {endpoint}: {message}",
                api=self.api,
                endpoint=endpoint,
                detail=payload,
            )
        if not 200 <= status < 300:
            return CentraError(
                f"the {self.api} answered HTTP {status} for {endpoint}",
                api=self.api,
                endpoint=endpoint,
            )
        if _looks_like_html(response.text):
            return CentraURLError(
                f"the {self.api} URL {self.base_url} answered with an HTML page, not the Centra "
                f"API: check the URL (it should look like {PLUGIN_URL_SHAPE})",
                api=self.api,
                endpoint=endpoint,
            )
        return None

    def of_malformed_json(self, exc: MalformedJSON, endpoint: str) -> Retry:
        return Retry(
            f"malformed JSON ({exc})",
            final=CentraMalformedResponse(
                f"the {self.api} kept sending malformed or truncated JSON for {endpoint} ({exc})",
                api=self.api,
                endpoint=endpoint,
            ),
        )

    def of_retries_spent(
        self, retry: Retry, endpoint: str, attempts: int, elapsed: float
    ) -> CentraError:
        if retry.final is not None:
            return retry.final
        return CentraServerError(
            f"{self.api} {endpoint}: gave up after {attempts} attempts in {elapsed:.0f} s "
            f"(last problem: {retry.reason})",
            api=self.api,
            endpoint=endpoint,
        )

    def of_business_error(self, payload: Any, endpoint: str) -> CentraBusinessError | None:
        """A 2xx answer whose body reports a failure."""
        message = business_message(payload)
        if message is None:
            return None
        return CentraBusinessError(
            f"the {self.api} answered {endpoint} with an error: {message}",
            api=self.api,
            endpoint=endpoint,
            detail=payload,
        )

    # --- the messages ----------------------------------------------------------------------
    def _retry_unreachable(self, reason: str, why: str) -> Retry:
        env = f" (check {self.key_env.replace('_KEY', '_URL')})" if self.key_env else ""
        return Retry(
            reason,
            final=CentraConnectionError(
                f"cannot reach the {self.api} at {self.host}: {why}{env}", api=self.api
            ),
        )

    def _key_refused(self, endpoint: str) -> CentraAuthError:
        return CentraAuthError(
            f"the {self.api} refused the key (HTTP 401) for {endpoint}: copy the secret of the "
            f"{self.api} plugin in Centra into {self.key_env or 'the key setting'}",
            api=self.api,
            endpoint=endpoint,
        )

    def _access_refused(self, payload: Any, endpoint: str) -> CentraError:
        api = self.api
        if isinstance(payload, dict) and payload.get("status") == "Not Allowed":
            return CentraEndpointNotAllowed(
                f"the {api} plugin does not allow {endpoint}: in Centra, open the {api} "
                f"plugin's settings and enable {endpoint} under 'Allow access to the "
                "following endpoints'",
                api=api,
                endpoint=endpoint,
            )
        return CentraAuthError(
            f"the {api} refused access (HTTP 403) to {endpoint}: check that "
            f"{self.key_env or 'the key'} is the secret of this {api} plugin",
            api=api,
            endpoint=endpoint,
        )

    def _not_found(self, payload: Any, endpoint: str, not_found_ok: bool) -> CentraError:
        # "Unknown endpoint" (Order API) or {"errors":{"endpoint":...}} (Shop API) says the
        # path is wrong, not the object: that is the URL, even for a lookup.
        wrong_path = "endpoint" in (business_message(payload) or "").lower()
        if not_found_ok and isinstance(payload, dict) and not wrong_path:
            return CentraNotFound(
                f"{self.api} {endpoint}: not found ({business_message(payload) or 'HTTP 404'})",
                api=self.api,
                endpoint=endpoint,
                detail=payload,
            )
        return CentraURLError(
            f"the {self.api} URL {self.base_url} answered HTTP 404 for {endpoint}: it does not "
            f"point at a Centra plugin endpoint; it should look like {PLUGIN_URL_SHAPE}",
            api=self.api,
            endpoint=endpoint,
        )
