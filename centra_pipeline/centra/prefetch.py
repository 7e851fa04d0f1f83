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


class Staged:
    """A fetch that can be made in two stages, so that what is read ahead is held as the
    server sent it: `send(*args)` makes the request (in a read-ahead thread) and
    `finish(args, sent)` turns what it got into the answer (when the read takes it). A parsed
    page takes about five times the memory of its text, and parsing when taken keeps the
    parsed pages to the ones the read works on. Called directly it is `whole(*args)`: the
    fetch in one go, its parse inside its retries. `finish` of an answer that does not parse
    fetches it again with `whole`, as a retry."""

    def __init__(
        self,
        whole: Callable[..., T],
        send: Callable[..., Any],
        finish: Callable[[tuple, Any], T],
    ) -> None:
        self.whole, self.send, self.finish = whole, send, finish

    def __call__(self, *args: Any) -> T:
        return self.whole(*args)


class Ahead:
    """Requests made ahead, on up to `connections` threads: the ones a read expects to make
    next if the result set does not change.

    The read calls the instance like its fetch function. A call that was expected takes the
    answer fetched ahead (waiting for it if need be); any other call drops what is in flight
    (the read went another way: the set changed) and is made at once. Errors of a request
    made ahead surface when the read asks for it, never otherwise. Every request still passes
    the API's rate limit: this only keeps its connections busy. A `Staged` fetch is sent
    ahead and finished (parsed) when taken.

    Memory: each request made ahead holds a slot of `budget` until the read takes its answer
    (or it is dropped and done). The budget is shared by every read of one API in the process
    (`api_budget`), so the streams reading it concurrently hold at most `connections` answers
    between them, not `connections` each; a read that finds no free slot simply asks when it
    gets there. Without a budget, a read holds at most `connections`.
    """

    def __init__(
        self,
        fetch: Callable[..., T],
        connections: int,
        budget: threading.Semaphore | None = None,
    ) -> None:
        self._fetch = fetch
        self._staged = fetch if isinstance(fetch, Staged) else None
        self.connections = max(1, connections)
        self._budget = budget or threading.BoundedSemaphore(self.connections)
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
        try:
            sent = future.result()
            return self._staged.finish(args, sent) if self._staged else sent
        finally:
            self._budget.release()

    def expect(self, calls: Iterable[tuple]) -> None:
        """Start the next expected calls, in order, while `connections` are not all in
        flight and the API's budget has a free slot."""
        for args in calls:
            if len(self._futures) >= self.connections:
                return
            if args in self._futures:
                continue
            if not self._budget.acquire(blocking=False):
                return
            send = self._staged.send if self._staged else self._fetch
            self._futures[args] = self._pool.submit(send, *args)

    def drop(self) -> None:
        for future in self._futures.values():
            if future.cancel():
                self._budget.release()
            else:  # already sent: its slot is free once its answer is in (and dropped)
                self.wasted += 1
                future.add_done_callback(lambda _: self._budget.release())
        self._futures.clear()

    def close(self) -> None:
        self.drop()
        # Wait for requests already sent, so none lands after the read has ended.
        self._pool.shutdown(wait=True, cancel_futures=True)


# Kept for the process's life, like the rate limiters (ratelimit.shared_limiter).
_BUDGETS: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_BUDGETS_LOCK = threading.Lock()


def api_budget(api_url: str, connections: int) -> threading.BoundedSemaphore:
    """The process's budget of answers fetched ahead for the API at `api_url`: `connections`
    slots, shared by every read of that API (see `Ahead`)."""
    with _BUDGETS_LOCK:
        key = (api_url, max(1, connections))
        budget = _BUDGETS.get(key)
        if budget is None:
            budget = _BUDGETS[key] = threading.BoundedSemaphore(key[1])
        return budget
