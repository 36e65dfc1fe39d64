"""The kiosk: /kiosk (a big button per field, touch screen), /kiosk/ws (queue lengths, live) and
POST /api/tickets, which issues a ticket through the core and prints it.

"4 trong 1": unless `[kiosk] functions` is only "ticket", the kiosk opens on a menu: take a number,
look up procedures (the catalogue, pages/procedures.py), look up a dossier (/kiosk/ho-so), and rate
the service (POST /api/kiosk/rate: today's ticket number and a level; the core checks that the
ticket is done, not yet rated and within `[rating] window_s`).

A kiosk can only issue tickets. Only the kiosk ids of `[kiosk] ids` issue (`/kiosk?id=kiosk-1`;
any well-formed id only if the site opts in with `any_id`); each gets `tickets_per_minute`, and all
together `site_tickets_per_minute`, so neither a stuck button nor a script inventing ids can
exhaust a field's number range. The ticket is printed on the `[printer]` when there is one for
this kiosk, else by the browser; a printer that fails never takes the ticket with it.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from display_server.accounts.ratelimit import RateLimiter, seconds_text
from display_server.api import (
    CORE_TIMEOUT_S,
    ApiError,
    ask_core,
    bad_request,
    json_response,
    read_command,
    request_id_in,
)
from display_server.base import (
    FOLLOWER,
    SETTINGS,
    SITE,
    add_link,
    error_page,
    lang_switch_url,
    render_page,
    texts_for,
)
from display_server.feed.live import serve_feed
from display_server.feed.state import SiteState
from display_server.notify import notify_channels
from display_server.pages.rating import levels_of, rate_ticket, read_score
from display_server.pages.track import tracking_path, tracking_url
from display_server.printing.printer import PrintResult, TicketPrinter, status_of
from display_server.printing.ticket_image import PrintedTicket
from display_server.settings import is_slug
from display_server.texts import DEFAULT_LANGUAGE, Texts
from display_server.timefmt import stamp_text
from qms_common.config import SiteConfig
from qms_common.mqtt import new_request_id
from qms_common.phones import PhoneError, normalize_phone
from qms_common.protocol import CODE_ALPHABET, MAX_ID_LEN, ticket_command

log = logging.getLogger(__name__)

DEFAULT_KIOSK = "kiosk"
KIOSK_LIMITER = web.AppKey("kiosk_limiter", RateLimiter)
SITE_LIMITER = web.AppKey("site_limiter", RateLimiter)
PRINTER = web.AppKey("printer", TicketPrinter)
SCRIPT_TEXTS = ("kiosk_priority", "kiosk_normal", "waiting", "people", "people_one", "ticket_label", "ticket_next",
                "ticket_ahead", "ticket_ahead_one",
                "ticket_wait", "minutes", "hours", "hours_minutes", "kiosk_done", "kiosk_printing", "kiosk_take_it",
                "kiosk_print_browser", "offline", "kiosk_unavailable", "err_network", "ticket_scan", "priority_badge",
                "kiosk_waiting", "kiosk_not_issued", "checkin_late", "checkin_done_remote")
PHONE_TEXTS = ("kiosk_phone_heading", "kiosk_phone_placeholder", "kiosk_phone_delete", "kiosk_phone_skip",
               "kiosk_phone_take", "kiosk_phone_back")
# digits the keypad takes: "84912345678" is 11, a mistyped longer one is refused by the server
PHONE_MAX_DIGITS = 12
_BODY_KEYS = frozenset({"field", "priority", "kiosk", "request_id", "phone"})
_RATE_KEYS = frozenset({"kiosk", "ticket", "score"})
MORE_TEXTS = ("proc_empty", "proc_none", "proc_results", "proc_results_one", "proc_take_elsewhere",
              "kiosk_proc_hint", "kiosk_rate_no_number", "rate_thanks")
# a ticket's number as people see it ("1005", "C003"): letters and digits
_NUMBER_RE = re.compile(r"^[A-Za-zĐđ0-9]{1,12}$")
# A tap whose answer did not come back is asked again with its request id for this long; then the
# kiosk says no ticket was issued (every attempt's deadline has passed by then).
RETRY_S = 20.0


class ChargedTaps:
    """The request ids a kiosk was charged a ticket for: the retries that learn what became of
    one tap must not count again, or the rate limit would leave its outcome unknown."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._ids

    def add(self, request_id: str) -> None:
        self._ids[request_id] = None
        self._ids.move_to_end(request_id)
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)


KIOSK_CHARGED = web.AppKey("kiosk_charged", ChargedTaps)


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    app[KIOSK_LIMITER] = RateLimiter(settings.kiosk.tickets_per_minute, 60.0)
    app[KIOSK_CHARGED] = ChargedTaps()
    app[SITE_LIMITER] = RateLimiter(settings.kiosk.site_tickets_per_minute, 60.0)
    if settings.printer.enabled:
        app[PRINTER] = TicketPrinter(settings.printer)
        app.on_cleanup.append(_close_printer)
    app.router.add_get("/kiosk", kiosk)
    app.router.add_get("/kiosk/ws", feed)
    app.router.add_post("/api/tickets", issue)
    app.router.add_post("/api/kiosk/rate", rate)
    add_link(app, "/kiosk", "kiosk_title")


async def _close_printer(app: web.Application) -> None:
    app[PRINTER].close()


def kiosk_id_of(request: web.Request, value: Any) -> str:
    """The kiosk's id (a slug), one the site allows; ApiError otherwise."""
    t = texts_for(request)
    if value is None or value == "":
        value = DEFAULT_KIOSK
    if not isinstance(value, str) or not is_slug(value):
        raise ApiError(400, "bad_request", t.err_kiosk_id)
    settings = request.app[SETTINGS].kiosk
    if not settings.any_id and value not in settings.ids:
        raise ApiError(403, "forbidden", t.err_kiosk_unknown.format(ids=", ".join(settings.ids)))
    return value


def kiosk_view(state: SiteState, site: SiteConfig, *, link_up: bool) -> dict[str, Any]:
    fields = []
    for f in state.field_list(site):
        q = state.queues.get(str(f["id"]), {})
        fields.append({"id": f["id"], "name": f.get("name", f["id"]), "waiting": q.get("waiting"),
                       "est_wait_s": q.get("est_wait_s")})
    return {"online": link_up and state.core_online, "fields": fields}


async def kiosk(request: web.Request) -> web.Response:
    t = texts_for(request)
    try:
        kiosk_id = kiosk_id_of(request, request.query.get("id"))
    except ApiError as exc:
        return error_page(request, exc.status, exc.message)
    settings = request.app[SETTINGS]
    page = {
        "ws": "/kiosk/ws", "api": "/api/tickets" + (f"?lang={t.lang}" if t.lang != "vi" else ""),
        "kiosk": kiosk_id, "show_s": settings.kiosk.show_s, "priority": settings.kiosk.priority,
        "print": "printer" if settings.printer.serves(kiosk_id) else "browser",
        "texts": t.pick(*SCRIPT_TEXTS), "timezone": request.app[SITE].timezone,
        "retry_s": RETRY_S, "command_s": CORE_TIMEOUT_S,
        # another language is one citizen's choice: after their ticket, or idle, back to Vietnamese
        "home": lang_switch_url(request, t) if t.lang != DEFAULT_LANGUAGE else None,
        "idle_s": settings.kiosk.idle_s,
        "phone": _phone_config(t, request.app[SITE]),
        # check-in of bookings and remote tickets: where the site has either
        "checkin": ("/api/checkin" + (f"?lang={t.lang}" if t.lang != "vi" else ""))
        if request.app[SITE].remote is not None or request.app[SITE].appointments is not None else None,
        "alphabet": CODE_ALPHABET,
        "lang": t.lang,
    }
    functions = settings.kiosk.functions
    menu = list(functions) if functions != ("ticket",) else None
    suffix = f"?lang={t.lang}" if t.lang != "vi" else ""
    page["menu"] = menu or []
    if menu:
        page["texts"] = {**page["texts"], **t.pick(*MORE_TEXTS)}
        page["procedures"] = {"api": "/api/procedures"}
        page["rating"] = {"api": "/api/kiosk/rate" + suffix,
                          "levels": levels_of(request.app[FOLLOWER].state, request.app[SITE])}
    prefixes = sorted({c for f in request.app[SITE].fields for c in f.prefix})  # the letters numbers may have
    return render_page(request, "kiosk.html", page, kiosk=kiosk_id, phone=page["phone"], menu=menu,
                       dossier_url=f"/kiosk/ho-so?{urlencode({'id': kiosk_id} | ({'lang': t.lang} if suffix else {}))}",
                       prefixes=prefixes)


def _phone_config(t: Texts, site: SiteConfig) -> dict[str, Any] | None:
    """The optional phone entry, only where the notifier runs (`[notify]` with a phone channel)."""
    channels = notify_channels(site)
    if not channels:
        return None
    names = t.notify_channels_or.join(t.get(f"notify_channel_{c}", c) for c in channels)
    return {"consent": t.kiosk_phone_consent.format(channels=names, days=site.phone_days),
            "max_digits": PHONE_MAX_DIGITS, "texts": t.pick(*PHONE_TEXTS)}


def _phone(request: web.Request, value: Any) -> str | None:
    """The citizen's number as the core keeps it ("84…"), None when left out; ApiError when it is
    not a Vietnamese mobile or the site sends no messages. The number is never in the message."""
    t = texts_for(request)
    if value is None or value == "":
        return None
    if not notify_channels(request.app[SITE]):
        raise ApiError(400, "bad_request", t.err_phone_off)
    try:
        return normalize_phone(value)
    except PhoneError as exc:
        raise ApiError(400, "bad_phone", str(exc) if t.lang == "vi" else t.err_phone) from None


async def feed(request: web.Request) -> web.StreamResponse:
    follower, site = request.app[FOLLOWER], request.app[SITE]
    return await serve_feed(request, follower.hub,
                            lambda batch: kiosk_view(follower.state, site, link_up=follower.connected))


async def issue(request: web.Request) -> web.Response:
    t = texts_for(request)
    body = await read_command(request, _BODY_KEYS)
    field = body.get("field")
    if not isinstance(field, str) or not is_slug(field):
        raise bad_request(request, "err_field")
    priority = body.get("priority", False)
    if not isinstance(priority, bool):
        raise bad_request(request, "err_priority")
    rid = request_id_in(request, body)
    kiosk_id = kiosk_id_of(request, body.get("kiosk"))
    phone = _phone(request, body.get("phone"))
    follower, site, settings = request.app[FOLLOWER], request.app[SITE], request.app[SETTINGS]
    names = {str(f["id"]): str(f.get("name", f["id"])) for f in follower.state.field_list(site)}
    if field not in names:
        raise ApiError(404, "unknown_field", t.err_unknown_field.format(field=field, fields=", ".join(names)))
    # a page's own request id (a repeated tap, a retry) issues one ticket; namespaced per kiosk
    request_id = f"kiosk/{kiosk_id}/{rid}"[:MAX_ID_LEN] if rid else new_request_id()
    charged = request.app[KIOSK_CHARGED]
    if request_id not in charged:
        _take_allowance(request, kiosk_id)
        charged.add(request_id)
    reply = await ask_core(request, follower.topics.cmd_ticket,
                           ticket_command(request_id, field, priority=priority, source=kiosk_id,
                                                          phone=phone))
    ticket = reply.get("ticket") or {}
    ahead, est = reply.get("ahead"), reply.get("est_wait_s")
    url = tracking_url(request, str(ticket.get("id", "")))  # with the ticket's token: only its slip opens it
    # the time as the site reads it: the kiosk's browser may run in any zone
    issued = stamp_text(ticket.get("issued_at"), site.tz) or stamp_text(datetime.now(site.tz), site.tz)
    result: PrintResult | None = None
    mode = "browser"
    if settings.printer.serves(kiosk_id):
        mode = "printer"
        printed = printed_ticket(site, names, ticket, ahead, est, url, issued)
        result = await request.app[PRINTER].print(printed, Texts("vi"))
    return json_response({"ok": True, "ticket": ticket, "ahead": ahead, "est_wait_s": est, "tracking_url": url,
                          "qr_url": tracking_path(request.app, str(ticket.get("id", ""))) + "/qr.svg",
                          "field_name": names.get(str(ticket.get("field")), ""), "issued_text": issued,
                          "print": status_of(result, mode)})


async def rate(request: web.Request) -> web.Response:
    """A rating from the kiosk: the ticket by its number of today. The core answers why not
    (unknown number, not served yet, already rated, window closed), in Vietnamese."""
    t = texts_for(request)
    score, body = await read_score(request, keys=_RATE_KEYS)
    kiosk_id = kiosk_id_of(request, body.get("kiosk"))
    if "rating" not in request.app[SETTINGS].kiosk.functions:
        raise ApiError(403, "forbidden", t.err_kiosk_no_rating)
    number = body.get("ticket")
    if not isinstance(number, str) or not _NUMBER_RE.match(number.strip()):
        raise bad_request(request, "err_kiosk_rate_number")
    # guessing numbers to rate others' tickets costs the kiosk's allowance, as tickets do
    wait = request.app[KIOSK_LIMITER].take(f"rate:{kiosk_id}")
    if wait > 0:
        raise ApiError(429, "rate_limited", t.err_kiosk_rate_limited.format(s=seconds_text(wait)),
                       retry_after_s=seconds_text(wait))
    return await rate_ticket(request, number.strip().upper(), score)


def _take_allowance(request: web.Request, kiosk_id: str) -> None:
    """One ticket of this kiosk's allowance and of the whole site's, or ApiError 429 (nothing taken)."""
    t, settings = texts_for(request), request.app[SETTINGS].kiosk
    limiter = request.app[KIOSK_LIMITER]
    wait = limiter.take(f"kiosk:{kiosk_id}")
    if wait > 0:
        log.warning("Ki-ốt %s lấy số quá nhanh: từ chối", kiosk_id)
        raise ApiError(429, "rate_limited",
                       t.err_kiosk_rate.format(n=settings.tickets_per_minute, s=seconds_text(wait)),
                       retry_after_s=seconds_text(wait))
    wait = request.app[SITE_LIMITER].take("site")
    if wait > 0:
        limiter.give_back(f"kiosk:{kiosk_id}")
        log.warning("Các ki-ốt lấy số quá nhanh (quá %d số một phút): từ chối", settings.site_tickets_per_minute)
        raise ApiError(429, "rate_limited", t.err_site_rate.format(n=settings.site_tickets_per_minute,
                                                                   s=seconds_text(wait)),
                       retry_after_s=seconds_text(wait))


def printed_ticket(site: SiteConfig, names: dict[str, str], ticket: dict[str, Any], ahead: Any, est: Any,
             url: str, issued: str) -> PrintedTicket:
    return PrintedTicket(office=site.name, field_name=names.get(str(ticket.get("field")), ""),
                         number=str(ticket.get("number", "")), priority=bool(ticket.get("priority")),
                         issued=issued, ahead=ahead if isinstance(ahead, int) else None,
                         est_wait_s=est if isinstance(est, int) else None, url=url)
