"""Group commit: the receiver's deliveries are stored by one writer thread, many at a time.

A 200 must mean the delivery is on disk, and each commit costs an fsync. Committing on the
event loop would stall every request behind the disk; committing each delivery on its own
would make the throughput collapse on a disk with slow fsync (docs/webhooks.md).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from centra_pipeline.webhooks.inbox import Delivery, Inbox, StoreResult

# Deliveries committed in one transaction at most; bounds how long one commit holds others.
MAX_COMMIT_BATCH = 256


class GroupCommitter:
    """Stores deliveries on one writer thread, committing everything that queued meanwhile.

    While a commit is on disk, new deliveries wait in `_pending`; the next commit takes them
    all. One delivery alone is committed at once (no added delay); under load a commit holds
    many, so the fsync cost is shared. Each caller gets its own StoreResult, or the error.
    """

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-writer")
        self._pending: list[tuple[Delivery, asyncio.Future[StoreResult]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def store(self, delivery: Delivery) -> StoreResult:
        future: asyncio.Future[StoreResult] = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        # shield: a client that disconnects must not cancel a commit others wait on.
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[:MAX_COMMIT_BATCH]
                del self._pending[:MAX_COMMIT_BATCH]
                await self._commit(batch)
        finally:
            self._flusher = None

    async def _commit(self, batch: list[tuple[Delivery, asyncio.Future[StoreResult]]]) -> None:
        deliveries = [delivery for delivery, _ in batch]
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._inbox.store_many, deliveries
            )
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
