"""The dashboard's and the reports' figures and wording. Pure: rows in, what a page shows out.

Decision 766 per office (the formula itself is display_server.reports.figures.satisfaction_pct):
handled = the dossiers the office received in the period when the province has dossiers of that
office at all, else its served tickets; dissatisfied = of those, the ones rated the lowest level
("Không hài lòng", score 1; a dossier through the rating of the ticket that recorded it);
satisfaction = (handled − dissatisfied) ÷ handled × 100. On time: of the dossiers finished in the
period that have a due date, those finished no later than it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum

from display_server.reports.figures import satisfaction_pct

# a report may span at most this many days (a year and a leap day): beyond, the page is refused
MAX_REPORT_DAYS = 366
_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only (\d would take any script's)


class Basis(StrEnum):
    DOSSIERS = "dossiers"
    TICKETS = "tickets"
    MIXED = "mixed"  # a total over offices of both kinds: dossiers and served tickets added up


BASIS_VI = {Basis.DOSSIERS: "hồ sơ tiếp nhận", Basis.TICKETS: "lượt phục vụ (chưa có dữ liệu hồ sơ)",
            Basis.MIXED: "hồ sơ tiếp nhận và lượt phục vụ"}


def sum_handled(parts: Sequence[Handled]) -> Handled:
    bases = {h.basis for h in parts}
    basis = bases.pop() if len(bases) == 1 else Basis.MIXED
    return Handled(basis, sum(h.handled for h in parts), sum(h.dissatisfied for h in parts))


@dataclass(frozen=True)
class FieldQueue:
    field: str
    name: str
    waiting: int
    longest_wait_s: int | None  # the oldest callable ticket's wait now; None when nobody waits


@dataclass(frozen=True)
class Handled:
    """The 766 counts of one office over a period."""
    basis: Basis
    handled: int
    dissatisfied: int

    @property
    def satisfaction_pct(self) -> float | None:
        return satisfaction_pct(self.handled, self.dissatisfied)


@dataclass(frozen=True)
class SiteSummary:
    """One office's line of the dashboard (and entry of /api/v1/sites)."""
    site: str
    name: str
    district: str
    online: bool
    status_at: datetime | None
    queues: tuple[FieldQueue, ...]
    counters_open: int
    counters: int
    issued_today: int
    served_today: int
    today: Handled

    @property
    def waiting(self) -> int:
        return sum(q.waiting for q in self.queues)

    @property
    def longest_wait_s(self) -> int | None:
        waits = [q.longest_wait_s for q in self.queues if q.longest_wait_s is not None]
        return max(waits) if waits else None

    @property
    def offline_since(self) -> datetime | None:
        return None if self.online else self.status_at


@dataclass(frozen=True)
class Totals:
    offices: int
    online: int
    waiting: int
    counters_open: int
    issued_today: int
    served_today: int
    today: Handled


def totals(rows: Sequence[SiteSummary]) -> Totals:
    today = sum_handled([r.today for r in rows])
    return Totals(len(rows), sum(r.online for r in rows), sum(r.waiting for r in rows),
                  sum(r.counters_open for r in rows), sum(r.issued_today for r in rows),
                  sum(r.served_today for r in rows), today)


def api_entry(r: SiteSummary) -> dict[str, object]:
    """One office as GET /api/v1/sites gives it."""
    since = r.offline_since
    pct = r.today.satisfaction_pct
    return {"site": r.site, "name": r.name, "district": r.district, "online": r.online,
            "offline_since": since.isoformat() if since else None, "waiting": r.waiting,
            "issued_today": r.issued_today, "served_today": r.served_today,
            "satisfaction": round(pct, 1) if pct is not None else None}


# ------------------------------------------------------------------ days and time


def today_in(tz: tzinfo, now: datetime | None = None) -> date:
    return (now or datetime.now(tz)).astimezone(tz).date()


def day_bounds(first: date, last: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """The instants from the start of `first` to the end of `last` (exclusive), in the zone."""
    return (datetime.combine(first, time(), tz), datetime.combine(last + timedelta(days=1), time(), tz))


def id_bounds(first: date, last: date) -> tuple[str, str]:
    """A range of ticket ids that holds every ticket issued from `first` to `last`: an id begins
    with its business day, YYYYMMDD (queue_core.rules), so the tickets' primary key (site, id)
    narrows a period to its rows without an index on issued_at. One day wider at each end, since
    a business day starting at `[site] day_starts` may differ from the calendar day; the exact
    filter is issued_at."""
    return ((first - timedelta(days=1)).strftime("%Y%m%d"), (last + timedelta(days=2)).strftime("%Y%m%d"))


class PeriodError(ValueError):
    """A report period that cannot be read: the message says why, in Vietnamese."""


def parse_period(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """`from` and `to` of a report (YYYY-MM-DD, both included); by default this month so far."""
    first = _day("from", start) if start else today.replace(day=1)
    last = _day("to", end) if end else today
    if last < first:
        raise PeriodError(f"Ngày kết thúc {last:%d/%m/%Y} trước ngày bắt đầu {first:%d/%m/%Y}.")
    if (last - first).days + 1 > MAX_REPORT_DAYS:
        raise PeriodError(f"Kỳ báo cáo dài quá {MAX_REPORT_DAYS} ngày: chọn kỳ ngắn hơn.")
    return first, last


def _day(name: str, value: str) -> date:
    label = "bắt đầu (from)" if name == "from" else "kết thúc (to)"
    if not _DAY_RE.fullmatch(value):
        raise PeriodError(f"Ngày {label} {value[:40]!r} không đúng dạng YYYY-MM-DD, ví dụ 2026-11-30.")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PeriodError(f"Ngày {label} {value!r} không có trong lịch.") from None


def offline_text(status_at: datetime | None, tz: tzinfo) -> str:
    if status_at is None:
        return "ngoại tuyến (chưa từng kết nối)"
    local = status_at.astimezone(tz)
    return f"ngoại tuyến từ {local:%H:%M %d/%m}"


def minutes(seconds: float | None) -> str:
    """A duration as the pages show it: whole minutes, "—" for none."""
    if seconds is None:
        return "—"
    return f"{round(seconds / 60)} phút"


def percent(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}".replace(".", ",") + " %"


def number(value: int) -> str:
    """Thousands separated by a dot, as Vietnamese writes them."""
    return f"{value:,}".replace(",", ".")


# ------------------------------------------------------------------ reports


@dataclass(frozen=True)
class ReportRow:
    site: str
    name: str
    district: str
    issued: int
    served: int
    wait_sum_s: float  # of the tickets called in the period
    waits: int
    handled: Handled
    dossiers_done: int   # finished in the period with a due date
    dossiers_on_time: int
    rank: int | None = None  # by satisfaction, 1 the best; None without a figure

    @property
    def wait_mean_s(self) -> float | None:
        return self.wait_sum_s / self.waits if self.waits else None

    @property
    def on_time_pct(self) -> float | None:
        return self.dossiers_on_time / self.dossiers_done * 100 if self.dossiers_done else None


@dataclass(frozen=True)
class Report:
    first: date
    last: date
    rows: tuple[ReportRow, ...]  # in ranking order
    total: ReportRow


def ranked(rows: Sequence[ReportRow]) -> list[ReportRow]:
    """Best satisfaction first (ties share a rank, then by name); offices without a figure last."""
    rated = sorted((r for r in rows if r.handled.satisfaction_pct is not None),
                   key=lambda r: (-(r.handled.satisfaction_pct or 0.0), r.name))
    out: list[ReportRow] = []
    previous: float | None = None
    rank = 0
    for i, r in enumerate(rated, start=1):
        pct = r.handled.satisfaction_pct
        if pct != previous:
            rank, previous = i, pct
        out.append(_with_rank(r, rank))
    out.extend(sorted((r for r in rows if r.handled.satisfaction_pct is None), key=lambda r: r.name))
    return out


def _with_rank(r: ReportRow, rank: int) -> ReportRow:
    return dataclasses.replace(r, rank=rank)


def report_total(rows: Sequence[ReportRow]) -> ReportRow:
    """The total row: sums, the mean wait over every called ticket, and one 766 figure over the
    offices' units (dossiers and served tickets added up when the offices' bases differ)."""
    return ReportRow("", "Tổng cộng", "", sum(r.issued for r in rows), sum(r.served for r in rows),
                     sum(r.wait_sum_s for r in rows), sum(r.waits for r in rows),
                     sum_handled([r.handled for r in rows]), sum(r.dossiers_done for r in rows),
                     sum(r.dossiers_on_time for r in rows))
