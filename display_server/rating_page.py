"""The tablet facing the citizen: /rate/{counter}, its live feed /rate/{counter}/ws and
POST /api/rate/{counter} with {"score"}.

It can rate only what its counter served last (cmd/rating by counter: the core picks the
ticket, once). The levels are the site's `rating_levels`, lowest first; the page shows them best
first. A rating from the counter's keypad shows the same thank-you.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from display_server.api import ApiError, ask_core, bad_request, json_response, read_json
from display_server.base import FOLLOWER, SITE, error_page, render_page, texts_for
from display_server.live import serve_feed
from display_server.state import SiteState
from qms_common.config import SiteConfig
from qms_common.mqtt import new_request_id
from qms_common.protocol import rating_command

SCRIPT_TEXTS = ("rate_prompt", "rate_thanks", "rate_welcome", "rate_serving", "counter_closed", "offline",
                "err_network", "rate_already")


def setup(app: web.Application) -> None:
    app.router.add_get("/rate/{counter}", page)
    app.router.add_get("/rate/{counter}/ws", feed)
    app.router.add_post("/api/rate/{counter}", rate)


def levels_of(state: SiteState, site: SiteConfig) -> list[str]:
    levels = (state.site or {}).get("rating_levels")
    if isinstance(levels, list) and levels and all(isinstance(x, str) for x in levels):
        return levels
    return list(site.rating_levels)


def rating_view(state: SiteState, site: SiteConfig, counter_id: str, *, link_up: bool) -> dict[str, Any]:
    counters = {str(c["id"]): c for c in state.counter_list(site)}
    c = state.counters.get(counter_id) or {}
    serving = c.get("ticket") if c.get("status") in ("serving", "paused") else None
    last = state.last_served.get(counter_id)
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


async def page(request: web.Request) -> web.Response:
    t = texts_for(request)
    cid = _counter(request)
    if cid is None:
        return error_page(request, 404, t.err_unknown_counter.format(counter=request.match_info["counter"]))
    page_cfg = {"ws": f"/rate/{cid}/ws", "api": f"/api/rate/{cid}" + (f"?lang={t.lang}" if t.lang != "vi" else ""),
                "counter": cid, "texts": t.pick(*SCRIPT_TEXTS)}
    return render_page(request, "rate.html", page_cfg, counter=request.app[SITE].counter(cid))


async def feed(request: web.Request) -> web.StreamResponse:
    cid = _counter(request)
    if cid is None:
        raise web.HTTPNotFound()
    follower, site = request.app[FOLLOWER], request.app[SITE]
    return await serve_feed(request, follower.hub,
                            lambda batch: rating_view(follower.state, site, cid, link_up=follower.connected))


async def rate(request: web.Request) -> web.Response:
    t = texts_for(request)
    cid = _counter(request)
    if cid is None:
        raise ApiError(404, "unknown_counter", t.err_unknown_counter.format(counter=request.match_info["counter"]))
    body = await read_json(request)
    if set(body) - {"score"}:
        raise bad_request(request, "err_unknown_keys", keys=", ".join(sorted(set(body) - {"score"})))
    follower, site = request.app[FOLLOWER], request.app[SITE]
    levels = levels_of(follower.state, site)
    score = body.get("score")
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= len(levels):
        raise bad_request(request, "err_score", n=len(levels))
    reply = await ask_core(request, follower.topics.cmd_rating, rating_command(new_request_id(), score, counter=cid))
    ticket = reply.get("ticket") or {}
    return json_response({"ok": True, "ticket": {"id": ticket.get("id"), "number": ticket.get("number"),
                                                 "rating": ticket.get("rating")}})
