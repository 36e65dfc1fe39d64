"""Realistic past business days for a site: tickets in the core's database, dossiers in the dossier
service's, as they would have left them (for the reports' benchmark and the demo).

    python scripts/gen_history.py --config site.toml --days 90 --per-day 500 [--seed 1] [--end YYYY-MM-DD]

`--days N`: the last N OPEN days up to `--end` (default: the day before the core's current
business day); the office's closed weekdays and holidays ([dossiers], else [appointments], else
Saturday and Sunday) get no tickets. `--per-day`: tickets on an average open day (Mondays busier,
Fridays quieter, a slack month around Tết). A day that already has tickets is skipped, so running
it again adds only what is missing; so is a day before the newest one with tickets (the core's issue
order follows the days, and readers rely on it: history is added before the core first runs, or
after its last day).

Each day is a small simulation of the office: citizens arrive by the hour (a morning peak, a
smaller one after lunch), take a number per field, and the counters call them in the core's order
(priority first, then by issue time), with service times by field, ~5% not there when called, a
few transferred to another field (keeping their place), ratings by the site's [rating] levels
(mostly the top two, a few the lowest, more of them after a long wait), and the officers of each
counter (the site's officer accounts first), some of whom swap counters mid-month. About 60% of
the served citizens lodge a dossier (procedures of examples/procedures.json, or --procedures),
received at the counter and due after the procedure's business days; most are done on time, some
early, some late, the latest still in progress; each rated ticket's rating is on its dossier.

Never under a running core: the databases are opened exclusively (refused while the core or the
dossier service has them open, which also keeps them from starting meanwhile), and a core that
says it is online on the broker is a refusal too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import math
import random
import sqlite3
import sys
import time as clock
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiomqtt  # noqa: E402

from display_server.catalogue.importer import CatalogueFileError, parse  # noqa: E402
from display_server.catalogue.search import FieldMap  # noqa: E402
from dossiers.calendar import BusinessCalendar, add_business_days  # noqa: E402
from dossiers.model import Dossier, Entry, Rating  # noqa: E402
from dossiers.settings import DossierSettings, load_dossier_settings  # noqa: E402
from dossiers.store import DossierStore  # noqa: E402
from qms_common.config import SiteConfig, business_day, load_site_config  # noqa: E402
from qms_common.mqtt import make_client  # noqa: E402
from qms_common.protocol import DossierSource, DossierStatus, TicketStatus, Topics  # noqa: E402
from qms_common.tomlconf import ConfigError  # noqa: E402
from queue_core.model import Ticket  # noqa: E402
from queue_core.rules import ticket_id  # noqa: E402
from queue_core.store import Store  # noqa: E402

PROCEDURES = ROOT / "examples" / "procedures.json"

# ---------------------------------------------------------------- the office (pure)

# Seconds after local midnight. Citizens take numbers from a little before the counters open
# until a little before they close; the counters finish the morning's queue up to 11:45.
MORNING = (7 * 3600 + 15 * 60, 11 * 3600 + 15 * 60, 8 * 3600 + 30 * 60)    # arrivals: from, to, peak
AFTERNOON = (13 * 3600 + 15 * 60, 16 * 3600 + 30 * 60, 14 * 3600 + 15 * 60)
MORNING_SHARE = 0.62
OPENS, LUNCH, LUNCH_CUT, REOPENS, CLOSES = (7 * 3600 + 30 * 60, 11 * 3600 + 30 * 60, 11 * 3600 + 45 * 60,
                                            13 * 3600 + 30 * 60, 17 * 3600)
SERVING_S = (LUNCH - OPENS) + (CLOSES - REOPENS)
UTILISATION = 0.75   # service times shrink when a day's demand would need more than this of the counters
NO_SHOW = 0.05
TRANSFER = 0.03
PRIORITY = 0.04
RATED = 0.7
WITH_DOSSIER = 0.6
# an average open day of each weekday (normalised over the site's open weekdays)
WEEKDAY = (1.15, 1.05, 1.0, 0.95, 0.85, 0.6, 0.5)
# by month: the weeks around Tết are slack, January's rush before it is not
MONTH = (1.10, 0.85, 1.0, 1.0, 1.0, 1.05, 1.05, 0.95, 1.0, 1.0, 1.0, 1.0)
# mean service minutes of fields the demo knows; others get one from their id
SERVICE_MIN = {"dat-dai": 7.0, "ho-tich": 5.0, "dang-ky-kinh-doanh": 6.0, "chung-thuc": 3.0}
FIELD_WEIGHT = {"dat-dai": 1.0, "ho-tich": 1.3, "dang-ky-kinh-doanh": 0.6, "chung-thuc": 1.6}
NAMES = ("Phạm Thị Thu Trang", "Hoàng Văn Nam", "Đặng Thị Mai", "Bùi Quốc Tuấn", "Võ Thị Ngọc Anh", "Đỗ Minh Khoa",
         "Ngô Thị Hạnh", "Dương Văn Long", "Lý Thị Kim Oanh", "Huỳnh Đức Thắng", "Trịnh Thị Lan", "Phan Văn Hùng",
         "Vũ Thị Hồng Nhung", "Mai Xuân Bình", "Cao Thị Thảo", "Tạ Quang Vinh", "Lưu Thị Bích Ngọc", "Hồ Văn Tài",
         "Đinh Thị Yến", "Lâm Quốc Việt")
DOSSIER_PREFIX = "000.00.12.H23"   # the shape of the province system's codes: {prefix}-YYMMDD-NNNN


@dataclass(frozen=True)
class Officer:
    name: str
    username: str
    counters: frozenset[str] | None = None   # None: any counter

    def may_use(self, counter: str) -> bool:
        return self.counters is None or counter in self.counters


@dataclass(frozen=True)
class Procedure:
    name: str
    code: str | None
    days: int
    documents: tuple[str, ...] = ()


@dataclass(frozen=True)
class Office:
    site: SiteConfig
    calendar: BusinessCalendar
    base: dict[str, Officer]            # counter -> who usually works there
    spare: Officer | None               # covers a colleague's day off
    procedures: dict[str, tuple[Procedure, ...]]   # by field id
    sources: tuple[str, ...]            # kiosk ids
    served_fields: tuple[str, ...]      # fields some counter calls (others' tickets would only expire)

    @property
    def officers(self) -> list[Officer]:
        return [*dict.fromkeys(self.base.values()), *([self.spare] if self.spare else [])]


def _stable(text: str) -> random.Random:
    """A generator that depends only on the text (random's own seeding of str is stable)."""
    return random.Random(text)


def service_min(field_id: str) -> float:
    return SERVICE_MIN.get(field_id) or _stable(f"service:{field_id}").uniform(3.0, 8.0)


def field_weight(field_id: str) -> float:
    return FIELD_WEIGHT.get(field_id) or _stable(f"weight:{field_id}").uniform(0.6, 1.6)


def officers_of(site: SiteConfig) -> tuple[dict[str, Officer], Officer | None]:
    """Who works at each counter: the site's officer accounts on a counter they may use, then
    people of NAMES; one more of them is the spare."""
    accounts = [a for a in site.raw.get("accounts", []) if isinstance(a, dict) and a.get("role") == "officer"]
    taken = {str(a.get("username")) for a in site.raw.get("accounts", []) if isinstance(a, dict)}
    people = [Officer(str(a.get("name") or a["username"]), str(a["username"]),
                      frozenset(map(str, a["counters"])) if a.get("counters") else None) for a in accounts]
    base: dict[str, Officer] = {}
    counters = [c.id for c in site.counters]
    for p in people:
        free = next((c for c in counters if c not in base and p.may_use(c)), None)
        if free is not None:
            base[free] = p
    numbers = (n for n in range(1, 10_000) if f"canbo{n}" not in taken)

    def someone(i: int) -> Officer:
        name = NAMES[i % len(NAMES)] + (f" {i // len(NAMES) + 1}" if i >= len(NAMES) else "")
        return Officer(name, f"canbo{next(numbers)}")

    named = 0
    for c in counters:
        if c not in base:
            base[c] = someone(named)
            named += 1
    return base, someone(named) if counters else None


def procedures_of(site: SiteConfig, path: Path | None) -> dict[str, tuple[Procedure, ...]]:
    """The catalogue file's procedures by the site's field they map to; a field with none gets
    one named after it (its dossiers then still have a procedure)."""
    by_field: dict[str, list[Procedure]] = {f.id: [] for f in site.fields}
    if path is not None and path.exists():
        fields = FieldMap((f.id, f.name) for f in site.fields)
        for p in parse(path.read_text(encoding="utf-8"), "csv" if path.suffix.lower() == ".csv" else "json"):
            fid, _ = fields.resolve(p.field_name)
            if fid is not None and p.processing_days is not None:
                by_field[fid].append(Procedure(p.name, p.code, p.processing_days, tuple(p.documents[:2])))
    for f in site.fields:
        if not by_field[f.id]:
            by_field[f.id].append(Procedure(f"Thủ tục lĩnh vực {f.name}", None, 3))
    return {k: tuple(v) for k, v in by_field.items()}


def office_of(site: SiteConfig, calendar: BusinessCalendar, procedures: Path | None) -> Office:
    base, spare = officers_of(site)
    kiosk = site.raw.get("kiosk", {})
    ids = kiosk.get("ids") if isinstance(kiosk, dict) else None
    served = tuple(f.id for f in site.fields if any(f.id in c.fields for c in site.counters))
    return Office(site, calendar, base, spare, procedures_of(site, procedures),
                  tuple(map(str, ids)) if ids else ("kiosk-1",), served)


def roster(office: Office, day: date, seed: int) -> dict[str, Officer]:
    """Who works at each counter that day: the usual people, except that each month two of them
    swap counters from the 16th on (when both may use the other's), and now and then someone is
    off and the spare takes their counter."""
    who = dict(office.base)
    counters = list(who)
    if len(counters) >= 2 and day.day >= 16:
        a, b = random.Random(f"{seed}:swap:{day.year}-{day.month}").sample(counters, 2)
        if who[a].may_use(b) and who[b].may_use(a):
            who[a], who[b] = who[b], who[a]
    rng = random.Random(f"{seed}:off:{day.isoformat()}")
    if office.spare is not None and rng.random() < 0.3:
        c = rng.choice(counters)
        if office.spare.may_use(c):
            who[c] = office.spare
    return who


def tickets_on(office: Office, day: date, per_day: int, rng: random.Random) -> int:
    open_days = [wd for wd in range(7) if wd not in office.calendar.closed_weekdays] or [0]
    mean = sum(WEEKDAY[wd] for wd in open_days) / len(open_days)
    n = per_day * WEEKDAY[day.weekday()] / mean * MONTH[day.month - 1] * rng.lognormvariate(0, 0.08)
    return max(1, round(n))


# ---------------------------------------------------------------- one day (pure)

@dataclass
class _T:
    """A ticket while its day is simulated (times in seconds after local midnight)."""

    issued: int
    origin: str
    priority: bool
    source: str
    field: str = ""
    value: int = 0
    order: int = 0
    status: TicketStatus = TicketStatus.WAITING
    called: int | None = None
    finished: int | None = None
    counter: str | None = None
    officer: Officer | None = None
    calls: int = 0
    transferred: bool = False
    rating: int | None = None
    rated: int | None = None
    dossier: str | None = None

    @property
    def key(self) -> tuple[int, int, int]:
        return (0 if self.priority else 2, self.issued, self.order)


@dataclass
class Day:
    day: str
    tickets: list[Ticket]
    dossiers: list[Dossier]


def _arrival(rng: random.Random) -> int:
    lo, hi, peak = MORNING if rng.random() < MORNING_SHARE else AFTERNOON
    return int(rng.triangular(lo, hi, peak))


def _service_s(rng: random.Random, mean_s: float) -> int:
    sigma = 0.5
    return max(30, int(rng.lognormvariate(math.log(mean_s) - sigma * sigma / 2, sigma)))


def _score(rng: random.Random, levels: int, waited_s: int) -> int:
    """Mostly the top two levels; the lowest a few times, more often after a long wait."""
    if levels <= 1:
        return 1
    if rng.random() < (0.03 if waited_s < 45 * 60 else 0.15):
        return 1
    if levels == 2:
        return 2
    r = rng.random()
    if r < 0.65:
        return levels
    if r < 0.95 or levels == 3:
        return levels - 1
    return rng.randint(2, levels - 2)


def simulate_day(office: Office, day: date, per_day: int, seed: int, first_order: int, now: datetime) -> Day:
    """One open day of the office as the core and the dossier service would have recorded it.
    Deterministic for (seed, day); `now`: dossier steps after it have not happened yet."""
    site = office.site
    rng = random.Random(f"{seed}:{day.isoformat()}")
    tz = site.tz
    midnight = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)

    def at(seconds: int) -> datetime:
        return midnight + timedelta(seconds=seconds)
    served = office.served_fields or tuple(f.id for f in site.fields)
    weights = [field_weight(f) for f in served]
    n = tickets_on(office, day, per_day, rng)
    # citizens in the order they took a number; a field's range caps its day (the core refuses more)
    tickets: list[_T] = []
    counts: dict[str, int] = {}
    for fid in rng.choices(served, weights, k=n):
        f = site.fields_by_id[fid]
        if counts.get(fid, 0) < f.last - f.first + 1:
            counts[fid] = counts.get(fid, 0) + 1
            tickets.append(_T(_arrival(rng), fid, rng.random() < PRIORITY, rng.choice(office.sources), field=fid))
    tickets.sort(key=lambda t: t.issued)
    last: dict[str, int] = {}
    for i, t in enumerate(tickets):
        f = site.fields_by_id[t.origin]
        t.value = last[t.origin] = last.get(t.origin, f.first - 1) + 1
        t.order = first_order + i
    # service times shrink on a day whose demand would need more than UTILISATION of the counters
    demand = sum(service_min(t.origin) * 60 for t in tickets)
    capacity = max(1, len(site.counters)) * SERVING_S * UTILISATION
    scale = min(1.0, capacity / demand) if demand else 1.0
    who = roster(office, day, seed)
    counter_fields = {c.id: c.fields for c in site.counters}
    queues: dict[str, list[tuple[tuple[int, int, int], int]]] = {f.id: [] for f in site.fields}
    later: list[tuple[int, int]] = []   # (callable from, ticket index): transferred tickets on their way
    free = [(OPENS + rng.randint(0, 300), c.id) for c in site.counters]
    heapq.heapify(free)
    arrived = 0
    levels = len(site.rating_levels)
    while free:
        now_s, cid = heapq.heappop(free)
        if now_s >= CLOSES:
            continue
        if LUNCH_CUT <= now_s < REOPENS:
            heapq.heappush(free, (REOPENS + rng.randint(0, 300), cid))
            continue
        while arrived < len(tickets) and tickets[arrived].issued <= now_s:
            t = tickets[arrived]
            heapq.heappush(queues[t.field], (t.key, arrived))
            arrived += 1
        while later and later[0][0] <= now_s:
            _, i = heapq.heappop(later)
            heapq.heappush(queues[tickets[i].field], (tickets[i].key, i))
        best = min((queues[f][0] for f in counter_fields[cid] if queues[f]), default=None)
        if best is None:
            if now_s >= LUNCH:
                nxt = REOPENS if now_s < REOPENS else CLOSES
            else:
                nxt = CLOSES
            # and look again now and then: a colleague may transfer someone to this counter's fields
            nxt = min(nxt, now_s + 300)
            if arrived < len(tickets):
                nxt = min(nxt, max(now_s + 1, tickets[arrived].issued))
            if later:
                nxt = min(nxt, max(now_s + 1, later[0][0]))
            heapq.heappush(free, (nxt, cid))
            continue
        i = best[1]
        t = tickets[i]
        heapq.heappop(queues[t.field])
        t.called, t.counter, t.officer, t.calls = now_s, cid, who[cid], t.calls + 1
        r = rng.random()
        others = [f for f in served if f != t.field]
        if r < NO_SHOW:
            t.status = TicketStatus.NO_SHOW
            t.calls += rng.random() < 0.4   # called again once before the officer moves on
            busy = rng.randint(60, 150)
        elif r < NO_SHOW + TRANSFER and not t.transferred and others:
            # another field's matter: it waits there again, in its place (the core's sort key)
            busy = rng.randint(60, 240)
            t.status, t.field, t.counter, t.transferred = TicketStatus.TRANSFERRED, rng.choice(others), None, True
            heapq.heappush(later, (now_s + busy, i))
        else:
            busy = _service_s(rng, service_min(t.field) * 60 * scale)
            t.status, t.finished = TicketStatus.DONE, now_s + busy
            if rng.random() < RATED:
                t.rating = _score(rng, levels, now_s - t.issued)
                t.rated = t.finished + rng.randint(3, max(4, min(120, site.rating_window_s - 1)))
        heapq.heappush(free, (now_s + busy + rng.randint(5, 40), cid))
    dossiers = _dossiers(office, day, tickets, rng, at, now)
    out = []
    for t in tickets:
        # the rollover: whoever still waits, or was not there when called, expires
        status = TicketStatus.EXPIRED if t.status is not TicketStatus.DONE else t.status
        f = site.fields_by_id[t.origin]
        number = f.format_number(t.value)
        out.append(Ticket(
            id=ticket_id(day.isoformat(), t.origin, number), day=day.isoformat(), number=number, value=t.value,
            origin_field=t.origin, field=t.field, priority=t.priority, status=status, issued_at=at(t.issued),
            order=t.order, called_at=at(t.called) if t.called is not None else None,
            finished_at=at(t.finished) if t.finished is not None else None, counter=t.counter,
            officer=t.officer.name if t.officer else None, calls=t.calls, source=t.source, rating=t.rating,
            rated_at=at(t.rated) if t.rated is not None else None, dossier=t.dossier))
    return Day(day.isoformat(), out, dossiers)


def _dossiers(office: Office, day: date, tickets: list[_T], rng: random.Random,
              at: Callable[[int], datetime], now: datetime) -> list[Dossier]:
    """A dossier for ~60% of the served citizens, received at the counter while being served."""
    site, cal, tz = office.site, office.calendar, office.site.tz
    levels = site.rating_levels
    out: list[Dossier] = []
    served = sorted((t for t in tickets if t.status is TicketStatus.DONE), key=lambda t: t.called or 0)
    for t in served:
        if rng.random() >= WITH_DOSSIER:
            continue
        assert t.called is not None and t.finished is not None and t.officer is not None
        tid = ticket_id(day.isoformat(), t.origin, site.fields_by_id[t.origin].format_number(t.value))
        p = rng.choice(office.procedures[t.field])
        code = f"{DOSSIER_PREFIX}-{day:%y%m%d}-{len(out) + 1:04d}"
        t.dossier = code
        received = at(t.called + int((t.finished - t.called) * 0.7))
        due = add_business_days(day, p.days, cal)
        steps = _timeline(rng, day, p.days, due, received, cal, tz)
        entries = [Entry("received", DossierStatus.RECEIVED, received, t.officer.username, received)]
        for k, (eid, status, when, note) in enumerate(steps, 1):
            if when > now:
                break   # not yet: the dossier is still at that step
            by = t.officer.username if status in (DossierStatus.RETURNED, DossierStatus.REFUSED) else "chuyen-mon"
            entries.append(Entry(eid, status, when, by, when, note=note,
                                 department="Bộ phận chuyên môn" if status is DossierStatus.PROCESSING else None,
                                 arrival=k))
        rating = None
        if t.rating is not None and t.rated is not None:
            rating = Rating(t.rating, levels[t.rating - 1], tid, at(t.rated))
        out.append(Dossier(
            code=code, procedure_name=p.name, procedure_code=p.code, field=t.field, received_at=received, due_at=due,
            source=DossierSource.COUNTER, by=t.officer.username, created_at=received, documents=p.documents,
            ticket=tid,
            officer=t.officer.name, counter=t.counter, entries=tuple(entries), rating=rating,
            version=len(entries) + (rating is not None),
            updated_ts=max(entries[-1].applied_at, rating.at if rating else received).timestamp()))
    return out


def _timeline(rng: random.Random, day: date, days: int, due: date, received: datetime, cal: BusinessCalendar,
              tz: tzinfo) -> list[tuple[str, DossierStatus, datetime, str | None]]:
    """The steps after `received`: processing, maybe more documents asked for, then the result
    (mostly on time, some early, ~8% late) and its return; a few refused."""

    def moment(d: date, lo: int = 8 * 3600, hi: int = 16 * 3600 + 30 * 60) -> datetime:
        return datetime.combine(d, time(0), tzinfo=tz).astimezone(UTC) + timedelta(seconds=rng.randint(lo, hi))

    def after(t: datetime, d: date) -> datetime:
        m = moment(d)
        return m if m > t else t + timedelta(minutes=rng.randint(10, 90))

    steps: list[tuple[str, DossierStatus, datetime, str | None]] = []
    if days == 0:
        done = received + timedelta(minutes=rng.randint(15, 120))
        if done.astimezone(tz).hour >= 17:
            done = moment(add_business_days(day, 1, cal), 8 * 3600, 10 * 3600)
        steps.append(("co-ket-qua", DossierStatus.DONE, done, None))
        steps.append(("tra-ket-qua", DossierStatus.RETURNED, done + timedelta(minutes=rng.randint(5, 60)), None))
        return steps
    t = received + timedelta(minutes=rng.randint(5, 90))
    steps.append(("xu-ly", DossierStatus.PROCESSING, t, None))
    r = rng.random()
    if r < 0.01:
        steps.append(("tu-choi", DossierStatus.REFUSED, after(t, add_business_days(day, 1, cal)),
                      "Hồ sơ không đủ điều kiện giải quyết theo quy định."))
        return steps
    if r < 0.05:
        t = after(t, add_business_days(day, 1, cal))
        steps.append(("bo-sung", DossierStatus.NEEDS_DOCUMENTS, t, "Bổ sung bản sao giấy tờ tùy thân có chứng thực."))
        t = after(t, add_business_days(t.astimezone(tz).date(), rng.randint(1, 3), cal))
        steps.append(("xu-ly-lai", DossierStatus.PROCESSING, t, None))
    r = rng.random()
    if r < 0.08:
        done_day = add_business_days(due, rng.randint(1, 4), cal)
    elif r < 0.55 and days >= 2:
        done_day = add_business_days(day, days - rng.randint(1, min(2, days - 1)), cal)
    else:
        done_day = due
    done = after(t, max(done_day, t.astimezone(tz).date()))
    steps.append(("co-ket-qua", DossierStatus.DONE, done, None))
    back = add_business_days(done.astimezone(tz).date(), rng.choice((0, 0, 1, 1, 2, 3)), cal)
    steps.append(("tra-ket-qua", DossierStatus.RETURNED, after(done, back), None))
    return steps


def open_days(cal: BusinessCalendar, end: date, n: int) -> list[date]:
    """The last n open days up to and including end, oldest first."""
    out: list[date] = []
    d = end
    for _ in range(n * 7 + 3660):   # bounded even for a calendar closed every day
        if len(out) == n:
            break
        if cal.is_open(d):
            out.append(d)
        d -= timedelta(days=1)
    return out[::-1]


# ---------------------------------------------------------------- writing

class Refused(Exception):
    """Nothing was written: the reason, in Vietnamese, for the person who ran it."""


@dataclass
class Summary:
    tickets_per_day: dict[str, int] = field(default_factory=dict)   # days written
    skipped: list[str] = field(default_factory=list)                # days that had tickets already
    older: list[str] = field(default_factory=list)                  # days before `newest`: not written
    newest: str | None = None   # the newest day that had tickets before this run
    tickets: int = 0
    served: int = 0
    dossiers: int = 0
    seconds: float = 0.0


async def core_online(site: SiteConfig, timeout: float = 1.0) -> bool:
    """Whether the broker holds the core's presence as online; False when the broker is out of
    reach (the database lock is the check that counts then)."""
    topic = Topics(site.id).status_core
    try:
        async with asyncio.timeout(timeout + 3):
            async with make_client(site.mqtt, identifier=f"gen-history-{uuid.uuid4().hex[:8]}") as client:
                await client.subscribe(topic, qos=1)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        async for m in client.messages:
                            return bool(m.payload == b"online")
    except (aiomqtt.MqttError, OSError, TimeoutError):
        return False
    return False


def _read(config: Path, procedures: Path | None) -> tuple[SiteConfig, DossierSettings, Office]:
    """The site, its dossier settings and the office; Refused with the reason when one is wrong."""
    if procedures is not None and procedures != PROCEDURES and not procedures.is_file():
        raise Refused(f"Không có tệp thủ tục {procedures}.")
    try:
        site = load_site_config(config)
        settings = load_dossier_settings(site)
        return site, settings, office_of(site, settings.calendar, procedures)
    except ConfigError as exc:
        raise Refused(str(exc)) from None
    except CatalogueFileError as exc:
        raise Refused(f"Tệp thủ tục {procedures} có lỗi:\n{exc}") from None


async def generate(config: Path, *, days: int, per_day: int, seed: int = 1, end: date | None = None,
                   procedures: Path | None = PROCEDURES, now: datetime | None = None, check_broker: bool = True,
                   progress: Callable[[int, int, Summary], None] | None = None) -> Summary:
    """Write the history; Refused (nothing written) under a running core or for days it may not write."""
    if days < 1 or per_day < 1:
        raise Refused("--days và --per-day phải là số nguyên dương.")
    started = clock.perf_counter()
    site, settings, office = _read(config, procedures)
    now = now or datetime.now(UTC)
    if check_broker and await core_online(site):
        raise Refused(f"Lõi hàng đợi của điểm “{site.id}” đang chạy (trạng thái online trên broker "
                      f"{site.mqtt.url()}). Hãy dừng lõi và dịch vụ hồ sơ trước khi tạo dữ liệu lịch sử: "
                      "không bao giờ ghi vào cơ sở dữ liệu của lõi đang chạy.")
    try:
        store = await Store.open(site.storage_path, exclusive=True)
    except sqlite3.OperationalError as exc:
        raise Refused(f"Cơ sở dữ liệu {site.storage_path} đang được mở ({exc}): lõi hàng đợi đang chạy? "
                      "Hãy dừng lõi trước khi tạo dữ liệu lịch sử.") from None
    try:
        try:
            dstore = await DossierStore.open(settings.database, exclusive=True)
        except sqlite3.OperationalError as exc:
            raise Refused(f"Cơ sở dữ liệu hồ sơ {settings.database} đang được mở ({exc}): dịch vụ hồ sơ đang "
                          "chạy? Hãy dừng nó trước khi tạo dữ liệu lịch sử.") from None
        try:
            today = date.fromisoformat(business_day(now, site.tz, site.day_starts))
            current = await store.current_day()
            if current is not None:
                today = min(today, date.fromisoformat(current))
            latest = today - timedelta(days=1)
            end = end or latest
            if end > latest:
                raise Refused(f"--end {end} phải trước ngày làm việc hiện tại của lõi ({today}): "
                              "chỉ tạo được những ngày đã qua.")
            wanted = open_days(office.calendar, end, days)
            if not wanted:
                raise Refused("Lịch làm việc không có ngày mở cửa nào.")
            have = await store.days_with_tickets(wanted[0].isoformat(), wanted[-1].isoformat())
            newest = await store.newest_day()
            order = await store.next_order()
            summary = Summary(newest=newest)
            for k, d in enumerate(wanted, 1):
                if d.isoformat() in have:
                    summary.skipped.append(d.isoformat())
                elif newest is not None and d.isoformat() < newest:
                    # its tickets would come after newer days' in the issue order, which readers
                    # take as the order of days (the warehouse finds the first day by it)
                    summary.older.append(d.isoformat())
                else:
                    result = simulate_day(office, d, per_day, seed, order, now)
                    order += len(result.tickets)
                    # dossiers first: a day interrupted between the two is done again whole (the
                    # same day, the same codes; those already there are kept)
                    summary.dossiers += await dstore.add_past(result.dossiers)
                    await store.add_past_day(result.tickets)
                    summary.tickets_per_day[result.day] = len(result.tickets)
                    summary.tickets += len(result.tickets)
                    summary.served += sum(t.status is TicketStatus.DONE for t in result.tickets)
                if progress is not None:
                    progress(k, len(wanted), summary)
            summary.seconds = round(clock.perf_counter() - started, 2)
            return summary
        finally:
            await dstore.close()
    finally:
        await store.close()


def _n(x: int) -> str:
    """12.345: the Vietnamese thousands separator."""
    return f"{x:,}".replace(",", ".")


def _progress(k: int, n: int, s: Summary) -> None:
    """One line rewritten in place on a terminal; every tenth of the way in a log."""
    line = f"Đang tạo dữ liệu lịch sử: {k}/{n} ngày, {_n(s.tickets)} vé, {_n(s.dossiers)} hồ sơ"
    if sys.stderr.isatty():
        print(f"\r{line}", end="\n" if k == n else "", file=sys.stderr, flush=True)
    elif k == n or k % max(1, n // 10) == 0:
        print(line, file=sys.stderr, flush=True)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"“{text}” không phải ngày dạng YYYY-MM-DD") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Tạo dữ liệu lịch sử (vé, hồ sơ, đánh giá) cho báo cáo và demo.")
    ap.add_argument("--config", required=True, type=Path, help="tệp cấu hình điểm (site.toml)")
    ap.add_argument("--days", required=True, type=int, help="số ngày làm việc (ngày mở cửa) cần tạo")
    ap.add_argument("--per-day", type=int, default=500, help="số vé một ngày trung bình (mặc định 500)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--end", type=_day, help="ngày cuối (YYYY-MM-DD); mặc định hôm qua")
    ap.add_argument("--procedures", type=Path, default=PROCEDURES,
                    help="danh mục thủ tục JSON/CSV (mặc định examples/procedures.json)")
    args = ap.parse_args(argv)
    try:
        s = asyncio.run(generate(args.config, days=args.days, per_day=args.per_day, seed=args.seed, end=args.end,
                                 procedures=args.procedures, progress=_progress))
    except Refused as exc:
        print(f"Không tạo dữ liệu lịch sử: {exc}", file=sys.stderr)
        return 2
    days_written = len(s.tickets_per_day)
    seconds = f"{s.seconds:.1f}".replace(".", ",")
    print(f"Đã tạo {days_written} ngày ({_n(s.tickets)} vé, {_n(s.dossiers)} hồ sơ) trong {seconds} giây; "
          f"bỏ qua {len(s.skipped)} ngày đã có dữ liệu.")
    if s.older:
        print(f"Không tạo {len(s.older)} ngày trước {s.newest} (ngày mới nhất đã có vé): vé của chúng sẽ đứng sau "
              "vé của những ngày mới hơn trong thứ tự phát số.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
