"""Which inbox a store's settings name: its SQLite file under the data directory (the
embedded default), or, with `CENTRA_INBOX_URL`, its rows in a shared PostgreSQL database
(docs/architecture.md, "Webhook inbox"). Every reader and writer opens it through here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from centra_pipeline.settings import Secret, Settings
from centra_pipeline.webhooks.inbox import Inbox

if TYPE_CHECKING:  # psycopg2 is imported only where a PostgreSQL inbox is opened
    from centra_pipeline.webhooks.inbox_postgres import PostgresInbox

AnyInbox: TypeAlias = "Inbox | PostgresInbox"


@dataclass(frozen=True)
class InboxRef:
    store: str
    path: Path
    url: Secret | None = field(default=None, repr=False)

    @classmethod
    def of(cls, settings: Settings) -> InboxRef:
        return cls(settings.store, settings.inbox_path, settings.inbox_url)

    @property
    def shared(self) -> bool:
        return self.url is not None

    def exists(self) -> bool:
        """Whether there is an inbox to read: a PostgreSQL inbox always is (opening it
        creates its tables); a SQLite one once its file exists."""
        return self.shared or self.path.exists()

    @property
    def location(self) -> str:
        """Where it is, for messages: the file, or the database without its password."""
        if self.url is None:
            return str(self.path)
        from centra_pipeline.settings_values import redact_url

        return f"{redact_url(self.url.get())} (store {self.store})"

    def open(self, *, claim: bool = False, readonly: bool = False) -> Inbox | PostgresInbox:
        """Open it. `claim` (the receiver): a SQLite file records this store, and a file of
        another store is refused; a PostgreSQL inbox is always the store's own rows."""
        if self.url is not None:
            from centra_pipeline.webhooks.inbox_postgres import PostgresInbox

            return PostgresInbox(self.url.get(), store=self.store, readonly=readonly)
        return Inbox(self.path, store=self.store if claim else None, readonly=readonly)
