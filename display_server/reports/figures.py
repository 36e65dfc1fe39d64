"""The report's figures: what a group of tickets and dossiers adds up to. Pure.

One set of rules for history and for today: a ticket record becomes a TicketFact, a fact gives
its contributions (`ticket_parts`) to keys (day, officer, counter, field, procedure, hour), and
the parts of a key add up in a Measures. The warehouse stores Measures per key and day (daily
aggregates); today's are made from the live records the same way. A report groups keys by a
Dimension and turns each group's Measures into Figures.

Where a ticket counts (docs/web.md, "Báo cáo"):
- issued and transferred: in the field that issued it (its origin field), at its issue hour;
- served, no-show, wait, service, rating: in the field it was served in, for the officer and
  counter that called it last;
- a ticket is "transferred" when it left its origin field, or is waiting transferred now.
Wait: issue to the (last) call; service: call to the end, served tickets only (as the live
dashboard, display_server.reports.stats). Median: the middle value (the mean of the two middle
ones for an even count); p90: the nearest-rank 90th percentile.
Decision 766: units = dossiers received in the period + served tickets without a dossier;
dissatisfied = units rated the lowest level (no complaint source yet); satisfaction =
(units − dissatisfied) ÷ units × 100; an unrated unit counts as satisfied.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, tzinfo
from enum import StrEnum
from typing import Any

from display_server.reports.periods import Period
from display_server.reports.stats import parse_time, service_s, wait_s
from qms_common.protocol import TicketStatus


class Dimension(StrEnum):
    OFFICER = "officer"
    COUNTER = "counter"
    FIELD = "field"
    PROCEDURE = "procedure"
    HOUR = "hour"
    WEEKDAY = "weekday"


DIMENSION_NAMES_VI = {
    Dimension.OFFICER: "Cán bộ",
    Dimension.COUNTER: "Quầy",
    Dimension.FIELD: "Lĩnh vực",
    Dimension.PROCEDURE: "Thủ tục",
    Dimension.HOUR: "Giờ trong ngày",
    Dimension.WEEKDAY: "Thứ trong tuần",
}

WEEKDAYS_VI = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")
NONE_KEY = ""  # a ticket nobody called, a ticket without a dossier's procedure
NONE_LABELS_VI = {
    Dimension.OFFICER: "(chưa gọi)",
    Dimension.COUNTER: "(chưa gọi)",
    Dimension.FIELD: "(không rõ)",
    Dimension.PROCEDURE: "(không có hồ sơ)",
}


class Basis(StrEnum):
    DOSSIERS = "dossiers"
    TICKETS = "tickets"
    MIXED = "mixed"


@dataclass(frozen=True)
class Figures:
    issued: int
    served: int
    no_show: int
    transferred: int
    wait_mean_s: float | None
    wait_median_s: float | None
    wait_p90_s: float | None
    wait_max_s: float | None
    service_mean_s: float | None
    service_median_s: float | None
    within_target: float | None  # share 0..1 of the waits within the target
    ratings: tuple[int, ...]     # one count per rating level, lowest first
    units: int
    dissatisfied: int
    satisfaction_pct: float | None
    basis: str
    dossiers_received: int
    dossiers_on_time: int
    dossiers_overdue: int


FIGURE_NAMES = tuple(f for f in Figures.__dataclass_fields__)


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    figures: Figures
    previous: Figures | None


@dataclass(frozen=True)
class Report:
    period: Period
    previous_period: Period
    dimension: Dimension
    rows: list[Row]
    total: Row
    notes: list[str]
    trend: list[tuple[date, Figures]]
    pending_days: int  # > 0 while the warehouse still rolls up history in the period


# ------------------------------------------------------------------ facts


@dataclass(frozen=True)
class TicketFact:
    """One ticket of a finished (or today's) business day, as the report reads it."""

    id: str
    day: str
    number: str
    field: str
    origin_field: str
    counter: str
    officer: str
    procedure: str
    hour: int       # issue hour in the site's zone
    status: str
    wait_s: int | None
    service_s: int | None
    within: bool | None  # waited no longer than the target (None: never called)
    rating: int | None
    dossier: str | None
    transferred: bool


@dataclass(frozen=True)
class DossierFact:
    """One dossier, as the report reads it (a dossier service view, reduced)."""

    code: str
    procedure: str       # the procedure code ("" when the dossier has none)
    procedure_name: str
    field: str
    officer: str
    counter: str
    ticket: str | None
    received_day: str
    received_hour: int
    due: str
    done_day: str | None  # the result's day (None: no result yet)
    status: str
    rating: int | None


Key = tuple[str, str, str, str, str, int]  # day, officer, counter, field, procedure, hour


def _text(value: Any) -> str:
    return value if isinstance(value, str) else NONE_KEY


def _score(value: Any, levels: int) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= levels:
        return value
    return None


def _status(r: Mapping[str, Any], called: bool) -> str:
    """The core's rollover turns the day's no-shows, like the tickets still waiting, into
    `expired`: one that was called and is expired did not come when called."""
    status = _text(r.get("status"))
    return TicketStatus.NO_SHOW.value if status == TicketStatus.EXPIRED and called else status


def ticket_fact(record: Mapping[str, Any], *, tz: tzinfo, target_s: int, levels: int,
                procedures: Mapping[str, str] | None = None) -> TicketFact:
    """A core ticket record as a fact; `procedures` maps dossier codes to procedure codes."""
    r = dict(record)
    issued = parse_time(r.get("issued_at"))
    w = wait_s(r)
    field_id = _text(r.get("field"))
    origin = _text(r.get("origin_field")) or field_id
    dossier = r.get("dossier") if isinstance(r.get("dossier"), str) and r.get("dossier") else None
    called = r.get("called_at") is not None
    return TicketFact(
        id=_text(r.get("id")), day=_text(r.get("day")), number=_text(r.get("number")), field=field_id,
        origin_field=origin, counter=_text(r.get("counter")) if called else NONE_KEY,
        officer=_text(r.get("officer")) if called else NONE_KEY,
        procedure=(procedures or {}).get(dossier or "", NONE_KEY),
        hour=issued.astimezone(tz).hour if issued is not None else 0, status=_status(r, called),
        wait_s=w, service_s=service_s(r), within=None if w is None else w <= target_s,
        rating=_score(r.get("rating"), levels) if r.get("status") == TicketStatus.DONE else None,
        dossier=dossier,
        transferred=origin != field_id or r.get("status") == TicketStatus.TRANSFERRED)


def dossier_fact(view: Mapping[str, Any], *, tz: tzinfo, levels: int) -> DossierFact:
    """A dossier service view (docs/protocol.md, "Dossiers") as a fact."""
    received = parse_time(view.get("received_at"))
    done = parse_time(view.get("done_at"))
    procedure = view.get("procedure") if isinstance(view.get("procedure"), dict) else {}
    rating = view.get("rating") if isinstance(view.get("rating"), dict) else {}
    local = received.astimezone(tz) if received is not None else None
    return DossierFact(
        code=_text(view.get("code")), procedure=_text(procedure.get("code")),
        procedure_name=_text(procedure.get("name")), field=_text(view.get("field")),
        officer=_text(view.get("officer")), counter=_text(view.get("counter")),
        ticket=view.get("ticket") if isinstance(view.get("ticket"), str) else None,
        received_day=local.date().isoformat() if local else NONE_KEY, received_hour=local.hour if local else 0,
        due=_text(view.get("due_at")), done_day=done.astimezone(tz).date().isoformat() if done else None,
        status=_text(view.get("status")), rating=_score(rating.get("score"), levels))


# ------------------------------------------------------------------ measures


@dataclass(eq=False)
class Measures:
    """What the tickets and dossiers of one key (or group of keys) add up to: counts, sums and
    every wait and service time (for the exact median and p90)."""

    levels: int
    issued: int = 0
    served: int = 0
    no_show: int = 0
    transferred: int = 0
    waits: list[int] = field(default_factory=list)
    services: list[int] = field(default_factory=list)
    within: int = 0
    ratings: list[int] = field(default_factory=list)  # per level, lowest first
    ticket_units: int = 0          # served tickets without a dossier
    ticket_dissatisfied: int = 0   # … rated the lowest level
    dossiers_received: int = 0     # the dossier units
    dossier_dissatisfied: int = 0
    dossiers_on_time: int = 0
    dossiers_overdue: int = 0

    def __post_init__(self) -> None:
        if not self.ratings:
            self.ratings = [0] * self.levels

    def add(self, other: Measures) -> None:
        self.issued += other.issued
        self.served += other.served
        self.no_show += other.no_show
        self.transferred += other.transferred
        self.waits.extend(other.waits)
        self.services.extend(other.services)
        self.within += other.within
        for i, n in enumerate(other.ratings[:self.levels]):
            self.ratings[i] += n
        self.ticket_units += other.ticket_units
        self.ticket_dissatisfied += other.ticket_dissatisfied
        self.dossiers_received += other.dossiers_received
        self.dossier_dissatisfied += other.dossier_dissatisfied
        self.dossiers_on_time += other.dossiers_on_time
        self.dossiers_overdue += other.dossiers_overdue

    def figures(self) -> Figures:
        waits, services = _Ordered(self.waits), _Ordered(self.services)
        units = self.dossiers_received + self.ticket_units
        dissatisfied = self.dossier_dissatisfied + self.ticket_dissatisfied
        if self.ticket_units == 0:
            basis = Basis.DOSSIERS
        elif self.dossiers_received == 0:
            basis = Basis.TICKETS
        else:
            basis = Basis.MIXED
        return Figures(
            issued=self.issued, served=self.served, no_show=self.no_show, transferred=self.transferred,
            wait_mean_s=waits.mean(), wait_median_s=waits.median(), wait_p90_s=waits.p90(),
            wait_max_s=waits.max(), service_mean_s=services.mean(), service_median_s=services.median(),
            within_target=self.within / waits.n if waits.n else None, ratings=tuple(self.ratings),
            units=units, dissatisfied=dissatisfied,
            satisfaction_pct=satisfaction_pct(units, dissatisfied), basis=str(basis),
            dossiers_received=self.dossiers_received, dossiers_on_time=self.dossiers_on_time,
            dossiers_overdue=self.dossiers_overdue)


def satisfaction_pct(units: int, dissatisfied: int) -> float | None:
    """Decision 766: (units − dissatisfied) ÷ units × 100; None without a unit (the province's
    reports use it too)."""
    return (units - dissatisfied) / units * 100 if units else None


class _Ordered:
    """The order statistics of whole seconds, from how often each value occurs: a year's waits are
    some 180,000 values but a few thousand distinct ones, and counting them (in C) is several times
    faster than sorting them."""

    def __init__(self, values: list[int]) -> None:
        self.n = len(values)
        self._total = sum(values)
        self._counts = Counter(values)
        self._keys = sorted(self._counts)

    def at(self, rank: int) -> int:
        """The value at this 0-based position of the values in order."""
        seen = 0
        for k in self._keys:
            seen += self._counts[k]
            if seen > rank:
                return k
        raise IndexError(rank)

    def mean(self) -> float | None:
        return self._total / self.n if self.n else None

    def median(self) -> float | None:
        """The middle value; the mean of the two middle ones for an even count."""
        if not self.n:
            return None
        mid = self.n // 2
        return float(self.at(mid)) if self.n % 2 else (self.at(mid - 1) + self.at(mid)) / 2

    def p90(self) -> float | None:
        """Nearest rank: the smallest value at least 90 % of the values are no greater than."""
        if not self.n:
            return None
        return float(self.at(max(0, math.ceil(0.9 * self.n) - 1)))

    def max(self) -> float | None:
        return float(self._keys[-1]) if self.n else None


def ticket_parts(fact: TicketFact, levels: int) -> list[tuple[Key, Measures]]:
    """What a ticket adds, and to which keys: its issue to its origin field, its outcome to the
    field, officer and counter that served it (one key when it never moved)."""
    issue = Measures(levels, issued=1, transferred=int(fact.transferred))
    issue_key: Key = (fact.day, fact.officer, fact.counter, fact.origin_field, fact.procedure, fact.hour)
    out = Measures(levels)
    if fact.status == TicketStatus.DONE:
        out.served = 1
        if fact.service_s is not None:
            out.services.append(fact.service_s)
        if fact.rating is not None:
            out.ratings[fact.rating - 1] += 1
        if fact.dossier is None:
            out.ticket_units = 1
            out.ticket_dissatisfied = int(fact.rating == 1)
    elif fact.status == TicketStatus.NO_SHOW:
        out.no_show = 1
    if fact.wait_s is not None:
        out.waits.append(fact.wait_s)
        out.within = int(bool(fact.within))
    out_key: Key = (fact.day, fact.officer, fact.counter, fact.field, fact.procedure, fact.hour)
    if out_key == issue_key:
        issue.add(out)
        return [(issue_key, issue)]
    return [(issue_key, issue), (out_key, out)]


def dossier_parts(fact: DossierFact, levels: int, today: str) -> list[tuple[Key, Measures]]:
    """What a dossier adds: a 766 unit on the day it was received (dissatisfied when its rating is
    the lowest level); on its result's day, on time or overdue; a dossier without a result whose
    due day has passed is overdue on its due day."""
    parts: list[tuple[Key, Measures]] = []
    who = (fact.officer, fact.counter, fact.field, fact.procedure)
    if fact.received_day:
        parts.append(((fact.received_day, *who, fact.received_hour),
                      Measures(levels, dossiers_received=1, dossier_dissatisfied=int(fact.rating == 1))))
    if fact.done_day:
        late = fact.done_day > fact.due
        parts.append(((fact.done_day, *who, fact.received_hour),
                      Measures(levels, dossiers_on_time=int(not late), dossiers_overdue=int(late))))
    elif fact.status != "refused" and fact.due and fact.due < today:
        parts.append(((fact.due, *who, fact.received_hour), Measures(levels, dossiers_overdue=1)))
    return parts


ISSUE_FIGURES = frozenset({"issued", "transferred"})  # counted in the origin field
ALL_KEY = "*"  # the drill-down's key of the total row


def matches(fact: TicketFact, dimension: Dimension, key: str, figure: str) -> bool:
    """Whether this ticket is behind this figure of this row (the drill-down); key ALL_KEY: the
    total row."""
    if key == ALL_KEY:
        where = key
    elif dimension == Dimension.FIELD:
        where = fact.origin_field if figure in ISSUE_FIGURES else fact.field
    elif dimension == Dimension.OFFICER:
        where = fact.officer
    elif dimension == Dimension.COUNTER:
        where = fact.counter
    elif dimension == Dimension.PROCEDURE:
        where = fact.procedure
    elif dimension == Dimension.HOUR:
        where = str(fact.hour)
    else:
        where = str(date.fromisoformat(fact.day).weekday())
    if where != key:
        return False
    done = fact.status == TicketStatus.DONE
    if figure.startswith("wait_"):
        return fact.wait_s is not None
    if figure.startswith("service_"):
        return done and fact.service_s is not None
    return {
        "issued": True, "served": done, "no_show": fact.status == TicketStatus.NO_SHOW,
        "transferred": fact.transferred, "within_target": fact.within is True,
        "ratings": done and fact.rating is not None,
        "units": done and fact.dossier is None, "satisfaction_pct": done and fact.dossier is None,
        "basis": done and fact.dossier is None, "dissatisfied": done and fact.dossier is None and fact.rating == 1,
    }.get(figure, False)


def group_key(key: Key, dimension: Dimension) -> str:
    day, officer, counter, field_id, procedure, hour = key
    if dimension == Dimension.OFFICER:
        return officer
    if dimension == Dimension.COUNTER:
        return counter
    if dimension == Dimension.FIELD:
        return field_id
    if dimension == Dimension.PROCEDURE:
        return procedure
    if dimension == Dimension.HOUR:
        return str(hour)
    return str(date.fromisoformat(day).weekday())


def group(parts: Iterable[tuple[Key, Measures]], dimension: Dimension, levels: int) -> dict[str, Measures]:
    """The parts added up per row of the dimension."""
    out: dict[str, Measures] = {}
    for key, m in parts:
        k = group_key(key, dimension)
        if k not in out:
            out[k] = Measures(levels)
        out[k].add(m)
    return out


def total(parts: Iterable[Measures], levels: int) -> Measures:
    out = Measures(levels)
    for m in parts:
        out.add(m)
    return out


def label(dimension: Dimension, key: str, names: Mapping[str, str] | None = None) -> str:
    """How a row is named: the name the site gives the id, else the id itself."""
    if key == NONE_KEY and dimension in NONE_LABELS_VI:
        return NONE_LABELS_VI[dimension]
    if dimension == Dimension.HOUR:
        h = int(key)
        return f"{h:02d}:00–{h + 1:02d}:00"
    if dimension == Dimension.WEEKDAY:
        return WEEKDAYS_VI[int(key)]
    return (names or {}).get(key) or key


def sort_rows(dimension: Dimension, keys: Iterable[str]) -> list[str]:
    """Hours and weekdays in their order, the rest by id, the unassigned last."""
    if dimension in (Dimension.HOUR, Dimension.WEEKDAY):
        return sorted(keys, key=int)
    return sorted(keys, key=lambda k: (k == NONE_KEY, k))



def rows(dimension: Dimension, current: Mapping[str, Measures], previous: Mapping[str, Measures],
         names: Mapping[str, str] | None = None) -> list[Row]:
    """The report's rows: every row of the current period, each with the same row of the
    previous period beside it (None when that row had nothing then)."""
    return [Row(k, label(dimension, k, names), current[k].figures(),
                previous[k].figures() if k in previous else None)
            for k in sort_rows(dimension, current)]


def change_pct(now: float | None, before: float | None) -> float | None:
    """The change from the previous period in percent (None when there is nothing to compare)."""
    if now is None or before is None or before == 0:
        return None
    return (now - before) / before * 100
