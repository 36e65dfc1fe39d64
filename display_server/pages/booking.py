"""Đặt lịch hẹn: /dat-lich (public, phone-first) books a time on a later day; the booking's own
page /dat-lich/{code}/{token} shows it and lets its holder cancel or move it.

The free places come from the core's retained `state/appointments/{field}` (the follower keeps
them); booking, cancelling, moving and reading are `cmd/appointment`. A booking code alone is not
enough to manage a booking: the address carries a token, the HMAC of the code (purpose
"booking"), which only the booking's confirmation (and whoever it was shared with) holds.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from display_server.accounts.otp import Purpose
from display_server.api import ApiError, ask_core, bad_request, json_response, read_command
from display_server.base import FOLLOWER, SETTINGS, SIGNER, SITE, add_link, error_page, render_page, texts_for
from display_server.feed.state import SiteState
from display_server.pages.checkin import code_qr_path, normalize_code
from display_server.pages.otp import verified_phone
from display_server.settings import is_slug
from display_server.texts import Texts
from qms_common.config import SiteConfig
from qms_common.mqtt import new_request_id
from qms_common.protocol import MAX_ID_LEN, AppointmentAction
from qms_common.signing import BOOKING, booking_path

SCRIPT_TEXTS = ("otp_sent", "err_network", "booking_no_slots", "booking_free", "booking_status_booked",
                "booking_status_cancelled", "booking_status_checked_in", "booking_status_no_show",
                "booking_cancel_confirm", "booking_choose_slot", "otp_resend_in")
_BOOK_KEYS = frozenset({"field", "day", "slot", "proof", "request_id"})
_MOVE_KEYS = frozenset({"day", "slot", "request_id"})


def setup(app: web.Application) -> None:
    if app[SITE].appointments is None:
        return  # a site without [appointments] has no such page
    app.router.add_get("/dat-lich", page)
    app.router.add_get("/api/dat-lich/slots", slots)
    app.router.add_post("/api/dat-lich", book)
    app.router.add_get("/dat-lich/{code}/{token}", manage)
    app.router.add_get("/api/dat-lich/{code}/{token}", get)
    app.router.add_post("/api/dat-lich/{code}/{token}/cancel", cancel)
    app.router.add_post("/api/dat-lich/{code}/{token}/move", move)
    add_link(app, "/dat-lich", "booking_title")


def manage_path(app: web.Application, code: str) -> str:
    # the same link as the notifier's reminders carry
    return booking_path(app[SIGNER], code)


def manage_url(request: web.Request, code: str) -> str:
    base = request.app[SETTINGS].web.public_url or f"{request.scheme}://{request.host}"
    return base + manage_path(request.app, code)


def booking_fields(site: SiteConfig, state: SiteState) -> list[dict[str, Any]]:
    """The fields that take appointments, with their names, in the site's order."""
    wanted = {f.field for f in site.appointments.fields} if site.appointments else set()
    return [{"id": f["id"], "name": f.get("name", f["id"])} for f in state.field_list(site) if f["id"] in wanted]


def day_label(t: Texts, day: str) -> str:
    """"Thứ hai, 30/11/2026"."""
    d = date.fromisoformat(day)
    return f"{t.weekdays.split(',')[(d.weekday() + 1) % 7]}, {d.day:02d}/{d.month:02d}/{d.year}"


def bookable_days(t: Texts, state: SiteState, field: str) -> list[dict[str, Any]]:
    """The later days of the field's retained places, with their slots and free places (today is
    never bookable: its places are for the supervisor)."""
    view = state.appointments.get(field) or {}
    today = str((state.site or {}).get("day") or "")
    out = []
    for d in view.get("days") or []:
        if not isinstance(d, dict) or not isinstance(d.get("day"), str) or d["day"] <= today:
            continue
        try:
            label = day_label(t, d["day"])
        except ValueError:
            continue
        slots = [{"slot": s.get("slot"), "free": s.get("free"), "capacity": s.get("capacity")}
                 for s in d.get("slots") or [] if isinstance(s, dict)]
        out.append({"day": d["day"], "label": label, "slots": slots})
    return out


def _suffix(t: Texts) -> str:
    return f"?lang={t.lang}" if t.lang != "vi" else ""


async def page(request: web.Request) -> web.Response:
    t, site, follower = texts_for(request), request.app[SITE], request.app[FOLLOWER]
    page_cfg = {"api": "/api/dat-lich" + _suffix(t), "slots": "/api/dat-lich/slots" + _suffix(t),
                "otp_send": "/api/otp/send" + _suffix(t), "otp_verify": "/api/otp/verify" + _suffix(t),
                "purpose": str(Purpose.BOOKING), "texts": t.pick(*SCRIPT_TEXTS)}
    return render_page(request, "booking.html", page_cfg, fields=booking_fields(site, follower.state))


def _field(request: web.Request, value: object) -> str:
    site, follower = request.app[SITE], request.app[FOLLOWER]
    if not isinstance(value, str) or not is_slug(value):
        raise bad_request(request, "err_field")
    names = [f["id"] for f in booking_fields(site, follower.state)]
    if value not in names:
        raise ApiError(404, "unknown_field", texts_for(request).booking_no_field)
    return value


async def slots(request: web.Request) -> web.Response:
    field = _field(request, request.query.get("field"))
    return json_response({"ok": True, "field": field,
                          "days": bookable_days(texts_for(request), request.app[FOLLOWER].state, field)})


def _request_id(request: web.Request, value: object, prefix: str) -> str:
    if value is None:
        return new_request_id()
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise bad_request(request, "err_request_id")
    return f"{prefix}/{value}"[:MAX_ID_LEN]


def _strs(request: web.Request, body: dict[str, Any], *keys: str) -> list[str]:
    values = [body.get(k) for k in keys]
    if not all(isinstance(v, str) and 0 < len(v) <= 16 for v in values):
        raise bad_request(request, "booking_bad_slot")
    return [str(v) for v in values]


def _answer(request: web.Request, reply: dict[str, Any]) -> web.Response:
    appointment = reply.get("appointment") if isinstance(reply.get("appointment"), dict) else {}
    code = str(appointment.get("code", ""))
    follower, site = request.app[FOLLOWER], request.app[SITE]
    names = {str(f["id"]): str(f.get("name", f["id"])) for f in follower.state.field_list(site)}
    t = texts_for(request)
    view = dict(appointment)
    view["field_name"] = names.get(str(appointment.get("field")), appointment.get("field"))
    if isinstance(appointment.get("day"), str):
        try:
            view["day_label"] = day_label(t, appointment["day"])
        except ValueError:
            pass
    return json_response({"ok": True, "appointment": view, "manage_url": manage_url(request, code),
                          "code_qr": code_qr_path(code)})


async def book(request: web.Request) -> web.Response:
    body = await read_command(request, _BOOK_KEYS)
    field = _field(request, body.get("field"))
    day, slot = _strs(request, body, "day", "slot")
    request_id = _request_id(request, body.get("request_id"), "dat-lich")
    phone = verified_phone(request, body.get("proof"), Purpose.BOOKING)
    command = {"request_id": request_id, "action": str(AppointmentAction.BOOK), "field": field, "day": day,
               "slot": slot, "phone": phone}
    reply = await ask_core(request, request.app[FOLLOWER].topics.cmd_appointment, command)
    return _answer(request, reply)


def _code(request: web.Request) -> str:
    """The booking of this address, if its token is the one made for it; 404 otherwise."""
    code = normalize_code(request.match_info["code"])
    if code is None or not request.app[SIGNER].check(BOOKING, code, request.match_info["token"]):
        raise ApiError(404, "unknown_booking", texts_for(request).booking_not_found)
    return code


async def manage(request: web.Request) -> web.Response:
    t = texts_for(request)
    try:
        code = _code(request)
    except ApiError as exc:
        return error_page(request, exc.status, exc.message)
    path = manage_path(request.app, code)
    page_cfg = {"api": "/api" + path, "slots": "/api/dat-lich/slots" + _suffix(t), "code": code,
                "suffix": _suffix(t), "texts": t.pick(*SCRIPT_TEXTS)}
    return render_page(request, "booking_manage.html", page_cfg, code=code, code_qr=code_qr_path(code))


async def get(request: web.Request) -> web.Response:
    code = _code(request)
    reply = await ask_core(request, request.app[FOLLOWER].topics.cmd_appointment,
                           {"request_id": new_request_id(), "action": str(AppointmentAction.GET), "code": code})
    return _answer(request, reply)


async def cancel(request: web.Request) -> web.Response:
    code = _code(request)
    body = await read_command(request, {"request_id"})
    command = {"request_id": _request_id(request, body.get("request_id"), "dat-lich-huy"),
               "action": str(AppointmentAction.CANCEL), "code": code}
    return _answer(request, await ask_core(request, request.app[FOLLOWER].topics.cmd_appointment, command))


async def move(request: web.Request) -> web.Response:
    code = _code(request)
    body = await read_command(request, _MOVE_KEYS)
    day, slot = _strs(request, body, "day", "slot")
    command = {"request_id": _request_id(request, body.get("request_id"), "dat-lich-doi"),
               "action": str(AppointmentAction.MOVE), "code": code, "day": day, "slot": slot}
    return _answer(request, await ask_core(request, request.app[FOLLOWER].topics.cmd_appointment, command))
