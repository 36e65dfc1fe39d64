"""Statistics of ticket records (the core's `tickets` query): totals, per field, per officer,
per counter and per hour. Pure: records in, a JSON-ready dict out.

Wait: from issue to the (last) call. Service: from the call to the end, for served tickets.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from qms_common.protocol import CALLABLE_STATUSES, TicketStatus

UNKNOWN_OFFICER = ""  # a call that named nobody: counted per counter, shown as its counter's officer


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def seconds_between(start: Any, end: Any) -> int | None:
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None or b < a:
        return None
    return round((b - a).total_seconds())


def wait_s(record: dict[str, Any]) -> int | None:
    return seconds_between(record.get("issued_at"), record.get("called_at"))


def service_s(record: dict[str, Any]) -> int | None:
    if record.get("status") != TicketStatus.DONE:
        return None
    return seconds_between(record.get("called_at"), record.get("finished_at"))


@dataclass(eq=False)
class _Tally:
    """Running sums for one group of tickets."""

    levels: int
    issued: int = 0
    called: int = 0
    served: int = 0
    waiting: int = 0
    no_show: int = 0
    wait_sum: int = 0
    wait_n: int = 0
    service_sum: int = 0
    service_n: int = 0
    ratings: list[int] = field(default_factory=list)
    oldest_waiting: str | None = None

    def add(self, r: dict[str, Any], wait: int | None, service: int | None) -> None:
        status = r.get("status")
        if r.get("called_at") is not None:
            self.called += 1
        self.add_wait(wait)
        if status == TicketStatus.DONE:
            self.served += 1
            self.add_service(service)
            self.add_rating(r.get("rating"))
        elif status == TicketStatus.NO_SHOW:
            self.no_show += 1
        elif status in CALLABLE_STATUSES:
            self.waiting += 1
            issued_at = r.get("issued_at")
            if isinstance(issued_at, str) and (self.oldest_waiting is None or _earlier(issued_at, self.oldest_waiting)):
                self.oldest_waiting = issued_at

    def add_wait(self, s: int | None) -> None:
        if s is not None:
            self.wait_sum += s
            self.wait_n += 1

    def add_service(self, s: int | None) -> None:
        if s is not None:
            self.service_sum += s
            self.service_n += 1

    def add_rating(self, score: Any) -> None:
        if isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= self.levels:
            self.ratings.append(score)

    def view(self) -> dict[str, Any]:
        counts = Counter(self.ratings)
        rated = len(self.ratings)
        return {
            "issued": self.issued, "called": self.called, "served": self.served, "waiting": self.waiting,
            "no_show": self.no_show,
            "avg_wait_s": round(self.wait_sum / self.wait_n) if self.wait_n else None,
            "avg_service_s": round(self.service_sum / self.service_n) if self.service_n else None,
            "rated": rated,
            "ratings": [counts.get(score, 0) for score in range(1, self.levels + 1)],
            "avg_rating": round(sum(self.ratings) / rated, 2) if rated else None,
            # the share of the best level ("Rất hài lòng"), in percent
            "top_share": round(100 * counts.get(self.levels, 0) / rated) if rated else None,
            "oldest_waiting": self.oldest_waiting,
        }


def compute(records: Iterable[dict[str, Any]], *, levels: int, tz: tzinfo) -> dict[str, Any]:
    """The statistics of these records; `levels` is the number of rating levels of the site."""
    total = _Tally(levels)
    fields: dict[str, _Tally] = defaultdict(lambda: _Tally(levels))
    officers: dict[tuple[str, str], _Tally] = defaultdict(lambda: _Tally(levels))  # (officer, counter if unnamed)
    counters: dict[str, _Tally] = defaultdict(lambda: _Tally(levels))
    hours: dict[int, _Tally] = defaultdict(lambda: _Tally(levels))
    for r in records:
        status = r.get("status")
        field_id = str(r.get("field") or "")
        w, s = wait_s(r), service_s(r)
        groups = [total, fields[field_id]]
        for g in groups:
            g.issued += 1
        called = parse_time(r.get("called_at"))
        if called is not None:
            officer = r.get("officer") if isinstance(r.get("officer"), str) else UNKNOWN_OFFICER
            where = str(r.get("counter") or "") if officer == UNKNOWN_OFFICER else ""
            groups.append(officers[(officer, where)])
            if isinstance(r.get("counter"), str):
                groups.append(counters[r["counter"]])
        for g in groups:
            g.add(r, w, s)
        issued = parse_time(r.get("issued_at"))
        if issued is not None:
            hours[issued.astimezone(tz).hour].issued += 1
        if called is not None:
            hours[called.astimezone(tz).hour].add_wait(w)
        finished = parse_time(r.get("finished_at"))
        if finished is not None and status == TicketStatus.DONE:
            hour = hours[finished.astimezone(tz).hour]
            hour.served += 1
            hour.add_service(s)
    by_hour = []
    if hours:
        for h in range(min(hours), max(hours) + 1):
            v = hours[h].view()
            by_hour.append({"hour": h, "issued": v["issued"], "served": v["served"], "avg_wait_s": v["avg_wait_s"],
                            "avg_service_s": v["avg_service_s"]})
    return {
        "total": total.view(),
        "fields": {k: v.view() for k, v in sorted(fields.items())},
        "officers": [{"officer": k[0], "counter": k[1] or None, **v.view()}
                     for k, v in sorted(officers.items(), key=lambda kv: (-kv[1].served, kv[0]))],
        "counters": {k: v.view() for k, v in sorted(counters.items())},
        "by_hour": by_hour,
    }


def _earlier(a: str, b: str) -> bool:
    ta, tb = parse_time(a), parse_time(b)
    return ta is not None and (tb is None or ta < tb)
