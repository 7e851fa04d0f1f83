"""The response value passed from the API handlers to the HTTP layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .jsonenc import dumps

JSON = "application/json"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def json_response(status: int, payload: Any) -> Response:
    return Response(status, dumps(payload))


class BusinessError(Exception):
    """An Order API business error: HTTP 200 with {"status":"no","msg":...} (as Centra does)."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


def first(query: dict[str, list[str]], name: str) -> str | None:
    """PHP semantics for repeated query parameters: the last one wins."""
    values = query.get(name)
    return values[-1] if values else None
