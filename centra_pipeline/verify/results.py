"""What a comparison finds: per stream the days whose numbers differ between Centra and the
snapshot, and the records behind them where they were looked up; the verdict and exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

EXIT_AGREE = 0
EXIT_DRIFT = 1
EXIT_CANNOT_VERIFY = 2

MONEY_CONTEXT = Context(prec=60)  # sums of DECIMAL(18,4) stay exact

# The records of some days, either side's: day → id → compared values.
DayRecords = dict[date, dict[int, tuple[Any, ...]]]


class VerifyError(Exception):
    """The comparison could not be made (no snapshot, a table missing, bad input); the
    message says what to do."""


@dataclass
class DayNumbers:
    """One side's numbers for one day."""

    count: int = 0
    statuses: dict[str | None, int] = field(default_factory=dict)
    totals: dict[str | None, Decimal] = field(default_factory=dict)

    def add(self, value: tuple[Any, ...], n: int = 1) -> None:
        """Count `n` records with these values (orders: status, currency and their amount)."""
        self.count += n
        if value:
            status, currency, amount = value
            self.statuses[status] = self.statuses.get(status, 0) + n
            self.totals[currency] = self.totals.get(currency, Decimal(0)) + (amount or 0)


@dataclass(frozen=True)
class IdDifference:
    """A record that is on one side only (the other is None) or differs between them."""

    id: int
    centra: dict[str, Any] | None
    snapshot: dict[str, Any] | None


@dataclass
class DayDifference:
    day: date | None
    centra: DayNumbers
    snapshot: DayNumbers
    differing_ids: int | None = None  # found on the re-read; None when not re-read
    ids: list[IdDifference] | None = None  # None when not looked up or too many to list
    note: str | None = None


@dataclass
class StreamResult:
    stream: str
    days_compared: int
    centra_records: int
    snapshot_records: int
    differences: list[DayDifference]

    @property
    def agree(self) -> bool:
        return not self.differences


@dataclass
class VerifyResult:
    snapshot_path: Path
    snapshot_published_at: datetime | None
    order_api_url: str
    timezone: str
    since: date | None
    streams: dict[str, StreamResult]
    seconds: float = 0.0

    @property
    def agree(self) -> bool:
        return all(s.agree for s in self.streams.values())

    @property
    def days_compared(self) -> int:
        return sum(s.days_compared for s in self.streams.values())

    @property
    def days_differing(self) -> int:
        return sum(len(s.differences) for s in self.streams.values())

    @property
    def exit_code(self) -> int:
        return EXIT_AGREE if self.agree else EXIT_DRIFT

    @property
    def verdict(self) -> str:
        names = ", ".join(self.streams)
        window = f" since {self.since.isoformat()}" if self.since else ""
        if self.agree:
            return (
                f"Centra and the snapshot agree: {self.days_compared:,} days of {names}"
                f"{window} compared, no differences."
            )
        per_stream = ", ".join(
            f"{name} {len(s.differences):,}" for name, s in self.streams.items() if s.differences
        )
        return (
            f"Drift: {self.days_differing:,} of {self.days_compared:,} days{window} differ "
            f"between Centra and the snapshot ({per_stream})."
        )
