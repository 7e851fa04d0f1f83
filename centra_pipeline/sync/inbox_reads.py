"""The reads the webhook inbox adds to an orders read.

Centra's Order API has no "modified since" filter for orders, so a change to an older order
reaches the pipeline as a webhook event in the inbox (webhooks/). Every orders read applies
the events no load has applied yet: it re-reads their orders by number, unless the read
covers them anyway. The warehouse keeps a watermark per inbox (`pipeline.inbox_applied`),
committed with the load that applied the events, so each stored event is applied exactly
once by whichever read comes first (docs/architecture.md).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Any, Protocol

from centra_pipeline.streams.model import Stream
from centra_pipeline.streams.orders import orders_before
from centra_pipeline.sync.plan import ExtractOptions, ReadContext, ReadPlan, lookups
from centra_pipeline.webhooks.inbox import ORDER_REFRESH_TYPES
from centra_pipeline.webhooks.inboxes import InboxRef

INBOX_EVENTS_PER_READ = 5000


class InboxContext(ReadContext, Protocol):
    inbox: InboxRef | None


def with_inbox(
    ctx: InboxContext, stream: Stream, plan: ReadPlan, options: ExtractOptions
) -> ReadPlan:
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
    work = _unapplied_events(ctx, options)
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
    api = ctx.order_api
    assert api is not None and stream.lookup is not None
    lookup = functools.partial(stream.lookup, api)
    if options.mode == "refresh":
        # A sensor run: the orders of the events still unapplied, not its planned keys.
        plan.window["order"] = numbers
        plan.window["inbox"] = f"seq {work.after + 1}..{work.through}"
        plan.pages = lookups(tuple(numbers), lookup)
        plan.requested_keys = tuple(numbers)
        plan.expected_keys = lambda: numbers
        return plan
    if "newer_than" in plan.window:
        numbers = orders_before(ctx, numbers, plan.window["newer_than"])
    plan.window["inbox_orders"] = len(numbers)
    if numbers:
        plan.pages = itertools.chain(plan.pages, lookups(tuple(numbers), lookup))
        if plan.expected_keys is None:
            # An order Centra no longer returns (a `delete` event, a status the plugin
            # hides) is marked missing, as a sensor refresh would.
            plan.expected_keys = lambda: numbers
    return plan


def _unapplied_events(ctx: InboxContext, options: ExtractOptions) -> _InboxWork | None:
    """The inbox's order events after the warehouse's watermark, up to the target: a
    sensor run's last seq, or the newest stored event. None: no inbox to apply."""
    if not options.apply_inbox or options.mode == "backfill" or ctx.inbox is None:
        return None
    if not ctx.inbox.exists():
        if options.inbox_through is not None:
            raise ValueError(f"no webhook inbox at {ctx.inbox.location} to refresh from")
        return None
    inbox = ctx.inbox.open(readonly=True)
    try:
        after = ctx.warehouse.inbox_applied(inbox.inbox_id)
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
