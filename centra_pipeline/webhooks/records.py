"""What the webhook inbox takes and gives back: a delivery in, store results, stored events
and counts out; and the event types and actions Centra documents (docs/webhooks.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from centra_pipeline.centra.webhook import WebhookEvent

# What Centra documents per event type in "Integration API" mode (docs/webhooks.md). Every
# event is stored whatever its type and action; this table only labels what we recognise.
# Only `order` events lead to work (the sensor refreshes the order by number); the rest are
# stored and counted, and the hourly sync is their safety net.
DOCUMENTED_ACTIONS: dict[str, frozenset[str]] = {
    "order": frozenset({"insert", "update", "delete"}),
    "shipment": frozenset({"create", "good_to_go"}),
    "check_first": frozenset({"create", "accepted", "rejected", "timeout"}),
    "allocation_request": frozenset({"create", "update", "outdated"}),
    # Triggers Centra offers whose actions it does not list (docs/webhooks.md).
    "customer": frozenset(),
    "return": frozenset(),
    "account": frozenset(),
}
ORDER_REFRESH_TYPES = frozenset({"order"})


def is_documented(kind: str, action: str) -> bool:
    return action in DOCUMENTED_ACTIONS.get(kind, frozenset())


@dataclass(frozen=True)
class Delivery:
    """One verified webhook request, ready to store."""

    body_sha256: str
    signed_at: int
    events: Sequence[WebhookEvent]


@dataclass(frozen=True)
class StoreResult:
    delivery_id: int
    new_events: int
    duplicate_events: int
    duplicate_delivery: bool


@dataclass(frozen=True)
class InboxEvent:
    # The inbox's `events` columns carry these names, so the field list is also its query.
    seq: int
    delivery_id: int
    type: str
    action: str
    object_id: str
    event_date: str | None
    data: Any
    received_at: datetime

    @property
    def recognised(self) -> bool:
        return is_documented(self.type, self.action)


@dataclass(frozen=True)
class InboxCounts:
    # The field order is the key order of the health endpoint's `inbox` object.
    events: int
    by_type: dict[str, dict[str, int]]  # type -> action -> stored events
    unrecognised_events: int  # stored events whose (type, action) Centra does not document
    deliveries: int
    duplicate_deliveries: int  # identical bodies received again (sum of redeliveries)
    duplicate_events: int  # events received again, in a re-delivery or another batch
    max_seq: int
    last_received_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
