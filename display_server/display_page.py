"""The waiting-room TV: /display (the page), /display/ws (its live feed) and /audio/ (the clips).

The feed sends the whole view on connect and again whenever it changes (bursts coalesce into one
message), and each call's announcement as it happens. A TV with `?id=` has its presence
published as qms/{site}/status/display/{id}.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from display_server.announcer import CHIME_URL, Announcement
from display_server.base import FOLLOWER, SETTINGS, SITE, SPEECH, add_link, error_page, render_page, texts_for
from display_server.chime import chime_wav
from display_server.display_view import DisplayFilter, FilterError, build_view
from display_server.live import KEEPALIVE_S, dumps, live_socket, push_views, run_until_closed
from display_server.speech import MIME

log = logging.getLogger(__name__)

CHIME = web.AppKey("chime", bytes)


class ViewCache:
    """The feed message of each area (filter), built and serialised once per change of the
    present however many TVs show it: fifty TVs of one hall cost one view, not fifty."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._views: dict[tuple[frozenset[str] | None, frozenset[str] | None], tuple[int, str]] = {}
        self._fields: tuple[int, dict[str, list[str]]] = (-1, {})

    def message(self, flt: DisplayFilter) -> str:
        follower = self._app[FOLLOWER]
        key = flt.area
        hit = self._views.get(key)
        if hit is not None and hit[0] == follower.version:
            return hit[1]
        view = build_view(follower.state, self._app[SITE], self._app[SETTINGS].display, flt,
                          link_up=follower.connected)
        text = dumps({"type": "view", "view": view})
        if len(self._views) > 256:  # areas come from URLs: do not let them grow without end
            self._views.clear()
        self._views[key] = (follower.version, text)
        return text

    def counter_fields(self) -> dict[str, list[str]]:
        """Each counter's fields (a TV of one area announces only its calls), once per change."""
        follower = self._app[FOLLOWER]
        if self._fields[0] != follower.version:
            self._fields = (follower.version, {str(c["id"]): c.get("fields", [])
                                               for c in follower.state.counter_list(self._app[SITE])})
        return self._fields[1]


VIEWS = web.AppKey("tv_views", ViewCache)
# The texts the page script needs.
SCRIPT_TEXTS = ("counter", "to_counter", "waiting", "people", "no_calls", "counter_open", "counter_paused",
                "counter_closed", "offline", "sound_on", "recall", "weekdays")


def setup(app: web.Application) -> None:
    app[CHIME] = chime_wav()
    app[VIEWS] = ViewCache(app)
    app.router.add_get("/display", display)
    app.router.add_get("/display/ws", feed)
    app.router.add_get(CHIME_URL, chime)
    app.router.add_get("/audio/{name}", audio)
    add_link(app, "/display", "display_title")


def _filter(request: web.Request) -> DisplayFilter:
    return DisplayFilter.parse(dict(request.query), request.app[SITE], texts_for(request))


async def display(request: web.Request) -> web.Response:
    t = texts_for(request)
    try:
        flt = _filter(request)
    except FilterError as exc:
        return error_page(request, 400, str(exc))
    site, settings = request.app[SITE], request.app[SETTINGS]
    query = flt.query()
    page = {
        "ws": "/display/ws" + (f"?{query}" if query else ""),
        "blink_s": settings.display.blink_s,
        "timezone": site.timezone,
        "keepalive_s": KEEPALIVE_S,
        "texts": t.pick(*SCRIPT_TEXTS),
    }
    return render_page(request, "display.html", page, t=t)


async def feed(request: web.Request) -> web.StreamResponse:
    try:
        flt = _filter(request)
    except FilterError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    follower = request.app[FOLLOWER]
    with follower.hub.subscribe() as sub:  # before the snapshot: nothing falls between the two
        async with live_socket(request) as ws:
            if flt.display_id:
                follower.display_connected(flt.display_id)
            try:
                await run_until_closed(ws, asyncio.create_task(_write(request.app, ws, sub, flt)))
            finally:
                if flt.display_id:
                    follower.display_disconnected(flt.display_id)
    return ws


async def _write(app: web.Application, ws: web.WebSocketResponse, sub: Any, flt: DisplayFilter) -> None:
    views = app[VIEWS]

    def view(batch: list[Any]) -> str:
        return views.message(flt)  # shared by every TV of the area, serialised once

    def announcements(batch: list[Any]) -> list[dict[str, Any]]:
        calls = [a for a in batch if isinstance(a, Announcement)]
        if not calls:  # most batches: a queue or a counter changed
            return []
        counters = views.counter_fields()
        return [a.message() for a in calls if flt.shows_call(a.for_call(), counters.get(a.counter, []))]

    await push_views(ws, sub, view, extra=announcements)


async def chime(request: web.Request) -> web.Response:
    return web.Response(body=request.app[CHIME], content_type="audio/wav",
                        headers={"Cache-Control": "public, max-age=86400"})


async def audio(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = request.app[SPEECH].cache.find(name)
    if path is None:
        return error_page(request, 404, texts_for(request).not_found)
    # a clip's name is the hash of what it says: it never changes
    return web.FileResponse(path, headers={"Content-Type": MIME[path.suffix],
                                           "Cache-Control": "public, max-age=31536000, immutable"})
