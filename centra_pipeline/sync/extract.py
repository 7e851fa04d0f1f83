"""Extraction: read one stream from Centra, page by page, into one lake load.

Per-stream strategy (docs/architecture.md), as far as the documented APIs allow:

| stream    | incremental read                                 | cursor (naive store-local)        |
|-----------|--------------------------------------------------|-----------------------------------|
| orders    | `newer_than` = cursor − lookback (default 7 d)   | max `orderDate` read              |
| returns   | `newer_than` = cursor − lookback (min 7 d); open | max `date` read                   |
|           | returns older than that are re-read by id        |                                   |
| customers | `modified` = cursor − overlap                    | max `modified` read               |
| products  | `modified` = cursor − overlap                    | Centra's clock (`Date`) at start  |
| stock     | `stock_modified` = cursor − overlap              | Centra's clock (`Date`) at start  |
| catalogue | daily full read; hourly: the products the Order | Centra's clock at start           |
|           | API reports changed since the cursor, re-read by |                                   |
|           | `silkProduct`; only changed records are landed   |                                   |

Orders have no modified-since filter in the Order API, so changes to older orders arrive
through webhooks (`mode="refresh"`: `GET /orders?order=N` per order number, by the sensor's
runs and by every orders read, see `Extractor._with_inbox`) and through the lookback window.
What both miss, reconciliation finds: `mode="reconcile"` (every record) and
`"reconcile_open"` (the days holding open orders and returns) compare what they read with
the warehouse and land only what changed (see reconcile.py and docs/architecture.md).

Products and stock rows carry no documented modification timestamp, so their cursor is the
server's own clock when the read started (the `Date` header), which is the one watermark that
needs no assumption about our clock agreeing with Centra's.

The Shop API has no modified filter, and a full catalogue read costs the same whether one
product changed or none. So the catalogue is read in full on the first run and then once every
CENTRA_CATALOGUE_FULL_READ_HOURS (default 24; 0 = every run), which also finds products that
left the catalogue. In between, a run asks the Order API which products changed since the
catalogue's cursor (`GET /products?modified=`, `GET /stock?stock_modified=`, an overlap
included) and re-reads only those through `POST /products/filter` with `silkProduct`. A
catalogue-only change that Centra does not reflect in either Order API filter (if Centra has
any) waits for the next full read.

The cursor a load proves is written to its manifest; the warehouse commits it together with
the data (the extractor never writes the cursor).
"""

from __future__ import annotations

import gc
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from centra_pipeline.centra.http import prefetch
from centra_pipeline.centra.jsonstream import RawRecord
from centra_pipeline.centra.order_api import OrderApi, Page
from centra_pipeline.centra.quirks import (
    format_local_datetime,
    normalize_local,
    parse_local_datetime,
    shift_local,
)
from centra_pipeline.centra.shop_api import ShopApi
from centra_pipeline.settings import (
    DEFAULT_CATALOGUE_FULL_READ_HOURS,
    DEFAULT_ORDERS_LOOKBACK_DAYS,
    DEFAULT_RECONCILE_FULL_DAYS,
)
from centra_pipeline.storage.lake import Lake, LoadManifest, LoadWriter, new_load_id
from centra_pipeline.storage.warehouse import Warehouse
from centra_pipeline.streams.model import STREAMS, Stream
from centra_pipeline.streams.rows import flatten, record_hash
from centra_pipeline.sync.reconcile import (
    OPEN_STREAMS,
    RECONCILE_MODES,
    KeyIndex,
    day_ranges,
)
from centra_pipeline.testing.failpoints import failpoint
from centra_pipeline.webhooks.inbox import ORDER_REFRESH_TYPES, Inbox

log = logging.getLogger("centra_pipeline.sync.extract")

MODES = ("incremental", "full_refresh", "backfill", "refresh", *RECONCILE_MODES)
# The field holding each Order API stream's key (its table's primary key).
KEY_FIELDS = {
    "orders": "orderId",
    "returns": "returnId",
    "customers": "customerId",
    "products": "stockItemId",
    "stock": "stockItemId",
}
INBOX_EVENTS_PER_READ = 5000
DEFAULT_OVERLAP = timedelta(hours=1)
DEFAULT_CATALOGUE_FULL_READ_EVERY = timedelta(hours=DEFAULT_CATALOGUE_FULL_READ_HOURS)
SILK_PRODUCTS_PER_FILTER = 50  # product ids per POST /products/filter of a targeted read
DEFAULT_RETURNS_LOOKBACK = timedelta(days=7)
OPEN_RETURNS_PER_RUN = 100  # oldest-read first, so every open return is revisited in turn


@dataclass(frozen=True)
class ExtractOptions:
    mode: str = "incremental"
    window_start: str | None = None  # backfill: naive store-local, inclusive
    window_end: str | None = None  # backfill: naive store-local, exclusive
    keys: tuple[Any, ...] = ()  # refresh: order numbers / return ids / customer ids
    lookback: timedelta = timedelta(days=DEFAULT_ORDERS_LOOKBACK_DAYS)
    overlap: timedelta = DEFAULT_OVERLAP
    page_size: int | None = None
    # catalogue: how often it is read in full (0 = every run); in between, changed products
    catalogue_full_read_every: timedelta = DEFAULT_CATALOGUE_FULL_READ_EVERY
    # reconcile_auto: a stream whose last full reconciliation is this old gets a full one
    reconcile_full_every: timedelta = timedelta(days=DEFAULT_RECONCILE_FULL_DAYS)
    # orders: apply the webhook inbox's unapplied events (up to this seq; None = all stored)
    apply_inbox: bool = True
    inbox_through: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "backfill":
            if not self.window_start or not self.window_end:
                raise ValueError("a backfill needs both window_start and window_end")
            start = normalize_local(self.window_start)
            end = normalize_local(self.window_end)
            if start >= end:
                raise ValueError(f"backfill window is empty: {start} is not before {end}")
        if self.mode == "refresh" and not self.keys and self.inbox_through is None:
            raise ValueError("a refresh needs the keys (order numbers, ids) to read")
        if (
            self.lookback < timedelta(0)
            or self.overlap < timedelta(0)
            or self.catalogue_full_read_every < timedelta(0)
        ):
            raise ValueError(
                "lookback, overlap and the catalogue's full-read interval must not be negative"
            )


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
        inbox_path: Path | None = None,
    ) -> None:
        self.lake = lake
        self.warehouse = warehouse
        self.tz = timezone
        self.order_api = order_api
        self.shop_api = shop_api
        self.progress = progress
        self.progress_interval = progress_interval
        self.inbox_path = inbox_path

    # --------------------------------------------------------------------------------------
    def run(self, stream_name: str, options: ExtractOptions | None = None) -> LoadManifest:
        options = options or ExtractOptions()
        stream = STREAMS[stream_name]
        if stream.api == "order_api" and self.order_api is None:
            raise ValueError(f"stream {stream_name} needs an Order API client")
        if stream.api == "shop_api" and self.shop_api is None:
            raise ValueError(f"stream {stream_name} needs a Shop API client")
        if options.mode == "refresh" and stream_name not in ("orders", "returns", "customers"):
            raise ValueError(f"stream {stream_name} has no refresh by key")
        if options.mode == "reconcile_auto":
            options = replace(options, mode=self._reconcile_pass(stream_name, options))
        self.lake.clean_abandoned(stream_name)
        state = self.warehouse.state(stream_name)
        plan = self._plan(stream, options, state.cursor)
        if stream_name == "orders":
            plan = self._with_inbox(plan, options)
        started_at = datetime.now(UTC)
        load_id = new_load_id(stream_name, started_at)
        writer = self.lake.writer(stream, load_id, options.mode, started_at)
        progress = Progress(stream_name)
        log.info("%s: %s read %s", stream_name, options.mode, plan.describe())
        try:
            with relaxed_gc():
                manifest = self._read(plan, stream, writer, progress, options, state.cursor)
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
            load_id,
        )
        return manifest

    def _read(
        self,
        plan: _Plan,
        stream: Stream,
        writer: LoadWriter,
        progress: Progress,
        options: ExtractOptions,
        cursor_before: str | None,
    ) -> LoadManifest:
        """Page through the plan, flattening and writing each page; then commit the load."""
        sessions = self._sessions()
        before = _request_totals(sessions)
        cursor_max: str | None = None
        server_start: datetime | None = None
        seen_keys: set[Any] = set()
        seq = 0
        rereads = 0
        last_report = 0.0
        for page in plan.pages:
            rereads += page.rereads
            if server_start is None:
                server_start = page.server_time or page.fetched_at
            progress.pages += 1
            progress.records += len(page.records)
            records = page.records
            if plan.cursor_field:
                cursor_max = _max_field(records, plan.cursor_field, cursor_max)
            if plan.index is not None:
                flags = plan.index.changed(
                    [_key(r, plan.key_field) for r in records],
                    [record_hash(r.raw) for r in records],
                )
                records = [r for r, changed in zip(records, flags, strict=True) if changed]
            if plan.expected_keys is not None:
                seen_keys.update(_key(r, plan.key_field) for r in records)
            if plan.known_hashes is not None:
                records = [
                    r
                    for r in records
                    if plan.known_hashes.get(_key(r, plan.key_field)) != record_hash(r.raw)
                ]
            if records:
                batch = flatten(
                    stream,
                    records,
                    load_id=writer.manifest.load_id,
                    extracted_at=page.fetched_at,
                    seq_start=seq,
                    tz=self.tz,
                )
                seq += len(records)
                writer.write(batch)
                progress.landed += len(records)
            if progress.pages == 1:
                failpoint("extract.after_first_page")
            now = time.monotonic()
            if self.progress and now - last_report >= self.progress_interval:
                last_report = now
                self.progress(progress)
        after = _request_totals(sessions)
        missing: list[Any] = []
        if plan.expected_keys is not None:
            missing = [k for k in plan.expected_keys() if k not in seen_keys]
        if plan.index is not None:
            missing = plan.index.unseen()
        return writer.commit(
            window=plan.window,
            cursor_before=cursor_before,
            cursor_after=self._cursor_after(plan, options, cursor_max, server_start, cursor_before),
            pages=progress.pages,
            records_read=progress.records,
            requests=after["requests"] - before["requests"],
            retries=after["retries"] - before["retries"],
            rereads=rereads,
            bytes=after["bytes"] - before["bytes"],
            requested_keys=list(plan.requested_keys),
            missing_keys=missing,
            inbox=plan.inbox,
        )

    # --------------------------------------------------------------------------------------
    def _sessions(self) -> list[Any]:
        """The API sessions, for the request counts of a read (the catalogue's targeted
        read uses both APIs; counts are before/after differences, so an idle one adds 0)."""
        return [api.session for api in (self.order_api, self.shop_api) if api is not None]

    def _cursor_after(
        self,
        plan: _Plan,
        options: ExtractOptions,
        cursor_max: str | None,
        server_start: datetime | None,
        cursor_before: str | None,
    ) -> str | None:
        if options.mode not in ("incremental", "full_refresh"):
            return None  # backfills and refreshes leave the incremental cursor alone
        if plan.cursor_field:
            return cursor_max or cursor_before
        if server_start is None:
            return cursor_before
        return format_local_datetime(server_start, self.tz)

    def _plan(self, stream: Stream, options: ExtractOptions, cursor: str | None) -> _Plan:
        """What to read for this stream in this mode: the window, the pages, the cursor."""
        name, mode, size = stream.name, options.mode, options.page_size
        incremental = mode == "incremental" and cursor is not None
        if mode == "reconcile_open" and name not in OPEN_STREAMS:
            # Customers, products, stock and the catalogue have nothing that stays open:
            # their modified filters and full reads see every change.
            return _Plan({"reconcile": "open", "nothing_open": True}, [])
        if mode in ("reconcile", "reconcile_open") and name != "catalogue":
            return self._reconcile_plan(stream, options)
        if name == "catalogue":
            shop = self.shop_api
            assert shop is not None
            if mode == "backfill":
                raise ValueError("the Shop API catalogue has no date filter to backfill by")
            index = self.warehouse.catalogue_index()
            known: dict[str, str] | None = {p: digest for p, (digest, _) in index.items()}
            # Land only what differs from the warehouse, except with --full-refresh, and
            # while a landed load waits to be merged (a run died in between): compared with
            # the warehouse alone, a product changed back since would not be landed, and the
            # pending, older version would win the merge.
            if mode == "full_refresh" or self.warehouse.pending_loads(self.lake, name):
                known = None
            if incremental and not self._catalogue_full_read_due(options):
                return self._catalogue_changes(cursor, options, index, known)
            # A full read is the catalogue's reconciliation: it lands only what changed and
            # marks entries that left the catalogue.
            window: dict[str, Any] = {"full_read": True}
            if mode == "reconcile":
                window["reconcile"] = "full"
            return _Plan(
                window,
                prefetch(shop.iter_products(page_size=size)),
                key_field="product",
                known_hashes=known,
                expected_keys=lambda: sorted(index),
            )
        api = self.order_api
        assert api is not None
        if mode == "refresh":
            fetch, key_field, label = {
                "orders": (api.get_order, "orderId", "order"),
                "returns": (api.get_return, "returnId", "return"),
                "customers": (api.get_customer, "customerId", "customer"),
            }[name]
            keys = tuple(_int_keys(options.keys))
            return _Plan(
                {label: list(keys)},
                _lookups(keys, fetch),
                key_field=key_field,
                requested_keys=keys,
                expected_keys=lambda: keys,
            )
        if name in ("orders", "returns"):
            if mode == "backfill":
                window = _backfill_window(options)
            elif incremental and name == "orders":
                window = {"newer_than": shift_local(cursor, -options.lookback)}
            elif incremental:
                lookback = max(options.lookback, DEFAULT_RETURNS_LOOKBACK)
                window = {"newer_than": shift_local(cursor, -lookback)}
            else:
                window = {}
            if name == "orders":
                pages: Iterable[Page] = prefetch(api.iter_orders(**window, page_size=size))
                return _Plan(window, pages, cursor_field="orderDate")
            pages = prefetch(api.iter_returns(**window, page_size=size))
            if incremental:
                # A return's `completed` flips later and nothing filters on it: re-read the
                # returns still open that are older than the window, one by one.
                open_ids = self._open_returns_before(window["newer_than"])
                if open_ids:
                    window["open_returns_reread"] = len(open_ids)
                    pages = itertools.chain(pages, _lookups(tuple(open_ids), api.get_return))
            return _Plan(window, pages, cursor_field="date")
        param, read, cursor_field = {
            "customers": ("modified", api.iter_customers, "modified"),
            "products": ("modified", api.iter_products, None),
            "stock": ("stock_modified", api.iter_stock, None),
        }[name]
        window = _modified_window(param, mode, cursor, options)
        return _Plan(window, prefetch(read(**window, page_size=size)), cursor_field=cursor_field)

    # --- reconciliation (see reconcile.py) ---------------------------------------------------
    def _reconcile_pass(self, stream: str, options: ExtractOptions) -> str:
        """`reconcile_auto`: the full pass when the last one is at least the interval old (or
        there was none), else the open pass."""
        last = self.warehouse.last_full_reconcile(stream)
        if last is None or datetime.now(UTC) - last >= options.reconcile_full_every:
            return "reconcile"
        return "reconcile_open"

    def _reconcile_plan(self, stream: Stream, options: ExtractOptions) -> _Plan:
        """Re-read a stream in full, or the days holding its open records, comparing each
        record with the warehouse: only new and changed records are landed, and rows Centra
        no longer returns are marked missing."""
        api = self.order_api
        assert api is not None
        name, size = stream.name, options.page_size
        # While a landed load waits to be merged (a run died in between), land everything
        # read: compared with the warehouse alone, a record changed back since would not be
        # landed, and the pending, older version would win the merge.
        compare = not self.warehouse.pending_loads(self.lake, name)
        read = {
            "orders": api.iter_orders,
            "returns": api.iter_returns,
            "customers": api.iter_customers,
            "products": api.iter_products,
            "stock": api.iter_stock,
        }[name]
        if options.mode == "reconcile":
            return _Plan(
                {"reconcile": "full"},
                prefetch(read(page_size=size)),
                key_field=KEY_FIELDS[name],
                index=self.warehouse.full_index(name, compare=compare),
            )
        # The open pass: the store-local days that hold open records, each run of
        # consecutive days (or of days with less than a page of rows between them) read as
        # one date window, widened by a second each side as the edges of Centra's order
        # filters are undocumented. Every present row dated inside a range is expected back;
        # rows just outside come back too and are compared.
        ranges = day_ranges(
            self.warehouse.open_days(name, self.tz), merge_below=size or api.page_size
        )
        window: dict[str, Any] = {"reconcile": "open", "day_ranges": len(ranges)}
        if not ranges:
            return _Plan(window, [], key_field=KEY_FIELDS[name])
        window["days"] = f"{ranges[0].first} .. {ranges[-1].last}"
        pages = itertools.chain.from_iterable(read(**r.request(), page_size=size) for r in ranges)
        return _Plan(
            window,
            prefetch(pages),
            key_field=KEY_FIELDS[name],
            index=self.warehouse.open_index(name, ranges, self.tz, compare=compare),
        )

    # --- the webhook inbox ---------------------------------------------------------------------
    def _with_inbox(self, plan: _Plan, options: ExtractOptions) -> _Plan:
        """Add the orders of webhook events no load has applied yet to an orders read.

        The warehouse keeps a watermark per inbox (`pipeline.inbox_applied`), committed with
        the load that applied the events: every event up to it has had its order re-read
        after the event was stored. A load applies every unapplied event up to its target
        (a sensor run's last seq, or the newest stored event for a sync), so whichever of
        the sensor's runs and the syncs comes first applies an event, and the others find it
        applied: no event is lost, and none is applied twice. A read of every order (a full
        refresh or reconciliation) applies the events by reading everything after them; an
        incremental read looks up only the orders its window does not cover.
        """
        work = self._unapplied_events(options)
        if work is None:
            return plan
        if work.through <= work.after:
            if options.mode == "refresh" and options.inbox_through is not None:
                # A sensor run whose events a sync (or a later run) has applied already.
                plan.window = {"inbox": f"events up to seq {work.through} already applied"}
                plan.pages, plan.requested_keys, plan.expected_keys = [], (), None
            return plan
        plan.inbox = work.manifest()
        numbers = work.orders
        if options.mode in ("full_refresh", "reconcile") or (
            options.mode == "incremental" and not plan.window
        ):
            return plan  # every order is read anyway, after the events were stored
        assert self.order_api is not None
        lookup = self.order_api.get_order
        if options.mode == "refresh":
            # A sensor run: the orders of the events still unapplied, not its planned keys.
            plan.window["order"] = numbers
            plan.window["inbox"] = f"seq {work.after + 1}..{work.through}"
            plan.pages = _lookups(tuple(numbers), lookup)
            plan.requested_keys = tuple(numbers)
            plan.expected_keys = lambda: numbers
            return plan
        if "newer_than" in plan.window:
            numbers = self._orders_before(numbers, plan.window["newer_than"])
        plan.window["inbox_orders"] = len(numbers)
        if numbers:
            plan.pages = itertools.chain(plan.pages, _lookups(tuple(numbers), lookup))
            if plan.expected_keys is None and plan.index is None:
                # An order Centra no longer returns (a `delete` event, a status the plugin
                # hides) is marked missing, as a sensor refresh would.
                plan.expected_keys = lambda: numbers
                plan.key_field = KEY_FIELDS["orders"]
        return plan

    def _unapplied_events(self, options: ExtractOptions) -> _InboxWork | None:
        """The inbox's order events after the warehouse's watermark, up to the target: a
        sensor run's last seq, or the newest stored event. None: no inbox to apply."""
        if not options.apply_inbox or options.mode == "backfill" or self.inbox_path is None:
            return None
        if not self.inbox_path.exists():
            if options.inbox_through is not None:
                raise ValueError(f"no webhook inbox at {self.inbox_path} to refresh from")
            return None
        inbox = Inbox(self.inbox_path, readonly=True)
        try:
            after = self.warehouse.inbox_applied(inbox.inbox_id)
            through = inbox.max_seq() if options.inbox_through is None else options.inbox_through
            work = _InboxWork(inbox.inbox_id, after, through)
            cursor = after
            while cursor < through:
                batch = inbox.events_after(
                    cursor, limit=INBOX_EVENTS_PER_READ, types=ORDER_REFRESH_TYPES
                )
                batch = [e for e in batch if e.seq <= through]
                if not batch:
                    break
                for event in batch:
                    work.add(event.object_id)
                cursor = batch[-1].seq
        finally:
            inbox.close()
        return work

    def _orders_before(self, numbers: list[int], newer_than: str) -> list[int]:
        """The orders among `numbers` that an incremental window from `newer_than` does not
        read: dated before it, or not in the warehouse."""
        if not numbers or not self.warehouse.path.exists():
            return numbers
        start = parse_local_datetime(newer_than, self.tz)
        covered = {
            r[0]
            for r in self.warehouse.query(
                "SELECT order_id FROM main.orders WHERE order_id IN "
                "(SELECT unnest(?::BIGINT[])) AND order_date >= ?",
                [numbers, start],
            )
        }
        return [n for n in numbers if n not in covered]

    def _open_returns_before(self, newer_than: str) -> list[int]:
        """Ids of returns still open (not completed) created before the window, those read
        longest ago first, at most OPEN_RETURNS_PER_RUN per run."""
        if not self.warehouse.path.exists():
            return []
        before = parse_local_datetime(newer_than, self.tz)
        rows = self.warehouse.query(
            "SELECT return_id FROM main.returns WHERE NOT coalesce(completed, false) "
            "AND _missing_since IS NULL AND date < ? ORDER BY _extracted_at, return_id LIMIT ?",
            [before, OPEN_RETURNS_PER_RUN],
        )
        return [r[0] for r in rows]

    def _catalogue_full_read_due(self, options: ExtractOptions) -> bool:
        """Whether this run reads the catalogue in full: when a targeted read is impossible
        (no Order API client), when full reads are asked for every run, or when the last
        full read committed to the warehouse started at least the interval ago."""
        if self.order_api is None:
            log.info("catalogue: no Order API client to ask what changed, so a full read")
            return True
        if options.catalogue_full_read_every <= timedelta(0):
            return True
        last = self.warehouse.last_full_catalogue_read()
        return last is None or datetime.now(UTC) - last >= options.catalogue_full_read_every

    def _catalogue_changes(
        self,
        cursor: str,
        options: ExtractOptions,
        index: dict[str, tuple[str, Any]],
        known: dict[str, str] | None,
    ) -> _Plan:
        """Re-read the catalogue products of the products the Order API reports changed."""
        api, shop = self.order_api, self.shop_api
        assert api is not None and shop is not None
        since = shift_local(cursor, -options.overlap)
        window: dict[str, Any] = {"changed_since": since}
        changed: set[str] = set()

        def pages() -> Iterator[Page]:
            # The Order API pages come first, emptied: their `Date` is the cursor this load
            # proves (Centra's clock before anything was read), and nothing of them is landed.
            for page in itertools.chain(
                api.iter_products(modified=since), api.iter_stock(stock_modified=since)
            ):
                ids = (r.obj.get("productId") for r in page.records)
                changed.update(str(i) for i in ids if i is not None)
                yield replace(page, records=[])
            window["products_changed"] = len(changed)
            ordered = sorted(changed, key=lambda p: (len(p), p))
            for start in range(0, len(ordered), SILK_PRODUCTS_PER_FILTER):
                chunk = ordered[start : start + SILK_PRODUCTS_PER_FILTER]
                yield from shop.iter_products(silk_products=chunk, page_size=options.page_size)

        def expected() -> list[str]:
            # The catalogue products of the changed products: missing if not returned now.
            return sorted(p for p, (_, silk) in index.items() if str(silk) in changed)

        return _Plan(
            window,
            prefetch(pages()),
            key_field="product",
            known_hashes=known,
            expected_keys=expected,
        )


@contextmanager
def relaxed_gc() -> Iterator[None]:
    """Collect cyclic garbage rarely while a load streams.

    Pages are trees of fresh dicts and lists without cycles (reference counting frees them);
    with the default thresholds the collector keeps rescanning every live object, which cost
    ~20% of a large load. Objects alive before the load are frozen out of the scans.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


@dataclass
class _InboxWork:
    """Webhook events a read applies: those after `after` up to `through` (inbox seqs)."""

    inbox_id: str
    after: int
    through: int
    events: int = 0
    orders: list[int] = field(default_factory=list)
    _seen: set[int] = field(default_factory=set, repr=False)

    def add(self, object_id: str) -> None:
        self.events += 1
        try:
            number = int(object_id)
        except ValueError:
            return  # not an order number: nothing to refresh
        if number not in self._seen:
            self._seen.add(number)
            self.orders.append(number)

    def manifest(self) -> dict[str, Any]:
        return {
            "inbox_id": self.inbox_id,
            "after_seq": self.after,
            "through_seq": self.through,
            "events": self.events,
            "orders": len(self.orders),
        }


@dataclass
class _Plan:
    window: dict[str, Any]
    pages: Iterable[Page]
    cursor_field: str | None = None
    key_field: str | None = None
    requested_keys: tuple[Any, ...] = ()  # a refresh's keys, for the manifest
    known_hashes: dict[Any, str] | None = None  # land only records whose hash differs
    # Keys Centra should return; those it does not are marked missing. Called after the
    # read: a targeted catalogue read learns them while reading.
    expected_keys: Callable[[], Iterable[Any]] | None = None
    # A reconciliation: the warehouse's keys and hashes; land only what differs, and mark
    # the expected keys not returned as missing.
    index: KeyIndex | None = None
    inbox: dict[str, Any] | None = None  # webhook events this read applies

    def describe(self) -> str:
        if not self.window:
            return "everything"
        return ", ".join(f"{k}={v}" for k, v in self.window.items())


def _request_totals(sessions: list[Any]) -> dict[str, int]:
    totals = {"requests": 0, "retries": 0, "bytes": 0}
    for session in sessions:
        stats = session.stats.snapshot()
        for name in totals:
            totals[name] += stats[name]
    return totals


def _backfill_window(options: ExtractOptions) -> dict[str, Any]:
    return {
        "newer_than": normalize_local(options.window_start or ""),
        "older_than": normalize_local(options.window_end or ""),
    }


def _modified_window(
    param: str, mode: str, cursor: str | None, options: ExtractOptions
) -> dict[str, Any]:
    if mode == "backfill":
        return {param: normalize_local(options.window_start or "")}
    if mode == "incremental" and cursor is not None:
        return {param: shift_local(cursor, -options.overlap)}
    return {}


def _lookups(keys: tuple[Any, ...], fetch: Callable[[Any], RawRecord | None]) -> Iterator[Page]:
    """Targeted reads, one request per key, presented as pages of one record."""
    for number, key in enumerate(keys, start=1):
        fetched_at = datetime.now(UTC)
        record = fetch(key)
        yield Page(
            "lookup",
            number,
            {"key": key},
            [record] if record else [],
            fetched_at,
            len(record.raw) if record else 0,
            has_more=number < len(keys),
        )


def _int_keys(keys: Iterable[Any]) -> list[int]:
    out: list[int] = []
    for key in keys:
        try:
            value = int(str(key).strip())
        except ValueError:
            raise ValueError(f"{key!r} is not a Centra id (a whole number)") from None
        if value not in out:
            out.append(value)
    return out


def _key(record: RawRecord, field_name: str | None) -> Any:
    assert field_name is not None
    value = record.obj.get(field_name)
    if field_name == "product":
        return str(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def _max_field(records: list[RawRecord], field_name: str, current: str | None) -> str | None:
    best = current
    for record in records:
        value = record.obj.get(field_name)
        if isinstance(value, str) and value[:4] != "0000" and (best is None or value > best):
            best = value[:19]
    return best
