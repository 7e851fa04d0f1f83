"""What the Order API and Shop API clients share: one plugin's session and its page size."""

from __future__ import annotations

import threading
from typing import ClassVar, Self

from centra_pipeline.centra.http import CentraSession, HttpConfig
from centra_pipeline.centra.prefetch import api_budget
from centra_pipeline.settings import Secret


class PluginClient:
    """A client of one Centra plugin endpoint. Subclasses name the API, the environment
    variable of its key (for the fixes error messages suggest) and their page size."""

    API_NAME: ClassVar[str]
    KEY_ENV: ClassVar[str]
    DEFAULT_PAGE_SIZE: ClassVar[int]

    def __init__(self, session: CentraSession, *, page_size: int | None = None) -> None:
        self.session = session
        self.page_size = self.DEFAULT_PAGE_SIZE if page_size is None else page_size

    @classmethod
    def connect(
        cls,
        url: str,
        key: Secret | str,
        *,
        config: HttpConfig | None = None,
        page_size: int | None = None,
    ) -> Self:
        session = CentraSession(url, key, api_name=cls.API_NAME, key_env=cls.KEY_ENV, config=config)
        return cls(session, page_size=page_size)

    def close(self) -> None:
        self.session.close()

    @property
    def connections(self) -> int:
        """How many connections a long read may page with at once (CENTRA_MAX_CONNECTIONS)."""
        return self.session.config.max_connections

    @property
    def ahead_budget(self) -> threading.BoundedSemaphore:
        """The slots for pages fetched ahead, shared by every read of this API in the
        process, so concurrent streams hold `connections` pages ahead between them."""
        return api_budget(self.session.base_url, self.connections)

    def _limit(self, page_size: int | None) -> int:
        """The page size of one read: the caller's, else the client's."""
        return page_size or self.page_size
