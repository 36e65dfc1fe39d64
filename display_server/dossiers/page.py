"""A dossier's public pages, the receipt's QR code's target: /hs/{code}?k={token} (phone-friendly,
live), …/bien-nhan (the A5 receipt, printed by the browser), …/qr.svg, …/trang-thai (JSON, for
the kiosk) and …/ws (the live feed); and the kiosk's "Tra cứu hồ sơ", /kiosk/ho-so?id=, with
POST /api/kiosk/dossier for a code typed there.

A dossier code is often sequential, so the address carries a token (the HMAC of the code with the
web server's secret, qms_common.signing): a wrong or missing token and an unknown code get the same
404, and nothing tells whether a code exists. The page's state comes from the dossier service
(cmd/dossier get) and then from event/dossier as it happens, never a query per change.

A code typed at the kiosk has no token: it gets only a summary (kiosk_summary: no timeline, no
notes, no address), and only so many a minute per kiosk, per address and for all kiosks together,
which bounds what guessing codes can learn (docs/web.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from display_server.accounts.ratelimit import RateLimiter, seconds_text
from display_server.api import ApiError, bad_request, json_response, read_command
from display_server.base import FOLLOWER, SETTINGS, SIGNER, SITE, error_page, render, render_page, texts_for
from display_server.dossiers.client import DossierError, get_dossier
from display_server.dossiers.view import kiosk_summary, public_view, typed_code, valid_code
from display_server.feed.follower import LinkChange, StateFollower
from display_server.feed.hub import Resync
from display_server.feed.live import QUIET, live_socket, push_views, run_until_closed
from display_server.feed.state import Change
from display_server.pages.kiosk import kiosk_id_of
from display_server.printing import qr
from display_server.texts import Texts
from qms_common.config import SiteConfig
from qms_common.protocol import EventKind
from qms_common.signing import DOSSIER, dossier_path

log = logging.getLogger(__name__)

# how often a page left open asks the service again (its lateness changes at midnight)
REFRESH_S = 600.0
SUFFIXES = ("/ws", "/bien-nhan", "/qr.svg", "/trang-thai")
BLOCK_TEXTS = ("hs_code", "hs_procedure", "hs_received", "hs_due", "hs_timeline")
SCRIPT_TEXTS = ("offline", "hs_not_found", "hs_unavailable", *BLOCK_TEXTS)
KIOSK_TEXTS = (*BLOCK_TEXTS, "kiosk_hs_looking", "kiosk_hs_bad_code", "kiosk_hs_summary_note", "hs_not_found",
               "hs_unavailable", "err_network", "kiosk_hs_camera", "kiosk_hs_camera_stop",
               "kiosk_hs_camera_error")
_LOOKUP_KEYS = frozenset({"kiosk", "code"})


@dataclass
class LookupLimits:
    """Typed-code look-ups allowed: per kiosk id, per client address, all kiosks together."""
    kiosk: RateLimiter
    address: RateLimiter
    site: RateLimiter


LOOKUP_LIMITS = web.AppKey("dossier_lookup_limits", LookupLimits)


def setup(app: web.Application) -> None:
    kiosk = app[SETTINGS].kiosk
    app[LOOKUP_LIMITS] = LookupLimits(RateLimiter(kiosk.dossier_lookups_per_minute, 60.0),
                                      RateLimiter(kiosk.address_dossier_lookups_per_minute, 60.0),
                                      RateLimiter(kiosk.site_dossier_lookups_per_minute, 60.0))
    app.router.add_get("/kiosk/ho-so", kiosk_page)
    app.router.add_post("/api/kiosk/dossier", kiosk_lookup)
    app.router.add_get("/hs/{rest:.+}", dispatch)


def dossier_url(request: web.Request, code: str) -> str:
    base = request.app[SETTINGS].web.public_url or f"{request.scheme}://{request.host}"
    return base + dossier_path(request.app[SIGNER], code)


def _lang(t: Texts) -> str:
    return f"&lang={t.lang}" if t.lang != "vi" else ""


def located(request: web.Request) -> tuple[str, str] | None:
    """(code, what of it) of this address, if its token is the one made for that code. A code may
    hold "/": the token decides whether "a/ws" is the code or the feed of "a"."""
    rest, token = request.match_info["rest"], request.query.get("k", "")
    signer = request.app[SIGNER]
    if not token or len(token) > 64 or len(rest) > 80:
        return None
    for suffix in SUFFIXES:
        code = rest.removesuffix(suffix)
        if code != rest and valid_code(code) and signer.check(DOSSIER, code, token):
            return code, suffix
    if valid_code(rest) and signer.check(DOSSIER, rest, token):
        return rest, ""
    return None


async def dispatch(request: web.Request) -> web.StreamResponse:
    t = texts_for(request)
    where = located(request)
    if where is None:
        if request.match_info["rest"].endswith("/trang-thai"):
            raise ApiError(404, "unknown_dossier", t.hs_not_found)
        return error_page(request, 404, t.hs_not_found)
    code, suffix = where
    if suffix == "/ws":
        return await feed(request, code)
    if suffix == "/qr.svg":
        return web.Response(text=qr.svg(dossier_url(request, code)), content_type="image/svg+xml",
                            headers={"Cache-Control": "private, max-age=86400"})
    try:
        view = await get_dossier(request.app[FOLLOWER], t, code)
    except DossierError as exc:
        if suffix == "/trang-thai":
            raise ApiError(exc.status, exc.code, t.hs_unavailable) from None
        return error_page(request, 503, t.hs_unavailable)
    if view is None:
        if suffix == "/trang-thai":
            raise ApiError(404, "unknown_dossier", t.hs_not_found)
        return error_page(request, 404, t.hs_not_found)
    site = request.app[SITE]
    model = public_view(view, t, site.tz)
    if suffix == "/trang-thai":
        return json_response({"ok": True, "dossier": model})
    token = request.query["k"]
    if suffix == "/bien-nhan":
        return render(request, "receipt.html", d=model, qr_svg=qr.svg(dossier_url(request, code)),
                      page_url=dossier_url(request, code), auto_print=request.query.get("in") == "1")
    page = {"ws": f"/hs/{quote(code)}/ws?k={token}{_lang(t)}", "texts": t.pick(*SCRIPT_TEXTS), "view": model}
    return render_page(request, "dossier.html", page, d=model,
                       receipt_href=f"/hs/{quote(code)}/bien-nhan?k={token}{_lang(t)}")


def _wants(code: str) -> Callable[[Any], bool]:
    """What a dossier's page wakes for: its own dossier's events, the link, the service's presence."""
    def wants(item: Any) -> bool:
        if isinstance(item, LinkChange):
            return True
        if isinstance(item, Change) and item.kind == "event" and item.key == EventKind.DOSSIER:
            d = item.data.get("dossier") if isinstance(item.data, dict) else None
            return isinstance(d, dict) and d.get("code") == code
        return isinstance(item, Change) and item.kind == "status" and item.key == "dossiers"
    return wants


class DossierFeed:
    """One page's dossier: fetched when the page connects (and after the link or the page fell
    behind), then the newest view event/dossier brings (by version: a late reply never wins)."""

    def __init__(self, follower: StateFollower, code: str, t: Texts, site: SiteConfig) -> None:
        self.follower, self.code, self.t, self.site = follower, code, t, site
        self.dossier: dict[str, Any] | None = None
        self.online = True
        self.fetched = 0.0

    def _take(self, view: dict[str, Any]) -> None:
        held = self.dossier.get("version", 0) if self.dossier else -1
        version = view.get("version") if isinstance(view.get("version"), int) else 0
        if version >= held:
            self.dossier = view

    async def _fetch(self) -> None:
        self.fetched = time.monotonic()
        try:
            view = await get_dossier(self.follower, self.t, self.code)
        except DossierError:
            self.online = False
            return
        self.online = True
        if view is not None:
            self._take(view)

    @staticmethod
    def _refetch(item: Any) -> bool:
        """After this, events may have been missed: the page fell behind, the link came back, or
        the service did (it answers what it wrote while nobody listened)."""
        if isinstance(item, Resync):
            return True
        if isinstance(item, LinkChange):
            return item.connected
        return isinstance(item, Change) and item.kind == "status" and item.data == "online"

    async def view(self, batch: list[Any]) -> dict[str, Any] | None:
        # an open dossier's lateness grows with the days, which no event says: a page left open
        # asks again now and then (its keepalive is the clock)
        stale = batch == [QUIET] and time.monotonic() - self.fetched > REFRESH_S
        if not batch or stale or any(self._refetch(i) for i in batch):
            await self._fetch()
        for item in batch:
            if isinstance(item, Change) and item.kind == "event" and isinstance(item.data, dict):
                self._take(item.data["dossier"])
            elif isinstance(item, Change) and item.kind == "status":
                self.online = item.data == "online"
            elif isinstance(item, LinkChange) and not item.connected:
                self.online = False
        online = self.online and self.follower.connected
        if self.dossier is None:
            return {"found": False, "online": online}
        return {"found": True, "online": online, "dossier": public_view(self.dossier, self.t, self.site.tz)}


async def feed(request: web.Request, code: str) -> web.WebSocketResponse:
    follower = request.app[FOLLOWER]
    state = DossierFeed(follower, code, texts_for(request), request.app[SITE])
    # subscribed before the first fetch: nothing falls between the snapshot and the events
    with follower.hub.subscribe(wants=_wants(code)) as sub:
        async with live_socket(request) as ws:
            writer = asyncio.create_task(push_views(ws, sub, state.view))
            await run_until_closed(ws, writer)
    return ws


async def kiosk_page(request: web.Request) -> web.Response:
    """The kiosk's "Tra cứu hồ sơ": the receipt's QR code, read by the kiosk's scanner (it types
    the address and Enter into the focused box) or its camera, shows the dossier's page model;
    the dossier code typed on the screen's keys shows its summary (kiosk_lookup)."""
    t = texts_for(request)
    try:
        kiosk = kiosk_id_of(request, request.query.get("id"))
    except ApiError as exc:
        return error_page(request, exc.status, exc.message)
    settings = request.app[SETTINGS]
    page = {"kiosk": kiosk, "texts": t.pick(*KIOSK_TEXTS), "idle_s": settings.kiosk.idle_s,
            "lang": t.lang, "home": f"/kiosk?id={quote(kiosk)}" + _lang(t),
            # the camera's QR reader where the browser has none of its own (loaded only then)
            "qr_script": str(request.app.router["static"].url_for(filename="vendor/jsQR.js"))}
    return render_page(request, "kiosk_dossier.html", page, kiosk=kiosk, home=page["home"])


def _take_lookup(request: web.Request, kiosk: str) -> None:
    """One look-up of this kiosk's, this address's and all kiosks' allowance, or ApiError 429 with
    nothing taken: a refused look-up costs no other bucket."""
    t, settings, limits = texts_for(request), request.app[SETTINGS].kiosk, request.app[LOOKUP_LIMITS]
    buckets = ((limits.kiosk, f"kiosk:{kiosk}", settings.dossier_lookups_per_minute),
               (limits.address, f"address:{request.remote or '?'}", settings.address_dossier_lookups_per_minute),
               (limits.site, "site", settings.site_dossier_lookups_per_minute))
    taken: list[tuple[RateLimiter, str]] = []
    for limiter, key, n in buckets:
        wait = limiter.take(key)
        if wait > 0:
            for done, done_key in taken:
                done.give_back(done_key)
            log.warning("Tra cứu hồ sơ bằng mã quá nhanh (%s, quá %d lần một phút): từ chối", key, n)
            raise ApiError(429, "rate_limited", t.err_kiosk_hs_rate.format(s=seconds_text(wait)),
                           retry_after_s=seconds_text(wait))
        taken.append((limiter, key))


async def kiosk_lookup(request: web.Request) -> web.Response:
    """POST /api/kiosk/dossier {"kiosk", "code"}: a typed dossier code at a kiosk of the site. An
    unknown code gets the same 404 as a wrong address; a known one, its summary only."""
    t = texts_for(request)
    body = await read_command(request, _LOOKUP_KEYS)
    kiosk = kiosk_id_of(request, body.get("kiosk"))
    if "dossiers" not in request.app[SETTINGS].kiosk.functions:
        raise ApiError(403, "forbidden", t.err_kiosk_no_dossiers)
    code = typed_code(body.get("code"))
    if code is None:
        raise bad_request(request, "kiosk_hs_bad_code")
    _take_lookup(request, kiosk)
    follower = request.app[FOLLOWER]
    try:
        view = await get_dossier(follower, t, code)
        # the screen's keys type capitals; a keyboard may not, and most codes are written in them
        if view is None and code.upper() != code:
            view = await get_dossier(follower, t, code.upper())
    except DossierError as exc:
        raise ApiError(exc.status, exc.code, t.hs_unavailable) from None
    if view is None:
        raise ApiError(404, "unknown_dossier", t.hs_not_found)
    return json_response({"ok": True, "dossier": kiosk_summary(view, t, request.app[SITE].tz)})
