"""Reading ahead: the next page while the caller works on this one (`prefetch`), and the
pages a read will ask for next if nothing changes, on several connections (`Ahead`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from queue import Empty, Queue
from typing import Any, TypeVar

T = TypeVar("T")


def prefetch(pages: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Fetch the next page in a background thread while the caller processes this one.

    Memory stays bounded (`depth` pages in flight). HTTP waits release the GIL, so the
    network and the caller's parsing overlap. Errors surface in the caller, in order.
    """
    queue: Queue = Queue(maxsize=depth)
    # A bounded queue alone lets the producer fetch one more page and hold it while it waits
    # for room; taking a slot *before* fetching keeps fetched-but-untaken pages at `depth`.
    slots = threading.Semaphore(max(depth - 1, 0))
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                if stop.is_set():
                    return
                queue.put(("page", page))
                slots.acquire()  # released when the consumer takes a page (or stops)
                if stop.is_set():
                    return
            queue.put(("done", done))
        except BaseException as exc:  # re-raised in the consumer
            queue.put(("error", exc))

    thread = threading.Thread(target=produce, name="centra-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = queue.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            slots.release()
            yield item
    finally:
        stop.set()
        slots.release()  # wake a producer waiting for a slot so it sees `stop`
        # Unblock a producer waiting on a full queue so the thread can finish.
        while thread.is_alive():
            with contextlib.suppress(Empty):
                queue.get_nowait()
            thread.join(timeout=0.05)


class Ahead:
    """Requests made ahead, on up to `connections` threads: the ones a read expects to make
    next if the result set does not change.

    The read calls the instance like its fetch function. A call that was expected takes the
    answer fetched ahead (waiting for it if need be); any other call drops what is in flight
    (the read went another way: the set changed) and is made at once. Errors of a request
    made ahead surface when the read asks for it, never otherwise. At most `connections`
    answers are held, so memory stays bounded. Every request still passes the API's rate
    limit: this only keeps its connections busy.
    """

    def __init__(self, fetch: Callable[..., T], connections: int) -> None:
        self._fetch = fetch
        self.connections = max(1, connections)
        self._pool = ThreadPoolExecutor(self.connections, thread_name_prefix="centra-ahead")
        self._futures: dict[tuple, Future] = {}
        self.taken = 0  # answers fetched ahead that the read used
        self.wasted = 0  # requests made ahead that it did not

    def __call__(self, *args: Any) -> T:
        future = self._futures.pop(args, None)
        if future is None:
            self.drop()
            return self._fetch(*args)
        self.taken += 1
        return future.result()

    def expect(self, calls: Iterable[tuple]) -> None:
        """Start the next expected calls, in order, until `connections` are in flight."""
        for args in calls:
            if len(self._futures) >= self.connections:
                return
            if args not in self._futures:
                self._futures[args] = self._pool.submit(self._fetch, *args)

    def drop(self) -> None:
        for future in self._futures.values():
            if not future.cancel():  # already sent
                self.wasted += 1
        self._futures.clear()

    def close(self) -> None:
        self.drop()
        # Wait for requests already sent, so none lands after the read has ended.
        self._pool.shutdown(wait=True, cancel_futures=True)
