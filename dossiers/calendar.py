"""Business days: the promised return date (ngày hẹn trả) and how late a dossier is.

Legal processing times are counted in working days: the office's closed weekdays and its
holidays do not count. Pure functions; the web server imports them too (a procedure's
processing_days give a new dossier's due date).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

# Ten years of days: far beyond any processing time, and a bound on a calendar with (wrongly)
# every day closed.
MAX_SEARCH_DAYS = 3660


@dataclass(frozen=True)
class BusinessCalendar:
    closed_weekdays: frozenset[int] = frozenset({5, 6})  # date.weekday(): 5 = Saturday, 6 = Sunday
    holidays: frozenset[date] = frozenset()

    @classmethod
    def of(cls, closed_weekdays: Iterable[int] = (5, 6), holidays: Iterable[date | str] = ()) -> BusinessCalendar:
        """From the site file's values: holidays as dates or "YYYY-MM-DD"."""
        days = frozenset(d if isinstance(d, date) else date.fromisoformat(d) for d in holidays)
        return cls(frozenset(closed_weekdays), days)

    def is_open(self, day: date) -> bool:
        return day.weekday() not in self.closed_weekdays and day not in self.holidays


def add_business_days(start: date, n: int, cal: BusinessCalendar) -> date:
    """The n-th open day after `start` (start itself does not count): received on a Friday with
    one business day, due the Monday. n = 0: start itself."""
    if n < 0:
        raise ValueError("số ngày làm việc phải không âm")
    day = start
    for _ in range(MAX_SEARCH_DAYS * max(1, n)):
        if n == 0:
            return day
        day += timedelta(days=1)
        if cal.is_open(day):
            n -= 1
    raise ValueError("lịch làm việc không có ngày mở cửa nào")


def late_business_days(due: date, end: date, cal: BusinessCalendar) -> int:
    """Open days after `due` up to and including `end`: 0 when end is not after due. Due on a
    Friday and done the Monday after: one day late (the weekend does not count)."""
    if end <= due:
        return 0
    return sum(1 for i in range(1, (end - due).days + 1) if cal.is_open(due + timedelta(days=i)))
