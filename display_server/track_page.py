"""A ticket's own page, the QR code's target: /t/{ticket id} shows its status, the people ahead,
the estimated wait and, once called, the counter; /t/{id}/ws keeps it current; /t/{id}/qr.svg is
the QR code of the page (for the kiosk's screen and the browser's print).

The ticket's record comes from the core (cmd/query "ticket"), asked again whenever something
that could change it happens: its own events, its field's queue, its counter.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from display_server import qr
from display_server.base import FOLLOWER, SETTINGS, SITE, error_page, render_page, texts_for
from display_server.follower import LinkChange, StateFollower
from display_server.hub import Resync
from display_server.live import serve_feed
from display_server.state import Call, Change
from qms_common.config import SiteConfig
from qms_common.mqtt import new_request_id
from qms_common.protocol import CALLABLE_STATUSES, ErrorCode, ProtocolError, QueryKind, query_command

# day, field, number: 20261121-dat-dai-1001 (a field's prefix may be Đ: 20261121-ho-tich-đ005)
TICKET_ID_RE = re.compile(r"^\d{8}-[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?-[a-z0-9đ]{1,12}$")
SCRIPT_TEXTS = ("track_waiting", "track_serving", "track_done", "track_thanks", "track_no_show", "track_transferred",
                "track_expired", "ticket_next", "ticket_ahead", "ticket_wait", "minutes", "hours", "hours_minutes",
                "to_counter", "offline", "track_not_found", "priority_badge", "track_rated", "ticket_ahead_one")


def setup(app: web.Application) -> None:
    app.router.add_get("/t/{ticket}", page)
    app.router.add_get("/t/{ticket}/ws", feed)
    app.router.add_get("/t/{ticket}/qr.svg", qr_code)


def tracking_url(request: web.Request, ticket_id: str) -> str:
    base = request.app[SETTINGS].web.public_url or f"{request.scheme}://{request.host}"
    return f"{base}/t/{quote(ticket_id)}"


def _ticket_id(request: web.Request) -> str | None:
    tid = request.match_info["ticket"]
    return tid if len(tid) <= 96 and TICKET_ID_RE.match(tid) else None


async def ask(follower: StateFollower, ticket_id: str) -> dict[str, Any] | None:
    """The core's answer about a ticket; None if there is no such ticket; ProtocolError if the core
    cannot be asked now."""
    reply = await follower.requester.request(
        follower.topics.cmd_query, query_command(new_request_id(), QueryKind.TICKET, ticket=ticket_id), timeout=5)
    if reply.get("ok") is True:
        return reply
    err = reply.get("error") if isinstance(reply.get("error"), dict) else {}
    if err.get("code") == ErrorCode.UNKNOWN_TICKET:
        return None
    raise ProtocolError(ErrorCode.INTERNAL, str(err.get("message") or ""))


def track_view(reply: dict[str, Any] | None, state: Any, site: SiteConfig, *, online: bool) -> dict[str, Any]:
    """What the page shows, from the core's answer (None: no such ticket)."""
    if reply is None:
        return {"found": False, "online": online}
    t = reply.get("ticket") or {}
    fields = {str(f["id"]): f.get("name", f["id"]) for f in state.field_list(site)}
    counters = {str(c["id"]): c.get("name", c["id"]) for c in state.counter_list(site)}
    counter = t.get("counter")
    return {
        "found": True, "online": online,
        "ticket": {"id": t.get("id"), "number": t.get("number"), "field": t.get("field"),
                   "field_name": fields.get(str(t.get("field")), t.get("field")), "status": t.get("status"),
                   "priority": bool(t.get("priority")), "issued_at": t.get("issued_at"),
                   "called_at": t.get("called_at"), "counter": counter,
                   "counter_name": counters.get(str(counter), counter) if counter else None,
                   "rating": t.get("rating")},
        "ahead": reply.get("ahead"), "est_wait_s": reply.get("est_wait_s"),
    }


def _concerns(item: Any, ticket_id: str, ticket: dict[str, Any] | None) -> bool:
    """Could this change what the page shows?"""
    if isinstance(item, (LinkChange, Resync)):
        return True
    if not isinstance(item, Change):
        return False
    if item.kind in ("site", "status") and item.key in ("", "core"):
        return True
    if item.kind == "event":
        data = item.data.ticket if isinstance(item.data, Call) else (item.data or {}).get("ticket") or {}
        return isinstance(data, dict) and data.get("id") == ticket_id
    if ticket is None:
        return False
    if item.kind == "queue":  # the people ahead
        return ticket.get("status") in CALLABLE_STATUSES and item.key == ticket.get("field")
    if item.kind == "counter":
        held = (item.data or {}).get("ticket") or {}
        return held.get("id") == ticket_id or item.key == ticket.get("counter")
    return False


async def page(request: web.Request) -> web.Response:
    t = texts_for(request)
    tid = _ticket_id(request)
    if tid is None:
        return error_page(request, 404, t.track_not_found)
    try:
        reply = await ask(request.app[FOLLOWER], tid)
    except ProtocolError:
        reply = {}  # the core is away: the page waits for it
    if reply is None:
        return error_page(request, 404, t.track_not_found)
    page_cfg = {"ws": f"/t/{tid}/ws", "ticket": tid, "texts": t.pick(*SCRIPT_TEXTS)}
    return render_page(request, "track.html", page_cfg, ticket_id=tid, qr_url=f"/t/{tid}/qr.svg")


async def feed(request: web.Request) -> web.StreamResponse:
    tid = _ticket_id(request)
    if tid is None:
        raise web.HTTPNotFound(text=texts_for(request).track_not_found)
    follower, site = request.app[FOLLOWER], request.app[SITE]
    last: dict[str, Any] = {}

    async def view(batch: list[Any]) -> dict[str, Any] | None:
        ticket = last.get("ticket") if last else None
        if batch and not any(_concerns(item, tid, ticket) for item in batch):
            return None
        try:
            reply = await ask(follower, tid)
        except ProtocolError:
            return {**last, "online": False} if last else {"found": True, "online": False, "ticket": None}
        current = track_view(reply, follower.state, site, online=follower.connected and follower.state.core_online)
        last.clear()
        last.update(current)
        return current

    return await serve_feed(request, follower.hub, view)


async def qr_code(request: web.Request) -> web.Response:
    tid = _ticket_id(request)
    if tid is None:
        raise web.HTTPNotFound(text=texts_for(request).track_not_found)
    return web.Response(text=qr.svg(tracking_url(request, tid)), content_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=86400"})
