"""Store-local time: Centra renders and filters timestamps as naive wall-clock times.

Two representations are kept side by side:
- epoch seconds (UTC), which order the events of the store's life;
- "local seconds": the naive local wall time read as if it were UTC (calendar.timegm of the
  wall-clock fields). Filtering compares these, like Centra compares naive datetimes, so in the
  autumn DST hour two different instants share one local value and `newer_than` sees them as
  equal. That is the behaviour a pipeline has to survive, so the emulator reproduces it.
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

ZERO_DATE = "0000-00-00 00:00:00"
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2}):(\d{2}))?$")
# Offsets change on whole hours (or half/quarter hours in a few zones) in UTC, so one
# utcoffset() lookup per 15-minute bucket is exact and cheap even for a million timestamps.
_BUCKET = 900


def parse_local(text: str) -> int:
    """`YYYY-mm-dd` or `YYYY-mm-dd HH:MM:SS` (what Centra accepts) -> local seconds.

    Raises ValueError for anything else, including impossible dates.
    """
    match = _DATE_RE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(text)
    y, mo, d, h, mi, s = (int(g) if g is not None else 0 for g in match.groups())
    datetime(y, mo, d, h, mi, s)  # validates ranges (month 13, Feb 30, hour 24...)
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


class StoreClock:
    """Conversions between epoch seconds and the store's naive local time."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        self.name = timezone
        self._fixed = timezone in ("UTC", "Etc/UTC")
        self._days: dict[int, str] = {}
        self._tod: list[str] | None = None

    # epoch -> local ---------------------------------------------------------------------
    def offset_at(self, epoch: int) -> int:
        if self._fixed:
            return 0
        delta = datetime.fromtimestamp(epoch, self.zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    def to_local(self, epoch: int) -> int:
        return epoch + self.offset_at(epoch)

    def to_local_array(self, epochs: np.ndarray) -> np.ndarray:
        epochs = np.asarray(epochs, dtype=np.int64)
        if self._fixed or epochs.size == 0:
            return epochs.copy()
        buckets = epochs // _BUCKET
        unique, inverse = np.unique(buckets, return_inverse=True)
        offsets = np.fromiter(
            (self.offset_at(int(b) * _BUCKET) for b in unique), dtype=np.int64, count=unique.size
        )
        return epochs + offsets[inverse.reshape(epochs.shape)]

    # local -> epoch ---------------------------------------------------------------------
    def from_local(self, local_seconds: int) -> int:
        """The first instant showing this wall time (fold=0); gaps roll forward like zoneinfo."""
        naive = datetime.fromtimestamp(local_seconds, UTC).replace(tzinfo=None)
        return int(naive.replace(tzinfo=self.zone).timestamp())

    def wall_now(self) -> int:
        return int(time.time())

    # formatting -------------------------------------------------------------------------
    def fmt(self, local_seconds: int) -> str:
        """Local seconds -> "YYYY-MM-DD HH:MM:SS" (hot path: one dict hit + one list index)."""
        day, tod = divmod(local_seconds, 86400)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = time.strftime("%Y-%m-%d ", time.gmtime(day * 86400))
            self._days[day] = prefix
        table = self._tod
        if table is None:
            table = [
                f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)
            ]
            self._tod = table
        return prefix + table[tod]

    def fmt_epoch(self, epoch: int) -> str:
        return self.fmt(self.to_local(epoch))
