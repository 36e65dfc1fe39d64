"""The supervisor's dashboard: /supervisor after login (a supervisor account, or a leader's, who
only reads: the page has no action for them, and pairing stays the supervisor's), its live feed
/supervisor/ws, and CSV exports of tickets and ratings (/supervisor/export/tickets.csv,
/supervisor/export/ratings.csv, `?from=YYYY-MM-DD&to=YYYY-MM-DD`).

Live from the retained state: queues, counters, officers, presence and the health of agents and
TVs. Today's statistics (per officer, per field, by hour) are computed here from the core's ticket
records (TodayRecords), the exports from the records of any days, a page at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from aiohttp import web

from display_server.accounts.auth import AUTH, WS_SESSION_ENDED, api_session, page_session, socket_session
from display_server.accounts.store import REPORT_READERS, Role
from display_server.api import ApiError
from display_server.base import FOLLOWER, RECORDS, SITE, add_link, render_page, texts_for
from display_server.feed.live import FeedEnded, serve_feed
from display_server.feed.records import TodayRecords, iter_records
from display_server.feed.state import SiteState
from display_server.notify import notify_panel
from display_server.pages.console import CONSOLES
from display_server.pages.rating import levels_of
from display_server.reports import stats
from display_server.reports.exports import RATING_COLUMNS, TICKET_COLUMNS, CsvWriter, Names, is_rated
from display_server.timefmt import day_text, parse_day
from qms_common.config import SiteConfig
from qms_common.protocol import ProtocolError

log = logging.getLogger(__name__)

MAX_EXPORT_DAYS = 366
SCRIPT_TEXTS = (
    "counter_closed", "counter_open", "counter_paused", "counter_serving", "online", "offline_word", "offline",
    "sup_no_agent", "sup_console_open", "sup_counter_officer", "sup_issued", "sup_served", "sup_avg_wait",
    "sup_hour_label", "sup_ports", "sup_devices", "sup_errors", "sup_no_data", "dur_h", "dur_m", "dur_s", "sup_rated",
    "sup_waiting",
    "sup_no_show", "sup_avg_service", "sup_core",
    "sup_notify_running", "sup_notify_lost", "sup_notify_no_failures", "sup_notify_no_stats",
    "notify_kind_issued", "notify_kind_nears", "notify_kind_called", "notify_kind_rate", "notify_kind_checkin",
    "notify_kind_otp", "notify_kind_remind_eve", "notify_kind_remind_soon", "notify_kind_dossier_received",
    "notify_kind_dossier_needs", "notify_kind_dossier_done",
)



@dataclass
class _StatsMemo:
    version: int = -1
    value: dict[str, Any] | None = field(default=None)


STATS_MEMO = web.AppKey("stats_memo", _StatsMemo)


def setup(app: web.Application) -> None:
    app[STATS_MEMO] = _StatsMemo()
    app.router.add_get("/supervisor", dashboard)
    app.router.add_get("/supervisor/ws", feed)
    app.router.add_get("/supervisor/export/{kind}.csv", export)
    add_link(app, "/supervisor", "sup_title")


def _agents_by_counter(site: SiteConfig) -> dict[str, str]:
    return {cid: a.id for a in site.agents for cid in a.counters}


def _health(agent: str, state: SiteState) -> dict[str, Any]:
    h = state.health.get(agent) or {}
    ports = [p for p in h.get("ports", []) if isinstance(p, dict)]
    devices = [d for d in h.get("counters", []) if isinstance(d, dict)]
    return {
        "id": agent, "status": state.presence.get(f"agent/{agent}", "unknown"), "at": h.get("at"),
        "ports": [{"port": p.get("port"), "open": p.get("open"), "error": p.get("error")} for p in ports],
        "devices": [{"counter": d.get("counter"), "device": d.get("device"), "shown": d.get("shown"),
                     "errors": d.get("errors", 0), "retries": d.get("retries", 0)} for d in devices],
    }


def supervisor_view(state: SiteState, site: SiteConfig, records: TodayRecords, day_stats: dict[str, Any] | None,
                    consoles: dict[str, int], *, link_up: bool) -> dict[str, Any]:
    field_stats = (day_stats or {}).get("fields", {})
    fields = []
    for f in state.field_list(site):
        fid = str(f["id"])
        q = state.queues.get(fid, {})
        fields.append({"id": fid, "name": f.get("name", fid), "waiting": q.get("waiting"),
                       "priority_waiting": q.get("priority_waiting"), "served": q.get("served"),
                       "avg_wait_s": q.get("avg_wait_s"), "est_wait_s": q.get("est_wait_s"),
                       "oldest_waiting": field_stats.get(fid, {}).get("oldest_waiting")})
    agents_of = _agents_by_counter(site)
    counters = []
    for c in state.counter_list(site):
        cid = str(c["id"])
        s = state.counters.get(cid) or {}
        ticket = s.get("ticket") if isinstance(s.get("ticket"), dict) else None
        agent = agents_of.get(cid)
        counters.append({"id": cid, "name": c.get("name", cid), "status": s.get("status", "closed"),
                         "officer": s.get("officer"), "number": ticket.get("number") if ticket else None,
                         "since": s.get("since"), "agent": agent,
                         "agent_status": state.presence.get(f"agent/{agent}", "unknown") if agent else None,
                         "consoles": consoles.get(cid, 0)})
    agent_ids = sorted({a.id for a in site.agents} | set(state.health)
                       | {k.removeprefix("agent/") for k in state.presence if k.startswith("agent/")})
    presence = sorted(state.presence.items())
    return {
        "online": link_up and state.core_online,
        "link": link_up,
        "core": state.presence.get("core", "unknown"),
        "day": (state.site or {}).get("day"),
        "day_text": day_text((state.site or {}).get("day")),
        "levels": levels_of(state, site),
        "fields": fields,
        "counters": counters,
        "agents": [_health(a, state) for a in agent_ids],
        "displays": [{"id": k.removeprefix("display/"), "status": v} for k, v in presence if k.startswith("display/")],
        "webs": [{"id": k.removeprefix("web/"), "status": v} for k, v in presence if k.startswith("web/")],
        "stats": day_stats,
        "stats_day": records.day,
        "stats_error": records.error,
        # the notifier's retained stats and presence; None where the site sends no messages
        "notify": notify_panel(state.notify_stats, state.presence.get("notify"), site),
        "bookings": bookings_today(state, site, records),
    }


def _window_closed(day: Any, slot: Any, after: timedelta, now: datetime, site: SiteConfig) -> bool:
    try:
        start = datetime.combine(date.fromisoformat(str(day)), time.fromisoformat(str(slot)), tzinfo=site.tz)
    except ValueError:
        return False
    return now > start + after


def bookings_today(state: SiteState, site: SiteConfig, records: TodayRecords,
                   clock: Callable[[tzinfo], datetime] | None = None) -> list[dict[str, Any]] | None:
    """Per field, today's bookings (the places taken in state/appointments), those checked in,
    those not come yet, the no-shows (not come when their slot's check-in window closed), and the
    remote numbers waiting to check in (state/queue). None on a site with neither appointments
    nor remote numbers."""
    if site.appointments is None and site.remote is None:
        return None
    today = (state.site or {}).get("day")
    # a slot's check-in window closes checkin_after_min after it starts: who has not come by then
    # is a no-show of the day
    now = (clock or datetime.now)(site.tz)
    after = timedelta(minutes=site.appointments.checkin_after_min) if site.appointments else timedelta(0)
    booking_fields = {f.field for f in site.appointments.fields} if site.appointments else set()
    remote_fields = {k for k, v in site.remote.quota.items() if v > 0} if site.remote else set()
    out = []
    for f in state.field_list(site):
        fid = str(f["id"])
        if fid not in booking_fields and fid not in remote_fields:
            continue
        booked = done = pending = no_show = None
        if fid in booking_fields:
            days = (state.appointments.get(fid) or {}).get("days") or []
            slots = [s for d in days if isinstance(d, dict) and d.get("day") == today for s in d.get("slots") or []
                     if isinstance(s, dict) and isinstance(s.get("capacity"), int) and isinstance(s.get("free"), int)]
            booked = done = pending = no_show = 0
            for s in slots:
                came = s["checked_in"] if isinstance(s.get("checked_in"), int) else 0
                taken = s["capacity"] - s["free"]
                booked, done = booked + taken, done + came
                if _window_closed(today, s.get("slot"), after, now, site):
                    no_show += max(0, taken - came)
                else:
                    pending += max(0, taken - came)
        out.append({"id": fid, "name": f.get("name", fid), "booked": booked, "checked_in": done,
                    "pending": pending, "no_show": no_show,
                    "remote_awaiting": (state.queues.get(fid) or {}).get("awaiting_checkin")})
    return out


def _day_stats(app: web.Application) -> dict[str, Any] | None:
    records, memo = app[RECORDS], app[STATS_MEMO]
    if not records.loaded:
        return None
    if memo.version != records.version:
        site = app[SITE]
        memo.value = stats.compute(records.records, levels=len(levels_of(app[FOLLOWER].state, site)), tz=site.tz)
        memo.version = records.version
    return memo.value


def _today(request: web.Request) -> str:
    day = (request.app[FOLLOWER].state.site or {}).get("day")
    return day if isinstance(day, str) else datetime.now(request.app[SITE].tz).date().isoformat()


async def dashboard(request: web.Request) -> web.Response:
    t = texts_for(request)
    session = page_session(request, role=REPORT_READERS)
    today = _today(request)
    page = {"ws": "/supervisor/ws", "csrf": session.csrf, "texts": t.pick(*SCRIPT_TEXTS),
            "timezone": request.app[SITE].timezone}
    return render_page(request, "supervisor.html", page, session=session, today=day_text(today),
                       notify=request.app[SITE].notify_enabled,
                       supervisor=session.account.role is Role.SUPERVISOR)


async def feed(request: web.Request) -> web.StreamResponse:
    session = socket_session(request, role=REPORT_READERS)
    app = request.app
    follower, site, records = app[FOLLOWER], app[SITE], app[RECORDS]
    consoles = app.get(CONSOLES, {})

    def view(batch: list[Any]) -> dict[str, Any]:
        if app[AUTH].get(session.token) is None:
            raise FeedEnded(WS_SESSION_ENDED, "session ended")
        return supervisor_view(follower.state, site, records, _day_stats(app), consoles, link_up=follower.connected)

    with records.watch():
        return await serve_feed(request, follower.hub, view)


def _day(request: web.Request, key: str, default: str) -> date:
    day = parse_day(request.query.get(key) or default)
    if day is None:
        raise ApiError(400, "bad_request", texts_for(request).err_day.format(key=key))
    return day


async def export(request: web.Request) -> web.StreamResponse:
    t = texts_for(request)
    api_session(request, role=REPORT_READERS, csrf=False)  # a download: it changes nothing
    kind = request.match_info["kind"]
    if kind not in ("tickets", "ratings"):
        raise web.HTTPNotFound()
    today = _today(request)
    day_from, day_to = _day(request, "from", today), _day(request, "to", today)
    if day_to < day_from or day_to - day_from > timedelta(days=MAX_EXPORT_DAYS - 1):
        raise ApiError(400, "bad_request", t.err_day_range.format(n=MAX_EXPORT_DAYS))
    follower, site = request.app[FOLLOWER], request.app[SITE]
    names = Names(fields={str(f["id"]): str(f.get("name", "")) for f in follower.state.field_list(site)},
                  counters={str(c["id"]): str(c.get("name", "")) for c in follower.state.counter_list(site)},
                  levels=tuple(levels_of(follower.state, site)))
    pages = iter_records(follower.requester, follower.topics, day_from.isoformat(), day_to.isoformat())
    try:
        first = await anext(pages)
    except ProtocolError as exc:
        raise ApiError(503, "unavailable", exc.message if t.lang == "vi" else t.err_unavailable) from None
    writer = CsvWriter(RATING_COLUMNS if kind == "ratings" else TICKET_COLUMNS)
    name = f"{'danh-gia' if kind == 'ratings' else 've'}-{day_from.isoformat()}-{day_to.isoformat()}.csv"
    resp = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
                                       "Content-Disposition": f'attachment; filename="{name}"'})
    await resp.prepare(request)
    await resp.write(writer.header().encode("utf-8"))
    page: list[dict[str, Any]] | None = first
    while page is not None:
        chosen = [r for r in page if is_rated(r)] if kind == "ratings" else page
        if chosen:
            await resp.write(writer.rows(chosen, names).encode("utf-8"))
        try:
            page = await anext(pages)
        except StopAsyncIteration:
            page = None
        except ProtocolError as exc:
            # the file is incomplete: end the connection without finishing it, so the browser says so
            log.warning("Xuất CSV bị gián đoạn: %s", exc.message)
            raise ConnectionAbortedError(exc.message) from None
    await resp.write_eof()
    return resp
