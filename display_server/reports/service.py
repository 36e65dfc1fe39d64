"""Reports: the report warehouse fed over MQTT, and the figures of any period (docs/web.md, "Báo cáo").

Nothing but the core opens the core's database: finished business days come through its
`tickets` query, a day at a time, each rolled up in one transaction once the core has rolled
over past it (its retained state/site says which day it is on). The first start rolls up all of
history in the background; later starts and every rollover of the core roll the days not yet
there. Dossiers come from the dossier service's `list` (at start, on reconnect and every minute)
and its live event/dossier. Today's tickets come from the live records (TodayRecords), through
the same pure code as history: a report over today agrees with the live dashboard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from aiohttp import web

from display_server.feed.follower import LinkChange, StateFollower
from display_server.feed.records import RecordsUpdated, TodayRecords, iter_records
from display_server.feed.state import Change
from display_server.reports import figures as fig
from display_server.reports.figures import Dimension, Figures, Key, Measures, Report, Row
from display_server.reports.periods import Period
from display_server.reports.warehouse import Settings, Warehouse
from display_server.settings import ReportSettings
from qms_common.config import SiteConfig, business_day
from qms_common.mqtt import new_request_id
from qms_common.protocol import (
    DossierAction,
    ErrorCode,
    EventKind,
    ProtocolError,
    QueryKind,
    dossier_command,
    query_command,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 250          # tickets per query page while rolling up (about 125 KB)
DOSSIER_PAGE = 200
DOSSIER_EVERY_S = 60.0   # dossiers changed without an event (a rating attached) are read this often
DOSSIER_MARGIN = timedelta(minutes=5)  # the next listing starts this much before the last one did
RETRY_S = 10.0
TODAY_WAIT_S = 5.0
PROGRESS_EVERY_S = 10.0
EPOCH = "1970-01-01T00:00:00+00:00"

DOSSIER_FIGURES = ("dossiers_received", "dossiers_on_time", "dossiers_overdue")
# the 766 figures count the served tickets without a dossier and the dossiers received: their
# drill-down shows both (dissatisfied: those rated the lowest level)
UNIT_DOSSIERS = {"units": "dossiers_received", "satisfaction_pct": "dossiers_received",
                 "basis": "dossiers_received", "dissatisfied": "dossiers_received"}


@dataclass
class _Part:
    """One period's measures: per row, the total and (for the current period) per day."""

    groups: dict[str, Measures]
    total: Measures
    days: dict[str, Measures]
    pending: int


@dataclass
class Reports:
    """Feeds the warehouse (finished days from the core, dossiers from the dossier service) and
    answers reports: history from the warehouse's daily aggregates, today from the live records."""

    site: SiteConfig
    follower: StateFollower
    records: TodayRecords
    settings: ReportSettings
    now: Callable[[], datetime] = field(default=lambda: datetime.now().astimezone())
    page_size: int = PAGE_SIZE
    dossier_every_s: float = DOSSIER_EVERY_S
    warehouse: Warehouse | None = None
    error: str | None = None
    dossier_error: str | None = None
    pending_days: int = 0
    rolling: bool = False
    first_day: str | None = None   # the first business day the core has tickets of
    rolled_to: str | None = None

    def __post_init__(self) -> None:
        self.levels = len(self.site.rating_levels)
        self.target_s = self.settings.target_wait_min * 60
        self.topics = self.follower.topics
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._rolled: set[str] = set()
        self.rolled_days = 0  # rolled by this process (tests: a restart rolls nothing again)
        self._seen_day: Any = None
        self._stopping = False
        self.dossier_events = 0  # live event/dossier views stored
        self.passes = 0       # feeding passes completed (history and dossiers read up to now)
        self.updated = asyncio.Condition()  # notified after each pass, for whoever waits on one

    # ------------------------------------------------------------ life

    async def start(self) -> None:
        self.warehouse = await Warehouse.open(self.settings.database, Settings(self.target_s, self.levels))
        self._rolled = await self.warehouse.rolled_days()
        self.rolled_to = max(self._rolled, default=None)
        self._task = asyncio.create_task(self._run(), name="reports")

    async def stop(self) -> None:
        self._stopping = True
        task = self._task
        # cancelled again until it is done: a cancellation that lands as a reply arrives can be
        # swallowed by asyncio.wait_for (Python 3.11), and the feeding would go on to its next request
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and task.done() and not task.cancelled():
            with contextlib.suppress(Exception):
                task.result()
        if self.warehouse is not None:
            await self.warehouse.close()
            self.warehouse = None

    def _store(self) -> Warehouse:
        if self.warehouse is None:
            raise RuntimeError("Kho báo cáo chưa mở.")
        return self.warehouse

    def _today(self) -> str:
        day = (self.follower.state.site or {}).get("day")
        if isinstance(day, str):
            return day
        return business_day(self.now(), self.site.tz, self.site.day_starts)

    def status(self) -> dict[str, Any]:
        """{"rolled_to": last day rolled up or None, "pending_days": days still to roll, "error": text or None}."""
        return {"rolled_to": self.rolled_to, "pending_days": self.pending_days, "error": self.error,
                "dossier_error": self.dossier_error, "rolling": self.rolling}

    # ------------------------------------------------------------ feeding

    async def _run(self) -> None:
        with self.follower.hub.subscribe(maxsize=1024) as sub:
            listener = asyncio.create_task(self._listen(sub))
            self._wake.set()  # the follower may be connected already
            try:
                while not self._stopping:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.dossier_every_s):
                            await self._wake.wait()
                    self._wake.clear()
                    day = (self.follower.state.site or {}).get("day")
                    if not self.follower.connected or not isinstance(day, str):
                        continue  # the connect or the core's state/site wakes us again
                    # dossiers first: a day's tickets are rolled with their procedures, which
                    # come from the dossiers (a ticket rolled while the service is away has none)
                    try:
                        await self._sync_dossiers()
                        self.dossier_error = None
                    except ProtocolError as exc:  # no dossier service (yet): the tickets' figures stand
                        if self.dossier_error != exc.message:
                            log.warning("Kho báo cáo: chưa lấy được hồ sơ (%s); thử lại sau", exc.message)
                        self.dossier_error = exc.message
                    try:
                        await self._roll_pending(day)
                        self.error = None
                    except ProtocolError as exc:
                        if self.error != exc.message:
                            log.warning("Kho báo cáo: chưa lấy được vé từ lõi (%s); thử lại sau", exc.message)
                        self.error = exc.message
                        asyncio.get_running_loop().call_later(RETRY_S, self._wake.set)
                    except Exception as exc:  # a full disk: the office goes on, the rollup is tried again
                        log.exception("Kho báo cáo: lỗi khi tổng hợp")
                        self.error = str(exc)
                        asyncio.get_running_loop().call_later(RETRY_S * 6, self._wake.set)
                    self.passes += 1
                    async with self.updated:
                        self.updated.notify_all()
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def _listen(self, sub: Any) -> None:
        async for batch in sub.batches():
            views = []
            for item in batch:
                if isinstance(item, LinkChange) and item.connected:
                    self._wake.set()
                elif isinstance(item, Change):
                    if item.kind == "site" and isinstance(item.data, dict) and item.data.get("day") != self._seen_day:
                        self._seen_day = item.data.get("day")
                        self._wake.set()  # the core rolled over (or told its day for the first time)
                    elif item.kind == "status" and item.key == "core" and item.data == "online":
                        self._wake.set()  # the core is back
                    elif item.kind == "event" and item.key == EventKind.DOSSIER and isinstance(item.data, dict):
                        view = item.data.get("dossier")
                        if isinstance(view, dict) and isinstance(view.get("code"), str):
                            views.append(view)
                    elif item.kind == "event" and item.key == EventKind.RATED:
                        self._wake.set()  # the dossier service attaches it without an event
            if views and self.warehouse is not None:
                try:
                    await self.warehouse.put_dossiers(
                        [(fig.dossier_fact(v, tz=self.site.tz, levels=self.levels), v) for v in views])
                except Exception as exc:  # a full disk: the next listing brings them again
                    log.error("Kho báo cáo: không ghi được hồ sơ (%s)", exc)
                    continue
                self.dossier_events += len(views)
                async with self.updated:
                    self.updated.notify_all()

    async def _first_day(self, today: str) -> str:
        """The first business day the core has tickets of (today when it has none before)."""
        reply = await self.follower.requester.request(
            self.topics.cmd_query, query_command(new_request_id(), QueryKind.TICKETS, to=_before(today), limit=1),
            timeout=10.0)
        tickets = reply.get("tickets") if reply.get("ok") is True else None
        if not isinstance(tickets, list):
            err = reply.get("error") if isinstance(reply.get("error"), dict) else {}
            raise ProtocolError(ErrorCode.INTERNAL, str(err.get("message") or "Lõi từ chối truy vấn."))
        first = tickets[0].get("day") if tickets and isinstance(tickets[0], dict) else None
        return first if isinstance(first, str) and first < today else today

    async def _roll_pending(self, today: str) -> None:
        """Roll up every finished day not yet in the warehouse, oldest first."""
        store = self._store()
        first = self.first_day if self.first_day is not None else await self._first_day(today)
        self.first_day = first
        todo = [d for d in _days(first, _before(today)) if d not in self._rolled]
        self.pending_days = len(todo)
        if not todo:
            return
        self.rolling = True
        log.info("Kho báo cáo: đang tổng hợp dữ liệu cũ, %d ngày (%s – %s)", len(todo), todo[0], todo[-1])
        started = last_log = time.monotonic()
        tickets = 0
        try:
            for i, day in enumerate(todo):
                if self._stopping:
                    return
                records = [r async for page in iter_records(self.follower.requester, self.topics, day, day,
                                                            page_size=self.page_size) for r in page]
                procedures = await store.procedures_of(str(r.get("dossier") or "") for r in records)
                facts = [fig.ticket_fact(r, tz=self.site.tz, target_s=self.target_s, levels=self.levels,
                                         procedures=procedures) for r in records]
                if await store.roll_day(day, facts, {str(r.get("id")): r for r in records}, self.now()):
                    self.rolled_days += 1
                self._rolled.add(day)
                self.rolled_to = max(self.rolled_to or day, day)
                self.pending_days = len(todo) - i - 1
                tickets += len(records)
                if time.monotonic() - last_log >= PROGRESS_EVERY_S:
                    last_log = time.monotonic()
                    log.info("Kho báo cáo: đã tổng hợp %d/%d ngày (%d vé)", i + 1, len(todo), tickets)
        finally:
            self.rolling = False
        log.info("Kho báo cáo: đã tổng hợp %d ngày, %d vé, trong %.1f s", len(todo), tickets,
                 time.monotonic() - started)

    async def _sync_dossiers(self) -> None:
        """Dossiers changed since the last listing, page by page (docs/protocol.md, `list`)."""
        store = self._store()
        since = await store.meta("dossier_since") or EPOCH
        started = self.now() - DOSSIER_MARGIN
        after: str | None = None
        while not self._stopping:
            body = dossier_command(new_request_id(), DossierAction.LIST, since=since, after=after, limit=DOSSIER_PAGE)
            try:
                reply = await self.follower.requester.request(self.topics.cmd_dossier, body, timeout=10.0)
            except ProtocolError as exc:  # the requester's words name the core; this is the dossier service
                raise ProtocolError(exc.code, "Dịch vụ hồ sơ không trả lời.") from None
            views = reply.get("dossiers") if reply.get("ok") is True else None
            if not isinstance(views, list):
                err = reply.get("error") if isinstance(reply.get("error"), dict) else {}
                raise ProtocolError(ErrorCode.INTERNAL, "Dịch vụ hồ sơ từ chối: " + str(err.get("message")))
            views = [v for v in views if isinstance(v, dict) and isinstance(v.get("code"), str)]
            await store.put_dossiers([(fig.dossier_fact(v, tz=self.site.tz, levels=self.levels), v) for v in views])
            after = reply.get("next") if isinstance(reply.get("next"), str) else None
            if after is None:
                # only a listing read to its end moves the mark
                await store.set_meta("dossier_since", started.isoformat())
                return

    # ------------------------------------------------------------ reports

    async def _today_records(self, today: str) -> tuple[list[dict[str, Any]], bool]:
        """Today's records and whether they are today's (read now if no page kept them current)."""
        records = self.records
        current = records.watched and records.day == today  # a page keeps them current
        with records.watch(), self.follower.hub.subscribe(wants=lambda x: isinstance(x, RecordsUpdated)) as sub:
            if not current:
                records.invalidate()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TODAY_WAIT_S):
                        while True:
                            await sub.get()
                            if records.day == today:
                                break
            return list(records.records), records.day == today

    async def _part(self, period: Period, dimension: Dimension, today: str, officer: str | None, *,
                    by_day: bool) -> tuple[_Part, list[str]]:
        store = self._store()
        notes: list[str] = []
        start, end = period.start.isoformat(), period.end.isoformat()
        groups: dict[str, Measures] = {}
        days: dict[str, Measures] = {}
        last_past = min(end, _before(today))
        if start <= last_past:
            groups, days = await store.ticket_groups(start, last_past, dimension, officer=officer, by_day=by_day)
        if start <= today <= end:
            records, fresh = await self._today_records(today)
            if not fresh:
                notes.append("Chưa đọc được số liệu hôm nay từ lõi hàng đợi.")
            procedures = await store.procedures_of(str(r.get("dossier") or "") for r in records)
            parts: list[tuple[Key, Measures]] = []
            for r in records:
                fact = fig.ticket_fact(r, tz=self.site.tz, target_s=self.target_s, levels=self.levels,
                                       procedures=procedures)
                if officer is None or fact.officer == officer:
                    parts.extend(fig.ticket_parts(fact, self.levels))
            for key, m in fig.group(parts, dimension, self.levels).items():
                groups.setdefault(key, Measures(self.levels)).add(m)
            if by_day and parts:
                days.setdefault(today, Measures(self.levels)).add(fig.total((m for _, m in parts), self.levels))
        dossier_groups, dossier_days = await store.dossier_measures(start, end, today, dimension, officer=officer)
        for key, m in dossier_groups.items():
            groups.setdefault(key, Measures(self.levels)).add(m)
        if by_day:
            for key, m in dossier_days.items():
                days.setdefault(key, Measures(self.levels)).add(m)
        pending = sum(1 for d in _days(start, last_past)
                      if d not in self._rolled and (self.first_day is None or d >= self.first_day))
        return _Part(groups, fig.total(groups.values(), self.levels), days, pending), notes

    async def report(self, period: Period, dimension: Dimension, *, officer: str | None = None,
                     compare: bool = True, trend: bool = True) -> Report:
        """The figures of the period per row of the dimension, with the previous period's beside
        them (not read when `compare` is false: a file that shows no comparison) and the figures of
        each day (not added up when `trend` is false: no chart; `Report.trend` is then empty);
        `officer`: only that officer's tickets and dossiers (the console's own figures)."""
        dimension = Dimension(dimension)
        today = self._today()
        previous_period = period.previous()
        current, notes = await self._part(period, dimension, today, officer, by_day=trend)
        previous = (await self._part(previous_period, dimension, today, officer, by_day=False))[0] if compare else None
        names = await self.names(dimension)
        rows = fig.rows(dimension, current.groups, previous.groups if previous else {}, names)
        total_row = Row("", "Tổng cộng", current.total.figures(), previous.total.figures() if previous else None)
        days: list[tuple[date, Figures]] = []
        for d in period.each_day() if trend else ():
            day = d.isoformat()
            if day > today:
                break
            days.append((d, (current.days.get(day) or Measures(self.levels)).figures()))
        pending = current.pending + (previous.pending if previous else 0)
        if pending:
            notes.append(f"Đang tổng hợp dữ liệu cũ: còn {pending} ngày chưa có trong báo cáo.")
        basis = total_row.figures.basis
        if total_row.figures.units and basis != fig.Basis.DOSSIERS:
            notes.append("Tỷ lệ hài lòng tính cả lượt phục vụ không có hồ sơ (mỗi vé một lượt)."
                         if basis == fig.Basis.MIXED else
                         "Tỷ lệ hài lòng tính theo số vé đã phục vụ (không có hồ sơ).")
        if self.error:
            notes.append(f"Kho báo cáo chưa cập nhật được: {self.error}")
        return Report(period, previous_period, dimension, rows, total_row, notes, days, current.pending)

    async def names(self, dimension: Dimension) -> dict[str, str]:
        """What the site calls the rows' ids (fields, counters, procedures); others are their own names."""
        if dimension == Dimension.FIELD:
            return {f.id: f.name for f in self.site.fields}
        if dimension == Dimension.COUNTER:
            return {c.id: c.name for c in self.site.counters}
        if dimension == Dimension.PROCEDURE:
            return await self._store().procedure_names()
        return {}

    async def drill(self, period: Period, dimension: Dimension, key: str, figure: str, *,
                    officer: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """What is behind one figure of one row, oldest first: ticket records (like the core's) and
        dossier views (like the dossier service's, told apart by is_dossier_view). key "" is the
        unassigned row ("(chưa gọi)", "(không có hồ sơ)"), key "*" (figures.ALL_KEY) the total row.
        `figure`: a field of Figures, or "ratings.N" (the tickets rated level N, 1 the lowest).
        - the ticket figures: the tickets;
        - dossiers_received, dossiers_on_time, dossiers_overdue: the dossiers;
        - the 766 figures (units, dissatisfied, satisfaction_pct, basis): the units, as the figure
          counts them: the served tickets without a dossier, then the dossiers received (for
          dissatisfied, those rated the lowest level).
        ValueError (Vietnamese) for an unknown figure."""
        dimension = Dimension(dimension)
        figure, level = _drill_figure(figure, self.levels)
        store = self._store()
        today = self._today()
        start, end = period.start.isoformat(), period.end.isoformat()
        out: list[dict[str, Any]] = []
        if figure not in DOSSIER_FIGURES:
            last_past = min(end, _before(today))
            if start <= last_past:
                where, args = _ticket_where(dimension, key, figure, officer, level)
                out.extend(await store.ticket_records(start, last_past, where, args, limit))
            if start <= today <= end and len(out) < limit:
                records, _ = await self._today_records(today)
                procedures = await store.procedures_of(str(r.get("dossier") or "") for r in records)
                for r in records:
                    fact = fig.ticket_fact(r, tz=self.site.tz, target_s=self.target_s, levels=self.levels,
                                           procedures=procedures)
                    if ((officer is None or fact.officer == officer) and fig.matches(fact, dimension, key, figure)
                            and (level is None or fact.rating == level)):
                        out.append(r)
                        if len(out) >= limit:
                            break
        dossier_figure = figure if figure in DOSSIER_FIGURES else UNIT_DOSSIERS.get(figure)
        if dossier_figure is not None and len(out) < limit:
            where, args = _dossier_where(dimension, key, dossier_figure, start, end, today, officer)
            if figure == "dissatisfied":
                where += " AND rating = 1"
            out.extend(await store.dossier_views(where, args, limit - len(out)))
        return out


def is_dossier_view(record: dict[str, Any]) -> bool:
    """A drill-down's dossier (a view of the dossier service) rather than a ticket record."""
    return "received_at" in record and "code" in record


def _drill_figure(figure: str, levels: int) -> tuple[str, int | None]:
    """(the Figures field, the rating level or None) a drill-down asks for."""
    if figure.startswith("ratings."):
        try:
            level = int(figure.removeprefix("ratings."))
        except ValueError:
            level = 0
        if not 1 <= level <= levels:
            raise ValueError(f"Chỉ số không có: {figure!r}.")
        return "ratings", level
    if figure not in fig.FIGURE_NAMES:
        raise ValueError(f"Chỉ số không có: {figure!r}.")
    return figure, None


REPORTS = web.AppKey("reports", Reports)

# ---------------------------------------------------------------- helpers


def _before(day: str) -> str:
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


def _days(first: str, last: str) -> list[str]:
    if first > last:
        return []
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


_TICKET_FIGURE_SQL = {
    "issued": "1",
    "served": "t.status = 'done'",
    "no_show": "t.status = 'no_show'",
    "transferred": "t.transferred = 1",
    "within_target": "t.within = 1",
    "ratings": "t.status = 'done' AND t.rating IS NOT NULL",
    "units": "t.status = 'done' AND t.dossier IS NULL",
    "satisfaction_pct": "t.status = 'done' AND t.dossier IS NULL",
    "basis": "t.status = 'done' AND t.dossier IS NULL",
    "dissatisfied": "t.status = 'done' AND t.dossier IS NULL AND t.rating = 1",
}


def _ticket_where(dimension: Dimension, key: str, figure: str, officer: str | None,
                  level: int | None = None) -> tuple[str, list[Any]]:
    """SQL of figures.matches over the warehouse's facts (t) and dossiers (d); `level`: only the
    tickets rated that level."""
    if figure.startswith("wait_"):
        cond = "t.wait_s IS NOT NULL"
    elif figure.startswith("service_"):
        cond = "t.status = 'done' AND t.service_s IS NOT NULL"
    else:
        cond = _TICKET_FIGURE_SQL[figure]
    args: list[Any] = []
    if level is not None:
        cond += " AND t.rating = ?"
        args.append(level)
    if key == fig.ALL_KEY:
        pass  # the total row
    elif dimension == Dimension.HOUR or dimension == Dimension.WEEKDAY:
        try:
            number = int(key)
        except ValueError:
            return "0", []
        column = "t.hour" if dimension == Dimension.HOUR else "(CAST(strftime('%w', t.day) AS INTEGER) + 6) % 7"
        cond += f" AND {column} = ?"
        args.append(number)
    else:
        column = {Dimension.OFFICER: "t.officer", Dimension.COUNTER: "t.counter",
                  Dimension.PROCEDURE: "COALESCE(d.procedure, '')",
                  Dimension.FIELD: "t.origin_field" if figure in fig.ISSUE_FIGURES else "t.field"}[dimension]
        cond += f" AND {column} = ?"
        args.append(key)
    if officer is not None:
        cond += " AND t.officer = ?"
        args.append(officer)
    return cond, args


def _dossier_where(dimension: Dimension, key: str, figure: str, start: str, end: str, today: str,
                   officer: str | None) -> tuple[str, list[Any]]:
    if figure == "dossiers_received":
        day_col, cond, args = "received_day", "received_day BETWEEN ? AND ?", [start, end]
    elif figure == "dossiers_on_time":
        day_col, cond, args = "done_day", "done_day BETWEEN ? AND ? AND done_day <= due", [start, end]
    else:
        day_col = "COALESCE(done_day, due)"
        cond = ("((done_day BETWEEN ? AND ? AND done_day > due) OR (done_day IS NULL AND status != 'refused' "
                "AND due BETWEEN ? AND ? AND due < ?))")
        args = [start, end, start, end, today]
    if key == fig.ALL_KEY:
        pass  # the total row
    elif dimension == Dimension.HOUR:
        cond += " AND CAST(received_hour AS TEXT) = ?"
        args.append(key)
    elif dimension == Dimension.WEEKDAY:
        cond += f" AND CAST((CAST(strftime('%w', {day_col}) AS INTEGER) + 6) % 7 AS TEXT) = ?"
        args.append(key)
    else:
        cond += f" AND {dimension.value} = ?"
        args.append(key)
    if officer is not None:
        cond += " AND officer = ?"
        args.append(officer)
    return cond, args
