"""Extraction: execute one stream's read plan, page by page, into one lake load.

What to read is each stream's own business (its module in `centra_pipeline/streams/` builds
a `ReadPlan`); reconciliation passes and refreshes by key are built the same way for every
Order API stream (reconcile_reads.py, plan.py), and orders reads also apply the webhook inbox
(inbox_reads.py). This module pages through the plan: flattens each page into table rows,
keeps only what the plan says to land, writes it to the lake, and commits the load with the
cursor it proves. The warehouse commits that cursor together with the data; the extractor
never writes a cursor (docs/architecture.md, "nothing is lost").
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from centra_pipeline.centra.jsonstream import RawRecord
from centra_pipeline.centra.order_api import OrderApi, Page
from centra_pipeline.centra.quirks import format_local_datetime
from centra_pipeline.centra.shop_api import ShopApi
from centra_pipeline.storage.lake import Lake, LoadManifest, LoadWriter, new_load_id
from centra_pipeline.storage.merge import CURSOR_MODES
from centra_pipeline.storage.warehouse import Warehouse
from centra_pipeline.streams import STREAMS, Stream
from centra_pipeline.streams.personal import Suppression
from centra_pipeline.streams.rows import flatten, record_hash
from centra_pipeline.sync import inbox_reads, reconcile_reads
from centra_pipeline.sync.allocators import lean_allocators
from centra_pipeline.sync.plan import ExtractOptions, ReadPlan, int_keys, lookups
from centra_pipeline.testing.failpoints import failpoint
from centra_pipeline.webhooks.inboxes import InboxRef

log = logging.getLogger(__name__)


@dataclass
class Progress:
    stream: str
    pages: int = 0
    records: int = 0
    landed: int = 0
    started: float = field(default_factory=time.monotonic)
    done: bool = False

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        state = "done" if self.done else "reading"
        return (
            f"{self.stream}: {state}, {self.records:,} records in {self.pages:,} pages "
            f"({rate:,.0f}/s), {self.landed:,} landed"
        )


ProgressCallback = Callable[[Progress], None]


class Extractor:
    """Reads streams with the given clients into the lake, using the warehouse's state."""

    def __init__(
        self,
        *,
        lake: Lake,
        warehouse: Warehouse,
        timezone: str,
        order_api: OrderApi | None = None,
        shop_api: ShopApi | None = None,
        progress: ProgressCallback | None = None,
        progress_interval: float = 2.0,
        inbox: InboxRef | None = None,
        suppression: Suppression | None = None,
    ) -> None:
        self.lake = lake
        self.warehouse = warehouse
        self.tz = timezone
        self.order_api = order_api
        self.shop_api = shop_api
        self.progress = progress
        self.progress_interval = progress_interval
        self.inbox = inbox
        # People erased with `forget`: their records are erased before anything is compared
        # or landed (streams/personal.py).
        self.suppression = suppression

    def run(self, stream_name: str, options: ExtractOptions | None = None) -> LoadManifest:
        options = options or ExtractOptions()
        stream = STREAMS[stream_name]
        self._check_can_read(stream, options)
        lean_allocators()
        if options.mode == "reconcile_auto":
            options = replace(options, mode=reconcile_reads.pass_due(self, stream, options))
        self.lake.clean_abandoned(stream_name)
        cursor = self.warehouse.state(stream_name).cursor
        plan = self._plan(stream, options, cursor)
        if stream.applies_webhooks:
            plan = inbox_reads.with_inbox(self, stream, plan, options)
        started_at = datetime.now(UTC)
        writer = self.lake.writer(
            stream, new_load_id(stream_name, started_at), options.mode, started_at
        )
        progress = Progress(stream_name)
        log.info("%s: %s read %s", stream_name, options.mode, plan.describe())
        try:
            with relaxed_runtime():
                manifest = self._read(plan, stream, writer, progress, options, cursor)
        except BaseException:
            writer.abort()
            raise
        progress.done = True
        if self.progress:
            self.progress(progress)
        log.info(
            "%s: landed %s of %s records (%s pages, %s requests, %s retries) as %s",
            stream_name,
            progress.landed,
            progress.records,
            progress.pages,
            manifest.requests,
            manifest.retries,
            manifest.load_id,
        )
        return manifest

    def _check_can_read(self, stream: Stream, options: ExtractOptions) -> None:
        if stream.api == "order_api" and self.order_api is None:
            raise ValueError(f"stream {stream.name} needs an Order API client")
        if stream.api == "shop_api" and self.shop_api is None:
            raise ValueError(f"stream {stream.name} needs a Shop API client")
        if options.mode == "refresh" and stream.lookup is None:
            raise ValueError(f"stream {stream.name} has no refresh by key")

    def _plan(self, stream: Stream, options: ExtractOptions, cursor: str | None) -> ReadPlan:
        """What to read for this stream in this mode: the window, the pages, the cursor."""
        if options.mode == "reconcile_open" and stream.open_records is None:
            # Customers, products, stock and the catalogue have nothing that stays open:
            # their modified filters and full reads see every change.
            return ReadPlan({"reconcile": "open", "nothing_open": True}, [])
        if options.mode in ("reconcile", "reconcile_open") and stream.read_all is not None:
            return reconcile_reads.plan(self, stream, options)
        if options.mode == "refresh":
            return self._refresh_plan(stream, options)
        return stream.plan(self, options, cursor)

    def _refresh_plan(self, stream: Stream, options: ExtractOptions) -> ReadPlan:
        """Re-read records by key (`GET /orders?order=N` and the like), one request each."""
        assert stream.lookup is not None and self.order_api is not None
        api = self.order_api
        keys = tuple(int_keys(options.keys))
        label = stream.parent.name.removesuffix("s")  # the manifest's "order": [numbers]
        return ReadPlan(
            {label: list(keys)},
            lookups(keys, lambda key: stream.lookup(api, key)),
            requested_keys=keys,
            expected_keys=lambda: keys,
        )

    def _read(
        self,
        plan: ReadPlan,
        stream: Stream,
        writer: LoadWriter,
        progress: Progress,
        options: ExtractOptions,
        cursor_before: str | None,
    ) -> LoadManifest:
        """Page through the plan, flattening and writing what it keeps of each page; then
        commit the load with the cursor it proves."""
        sessions = self._sessions()
        before = _request_totals(sessions)
        read = _ReadState()
        # The first report after an interval: a short read reports only its end (every line
        # is an event in the run's log, and most reads of a run take a page or two).
        last_report = time.monotonic()
        for page in plan.pages:
            read.page(page, plan.cursor_field)
            progress.pages += 1
            progress.records += len(page.records)
            records = page.records
            if self.suppression and stream.parent.personal_columns:
                records = self.suppression.apply(stream.parent, records)
            records = _to_land(plan, stream, records, read.seen_keys)
            if records:
                writer.write(
                    flatten(
                        stream,
                        records,
                        load_id=writer.manifest.load_id,
                        extracted_at=page.fetched_at,
                        seq_start=read.seq,
                        tz=self.tz,
                    )
                )
                read.seq += len(records)
                progress.landed += len(records)
            if progress.pages == 1:
                failpoint("extract.after_first_page")
            if self.progress and time.monotonic() - last_report >= self.progress_interval:
                last_report = time.monotonic()
                self.progress(progress)
        requests = _request_totals(sessions, since=before)
        return writer.commit(
            window=plan.window,
            cursor_before=cursor_before,
            cursor_after=self._cursor_after(
                plan, options, read.cursor_max, read.server_start, cursor_before
            ),
            pages=progress.pages,
            records_read=progress.records,
            requests=requests["requests"],
            retries=requests["retries"],
            rereads=read.rereads,
            bytes=requests["bytes"],
            requested_keys=list(plan.requested_keys),
            missing_keys=_not_returned(plan, read.seen_keys),
            inbox=plan.inbox,
        )

    def _sessions(self) -> list[Any]:
        """The API sessions, for the request counts of a read (the catalogue's targeted
        read uses both APIs; counts are before/after differences, so an idle one adds 0)."""
        return [api.session for api in (self.order_api, self.shop_api) if api is not None]

    def _cursor_after(
        self,
        plan: ReadPlan,
        options: ExtractOptions,
        cursor_max: str | None,
        server_start: datetime | None,
        cursor_before: str | None,
    ) -> str | None:
        if options.mode not in CURSOR_MODES:
            return None  # backfills and refreshes leave the incremental cursor alone
        if plan.cursor_field:
            return cursor_max or cursor_before
        if server_start is None:
            return cursor_before
        return format_local_datetime(server_start, self.tz)


_relaxed_lock = threading.Lock()
_relaxed_holders = 0
_relaxed_saved: tuple[tuple[int, ...], float] = ((), 0.0)
LOADING_SWITCH_INTERVAL = 0.02  # seconds a thread may hold the GIL while loads stream


@contextmanager
def relaxed_runtime() -> Iterator[None]:
    """Collect cyclic garbage rarely, and switch threads less often, while loads stream.

    Pages are trees of fresh dicts and lists without cycles (reference counting frees them);
    with the default thresholds the collector keeps rescanning every live object, which made
    parsing and flattening a page of 1,000 orders take 0.63 s instead of 0.30 s while other
    pages were alive. Objects alive before the first load are frozen out of the scans.

    Parsing and flattening hold the GIL; the threads fetching pages ahead need it only to
    hand over a response. At the default 5 ms switch interval they kept interrupting the
    parse: a full sync of 100k orders with 150 ms of latency took 59.6 / 56.8 s at 5 ms and
    53.0 / 51.0 s at 20 ms (interleaved runs, one emulator).

    Both settings are process-wide and streams load concurrently, so the first load to start
    relaxes them and the last to finish restores them (not the first to finish).
    """
    global _relaxed_holders, _relaxed_saved
    with _relaxed_lock:
        if _relaxed_holders == 0:
            _relaxed_saved = (gc.get_threshold(), sys.getswitchinterval())
            gc.freeze()
            gc.set_threshold(100_000, 50, 1000)
            sys.setswitchinterval(LOADING_SWITCH_INTERVAL)
        _relaxed_holders += 1
    try:
        yield
    finally:
        with _relaxed_lock:
            _relaxed_holders -= 1
            if _relaxed_holders == 0:
                thresholds, interval = _relaxed_saved
                gc.set_threshold(*thresholds)
                sys.setswitchinterval(interval)
                gc.unfreeze()


def _request_totals(sessions: list[Any], since: dict[str, int] | None = None) -> dict[str, int]:
    totals = {"requests": 0, "retries": 0, "bytes": 0}
    for session in sessions:
        stats = session.stats.snapshot()
        for name in totals:
            totals[name] += stats[name]
    if since is not None:
        totals = {name: value - since[name] for name, value in totals.items()}
    return totals


@dataclass
class _ReadState:
    """What a read has learnt so far: the cursor it proves, Centra's clock at its start, the
    keys it saw, the next row position, pages asked again."""

    cursor_max: str | None = None
    server_start: datetime | None = None
    seen_keys: set[Any] = field(default_factory=set)
    seq: int = 0
    rereads: int = 0

    def page(self, page: Page, cursor_field: str | None) -> None:
        self.rereads += page.rereads
        if self.server_start is None:
            self.server_start = page.server_time or page.fetched_at
        if cursor_field:
            self.cursor_max = _max_field(page.records, cursor_field, self.cursor_max)


def _to_land(
    plan: ReadPlan, stream: Stream, records: list[RawRecord], seen_keys: set[Any]
) -> list[RawRecord]:
    """The records of a page the plan lands: a reconciliation, an incremental window or the
    catalogue land only what differs from the warehouse. Keys the plan expects back are
    noted as seen, landed or not."""
    if plan.expected_keys is not None:  # returned, whether landed or not
        seen_keys.update(stream.key(r.obj) for r in records)
    if plan.index is not None:
        flags = plan.index.changed(
            [stream.key(r.obj) for r in records], [record_hash(r.raw) for r in records]
        )
        records = [r for r, changed in zip(records, flags, strict=True) if changed]
    if plan.known_hashes is not None:
        known = plan.known_hashes
        records = [r for r in records if known.get(stream.key(r.obj)) != record_hash(r.raw)]
    return records


def _not_returned(plan: ReadPlan, seen_keys: set[Any]) -> list[Any]:
    """Keys the plan expected back that Centra did not return (they are marked missing)."""
    missing = plan.index.unseen() if plan.index is not None else []
    if plan.expected_keys is not None:
        known = set(missing)
        missing += [k for k in plan.expected_keys() if k not in seen_keys and k not in known]
    return missing


def _max_field(records: list[RawRecord], field_name: str, current: str | None) -> str | None:
    best = current
    for record in records:
        value = record.obj.get(field_name)
        if isinstance(value, str) and value[:4] != "0000" and (best is None or value > best):
            best = value[:19]
    return best
