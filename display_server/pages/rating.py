"""The tablet facing the citizen: /rate/{counter}, its live feed /rate/{counter}/ws and
POST /api/rate/{counter} with {"ticket", "score"}; and its pairing with the counter.

A rating belongs to one finished ticket: the tablet asks about the ticket its counter finished
last, until the counter calls the next one or `[rating] window_s` has passed, and its rating names
that ticket (cmd/rating by ticket: the core checks it is done, not rated yet and within the window).
The levels are the site's `rating_levels`, lowest first; the page shows them best first. A rating
from the counter's keypad shows the same thank-you.

Only a paired tablet may rate: a supervisor makes a one-time pairing code for a counter
(/supervisor/pairing, valid PAIRING_CODE_S); the tablet enters it once on its "chưa ghép nối" page
and keeps a signed cookie bound to that counter (signing.py), for years.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from display_server.accounts.auth import form_fields, page_session, session_form
from display_server.accounts.ratelimit import RateLimiter, seconds_text
from display_server.accounts.store import Role
from display_server.api import ApiError, ask_core, bad_request, check_origin, json_response, read_json
from display_server.base import FOLLOWER, SETTINGS, SIGNER, SITE, error_page, render, render_page, texts_for
from display_server.feed.live import serve_feed
from display_server.feed.state import SiteState
from qms_common.config import SiteConfig
from qms_common.mqtt import new_request_id
from qms_common.protocol import TicketStatus, rating_command

log = logging.getLogger(__name__)

DEVICE_COOKIE = "qms_device"
DEVICE = "device"  # the signer's purpose for device cookies
DEVICE_COOKIE_DAYS = 5 * 365
PAIRING_CODE_S = 600.0
PAIRING_CODE_DIGITS = 8
# wrong codes: per address, and for the whole site (many addresses guessing together)
WRONG_CODES_PER_ADDRESS = 10
WRONG_CODES_PER_SITE = 100
WRONG_CODES_WINDOW_S = 600.0


@dataclass
class Pairings:
    """The pairing codes not used yet: code -> (counter, expiry). In memory: a restart of the web
    server cancels them (make another)."""

    codes: dict[str, tuple[str, float]] = field(default_factory=dict)
    wrong: RateLimiter = field(default_factory=lambda: RateLimiter(WRONG_CODES_PER_ADDRESS, WRONG_CODES_WINDOW_S))
    wrong_site: RateLimiter = field(default_factory=lambda: RateLimiter(WRONG_CODES_PER_SITE, WRONG_CODES_WINDOW_S))

    def make(self, counter: str) -> str:
        now = time.monotonic()
        self.codes = {c: v for c, v in self.codes.items() if v[1] > now}
        while (code := "".join(secrets.choice("0123456789") for _ in range(PAIRING_CODE_DIGITS))) in self.codes:
            pass
        self.codes[code] = (counter, now + PAIRING_CODE_S)
        return code

    def use(self, code: str, counter: str) -> bool:
        """Is this a live code for this counter? Used up if so."""
        held = self.codes.get(code)
        if held is None or held[0] != counter or held[1] <= time.monotonic():
            return False
        del self.codes[code]
        return True


PAIRINGS = web.AppKey("pairings", Pairings)
SCRIPT_TEXTS = ("rate_prompt", "rate_thanks", "rate_welcome", "rate_serving", "counter_closed", "offline",
                "err_network", "rate_already")


def setup(app: web.Application) -> None:
    app[PAIRINGS] = Pairings()
    app.router.add_get("/rate/{counter}", page)
    app.router.add_post("/rate/{counter}/pair", pair)
    app.router.add_get("/rate/{counter}/ws", feed)
    app.router.add_post("/api/rate/{counter}", rate)
    app.router.add_get("/supervisor/pairing", pairing_page)
    app.router.add_post("/supervisor/pairing", pairing_make)


def levels_of(state: SiteState, site: SiteConfig) -> list[str]:
    levels = (state.site or {}).get("rating_levels")
    if isinstance(levels, list) and levels and all(isinstance(x, str) for x in levels):
        return levels
    return list(site.rating_levels)


def _finished_ago_s(record: dict[str, Any], site: SiteConfig) -> float | None:
    if record.get("status") != TicketStatus.DONE:
        return None
    try:
        finished = datetime.fromisoformat(str(record.get("finished_at")))
    except ValueError:
        return None
    return (datetime.now(site.tz) - finished).total_seconds()


def rating_open(record: dict[str, Any], site: SiteConfig) -> bool:
    """May this ticket be rated now (the core decides; this is what the pages offer)?"""
    ago = _finished_ago_s(record, site)
    return record.get("rating") is None and ago is not None and ago <= site.rating_window_s


def rating_view(state: SiteState, site: SiteConfig, counter_id: str, *, link_up: bool) -> dict[str, Any]:
    counters = {str(c["id"]): c for c in state.counter_list(site)}
    c = state.counters.get(counter_id) or {}
    serving = c.get("ticket") if c.get("status") in ("serving", "paused") else None
    last = state.last_served.get(counter_id)
    ago = _finished_ago_s(last, site) if last else None
    if ago is None or ago > site.rating_window_s:
        last = None  # the window has passed: nothing to ask about (a quiet feed looks again)
    return {
        "online": link_up and state.core_online,
        "counter": {"id": counter_id, "name": counters.get(counter_id, {}).get("name", counter_id),
                    "status": c.get("status", "closed")},
        "serving": serving.get("number") if isinstance(serving, dict) else None,
        "last": {"id": last.get("id"), "number": last.get("number"), "rating": last.get("rating")} if last else None,
        "levels": levels_of(state, site),
    }


def _counter(request: web.Request) -> str | None:
    cid = request.match_info["counter"]
    return cid if request.app[SITE].counter(cid) is not None else None


def paired(request: web.Request, counter: str) -> bool:
    """Does this browser carry the device cookie of this counter's tablet?"""
    value = request.app[SIGNER].unsign(DEVICE, request.cookies.get(DEVICE_COOKIE))
    return value is not None and value.split(":", 1)[0] == counter


def _unpaired(request: web.Request, counter: str, *, status: int = 403, message: str | None = None) -> web.Response:
    t = texts_for(request)
    return render(request, "rate_pair.html", status=status, counter=request.app[SITE].counter(counter),
                  message=message, action=f"/rate/{counter}/pair" + (f"?lang={t.lang}" if t.lang != "vi" else ""))


async def page(request: web.Request) -> web.Response:
    t = texts_for(request)
    cid = _counter(request)
    if cid is None:
        return error_page(request, 404, t.err_unknown_counter.format(counter=request.match_info["counter"]))
    if not paired(request, cid):
        return _unpaired(request, cid)
    page_cfg = {"ws": f"/rate/{cid}/ws", "api": f"/api/rate/{cid}" + (f"?lang={t.lang}" if t.lang != "vi" else ""),
                "counter": cid, "texts": t.pick(*SCRIPT_TEXTS)}
    return render_page(request, "rate.html", page_cfg, counter=request.app[SITE].counter(cid))


async def pair(request: web.Request) -> web.Response:
    """The tablet enters its pairing code: a device cookie for this counter, or the form again."""
    t = texts_for(request)
    cid = _counter(request)
    if cid is None:
        return error_page(request, 404, t.err_unknown_counter.format(counter=request.match_info["counter"]))
    pairings, address = request.app[PAIRINGS], request.remote or "?"
    try:
        check_origin(request)
        code = (await form_fields(request)).get("code", "").strip()
    except ApiError as exc:
        return _unpaired(request, cid, status=exc.status, message=exc.message)
    wait = max(pairings.wrong.retry_after(address), pairings.wrong_site.retry_after("site"))
    if wait > 0:
        return _unpaired(request, cid, status=429, message=t.err_pair_limited.format(s=seconds_text(wait)))
    if not pairings.use(code, cid):
        pairings.wrong.hit(address)
        pairings.wrong_site.hit("site")
        log.warning("Mã ghép nối sai cho máy tính bảng quầy %s từ %s", cid, address)
        return _unpaired(request, cid, status=400, message=t.err_pair_wrong)
    log.info("Đã ghép nối máy tính bảng với quầy %s (%s)", cid, address)
    resp = web.HTTPSeeOther(f"/rate/{cid}" + (f"?lang={t.lang}" if t.lang != "vi" else ""))
    device = request.app[SIGNER].sign(DEVICE, f"{cid}:{secrets.token_urlsafe(9)}")
    resp.set_cookie(DEVICE_COOKIE, device, httponly=True, samesite="Strict", path="/",
                    secure=request.app[SETTINGS].security.cookie_secure, max_age=DEVICE_COOKIE_DAYS * 86400)
    raise resp


async def feed(request: web.Request) -> web.StreamResponse:
    cid = _counter(request)
    if cid is None:
        raise web.HTTPNotFound()
    if not paired(request, cid):
        raise web.HTTPForbidden(text=texts_for(request).rate_unpaired)
    follower, site = request.app[FOLLOWER], request.app[SITE]
    return await serve_feed(request, follower.hub,
                            lambda batch: rating_view(follower.state, site, cid, link_up=follower.connected))


async def read_score(request: web.Request, *,
                     keys: frozenset[str] = frozenset({"score"})) -> tuple[int, dict[str, Any]]:
    """The score of a rating's body (1 … the site's levels) and the body; ApiError otherwise."""
    body = await read_json(request)
    if set(body) - keys:
        raise bad_request(request, "err_unknown_keys", keys=", ".join(sorted(set(body) - keys)))
    follower = request.app[FOLLOWER]
    levels = levels_of(follower.state, request.app[SITE])
    score = body.get("score")
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= len(levels):
        raise bad_request(request, "err_score", n=len(levels))
    return score, body


async def rate_ticket(request: web.Request, ticket_id: str, score: int) -> web.Response:
    """cmd/rating naming the ticket: the core checks it is done, not rated yet, within the window."""
    follower = request.app[FOLLOWER]
    reply = await ask_core(request, follower.topics.cmd_rating, rating_command(new_request_id(), score,
                                                                                ticket=ticket_id))
    ticket = reply.get("ticket") or {}
    return json_response({"ok": True, "ticket": {"id": ticket.get("id"), "number": ticket.get("number"),
                                                 "rating": ticket.get("rating")}})


async def rate(request: web.Request) -> web.Response:
    t = texts_for(request)
    cid = _counter(request)
    if cid is None:
        raise ApiError(404, "unknown_counter", t.err_unknown_counter.format(counter=request.match_info["counter"]))
    if not paired(request, cid):
        raise ApiError(403, "forbidden", t.rate_unpaired)
    score, body = await read_score(request, keys=frozenset({"score", "ticket"}))
    ticket = body.get("ticket")
    if not isinstance(ticket, str) or not ticket:
        raise bad_request(request, "err_rate_ticket")
    last = request.app[FOLLOWER].state.last_served.get(cid)
    if last is None or last.get("id") != ticket:  # the counter has moved on, or another counter's
        raise ApiError(409, "rating_closed", t.err_rating_closed)
    return await rate_ticket(request, ticket, score)


# ------------------------------------------------------------ pairing, for the supervisor


async def pairing_page(request: web.Request, *, code: str | None = None, counter: str | None = None,
                       status: int = 200) -> web.Response:
    session = page_session(request, role=Role.SUPERVISOR)
    return render(request, "pairing.html", status=status, csrf=session.csrf, code=code,
                  paired_counter=request.app[SITE].counter(counter) if counter else None,
                  minutes=int(PAIRING_CODE_S // 60), counters=request.app[SITE].counters)


async def pairing_make(request: web.Request) -> web.Response:
    t = texts_for(request)
    session = page_session(request, role=Role.SUPERVISOR)
    try:
        form = await session_form(request, session)
    except ApiError as exc:
        return error_page(request, exc.status, exc.message)
    cid = form.get("counter", "")
    if request.app[SITE].counter(cid) is None:
        return error_page(request, 404, t.err_unknown_counter.format(counter=cid))
    code = request.app[PAIRINGS].make(cid)
    log.info("%s tạo mã ghép nối máy tính bảng cho quầy %s", session.account.username, cid)
    return await pairing_page(request, code=code, counter=cid)
