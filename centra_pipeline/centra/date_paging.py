"""Returns read by date (keyset paging), so returns hidden or added during a read cannot make
it skip one (why positional paging would: see `paging`).

Returns are listed newest first; `newer_than` is inclusive and `older_than` exclusive, both on
the creation `date`. Each next request is page 1 of `older_than` = the oldest second read so
far + 1 s, which, being exclusive, brings that second again. Returns already read at that
second are dropped, and `limit` grows by their number, so a page still brings `limit` new
returns and an unchanged store costs the same requests as page numbers. Nothing depends on a
position, so nothing can shift. Should more than a page of returns share one second, that
second alone is read by page number. The caller's own window is kept.

A read keeps only the keys of the returns of the oldest second read.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from centra_pipeline.centra.errors import CentraError, CentraMalformedResponse
from centra_pipeline.centra.jsonstream import RawRecord
from centra_pipeline.centra.page import Page, PageCounter, record_key
from centra_pipeline.centra.paging import FetchParams

log = logging.getLogger("centra_pipeline.centra")

ONE_SECOND = timedelta(seconds=1)
_SECOND_FORMAT = "%Y-%m-%d %H:%M:%S"
RETURN_KEY = record_key("returnId")


def return_pages(
    fetch: FetchParams, *, api: str, endpoint: str, filters: dict[str, Any], limit: int
) -> Iterator[Page]:
    """Returns by date, newest first (see the module docstring): page 1 of `older_than` =
    the oldest second read + 1 s each time, dropping the returns of that second already
    read; a second holding more than a page is read by page number."""
    older_than: str | None = filters.get("older_than")
    read = _ReturnsByDate(
        fetch,
        api,
        endpoint,
        limit,
        base={k: v for k, v in filters.items() if k != "older_than"},
        older_than=older_than,
        ceiling=_parse_bound(older_than),
    )
    return read.pages()


@dataclass
class _ReturnsByDate:
    """The state of one read of returns by date: the window left to read and the returns of
    its newest second (the oldest read so far) already read."""

    fetch: FetchParams
    api: str
    endpoint: str
    limit: int
    base: dict[str, Any]  # the caller's filters but `older_than`, which the read moves
    older_than: str | None  # the end of the window left to read, as sent
    ceiling: datetime | None  # the same, parsed; exclusive: every return read is older
    second: datetime | None = None  # the oldest second read so far
    at_second: set[str] = field(default_factory=set)  # the returns of that second read so far
    by_page: int = 0  # while that second is read by page number: the next page number
    widest: int = 0  # the most returns one response held

    def __post_init__(self) -> None:
        self.counter = PageCounter(self.endpoint)

    def pages(self) -> Iterator[Page]:
        while True:
            params = self._next_params()
            _, records, response = self.fetch(params)
            self.widest = max(self.widest, len(records))
            fresh = [r for r in records if RETURN_KEY(r) not in self.at_second]
            dates = [self._date(r) for r in fresh]
            if self.by_page:
                if not records:
                    self._done_with_second()
                    continue
                self._take_page_of_second(fresh, dates)
                if not fresh:
                    self.counter.reread()
                    continue
            elif fresh:
                self._take_new_returns(fresh, dates)
            elif self._second_is_crowded(records, params):
                self.counter.reread()
                self._page_through_second()
                continue
            else:
                yield self.counter.page(params, response, [], received=len(records), has_more=False)
                return
            yield self.counter.page(params, response, fresh, received=len(records), has_more=True)

    def _next_params(self) -> dict[str, Any]:
        if self.by_page:
            assert self.second is not None
            return {
                **self.base,
                "newer_than": _format_second(self.second),
                "older_than": _format_second(self.second + ONE_SECOND),
                "limit": self.limit,
                "page": self.by_page,
            }
        params = {**self.base, "limit": self.limit + len(self.at_second), "page": 1}
        if self.older_than is not None:
            params["older_than"] = self.older_than
        return params

    def _take_page_of_second(self, fresh: list[RawRecord], dates: list[datetime]) -> None:
        if any(d != self.second for d in dates):
            raise self._ignored("`newer_than`/`older_than`")
        self.by_page += 1
        self.at_second.update(RETURN_KEY(r) for r in fresh)

    def _done_with_second(self) -> None:
        """The second read by page number is done: go on with the returns older than it."""
        self.older_than, self.ceiling = _format_second(self.second), self.second
        self.second, self.at_second, self.by_page = None, set(), 0

    def _take_new_returns(self, fresh: list[RawRecord], dates: list[datetime]) -> None:
        """New returns, newest first: the next request ends its window after the oldest."""
        if self.ceiling is not None and dates[0] >= self.ceiling:
            raise self._ignored("`older_than`")
        if any(a < b for a, b in itertools.pairwise(dates)):
            raise CentraError(
                f"the {self.api} did not list returns newest first ({self.endpoint}); "
                "they are read by date, which depends on that order",
                api=self.api,
                endpoint=self.endpoint,
            )
        oldest = dates[-1]
        if oldest != self.second:
            self.second, self.at_second = oldest, set()
        self.at_second.update(
            RETURN_KEY(r) for r, d in zip(fresh, dates, strict=True) if d == oldest
        )
        self.ceiling = oldest + ONE_SECOND
        self.older_than = _format_second(self.ceiling)
        if len(self.at_second) > self.limit:
            # Asking for that second again with an ever wider limit would resend them all.
            self._page_through_second()

    def _second_is_crowded(self, records: list[RawRecord], params: dict[str, Any]) -> bool:
        # Only returns of `second` read before, as many as the server puts in a page (it
        # clamps the limit): more than a page of returns share it.
        return len(records) > 1 and len(records) >= min(params["limit"], self.widest)

    def _page_through_second(self) -> None:
        self.by_page = 1
        log.info(
            "%s %s: a page or more of returns were created at %s; reading that second by "
            "page number",
            self.api,
            self.endpoint,
            _format_second(self.second) if self.second else "?",
        )

    def _date(self, record: RawRecord) -> datetime:
        value = record.obj.get("date")
        try:
            return datetime.strptime(str(value), _SECOND_FORMAT)
        except ValueError:
            raise CentraMalformedResponse(
                f"the {self.api} sent return {record.obj.get('returnId')!r} with `date` "
                f"{value!r}, not YYYY-MM-DD HH:MM:SS; returns are read by that date",
                api=self.api,
                endpoint=self.endpoint,
            ) from None

    def _ignored(self, what: str) -> CentraError:
        return CentraError(
            f"the {self.api} returned returns outside the {what} asked for ({self.endpoint}): "
            "it ignores the filter, so the read cannot go on",
            api=self.api,
            endpoint=self.endpoint,
        )


def _format_second(moment: datetime) -> str:
    return moment.strftime(_SECOND_FORMAT)


def _parse_bound(value: str | None) -> datetime | None:
    """A date filter as sent (`YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD`); None if neither."""
    for fmt in (_SECOND_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.strptime(str(value), fmt)
        except ValueError:
            continue
    return None
