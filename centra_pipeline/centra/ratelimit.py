"""One rate limit per Centra API, shared by every stream and thread that talks to it.

Centra documents no REST rate limits, but a merchant's integrations share Centra's capacity
(its GraphQL limits are shared per environment), so we pace ourselves instead of waiting to be
throttled. `CENTRA_MAX_REQUESTS_PER_SECOND` is a ceiling on what Centra sees: at most that
many requests start in any one-second window, for the whole API, however many streams read
it and however many connections they page with.

- A sliding window, not a token bucket: a bucket that may burst a second's worth on top of
  its steady rate lets 2x the rate through in some second. Here a request starts only at
  least `window` after the request `burst` places before it was *sent*, so no window of
  sends holds more. A start is taken under a lock at the moment it happens, and the send
  time replaces it when the request's bytes have been written (`request_sent`, called by
  the HTTP connection right after the write; http.py). Between the two a thread may wait
  for the GIL behind threads parsing pages, tens of ms under load: judged by its start, a
  late send would bunch up with the next second's. A start whose request is not sent yet
  makes the start `burst` places after it wait until it is. A request that never reports
  its send (no hooked connection, or it failed first) counts as sent when it ends (`done`),
  which is later than the truth, never earlier; one whose thread went away unreported counts
  as sent `SEND_GRACE` after its start. The window has a small margin on top, for
  the way from the socket to the server.
- Throttled (`hold`): a 429 or a `Retry-After` stops every thread's next start until the
  server's time is up, not only the one that was told; each then retries in its slot.
- Shared (`shared_limiter`): sessions of one API in one process (the streams of a run, their
  connections, a probe beside them) get the same limiter, keyed by the plugin URL and the
  rate. Processes do not share it: the runs that read Centra in bulk write the warehouse and
  the run queue lets one of them run at a time (docs/architecture.md).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

# The window's margin: the server sees each request this share of a window later at most.
WINDOW_MARGIN = 0.05
# How long a start may wait for the send of the one `burst` places before it to be reported.
SEND_GRACE = 2.0


class _Start:
    """One request's place in the window: when it started, then when it was sent."""

    __slots__ = ("at", "sent")

    def __init__(self, at: float) -> None:
        self.at = at
        self.sent = False


_current = threading.local()  # the calling thread's request in flight: (limiter, _Start)


def request_sent() -> None:
    """The calling thread's request has just been written to its socket (http.py's
    connections call this after each write; only the first counts)."""
    current = getattr(_current, "start", None)
    if current is not None:
        limiter, start = current
        limiter._sent(start)


class RateLimiter:
    """At most `rate` request sends per second in any window (thread-safe)."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = WINDOW_MARGIN,
    ) -> None:
        if not rate > 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        # `burst` sends per `window`: 10 req/s is 10 per 1.05 s, 0.5 req/s one per 2.1 s.
        self.burst = max(1, int(rate))
        self.window = self.burst / rate * (1 + margin)
        self._starts: deque[_Start] = deque(maxlen=self.burst)
        self._held_until = 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent_cond = threading.Condition(self._lock)

    def acquire(self) -> float:
        """Wait until a request may start; returns the seconds waited. The calling thread's
        request then counts as started until `request_sent` or `done` (or the thread's next
        acquire: a thread has one request in flight at a time)."""
        previous = getattr(_current, "start", None)
        if previous is not None:
            _current.start = None
            previous[0]._sent(previous[1])
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                oldest = self._starts[0] if len(self._starts) == self.burst else None
                if oldest is not None and not oldest.sent:
                    if now - oldest.at < SEND_GRACE:
                        # Its send time is not known yet, and it decides ours: wait for it.
                        began = now
                        self._sent_cond.wait(timeout=SEND_GRACE - (now - oldest.at))
                        waited += self._clock() - began
                        continue
                    # Its thread never said (it went away between its start and its
                    # request): it counts as sent now, so nothing waits for it for ever.
                    oldest.at, oldest.sent = now, True
                free_at = max(self._held_until, oldest.at + self.window if oldest else 0.0)
                if free_at <= now:
                    start = _Start(now)
                    self._starts.append(start)
                    _current.start = (self, start)
                    return waited
            self._sleep(free_at - now)
            waited += free_at - now

    def _sent(self, start: _Start) -> None:
        with self._lock:
            if not start.sent:
                start.at = max(start.at, self._clock())
                start.sent = True
                self._sent_cond.notify_all()

    def done(self) -> None:
        """The calling thread's request has ended (answered or failed): if it never reported
        its send, it counts as sent now."""
        current = getattr(_current, "start", None)
        _current.start = None
        if current is not None and current[0] is self:
            self._sent(current[1])

    def hold(self, seconds: float) -> None:
        """The server asked us to wait: nobody starts a request for `seconds`."""
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + max(0.0, seconds))

    @property
    def held_for(self) -> float:
        """Seconds until starts may resume after a throttle (0 when not held)."""
        with self._lock:
            return max(0.0, self._held_until - self._clock())


# Kept for the process's life, not only while a session holds one: a limiter made anew
# between two streams' sessions would forget the starts of the last second.
_SHARED: dict[tuple[str, float], RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_limiter(api_url: str, rate: float) -> RateLimiter:
    """The process's limiter for the API at `api_url` at `rate` (created on first use)."""
    with _SHARED_LOCK:
        limiter = _SHARED.get((api_url, rate))
        if limiter is None:
            limiter = RateLimiter(rate)
            _SHARED[(api_url, rate)] = limiter
        return limiter
