"""How full reads page, so that a result set changing under them cannot make them skip a record.

Paging, as documented:
- orders and customers: `limit` + `offset`; no total and no next link;
- returns: `limit` + `page` (1-based), newest first; `newer_than` (inclusive) and
  `older_than` (exclusive) filter on the creation `date`;
- products and stock: `limit` turns on `page` and top-level `next`/`previous` links.

A result set can change while it is read. With positional paging, a record that leaves the
set in front of the read position (the plugin stops serving cancelled orders, an order goes
on hold, a market is dropped) moves every later record one place forward, and the record at
the page boundary falls between two pages: skipped, silently. Full reads are built so that
every record visible throughout the read is returned exactly once:

- Offset reads (orders, customers, and the Shop API catalogue through `offset_pages`) use
  *anchored offset paging*. Every page after the first is requested from the offset of the
  last record already read, one record wider (`limit + 1`), so it should start with that
  record, the anchor. Records are told apart by their key (`orderId`, `customerId`, the Shop
  API's `product`). What follows the last record of the previous page found in the response
  is new; nothing before it is returned again. Records arriving in front of the read position
  push the anchor back: duplicates, dropped, never a skip. Records leaving pull it forward,
  out of the response: then the read steps back half a window at a time until a response
  holds a record of the last pages read again. The steps do not double: a window without a
  known record looks the same whether it lies before or after them, so windows must overlap
  for a step back never to jump over them. An unchanged store costs what plain offset paging
  costs: pages of `limit` new records, and a last request that returns only the anchor where
  plain paging gets an empty page. Limits: a server whose pages hold one record leaves no
  room for an anchor (those reads are plain offset reads), and if every record of the last
  two pages left during one request the read cannot know where it was: it raises rather than
  guess.
- Returns are read by date (keyset, `date_paging.return_pages`): nothing depends on a
  position, so nothing can shift.
- Products and stock (`page` + `next`) are read by page number, unanchored (`numbered_pages`):
  page numbers cannot overlap without changing the page size, and rows do not leave these
  sets during a read. A row carries its product's `active` flag instead of disappearing, and
  `modified` / `stock_modified` are "after" filters on timestamps that only move forward. Only
  a product deleted during a full read would shift rows.

No page ends a read for being short: Centra's maximum `limit` is not documented, and a server
that clamps our limit returns short pages that are not the last. Offsets advance by the
records actually received for the same reason.

Concurrent reads: a full read of a large store is bound by the server's latency, not by our
rate limit, if it waits for each page before asking for the next. With `connections` > 1,
once responses come back full, the requests an unchanged set gets next (the anchored offsets
`limit` apart, or the next page numbers) are made ahead on up to that many connections
(`prefetch.Ahead`), all within the API's one rate limit. The algorithm above still decides,
one response at a time and in order, what each response means: it takes an answer fetched
ahead only when that is exactly the request it would make, and the anchor check works
whenever the answer was fetched. If records left or arrived so that the anchor is not where
expected, the read steps back as it would have, with requests made now, and what was
fetched ahead is dropped. Ahead-of-time answers can only make the read faster or cost a few
wasted requests (at most `connections` at the end of a read, and after each change found);
never a skipped or doubled record. A read goes as far ahead as full pages have come in a
row (one after the first, two after the second, up to `connections`), so a read of one or
two pages makes the same requests as before, and a long one soon uses every connection.

The algorithms here decide what to ask for; a `fetch` callable given by the API client does
the asking. A read that had to step back logs it at INFO: the store changed under it. Nothing
here holds more than `connections` pages (plus one prefetched page) in memory, and the reads
of one API share one budget of `connections` answers fetched ahead (`prefetch.Ahead`); offset
reads keep only the keys of the last two pages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from centra_pipeline.centra.errors import CentraError
from centra_pipeline.centra.http import Response
from centra_pipeline.centra.jsonstream import RawRecord
from centra_pipeline.centra.page import Page, PageCounter
from centra_pipeline.centra.prefetch import Ahead

log = logging.getLogger("centra_pipeline.centra")

# `fetch(offset, limit)`: (params sent, records, response), or None for "nothing there".
Fetch = Callable[[int, int], tuple[dict[str, Any], list[RawRecord], Response] | None]
# `fetch(params)`: (the response's envelope, its records, the response).
FetchParams = Callable[[dict[str, Any]], tuple[dict[str, Any], list[RawRecord], Response]]


def offset_pages(
    fetch: Fetch,
    *,
    api: str,
    endpoint: str,
    key: Callable[[RawRecord], str],
    limit: int,
    connections: int = 1,
    budget: threading.Semaphore | None = None,
) -> Iterator[Page]:
    """Anchored offset paging (both APIs; see the module docstring).

    `fetch(offset, limit)` returns (params, records, response), or None when the server says
    there is nothing (read as an empty page). `key` identifies a record. Pages carry only new
    records; the read ends with a page of none (has_more false). A server that ignores
    `offset` would be paged forever: refused. With `connections` > 1, once pages come back
    full the requests an unchanged set would get next are made ahead (see "Concurrent
    reads" above).
    """
    if connections <= 1:
        return _AnchoredRead(fetch, api=api, endpoint=endpoint, key=key, limit=limit).pages()
    return _read_ahead(
        fetch,
        connections,
        budget,
        lambda ahead: _AnchoredRead(
            ahead, api=api, endpoint=endpoint, key=key, limit=limit, ahead=ahead
        ).pages(),
    )


def numbered_pages(
    fetch: FetchParams,
    *,
    endpoint: str,
    filters: dict[str, Any],
    limit: int,
    connections: int = 1,
    budget: threading.Semaphore | None = None,
) -> Iterator[Page]:
    """Products and stock: `page` numbers while the response has a `next` link. With
    `connections` > 1, after a full page with a `next` link the following page numbers are
    requested ahead (page numbers cannot shift here: see the module docstring)."""
    if connections <= 1:
        return _numbered(fetch, endpoint, filters, limit, None)
    return _read_ahead(
        fetch,
        connections,
        budget,
        lambda ahead: _numbered(ahead, endpoint, filters, limit, ahead),
    )


def _numbered(
    fetch: FetchParams,
    endpoint: str,
    filters: dict[str, Any],
    limit: int,
    ahead: Ahead | None,
) -> Iterator[Page]:
    pages = PageCounter(endpoint)
    number, streak = 1, 0

    def params_of(n: int) -> dict[str, Any]:
        return {**filters, "limit": limit, "page": n}

    while True:
        params = params_of(number)
        envelope, records, response = fetch(_Params(params))
        has_more = bool(envelope.get("next")) and bool(records)
        streak = streak + 1 if has_more and len(records) >= limit else 0
        if ahead is not None and streak:
            depth = min(streak, ahead.connections)  # as in _AnchoredRead._expected_after
            ahead.expect((_Params(params_of(n)),) for n in range(number + 1, number + 1 + depth))
        yield pages.page(params, response, records, received=len(records), has_more=has_more)
        if not has_more:
            return
        number += 1


class _Params(dict):
    """Request parameters that can key a request made ahead (a dict is not hashable)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda kv: kv[0])))


def _read_ahead(
    fetch: Callable[..., Any],
    connections: int,
    budget: threading.Semaphore | None,
    read: Callable[[Ahead], Iterator[Page]],
) -> Iterator[Page]:
    ahead = Ahead(fetch, connections, budget)
    try:
        yield from read(ahead)
    finally:
        ahead.close()


@dataclass(frozen=True)
class _Reply:
    """One response of an offset read, placed against the records read before it."""

    params: dict[str, Any]
    records: list[RawRecord]
    response: Response | None  # None: the server said there is nothing at this offset
    keys: list[str]
    last_known: int  # index of the last record read before; -1 if it holds none

    @property
    def fresh(self) -> list[RawRecord]:
        return self.records[self.last_known + 1 :]

    @property
    def only_known(self) -> bool:
        return self.last_known == len(self.keys) - 1


@dataclass
class _AnchoredRead:
    """The state of one anchored offset read: where to ask next, and what was read there."""

    fetch: Fetch
    api: str
    endpoint: str
    key: Callable[[RawRecord], str]
    limit: int
    offset: int = 0  # of the next request
    # Keys of the last two responses that brought new records: records read at the read
    # position. Two, because arrivals between the previous page's records can push its last
    # ones past the end of the next response: they must still be recognised after it.
    recent: set[str] = field(default_factory=set)
    known: set[str] = field(default_factory=set)
    known_first: str | None = None  # the first key of the last such response
    known_size: int = 0  # and how many records it held
    anchored: bool = False  # the next response should start with the last record read
    lost_at: int | None = None  # where the previous page was not found, while searching
    widest: int = 0  # the most records one response held: the server's page, as far as we know
    ahead: Ahead | None = None  # makes the requests an unchanged set would get next, early
    last_received: int = 0  # records in the previous response
    full_streak: int = 0  # full responses in a row

    def __post_init__(self) -> None:
        self.counter = PageCounter(self.endpoint)

    def pages(self) -> Iterator[Page]:
        while True:
            reply = self._ask()
            self._refuse_a_server_ignoring_offset(reply)
            if self.anchored and reply.last_known < 0:
                # No record of the previous page: records left the set in front of it.
                if self.offset > 0:
                    self._step_back()
                    continue
                self._refuse_when_lost()
                # All that was read has left (`known` holds it all): everything is unread.
            self._log_when_found(reply)
            if reply.fresh:
                yield self._page(reply, has_more=True)
                self._advance_past(reply)
                continue
            if self.anchored and len(reply.records) > 1:
                # Only records read before, the last of them at the end: more may follow it.
                self.offset += len(reply.records) - 1
                self.counter.reread()
                continue
            # The end: an empty page, or only the record read last.
            if reply.response is not None:
                yield self._page(reply, has_more=False)
            return

    def _ask(self) -> _Reply:
        asked = self.limit + 1 if self.anchored else self.limit
        fetched = self.fetch(self.offset, asked)
        params, records, response = fetched if fetched is not None else ({}, [], None)
        self.widest = max(self.widest, len(records))
        if self.ahead is not None:
            self.ahead.expect(self._expected_after(self.offset, asked, len(records)))
        self.last_received = len(records)
        keys = [self.key(record) for record in records]
        last = max((i for i, k in enumerate(keys) if k in self.known), default=-1)
        return _Reply(params, records, response, keys, last)

    def _expected_after(self, offset: int, asked: int, received: int) -> Iterator[tuple]:
        """The requests that follow this one if the set does not change: each from the last
        record of the one before, `limit + 1` wide. Only after a full response (or one as
        wide as the last: a server that clamps the limit); a short one is likely the end,
        and requests past the end would be waste."""
        full = received >= 2 and (received == asked or received == self.last_received)
        self.full_streak = self.full_streak + 1 if full else 0
        if not full or self.ahead is None:
            return
        step = self.limit if received == asked else received - 1
        start = offset + received - 1
        # As far ahead as full pages have come in a row, up to the connections: a read of a
        # page or two wastes nothing past its end, a long one soon uses every connection.
        for n in range(min(self.full_streak, self.ahead.connections)):
            yield (start + n * step, self.limit + 1)

    def _page(self, reply: _Reply, *, has_more: bool) -> Page:
        return self.counter.page(
            reply.params,
            reply.response,
            reply.fresh,
            received=len(reply.records),
            has_more=has_more,
        )

    def _refuse_a_server_ignoring_offset(self, reply: _Reply) -> None:
        # With an anchor the second response should start with the first page's last record;
        # without one (after a one-record page), with a new record. Starting with the first
        # page's first record and bringing nothing new, it is the first page again. (Later,
        # a page can come back when records leave in front as fast as the read advances.)
        same_page = (
            reply.keys[:1] == [self.known_first] and reply.only_known and self.lost_at is None
        )
        if same_page and self.counter.number == 1 and (not self.anchored or self.known_size > 1):
            raise CentraError(
                f"the {self.api} returned the same page for offset {self.offset} as for the "
                f"previous one ({self.endpoint}): it ignores `offset`, so paging cannot go on",
                api=self.api,
                endpoint=self.endpoint,
            )

    def _step_back(self) -> None:
        # What is at `offset` now lies past the previous page. Half a window keeps windows
        # overlapping, even if a few more records leave while we search.
        self.lost_at = self.offset if self.lost_at is None else self.lost_at
        self.offset = max(0, self.offset - max(1, self.widest // 2))
        self.counter.reread()

    def _refuse_when_lost(self) -> None:
        if self.counter.number > 2:
            raise CentraError(
                f"the {self.api} result set changed so much during the read ({self.endpoint}) "
                "that every record of the last two pages read left it: the read cannot tell "
                "where it was, so it stops rather than skip records; run it again",
                api=self.api,
                endpoint=self.endpoint,
            )

    def _log_when_found(self, reply: _Reply) -> None:
        if self.lost_at is None:
            return
        if reply.fresh or not reply.records or len(reply.records) == 1:
            log.info(
                "%s %s: records left the result set during the read (the previous page was "
                "no longer at offset %d); stepped back, found it after %d re-read(s) and read "
                "on from offset %d",
                self.api,
                self.endpoint,
                self.lost_at,
                self.counter.rereads,
                self.offset,
            )
            self.lost_at = None

    def _advance_past(self, reply: _Reply) -> None:
        self.known = self.recent | set(reply.keys)
        self.recent = set(reply.keys)
        self.known_first, self.known_size = reply.keys[0], len(reply.keys)
        # One record leaves no room to overlap, unless one was all we asked for.
        received = len(reply.records)
        self.anchored = received > 1 or self.limit == 1
        self.offset += received - 1 if self.anchored else received
