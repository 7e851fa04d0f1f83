"""What every paged read yields: one response's records, numbered, with what changes cost.

`Page.overlap` counts records the response held that had been read already and are left out
(the anchor of offset paging, the returns of the boundary second, duplicates pushed back by
arrivals); `Page.rereads` the requests before it that brought nothing new: the store changed
under the read. How each read decides what to ask for is in `paging` and `date_paging`.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from centra_pipeline.centra.http import Response
from centra_pipeline.centra.jsonstream import RawRecord


@dataclass(frozen=True)
class Page:
    """One response's records, with what is needed to land them and to explain the load."""

    endpoint: str
    number: int  # 1-based position of this page within the stream read
    params: dict[str, Any]
    records: list[RawRecord]
    fetched_at: datetime
    n_bytes: int
    has_more: bool
    server_time: datetime | None = None  # the response's Date header: Centra's clock
    # Records the response held that had been read already and are not in `records` (the
    # anchor of offset paging, the returns of the boundary second, duplicates from arrivals).
    overlap: int = 0
    # Requests made before this page's own that brought nothing new: the store changed.
    rereads: int = 0

    @classmethod
    def from_response(
        cls,
        endpoint: str,
        number: int,
        params: dict[str, Any],
        records: list[RawRecord],
        response: Response,
        *,
        has_more: bool,
        overlap: int = 0,
        rereads: int = 0,
    ) -> Page:
        return cls(
            endpoint,
            number,
            params,
            records,
            response.fetched_at,
            len(response.text),
            has_more=has_more,
            server_time=server_time(response),
            overlap=overlap,
            rereads=rereads,
        )


def server_time(response: Response) -> datetime | None:
    value = response.headers.get("date")
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def record_key(field: str) -> Callable[[RawRecord], str]:
    """A record's identity for paging: `obj[field]` as a string (ids come as 7 or "7"), or
    the record's raw text when it has no such field."""

    def key(record: RawRecord) -> str:
        value = record.obj.get(field)
        return record.raw if value is None else str(value)

    return key


class PageCounter:
    """Numbers the pages of one read and counts the requests between them that brought
    nothing new, so every paging algorithm reports changes the same way."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.number = 0  # pages made so far
        self.rereads = 0  # requests since the last page that brought nothing new

    def reread(self) -> None:
        self.rereads += 1

    def page(
        self,
        params: dict[str, Any],
        response: Response,
        records: list[RawRecord],
        *,
        received: int,
        has_more: bool,
    ) -> Page:
        """The next page: `records` of the `received` the response held are new."""
        self.number += 1
        page = Page.from_response(
            self.endpoint,
            self.number,
            params,
            records,
            response,
            has_more=has_more,
            overlap=received - len(records),
            rereads=self.rereads,
        )
        self.rereads = 0
        return page
