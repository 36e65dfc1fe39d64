"""Report periods: a day, a week (Monday to Sunday), a month, a quarter, a year or a custom range of
business days. Pure.

A period is a range of business days (qms_common.config.business_day: the day a moment belongs
to in the site's time zone), never of instants: a ticket issued at 23:59 on 31 March in Ho Chi
Minh City is in March's report, one issued a minute later in April's, whatever the server's clock
zone. The days are inclusive at both ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum


class PeriodKind(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    CUSTOM = "custom"


KIND_NAMES_VI = {
    PeriodKind.DAY: "Ngày",
    PeriodKind.WEEK: "Tuần",
    PeriodKind.MONTH: "Tháng",
    PeriodKind.QUARTER: "Quý",
    PeriodKind.YEAR: "Năm",
    PeriodKind.CUSTOM: "Tùy chọn",
}

# A custom range longer than this is refused: nobody needs more than ten years in one table, and
# a typo ("0202-01-01") should not make the server add up two thousand years of nothing.
MAX_DAYS = 3700


@dataclass(frozen=True)
class Period:
    kind: str
    start: date
    end: date  # inclusive

    def __post_init__(self) -> None:
        if self.kind not in set(PeriodKind):
            raise ValueError(f"Loại kỳ báo cáo không hợp lệ: {self.kind!r}.")
        if self.end < self.start:
            raise ValueError("Ngày kết thúc phải không sớm hơn ngày bắt đầu.")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def each_day(self) -> Iterator[date]:
        d = self.start
        while d <= self.end:
            yield d
            d += timedelta(days=1)

    def contains(self, day: date | str) -> bool:
        d = date.fromisoformat(day) if isinstance(day, str) else day
        return self.start <= d <= self.end

    def previous(self) -> Period:
        """The period just before: the previous calendar month, quarter or year (whatever their
        lengths), the previous day or week; a custom range gets a range of the same length ending
        the day before it starts."""
        before = self.start - timedelta(days=1)
        if self.kind in (PeriodKind.MONTH, PeriodKind.QUARTER, PeriodKind.YEAR):
            return period_of(self.kind, before)
        return Period(self.kind, self.start - timedelta(days=self.days), before)

    @property
    def label(self) -> str:
        """How the period is named on pages and in exports (Vietnamese)."""
        s, e = self.start, self.end
        if self.kind == PeriodKind.DAY:
            return f"Ngày {s:%d/%m/%Y}"
        if self.kind == PeriodKind.MONTH:
            return f"Tháng {s.month:02d}/{s.year}"
        if self.kind == PeriodKind.QUARTER:
            return f"Quý {(s.month - 1) // 3 + 1}/{s.year}"
        if self.kind == PeriodKind.YEAR:
            return f"Năm {s.year}"
        if self.kind == PeriodKind.WEEK:
            return f"Tuần {s.isocalendar().week}/{s.isocalendar().year} ({s:%d/%m} – {e:%d/%m/%Y})"
        return f"Từ {s:%d/%m/%Y} đến {e:%d/%m/%Y}"

    @property
    def heading(self) -> str:
        """The label with its dates, where the label does not say them already (a printed report)."""
        if self.kind in (PeriodKind.MONTH, PeriodKind.QUARTER, PeriodKind.YEAR):
            return f"{self.label} (từ ngày {self.start:%d/%m/%Y} đến ngày {self.end:%d/%m/%Y})"
        return self.label

    def query(self) -> dict[str, str]:
        """The query string that parses back to this period."""
        if self.kind == PeriodKind.CUSTOM:
            return {"from": self.start.isoformat(), "to": self.end.isoformat()}
        return {"period": self.kind, "date": self.start.isoformat()}


def period_of(kind: str, anchor: date) -> Period:
    """The period of this kind that holds the anchor day (custom: that one day)."""
    if kind == PeriodKind.DAY or kind == PeriodKind.CUSTOM:
        return Period(kind, anchor, anchor)
    if kind == PeriodKind.WEEK:
        start = anchor - timedelta(days=anchor.weekday())
        return Period(kind, start, start + timedelta(days=6))
    if kind == PeriodKind.MONTH:
        start = anchor.replace(day=1)
        return Period(kind, start, _next_month(start) - timedelta(days=1))
    if kind == PeriodKind.QUARTER:
        start = date(anchor.year, 3 * ((anchor.month - 1) // 3) + 1, 1)
        end = _next_month(_next_month(_next_month(start))) - timedelta(days=1)
        return Period(kind, start, end)
    if kind == PeriodKind.YEAR:
        return Period(kind, date(anchor.year, 1, 1), date(anchor.year, 12, 31))
    raise ValueError(f"Loại kỳ báo cáo không hợp lệ: {kind!r} (ngày, tuần, tháng, quý, năm hoặc tùy chọn).")


def _next_month(d: date) -> date:
    return date(d.year + 1, 1, 1) if d.month == 12 else date(d.year, d.month + 1, 1)


def _parse_day(value: str, what: str) -> date:
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{what} không hợp lệ: {value!r} (cần dạng NNNN-TT-NN, ví dụ 2026-03-31).") from None


def parse_period(query: Mapping[str, str], today: date) -> Period:
    """The period a page's query asks for: `period=month&date=YYYY-MM-DD` (date defaults to today;
    period defaults to month) or `from=YYYY-MM-DD&to=YYYY-MM-DD` (custom). Raises ValueError with
    a Vietnamese message for anything else."""
    start, end = query.get("from"), query.get("to")
    if start or end:
        if not start or not end:
            raise ValueError("Kỳ tùy chọn cần cả ngày bắt đầu (from) và ngày kết thúc (to).")
        first, last = _parse_day(start, "Ngày bắt đầu"), _parse_day(end, "Ngày kết thúc")
        if last < first:
            raise ValueError("Ngày kết thúc phải không sớm hơn ngày bắt đầu.")
        if (last - first).days + 1 > MAX_DAYS:
            raise ValueError(f"Kỳ báo cáo quá dài (tối đa {MAX_DAYS} ngày).")
        return Period(PeriodKind.CUSTOM, first, last)
    kind = query.get("period") or PeriodKind.MONTH
    if kind not in set(PeriodKind) or kind == PeriodKind.CUSTOM:
        raise ValueError(f"Loại kỳ báo cáo không hợp lệ: {kind!r} (day, week, month, quarter hoặc year).")
    anchor = _parse_day(query["date"], "Ngày") if query.get("date") else today
    return period_of(kind, anchor)
