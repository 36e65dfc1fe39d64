"""The waiting-room TV: /display (the page), /display/ws (its live feed) and /audio/ (the clips).

The feed sends the whole view on connect and again whenever it changes (bursts coalesce into one
message), and each call's announcement as it happens. A TV with `?id=` has its presence
published as qms/{site}/status/display/{id}.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp import web

from display_server.base import FOLLOWER, SETTINGS, SITE, SPEECH, add_link, error_page, render_page, texts_for
from display_server.feed.live import KEEPALIVE_S, dumps, live_socket, push_views, run_until_closed
from display_server.feed.state import Change
from display_server.speech.chime import chime_wav
from display_server.speech.render import MIME
from display_server.tv.announcer import CHIME_URL, Announcement
from display_server.tv.view import DisplayFilter, FilterError, build_view, shown_on_tv

log = logging.getLogger(__name__)

CHIME = web.AppKey("chime", bytes)


class AreaViews:
    """The views of one area (filter): numbered by the area itself, a new number only when what
    its TVs show changes, and the last few kept to make patches from."""

    KEEP = 8  # a TV more views behind than this gets the whole view again

    def __init__(self) -> None:
        self.checked = -1  # the present's version the last view was built for
        self.number = 0
        self.views: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self.messages: dict[tuple[int | None, int], str] = {}

    def update(self, version: int, build: Callable[[], dict[str, Any]]) -> int:
        if version != self.checked:
            self.checked = version
            view = build()
            if not self.views or view != self.views[self.number]:
                self.number += 1
                self.views[self.number] = view
                while len(self.views) > self.KEEP:
                    old, _ = self.views.popitem(last=False)
                    self.messages = {k: v for k, v in self.messages.items() if old not in k}
        return self.number


def view_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What changed from one TV view to the next: the keys that differ, and of the counters only
    those that changed (all of them when the list itself changed, e.g. a counter hidden)."""
    patch = {k: v for k, v in new.items() if k != "counters" and old.get(k) != v}
    old_counters, new_counters = old["counters"], new["counters"]
    if [c["id"] for c in old_counters] != [c["id"] for c in new_counters]:
        patch["counters"] = new_counters
    else:
        changed = [c for c, was in zip(new_counters, old_counters, strict=True) if c != was]
        if changed:
            patch["counters_changed"] = changed
    return patch


def apply_patch(view: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """A patch message applied to the view it was made from (what display.js does)."""
    new = {**view, **{k: v for k, v in message.items() if k not in ("type", "from", "v", "counters_changed")}}
    if "counters_changed" in message:
        by_id = {c["id"]: c for c in message["counters_changed"]}
        new["counters"] = [by_id.get(c["id"], c) for c in view["counters"]]
    return new


class ViewCache:
    """The TV feed's messages of each area, built and serialised once per change of the present
    however many TVs show it: the whole view when a TV connects (or falls far behind), then only
    what changed, a few hundred bytes instead of the whole office."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._areas: dict[tuple[frozenset[str] | None, frozenset[str] | None], AreaViews] = {}
        self._fields: tuple[int, dict[str, list[str]]] = (-1, {})

    def message(self, flt: DisplayFilter, have: int | None) -> tuple[int, str | None]:
        """(the number of the area's current view, the message that brings a TV from view `have`
        to it, or None when it has it already)."""
        follower = self._app[FOLLOWER]
        area = self._areas.get(flt.area)
        if area is None:
            if len(self._areas) > 256:  # areas come from URLs: do not let them grow without end
                self._areas.clear()
            area = self._areas[flt.area] = AreaViews()
        number = area.update(follower.tv_version, lambda: build_view(
            follower.state, self._app[SITE], self._app[SETTINGS].display, flt, link_up=follower.connected))
        if have == number:
            return number, None
        key = (have if have in area.views else None, number)
        if key not in area.messages:
            view = area.views[number]
            if key[0] is None:
                area.messages[key] = dumps({"type": "view", "v": number, "view": view})
            else:
                area.messages[key] = dumps({"type": "patch", "from": key[0], "v": number,
                                            **view_patch(area.views[key[0]], view)})
        return number, area.messages[key]

    def counter_fields(self) -> dict[str, list[str]]:
        """Each counter's fields (a TV of one area announces only its calls), once per change."""
        follower = self._app[FOLLOWER]
        if self._fields[0] != follower.tv_version:
            self._fields = (follower.tv_version, {str(c["id"]): c.get("fields", [])
                                               for c in follower.state.counter_list(self._app[SITE])})
        return self._fields[1]


VIEWS = web.AppKey("tv_views", ViewCache)
# The newest call is said within this many seconds of reaching the TV, however fast calls come
# (static/announce_plan.js).
MAX_DELAY_S = 5.0
# The texts the page script needs.
SCRIPT_TEXTS = ("counter", "to_counter", "waiting", "people", "no_calls", "counter_open", "counter_paused",
                "counter_closed", "offline", "sound_on", "recall", "weekdays", "appointment_badge")


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
        "recent_calls": settings.display.recent_calls,
        "max_delay_s": MAX_DELAY_S,
        "chime": CHIME_URL if settings.speech.chime else None,
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
    # before the snapshot: nothing falls between the two; only what can change a TV wakes it
    with follower.hub.subscribe(wants=shown_on_tv) as sub:
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
    have: int | None = None  # the version this TV shows

    def view(batch: list[Any]) -> str | None:
        nonlocal have
        version, message = views.message(flt, have)  # shared by every TV of the area
        have = version
        return message

    def announcements(batch: list[Any]) -> list[str]:
        calls = [a for a in batch if isinstance(a, Announcement)]
        if not calls:  # most batches: a queue or a counter changed
            return []
        counters = views.counter_fields()
        return [a.serialized for a in calls if flt.shows_call(a.for_call(), counters.get(a.counter, []))]

    await push_views(ws, sub, view, extra=announcements, hold=_tv_hold)


# How long a TV lets changes that are not calls (a waiting count, a queue) gather before it
# redraws: at 20 tickets a second nobody reads the count that fast, and 50 TVs send a tenth.
TV_HOLD_S = 0.3


def _tv_hold(batch: list[Any]) -> float:
    for item in batch:
        if not (isinstance(item, Change) and item.kind == "queue"):
            return 0.0  # a call, a counter, the site, the link: shown at once
    return TV_HOLD_S


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
