"""A ticket's own page, the QR code's target: /t/{ticket id}/{token} shows its status, the people
ahead, the estimated wait and, once called, the counter; …/ws keeps it current; …/qr.svg is the QR
code of the page (for the kiosk's screen and the browser's print). Once the ticket is served, the
citizen may rate it from here (POST /api/track/{ticket id}/{token}/rate).

A ticket id (day, field, number) is easy to guess, so the address carries a token, the HMAC of the
id with the server's secret (signing.py): only the ticket's own slip opens its page. The page is
served from the web server's live state (today's records and queues, feed/records.py), never a core
query per page or per change.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from display_server.api import ApiError
from display_server.base import FOLLOWER, RECORDS, SETTINGS, SIGNER, SITE, error_page, render_page, texts_for
from display_server.feed.live import serve_feed
from display_server.feed.records import TodayRecords
from display_server.feed.state import SiteState
from display_server.notify import tracking_notice
from display_server.pages.rating import levels_of, rate_ticket, rating_open, read_score
from display_server.printing import qr
from qms_common.config import SiteConfig
from qms_common.signing import TRACKING
from qms_common.signing import tracking_path as signed_tracking_path

# day, field, number: 20261121-dat-dai-1001 (a field's prefix may be Đ: 20261121-ho-tich-đ005)
TICKET_ID_RE = re.compile(r"^\d{8}-[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?-[a-z0-9đ]{1,12}$")
SCRIPT_TEXTS = ("track_waiting", "track_serving", "track_done", "track_thanks", "track_no_show", "track_transferred",
                "track_expired", "ticket_next", "ticket_ahead", "ticket_wait", "minutes", "hours", "hours_minutes",
                "to_counter", "offline", "track_not_found", "priority_badge", "track_rated", "ticket_ahead_one",
                "err_network", "track_notify", "notify_channel_zalo", "notify_channel_sms", "track_checkin",
                "track_checkin_code")


def setup(app: web.Application) -> None:
    app.router.add_get("/t/{ticket}/{token}", page)
    app.router.add_get("/t/{ticket}/{token}/ws", feed)
    app.router.add_get("/t/{ticket}/{token}/qr.svg", qr_code)
    app.router.add_post("/api/track/{ticket}/{token}/rate", rate)


def tracking_path(app: web.Application, ticket_id: str) -> str:
    return signed_tracking_path(app[SIGNER], ticket_id)


def tracking_url(request: web.Request, ticket_id: str) -> str:
    base = request.app[SETTINGS].web.public_url or f"{request.scheme}://{request.host}"
    return base + tracking_path(request.app, ticket_id)


def _ticket_id(request: web.Request) -> str | None:
    """The ticket of this address, if its token is the one the server made for it."""
    tid, token = request.match_info["ticket"], request.match_info["token"]
    if len(tid) > 96 or not TICKET_ID_RE.match(tid) or not request.app[SIGNER].check(TRACKING, tid, token):
        return None
    return tid


def _day_of(ticket_id: str) -> str:
    return f"{ticket_id[:4]}-{ticket_id[4:6]}-{ticket_id[6:8]}"


def track_view(ticket_id: str, records: TodayRecords, state: SiteState, site: SiteConfig, *,
               online: bool) -> dict[str, Any] | None:
    """What the page shows, from today's records and queues; None while today's records do not
    hold it yet (just issued, or not read yet)."""
    t = records.get(ticket_id)
    if t is None:
        if records.loaded and records.day is not None and records.day != _day_of(ticket_id):
            return {"found": False, "online": online}  # another day's ticket
        return None
    fields = {str(f["id"]): f.get("name", f["id"]) for f in state.field_list(site)}
    counters = {str(c["id"]): c.get("name", c["id"]) for c in state.counter_list(site)}
    counter = t.get("counter")
    ahead = records.ahead(t)
    est = None
    if ahead is not None:
        q = state.queues.get(str(t.get("field"))) or {}
        waiting, field_est = q.get("waiting"), q.get("est_wait_s")
        # the queue's estimate for all who wait, shared out: the core's own formula
        est = -(-ahead * field_est // waiting) if isinstance(waiting, int) and waiting > 0 \
            and isinstance(field_est, int) else None
    return {
        "found": True, "online": online,
        "ticket": {"id": t.get("id"), "number": t.get("number"), "field": t.get("field"),
                   "field_name": fields.get(str(t.get("field")), t.get("field")), "status": t.get("status"),
                   "priority": bool(t.get("priority")), "issued_at": t.get("issued_at"),
                   "called_at": t.get("called_at"), "counter": counter,
                   "counter_name": counters.get(str(counter), counter) if counter else None,
                   "rating": t.get("rating"), "via": t.get("via") or "kiosk",
                   "awaiting_checkin": t.get("awaiting_checkin") is True,
                   "appointment": bool(t.get("appointment"))},
        "ahead": ahead, "est_wait_s": est,
        # which message will come, and when: only for a waiting ticket whose citizen left a phone
        "notify": tracking_notice(t, ahead, site),
        "rate": levels_of(state, site) if rating_open(t, site) else None,
    }


async def page(request: web.Request) -> web.Response:
    t = texts_for(request)
    tid = _ticket_id(request)
    if tid is None:
        return error_page(request, 404, t.track_not_found)
    path = tracking_path(request.app, tid)
    page_cfg = {"ws": f"{path}/ws", "ticket": tid, "texts": t.pick(*SCRIPT_TEXTS),
                "rate_api": f"/api/track/{quote(tid)}/{request.match_info['token']}/rate"
                            + (f"?lang={t.lang}" if t.lang != "vi" else "")}
    return render_page(request, "track.html", page_cfg, ticket_id=tid, qr_url=f"{path}/qr.svg")


async def feed(request: web.Request) -> web.StreamResponse:
    tid = _ticket_id(request)
    if tid is None:
        raise web.HTTPNotFound(text=texts_for(request).track_not_found)
    follower, site, records = request.app[FOLLOWER], request.app[SITE], request.app[RECORDS]

    def view(batch: list[Any]) -> dict[str, Any] | None:
        online = follower.connected and follower.state.core_online and records.error is None
        return track_view(tid, records, follower.state, site, online=online)

    with records.watch():  # one shared reading of the day, whatever the number of phones
        return await serve_feed(request, follower.hub, view)


async def rate(request: web.Request) -> web.Response:
    """The citizen rates their own ticket from its page: the token proves it is theirs."""
    tid = _ticket_id(request)
    if tid is None:
        raise ApiError(404, "unknown_ticket", texts_for(request).track_not_found)
    score, _ = await read_score(request)
    return await rate_ticket(request, tid, score)


async def qr_code(request: web.Request) -> web.Response:
    tid = _ticket_id(request)
    if tid is None:
        raise web.HTTPNotFound(text=texts_for(request).track_not_found)
    return web.Response(text=qr.svg(tracking_url(request, tid)), content_type="image/svg+xml",
                        headers={"Cache-Control": "private, max-age=86400"})
