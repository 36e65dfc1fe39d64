"""Check-in at the kiosk (POST /api/checkin) and the QR code of a check-in or booking code
(/ma/{code}/qr.svg).

The citizen types the code of their remote ticket or booking on the kiosk's keyboard, or holds
its QR code to the kiosk's scanner (which types the code and Enter); the core answers the ticket
(`cmd/checkin`), which the kiosk shows and prints like any other. Too early, too late and unknown
codes come back as the core's own Vietnamese refusals. Each kiosk gets `CHECKINS_PER_MINUTE`
attempts, so nobody can guess codes from a kiosk.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from aiohttp import web

from display_server.accounts.ratelimit import RateLimiter, seconds_text
from display_server.api import ApiError, ask_core, json_response, read_command, request_id_in
from display_server.base import FOLLOWER, RECORDS, SETTINGS, SITE, texts_for
from display_server.pages.kiosk import PRINTER, kiosk_id_of, printed_ticket
from display_server.pages.track import tracking_path, tracking_url
from display_server.printing import qr
from display_server.printing.printer import PrintResult, status_of
from display_server.texts import Texts
from display_server.timefmt import stamp_text
from qms_common.mqtt import new_request_id
from qms_common.protocol import BOOKING_CODE_LEN, CODE_ALPHABET, MAX_ID_LEN

log = logging.getLogger(__name__)

CHECKINS_PER_MINUTE = 20
CHECKIN_LIMITER = web.AppKey("checkin_limiter", RateLimiter)
CODE_RE = re.compile(f"^[{CODE_ALPHABET}]{{4,{BOOKING_CODE_LEN}}}$")
_BODY_KEYS = frozenset({"code", "kiosk", "request_id"})


def setup(app: web.Application) -> None:
    app[CHECKIN_LIMITER] = RateLimiter(CHECKINS_PER_MINUTE, 60.0)
    app.router.add_post("/api/checkin", checkin)
    app.router.add_get("/ma/{code}/qr.svg", code_qr)


def normalize_code(value: object) -> str | None:
    """A code as typed or scanned ("k7m pqx" → "K7MPQX"), or None if it cannot be one."""
    if not isinstance(value, str) or len(value) > 32:
        return None
    code = "".join(value.split()).upper()
    return code if CODE_RE.match(code) else None


def code_qr_path(code: str) -> str:
    return f"/ma/{code}/qr.svg"


async def code_qr(request: web.Request) -> web.Response:
    """The QR code of a code alone: the kiosk's scanner reads it as typed text."""
    code = normalize_code(request.match_info["code"])
    if code is None:
        raise web.HTTPNotFound(text=texts_for(request).checkin_bad_code)
    return web.Response(text=qr.svg(code), content_type="image/svg+xml",
                        headers={"Cache-Control": "private, max-age=86400"})


async def checkin(request: web.Request) -> web.Response:
    t = texts_for(request)
    body = await read_command(request, _BODY_KEYS)
    code = normalize_code(body.get("code"))
    if code is None:
        raise ApiError(400, "bad_request", t.checkin_bad_code)
    rid = request_id_in(request, body)
    kiosk_id = kiosk_id_of(request, body.get("kiosk"))
    wait = request.app[CHECKIN_LIMITER].take(kiosk_id)
    if wait > 0:
        raise ApiError(429, "rate_limited", t.checkin_rate.format(s=seconds_text(wait)),
                       retry_after_s=seconds_text(wait))
    follower, site, settings = request.app[FOLLOWER], request.app[SITE], request.app[SETTINGS]
    request_id = f"checkin/{kiosk_id}/{rid}"[:MAX_ID_LEN] if rid else new_request_id()
    reply = await ask_core(request, follower.topics.cmd_checkin, {"request_id": request_id, "code": code})
    ticket = reply.get("ticket") or {}
    tid = str(ticket.get("id", ""))
    # a check-in publishes no event: the tracking pages learn of it from a fresh record
    request.app[RECORDS].invalidate(tid)
    names = {str(f["id"]): str(f.get("name", f["id"])) for f in follower.state.field_list(site)}
    ahead, est = reply.get("ahead"), reply.get("est_wait_s")
    url = tracking_url(request, tid)
    issued = stamp_text(ticket.get("issued_at"), site.tz) or stamp_text(datetime.now(site.tz), site.tz)
    result: PrintResult | None = None
    mode = "browser"
    if settings.printer.serves(kiosk_id):
        mode = "printer"
        result = await request.app[PRINTER].print(printed_ticket(site, names, ticket, ahead, est, url, issued),
                                                  Texts("vi"))
    return json_response({"ok": True, "ticket": ticket, "appointment": reply.get("appointment"),
                          "late": reply.get("late") is True, "ahead": ahead, "est_wait_s": est,
                          "tracking_url": url, "qr_url": tracking_path(request.app, tid) + "/qr.svg",
                          "field_name": names.get(str(ticket.get("field")), ""), "issued_text": issued,
                          "print": status_of(result, mode)})
