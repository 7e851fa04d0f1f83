"""Errors a user can act on, one type per cause, each with a message that says what to fix.

No message ever contains an API key: the session never formats headers, and URLs in
messages are the plugin endpoint plus the query (Centra keys travel only in a header).
"""

from __future__ import annotations


class CentraError(Exception):
    """Base class: something went wrong talking to Centra."""

    def __init__(self, message: str, *, api: str = "", endpoint: str = "") -> None:
        super().__init__(message)
        self.api = api
        self.endpoint = endpoint


class CentraConnectionError(CentraError):
    """Centra could not be reached (DNS, refused connection, timeouts) within the retry budget."""


class CentraURLError(CentraError):
    """The configured URL answers, but not as a Centra plugin endpoint (404, an HTML page)."""


class CentraAuthError(CentraError):
    """The key was refused (HTTP 401, or 403 other than Centra's endpoint allow-list)."""


class CentraEndpointNotAllowed(CentraError):
    """HTTP 403 `{"status":"Not Allowed"}`: the plugin's endpoint allow-list excludes this call."""


class CentraBusinessError(CentraError):
    """Centra answered `{"status":"no","msg":...}` (or the Shop API's `{"errors":{...}}`)."""

    def __init__(self, message: str, *, api: str = "", endpoint: str = "", detail: object = None):
        super().__init__(message, api=api, endpoint=endpoint)
        self.detail = detail


class CentraMalformedResponse(CentraError):
    """The body was not the JSON Centra sends (truncated or malformed) even after retries."""


class CentraServerError(CentraError):
    """HTTP 429 or 5xx persisted until the retry budget ran out."""


class CentraNotFound(CentraError):
    """A single-object lookup (customer by id, Shop API product by id) found nothing."""

    def __init__(self, message: str, *, api: str = "", endpoint: str = "", detail: object = None):
        super().__init__(message, api=api, endpoint=endpoint)
        self.detail = detail  # the 404 body, e.g. {"errors": {"product": "not found"}}
