"""Lấy số từ xa: /lay-so (public, phone-first) and POST /api/lay-so, today's number from a phone.

The citizen chooses a field (only fields with a `[remote.quota]`), verifies their phone with a
one-time code (pages/otp.py), and gets a remote ticket from the core (`cmd/ticket` with
`"remote": true` and the verified phone): the number, the people ahead, the estimated wait, the
check-in code they type or show at the kiosk (with its QR code) and the ticket's tracking page.
The check-in code is not public: it travels in the tracking link's fragment (#ma=…), which the
browser never sends to any server, so only who holds the link sees it on the tracking page.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from display_server.accounts.otp import Purpose
from display_server.api import ApiError, ask_core, bad_request, json_response, read_command, request_id_in
from display_server.base import FOLLOWER, SITE, add_link, render_page, texts_for
from display_server.pages.checkin import code_qr_path
from display_server.pages.otp import verified_phone
from display_server.pages.track import tracking_url
from display_server.settings import is_slug
from qms_common.config import SiteConfig
from qms_common.mqtt import new_request_id
from qms_common.protocol import MAX_ID_LEN, ticket_command

SCRIPT_TEXTS = ("otp_sent", "err_network", "ticket_next", "ticket_ahead", "ticket_ahead_one", "ticket_wait",
                "minutes", "hours", "hours_minutes", "otp_resend_in", "remote_no_field", "remote_wait_done")
_BODY_KEYS = frozenset({"field", "proof", "request_id"})


def setup(app: web.Application) -> None:
    if app[SITE].remote is None:
        return  # a site without [remote] has no such page
    app.router.add_get("/lay-so", page)
    app.router.add_post("/api/lay-so", take)
    add_link(app, "/lay-so", "remote_title")


def hours_text(ranges: tuple[tuple[int, int], ...]) -> str:
    """"07:30–11:00, 13:30–16:30" from minutes after midnight."""
    def hm(m: int) -> str:
        return f"{m // 60:02d}:{m % 60:02d}"
    return ", ".join(f"{hm(a)}–{hm(b)}" for a, b in ranges)


def remote_fields(site: SiteConfig, fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fields that take remote tickets (a quota above 0), in the site's order."""
    quota = site.remote.quota if site.remote else {}
    return [{"id": f["id"], "name": f.get("name", f["id"])} for f in fields if quota.get(str(f["id"]), 0) > 0]


async def page(request: web.Request) -> web.Response:
    t, site, follower = texts_for(request), request.app[SITE], request.app[FOLLOWER]
    assert site.remote is not None
    suffix = f"?lang={t.lang}" if t.lang != "vi" else ""
    fields = remote_fields(site, follower.state.field_list(site))
    page_cfg = {"api": "/api/lay-so" + suffix, "otp_send": "/api/otp/send" + suffix,
                "otp_verify": "/api/otp/verify" + suffix, "purpose": str(Purpose.REMOTE),
                "texts": t.pick(*SCRIPT_TEXTS)}
    # ?field= preselects a field (a procedure's page links here with its own)
    return render_page(request, "remote.html", page_cfg, fields=fields, hours=hours_text(site.remote.hours),
                       selected=request.query.get("field"))


async def take(request: web.Request) -> web.Response:
    t = texts_for(request)
    body = await read_command(request, _BODY_KEYS)
    field = body.get("field")
    if not isinstance(field, str) or not is_slug(field):
        raise bad_request(request, "err_field")
    rid = request_id_in(request, body)
    phone = verified_phone(request, body.get("proof"), Purpose.REMOTE)
    site, follower = request.app[SITE], request.app[FOLLOWER]
    names = {str(f["id"]): str(f.get("name", f["id"])) for f in follower.state.field_list(site)}
    if field not in names:
        raise ApiError(404, "unknown_field", t.err_unknown_field.format(field=field, fields=", ".join(names)))
    # the page's own request id: a retry after a lost answer gets the same ticket
    request_id = f"lay-so/{rid}"[:MAX_ID_LEN] if rid else new_request_id()
    command = {**ticket_command(request_id, field, source="lay-so", phone=phone), "remote": True}
    reply = await ask_core(request, follower.topics.cmd_ticket, command)
    ticket = reply.get("ticket") or {}
    code = str(reply.get("code") or "")
    return json_response({"ok": True, "ticket": ticket, "code": code, "ahead": reply.get("ahead"),
                          "est_wait_s": reply.get("est_wait_s"), "field_name": names.get(field, field),
                          "tracking_url": tracking_url(request, str(ticket.get("id", ""))) + f"#ma={code}",
                          "code_qr": code_qr_path(code)})
