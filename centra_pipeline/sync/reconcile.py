"""Reconciliation: re-read what incremental reads cannot see, land only what changed.

Incremental reads miss changes for good in three ways: orders have no modified-since filter
(a change to an order older than the lookback arrives only by webhook, and Centra drops a
webhook after three failed retries), orders on hold or waiting for payment become visible
long after their order date, and plugin settings change what the API serves (cancelled
orders hidden, a market removed). A reconciliation pass re-reads a stream and compares every
record it gets with what the warehouse holds:

- a record whose content hash differs from the warehouse row (or that the warehouse lacks,
  or holds as missing) is landed and merged as usual ("new" or "changed");
- a warehouse row that the pass expected but Centra did not return is marked
  `_missing_since` ("missing"); a later read that finds it again clears the mark;
- everything else is left alone: a pass over an unchanged store lands nothing.

Two passes (docs/architecture.md has the per-stream table):

| pass  | mode             | reads                                                        |
|-------|------------------|--------------------------------------------------------------|
| open  | `reconcile_open` | orders not archived or cancelled, returns not completed: the |
|       |                  | store-local days that hold them, each range read by date     |
| full  | `reconcile`      | every order, return, customer, product, stock item and       |
|       |                  | catalogue entry                                              |

The `centra_reconcile` schedule runs `reconcile_auto` daily: a stream whose last full pass
is older than CENTRA_RECONCILE_FULL_DAYS (default 7) gets the full pass, the others the open
pass. `centra-pipeline sync --reconcile` runs the full pass now.

Memory stays flat in the size of the store: the warehouse's keys and hashes are held as two
sorted numpy arrays (about 40 bytes a row), not as Python objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

RECONCILE_MODES = ("reconcile", "reconcile_open", "reconcile_auto")
# Streams with an open pass (the others have nothing that stays open).
# Order statuses after which Centra's order flow moves an order no further.
FINAL_ORDER_STATUSES = ("archived", "cancelled")
_HASH = "S24"  # record_hash(): 12-byte blake2b, 24 hex characters


class KeyIndex:
    """The keys and content hashes of a table's present rows, and which of them a pass saw."""

    def __init__(
        self,
        keys: Sequence[Any],
        hashes: Sequence[Any],
        expected: Sequence[bool] | None = None,
        *,
        compare: bool = True,
    ) -> None:
        """`expected`: which keys Centra must return (default all): those not returned are
        missing. `compare=False` lands every record read (while a landed load waits to be
        merged, comparing with the warehouse alone could keep an older pending version)."""
        key_array = np.asarray(keys, dtype=np.int64)
        order = np.argsort(key_array, kind="stable")
        self.keys = key_array[order]
        self.hashes = np.asarray([h or "" for h in hashes], dtype=_HASH)[order]
        if expected is None:
            self.expected = np.ones(self.keys.size, dtype=bool)
        else:
            self.expected = np.asarray(expected, dtype=bool)[order]
        self.compare = compare
        self.seen = np.zeros(self.keys.size, dtype=bool)

    def __len__(self) -> int:
        return int(self.keys.size)

    def expecting_none(self) -> KeyIndex:
        """This index for a read that compares but expects nothing back, so marks nothing
        missing (the incremental returns read, open_reads.window_with_open)."""
        self.expected = np.zeros(self.keys.size, dtype=bool)
        return self

    def changed(self, keys: Sequence[Any], hashes: Sequence[str]) -> list[bool]:
        """For each record: True if it is new or differs from the warehouse. Marks the
        records the warehouse knows as seen."""
        if not keys:
            return []
        flags = np.ones(len(keys), dtype=bool)
        numeric = [i for i, k in enumerate(keys) if isinstance(k, int)]
        if not numeric or not self.keys.size:
            return flags.tolist()
        idx = np.asarray(numeric, dtype=np.int64)
        wanted = np.asarray([keys[i] for i in numeric], dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, wanted), self.keys.size - 1)
        found = self.keys[pos] == wanted
        self.seen[pos[found]] = True
        same = found & (self.hashes[pos] == np.asarray([hashes[i] for i in numeric], dtype=_HASH))
        if self.compare:
            flags[idx[same]] = False
        return flags.tolist()

    def unseen(self) -> list[int]:
        """Expected keys the warehouse holds that the pass did not get back from Centra."""
        return self.keys[self.expected & ~self.seen].tolist()


@dataclass(frozen=True)
class DayRange:
    """Store-local days [first, last], read as one date window."""

    first: date
    last: date

    def bounds(self) -> tuple[str, str]:
        """(start, end): naive store-local, start inclusive, end exclusive."""
        end = self.last + timedelta(days=1)
        return f"{self.first:%Y-%m-%d} 00:00:00", f"{end:%Y-%m-%d} 00:00:00"

    def request(self) -> dict[str, str]:
        """The `newer_than`/`older_than` that read this range (see request_window)."""
        return request_window(*self.bounds())


def day_ranges(days: Mapping[date, tuple[int, int]], merge_below: int = 0) -> list[DayRange]:
    """The days holding open rows, as ranges to read, oldest first.

    `days` maps each day with rows to (rows, open rows). Consecutive open days form a range;
    two ranges are read as one when the rows on the days between them number at most
    `merge_below` (a page): reading them costs less than the requests of another window.
    """
    ranges: list[DayRange] = []
    between = 0  # rows on the days since the last open day
    for day in sorted(days):
        total, open_ = days[day]
        if not open_:
            between += total
            continue
        if ranges and (day - ranges[-1].last <= timedelta(days=1) or between <= merge_below):
            ranges[-1] = DayRange(ranges[-1].first, day)
        else:
            ranges.append(DayRange(day, day))
        between = 0
    return ranges


def request_window(start: str, end: str) -> dict[str, str]:
    """`newer_than`/`older_than` one second wider than [start, end) on each side.

    Centra documents the edges of the returns filters (newer_than inclusive, older_than
    exclusive) but not those of the orders filters; widened by a second, a window returns
    every record of [start, end) whichever way Centra treats its edges (timestamps have
    whole seconds). Records just outside come back too; they merge like any other read.
    """
    fmt = "%Y-%m-%d %H:%M:%S"
    newer = datetime.strptime(start, fmt) - timedelta(seconds=1)
    older = datetime.strptime(end, fmt) + timedelta(seconds=1)
    return {"newer_than": newer.strftime(fmt), "older_than": older.strftime(fmt)}


@dataclass(frozen=True)
class Drift:
    """What a reconciliation found compared with the warehouse."""

    read: int
    new: int
    changed: int
    missing: int

    @property
    def repaired(self) -> int:
        return self.new + self.changed + self.missing

    @property
    def share(self) -> float:
        """Repaired as a share of what the pass read (or expected, if it read nothing)."""
        base = max(self.read, self.missing)
        return self.repaired / base if base else 0.0

    @classmethod
    def total(cls, drifts: Iterable[Drift]) -> Drift:
        found = list(drifts)
        return cls(
            read=sum(d.read for d in found),
            new=sum(d.new for d in found),
            changed=sum(d.changed for d in found),
            missing=sum(d.missing for d in found),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "new": self.new,
            "changed": self.changed,
            "missing": self.missing,
            "share": round(self.share, 6),
        }

    def line(self, stream: str) -> str:
        return (
            f"{stream}: {self.new:,} new, {self.changed:,} changed, {self.missing:,} missing "
            f"of {self.read:,} read ({self.share:.2%} repaired)"
        )
