"""The officer console, for counters without a keypad: /counter/{id} after login, its live feed
/counter/{id}/ws and POST /api/counter/{id}, which sends one action of cmd/counter to the core.

An officer may use only the counters of their account (`counters` in [[accounts]]); "open"
names the logged-in officer. The page shows the counter, the ticket it serves, the queues of its
fields, the day's no-shows it may call back and the tickets transferred to it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from display_server.accounts.auth import (
    AUTH,
    WS_SESSION_ENDED,
    Session,
    api_session,
    landing,
    page_session,
    socket_session,
)
from display_server.accounts.store import Role
from display_server.api import ApiError, ask_core, bad_request, json_response, read_json, request_id_in
from display_server.base import FOLLOWER, RECORDS, SITE, add_link, error_page, render, render_page, texts_for
from display_server.feed.live import FeedEnded, serve_feed
from display_server.feed.records import TodayRecords
from display_server.feed.state import SiteState
from display_server.pages.rating import levels_of
from display_server.pages.reports import target_min
from display_server.texts import Texts
from qms_common.config import SiteConfig
from qms_common.mqtt import new_request_id
from qms_common.protocol import MAX_ID_LEN, Action, TicketStatus, counter_command

log = logging.getLogger(__name__)

CONSOLES = web.AppKey("consoles", Counter)  # Counter[str]: open console pages per counter
SCRIPT_TEXTS = (
    "counter_closed", "counter_open", "counter_paused", "counter_serving", "console_none", "console_serving",
    "waiting", "people", "offline", "err_network", "console_no_shows_none", "priority_badge",
    "appointment_badge", "remote_badge",
    "console_since", "console_calls", "console_login_again", "console_last_no_show",
    "console_last_done", "console_last_transferred",
)
HS_TEXTS = ("console_hs_days", "console_hs_department", "console_hs_needs", "console_hs_reason",
            "console_hs_printed", "err_network", "console_login_again", "print_failed")
_KEYS = {
    Action.CALL: {"ticket"},
    Action.TRANSFER: {"to_field", "to_counter"},
    Action.DOSSIER: {"dossier", "ticket"},
}
MAX_TICKET_TEXT = 32


@dataclass(frozen=True)
class ConsolePresence:
    """A console page of a counter opened or closed (the supervisor shows which are in use)."""

    counter: str
    open: int


def setup(app: web.Application) -> None:
    app[CONSOLES] = Counter()
    app.router.add_get("/counter", counters)
    app.router.add_get("/counter/{counter}", console)
    app.router.add_get("/counter/{counter}/ws", feed)
    app.router.add_post("/api/counter/{counter}", command)
    add_link(app, "/counter", "console_title")


def console_view(state: SiteState, site: SiteConfig, counter_id: str, records: TodayRecords, *,
                 link_up: bool) -> dict[str, Any]:
    counters = {str(c["id"]): c for c in state.counter_list(site)}
    fields = {str(f["id"]): f.get("name", f["id"]) for f in state.field_list(site)}
    cfg = counters.get(counter_id, {"id": counter_id, "name": counter_id, "fields": []})
    my_fields = [str(f) for f in cfg.get("fields", [])]
    c = state.counters.get(counter_id) or {}
    queues = []
    for fid in my_fields:
        q = state.queues.get(fid, {})
        queues.append({"field": fid, "name": fields.get(fid, fid), "waiting": q.get("waiting"),
                       "priority_waiting": q.get("priority_waiting"), "next": q.get("next", []),
                       "est_wait_s": q.get("est_wait_s")})
    no_shows, here = [], []
    for r in records.records:
        if r.get("status") == TicketStatus.NO_SHOW and (r.get("field") in my_fields or r.get("counter") == counter_id):
            no_shows.append({"id": r.get("id"), "number": r.get("number"),
                             "field_name": fields.get(str(r.get("field")), ""), "called_at": r.get("called_at")})
        elif r.get("status") == TicketStatus.TRANSFERRED and r.get("counter") == counter_id:
            here.append({"id": r.get("id"), "number": r.get("number")})
    no_shows.sort(key=lambda n: str(n["called_at"]), reverse=True)
    return {
        "online": link_up and state.core_online,
        "counter": {"id": counter_id, "name": cfg.get("name", counter_id), "status": c.get("status", "closed"),
                    "officer": c.get("officer"), "ticket": c.get("ticket"), "since": c.get("since"),
                    "fields": my_fields},
        "queues": queues,
        "no_shows": no_shows,
        "transferred_here": here,
        "records_error": records.error,
        "transfer_fields": [{"id": fid, "name": name} for fid, name in fields.items()],
        "transfer_counters": [{"id": cid, "name": c2.get("name", cid)} for cid, c2 in counters.items()
                              if cid != counter_id],
    }


def _known(request: web.Request, counter_id: str) -> bool:
    return request.app[SITE].counter(counter_id) is not None


async def counters(request: web.Request) -> web.Response:
    session = page_session(request)
    if session.account.role is Role.LEADER:
        return render(request, "error.html", status=403, message=texts_for(request).err_leader_no_counter,
                      session=session, back=landing(session.account))
    site = request.app[SITE]
    allowed = [c for c in site.counters if session.account.may_use_counter(c.id)]
    return render(request, "counters.html", counters=allowed, session=session)


async def console(request: web.Request) -> web.Response:
    t = texts_for(request)
    cid = request.match_info["counter"]
    session = page_session(request)
    if not _known(request, cid):
        return error_page(request, 404, t.err_unknown_counter.format(counter=cid))
    session = page_session(request, counter=cid)
    site = request.app[SITE]
    page = {
        "ws": f"/counter/{cid}/ws", "api": f"/api/counter/{cid}" + (f"?lang={t.lang}" if t.lang != "vi" else ""),
        "counter": cid, "csrf": session.csrf, "officer": session.account.name,
        "texts": t.pick(*SCRIPT_TEXTS), "timezone": request.app[SITE].timezone,
        # Tiếp nhận hồ sơ (display_server/dossiers/console.py)
        "hs": {"api": f"/api/counter/{cid}", "lang": "" if t.lang == "vi" else f"?lang={t.lang}",
               "texts": t.pick(*HS_TEXTS)},
    }
    cfg = site.counter(cid)
    levels = levels_of(request.app[FOLLOWER].state, site)
    return render_page(request, "console.html", page, counter=cfg, session=session,
                       supervisor=session.account.role is Role.SUPERVISOR,
                       mine=mine_rows(t, levels, target_min(request)))


def mine_rows(t: Texts, levels: list[str], target: float) -> list[tuple[str, str]]:
    """The "Kết quả của tôi" panel's rows: (the figure's key in /api/reports/officer's answer, its name);
    the rating levels highest first."""
    return [("served", t.mine_served), ("wait_mean_min", t.mine_wait), ("service_mean_min", t.mine_service),
            ("within_target_pct", t.mine_within.format(n=f"{target:g}")),
            *((f"ratings.{i}", levels[i]) for i in reversed(range(len(levels)))),
            ("satisfaction_pct", t.mine_satisfaction), ("dossiers_received", t.mine_dossiers),
            ("dossiers_on_time", t.mine_on_time), ("dossiers_overdue", t.mine_overdue)]


async def feed(request: web.Request) -> web.StreamResponse:
    cid = request.match_info["counter"]
    if not _known(request, cid):
        raise web.HTTPNotFound(text=texts_for(request).err_unknown_counter.format(counter=cid))
    session = socket_session(request, counter=cid)
    app = request.app
    follower, site, records, consoles = app[FOLLOWER], app[SITE], app[RECORDS], app[CONSOLES]

    def view(batch: list[Any]) -> dict[str, Any]:
        _still_valid(request, session)
        return console_view(follower.state, site, cid, records, link_up=follower.connected)

    consoles[cid] += 1
    follower.hub.publish(ConsolePresence(cid, consoles[cid]))
    try:
        with records.watch():
            return await serve_feed(request, follower.hub, view)
    finally:
        consoles[cid] -= 1
        if consoles[cid] <= 0:
            del consoles[cid]
        follower.hub.publish(ConsolePresence(cid, consoles.get(cid, 0)))


def _still_valid(request: web.Request, session: Session) -> None:
    if request.app[AUTH].get(session.token) is None:
        raise FeedEnded(WS_SESSION_ENDED, "session ended")


def _ticket_text(request: web.Request, value: Any, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise bad_request(request, "err_ticket_number")
    text = str(value).strip()
    if not text or len(text) > MAX_TICKET_TEXT:
        raise bad_request(request, "err_ticket_number")
    return text


async def command(request: web.Request) -> web.Response:
    t = texts_for(request)
    cid = request.match_info["counter"]
    session = api_session(request)
    if not _known(request, cid):
        raise ApiError(404, "unknown_counter", t.err_unknown_counter.format(counter=cid))
    session = api_session(request, counter=cid)
    body = await read_json(request)
    try:
        action = Action(body.get("action"))
    except ValueError:
        raise bad_request(request, "err_action", actions=", ".join(a.value for a in Action)) from None
    unknown = set(body) - {"action", "request_id"} - _KEYS.get(action, set())
    if unknown:
        raise bad_request(request, "err_unknown_keys", keys=", ".join(sorted(unknown)))
    rid = request_id_in(request, body)
    extra: dict[str, Any] = {}
    if action is Action.CALL:
        extra["ticket"] = _ticket_text(request, body.get("ticket"), required=True)
    elif action is Action.TRANSFER:
        to_field, to_counter = body.get("to_field"), body.get("to_counter")
        if (to_field is None) == (to_counter is None) or not all(
                v is None or isinstance(v, str) for v in (to_field, to_counter)):
            raise bad_request(request, "err_transfer")
        extra = {"to_field": to_field, "to_counter": to_counter}
    elif action is Action.DOSSIER:
        dossier = body.get("dossier")
        if not isinstance(dossier, str) or not dossier.strip() or len(dossier) > 64:
            raise bad_request(request, "err_dossier")
        extra = {"dossier": dossier.strip(), "ticket": _ticket_text(request, body.get("ticket"), required=False)}
    elif action is Action.OPEN:
        extra["officer"] = session.account.name[:64]
    follower = request.app[FOLLOWER]
    request_id = f"console/{cid}/{rid}"[:MAX_ID_LEN] if rid else new_request_id()
    log.info("Quầy %s: %s (%s)", cid, action, session.account.username)
    reply = await ask_core(request, follower.topics.cmd_counter(cid), counter_command(request_id, action, **extra))
    ticket = reply.get("ticket")
    if isinstance(ticket, dict) and isinstance(ticket.get("id"), str):
        request.app[RECORDS].invalidate(ticket["id"])  # a dossier code: no event says it
    return json_response({"ok": True, "ticket": reply.get("ticket"), "counter": reply.get("counter")})
