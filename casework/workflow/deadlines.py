"""Deadlines in hours and in working days, counted in Vietnam's time zone.

Hours are calendar time: an emergency measure is due 12 hours after the report, night, weekend or Tết alike
(Decree 56/2017, Art. 31). Working days skip Saturdays, Sundays and the public holidays of the Labour Code 2019,
Art. 112, as the ``holidays`` package lists them for Vietnam ("VN").

What ``holidays`` 0.86 returns for Vietnam (checked for 2025-2027):

- It lists every statutory day off, including the days added when a holiday falls on a weekend ("observed"):
  New Year (1/1), Tết (5 days, e.g. 16-20 Feb 2026; 4-10 Feb 2027 with the weekend in between, so five weekdays
  off), Hùng Kings' day (10/3 lunar; observed Monday 27 Apr 2026), 30 April, 1 May (observed Monday 3 May 2027)
  and National Day (2/9 plus 1/9 or 3/9).
- It does not list the government's yearly swaps, where civil servants take a bridge day off and work a Saturday
  instead. In 2025 Friday 2 May was such a day off (worked on Saturday 26 April), and the package counts it as a
  working day; Tết 2025 (25 Jan - 2 Feb) and Tết 2026 (14-22 Feb) are complete because their bridge days are
  statutory. A deadline can therefore fall one day early around a swap, never late: the safe side for a child.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays

#: The time zone deadlines are counted in when the caller gives none (``CASEWORK_TIMEZONE`` defaults to it too).
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")

#: A deadline in working days runs to the end of its last day (Civil Code 2015, Art. 148).
END_OF_DAY = time(23, 59, 59)


@cache
def _holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("VN", years=year)


def is_holiday(day: date) -> bool:
    """Whether ``day`` is a Vietnamese public holiday (weekends aside)."""
    return day in _holidays(day.year)


def is_working_day(day: date) -> bool:
    """Whether ``day`` is a working day: Monday to Friday and not a public holiday."""
    return day.weekday() < 5 and not is_holiday(day)


def _require_aware(start: datetime) -> None:
    if start.tzinfo is None:
        raise ValueError("deadlines are counted from an aware datetime, not a naive one")


def add_hours(start: datetime, hours: int, tz: ZoneInfo = VIETNAM) -> datetime:
    """The moment ``hours`` hours after ``start``, in ``tz`` (calendar hours: holidays do not stop the clock).

    :raises ValueError: ``start`` is naive.
    """
    _require_aware(start)
    return (start.astimezone(UTC) + timedelta(hours=hours)).astimezone(tz)


def add_working_days(start: datetime, days: int, tz: ZoneInfo = VIETNAM) -> datetime:
    """The end of the ``days``-th working day after the local day of ``start``, in ``tz``.

    The day of the event does not count (Civil Code 2015, Art. 147): a report on Friday 14:00 with 5 working days
    is due at the end of the next Friday, or later when holidays come in between.

    :raises ValueError: ``start`` is naive, or ``days`` is below 1.
    """
    _require_aware(start)
    if days < 1:
        raise ValueError("a deadline in working days needs at least one day")
    day = start.astimezone(tz).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_working_day(day):
            counted += 1
    return datetime.combine(day, END_OF_DAY, tzinfo=tz)
