"""Reporting periods: a half-year, a year or custom dates (inclusive, Vietnam's calendar), and the period before."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from casework.i18n import local_tz


@dataclass(frozen=True)
class Period:
    start: date  # first day
    end: date  # last day (inclusive)
    kind: str = "custom"  # "year", "half", "custom"

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("a period ends on or after its first day")

    @classmethod
    def year(cls, year: int) -> Period:
        return cls(date(year, 1, 1), date(year, 12, 31), "year")

    @classmethod
    def half(cls, year: int, half: int) -> Period:
        """The first (``half`` 1) or second (2) half of ``year``. :raises ValueError: another ``half``."""
        if half not in (1, 2):
            raise ValueError("a year has two halves: 1 and 2")
        if half == 1:
            return cls(date(year, 1, 1), date(year, 6, 30), "half")
        return cls(date(year, 7, 1), date(year, 12, 31), "half")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The period just before: the year before, the half-year before, or as many days before."""
        if self.kind == "year":
            return Period.year(self.start.year - 1)
        if self.kind == "half":
            return Period.half(self.start.year, 1) if self.start.month == 7 else Period.half(self.start.year - 1, 2)
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1), "custom")

    def bounds(self) -> tuple[datetime, datetime]:
        """The period as UTC instants: [first day 00:00, the day after the last 00:00) in Vietnam."""
        tz = local_tz()
        start = datetime.combine(self.start, time(0, 0), tzinfo=tz)
        end = datetime.combine(self.end + timedelta(days=1), time(0, 0), tzinfo=tz)
        return start.astimezone(UTC), end.astimezone(UTC)

    def label(self) -> str:
        if self.kind == "year":
            return str(self.start.year)
        if self.kind == "half":
            return f"{'6 tháng đầu' if self.start.month == 1 else '6 tháng cuối'} {self.start.year}"
        return f"{self.start:%d/%m/%Y} – {self.end:%d/%m/%Y}"

    def as_dict(self) -> dict:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(), "kind": self.kind}

    def months(self) -> list[tuple[int, int]]:
        """The (year, month) pairs the period touches, in order."""
        out, year, month = [], self.start.year, self.start.month
        while (year, month) <= (self.end.year, self.end.month):
            out.append((year, month))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return out
