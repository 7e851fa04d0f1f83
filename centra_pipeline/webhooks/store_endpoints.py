"""The stores the webhook receiver serves: one endpoint per store of the deployment
(centra_pipeline/stores.py), with that store's secret, replay window and inbox.

`open_endpoints` opens the inbox of each store that has a webhook secret, once, naming the
store (so an inbox file of another store is refused: webhooks/inbox_owner.py); a store
without a secret gets an endpoint without an inbox, which the receiver answers with 503.
Nothing here logs or formats a secret: startup lines name stores, paths and tolerances.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field

from centra_pipeline.centra.webhook import DEFAULT_TOLERANCE_SECONDS
from centra_pipeline.settings import ENV_WEBHOOK_SECRET, ConfigError
from centra_pipeline.stores import DEFAULT_STORE, Stores
from centra_pipeline.webhooks.committer import GroupCommitter
from centra_pipeline.webhooks.inboxes import AnyInbox, InboxRef
from centra_pipeline.webhooks.validation import DeliveryValidator

MISSING_SECRET_MESSAGE = (
    f"{ENV_WEBHOOK_SECRET} is not set: set it to the endpoint secret of the Centra Webhook "
    "plugin (in the environment or in .env in the project root); the receiver never runs "
    "unauthenticated"
)


@dataclass(frozen=True)
class StoreEndpoint:
    """One store as the receiver serves it. `secret=None` (and no inbox): the store has no
    webhook secret configured, and its path answers 503 store_not_configured."""

    name: str
    secret: str | None = field(repr=False)
    inbox: AnyInbox | None
    tolerance_seconds: float | None = DEFAULT_TOLERANCE_SECONDS


class StoreReceiver:
    """One store's endpoint: its validator (its secret), its inbox's writer, its rejections."""

    def __init__(self, endpoint: StoreEndpoint, max_body_bytes: int) -> None:
        self.name = endpoint.name
        self.inbox = endpoint.inbox
        self.tolerance_seconds = endpoint.tolerance_seconds
        self.rejected: Counter[int] = Counter()
        self.validator: DeliveryValidator | None = None
        self.committer: GroupCommitter | None = None
        if endpoint.secret is not None:
            self.validator = DeliveryValidator(
                endpoint.secret,
                tolerance_seconds=endpoint.tolerance_seconds,
                max_body_bytes=max_body_bytes,
            )
            assert endpoint.inbox is not None
            self.committer = GroupCommitter(endpoint.inbox)


def without_secret(stores: Stores) -> list[str]:
    return [name for name, settings in stores.settings.items() if not settings.webhook_secret]


def check_some_secret(stores: Stores) -> None:
    """ConfigError unless at least one store has a webhook secret."""
    if len(without_secret(stores)) < len(stores.settings):
        return
    if not stores.multi:
        raise ConfigError(MISSING_SECRET_MESSAGE)
    raise ConfigError(
        f"no store in {stores.from_file} has a webhook secret: give at least one store a "
        "webhook_secret_env naming the variable that holds the endpoint secret of its Centra "
        "Webhook plugin; the receiver never runs unauthenticated"
    )


def open_endpoints(stores: Stores, stack: ExitStack) -> list[StoreEndpoint]:
    """Every store's endpoint; the inboxes opened are closed with `stack`."""
    endpoints = []
    for name, settings in stores.settings.items():
        tolerance = settings.webhook_tolerance_seconds
        if settings.webhook_secret:
            inbox = stack.enter_context(InboxRef.of(settings).open(claim=True))
            endpoints.append(StoreEndpoint(name, settings.webhook_secret.get(), inbox, tolerance))
        else:
            endpoints.append(StoreEndpoint(name, None, None, tolerance))
    return endpoints


def log_startup(
    logger: logging.Logger, base_url: str, path: str, endpoints: list[StoreEndpoint]
) -> None:
    served = [e for e in endpoints if e.inbox is not None]
    logger.info(
        "centra webhook receiver listening on %s%s/<store> for %d store%s: %s",
        base_url,
        path,
        len(served),
        "" if len(served) == 1 else "s",
        ", ".join(e.name for e in served),
    )
    for endpoint in served:
        assert endpoint.inbox is not None
        logger.info(
            "store %s: POST %s%s/%s%s (inbox %s, tolerance %s s)",
            endpoint.name,
            base_url,
            path,
            endpoint.name,
            f" or {path}" if endpoint.name == DEFAULT_STORE else "",
            endpoint.inbox.location,
            "off" if endpoint.tolerance_seconds is None else f"{endpoint.tolerance_seconds:g}",
        )
    missing = [e.name for e in endpoints if e.inbox is None]
    if missing:
        logger.warning(
            "stores without a webhook secret, answered 503 store_not_configured until one is "
            "set (webhook_secret_env in the stores file) and the receiver restarted: %s",
            ", ".join(missing),
        )
