"""The web server as an aiohttp application: create_app() builds it from the site configuration.

A page is a module with `setup(app)` that adds its routes (and a link on the index page with
base.add_link()); PAGES lists them. The parts pages share are in display_server.base.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

from aiohttp import web

from display_server import dossiers, metrics
from display_server.accounts import auth
from display_server.api import api_errors
from display_server.base import (
    ANNOUNCER,
    FOLLOWER,
    JINJA,
    LINKS,
    RECORDS,
    SETTINGS,
    SIGNER,
    SITE,
    SPEECH,
    TASKS,
    make_templates,
    render,
)
from display_server.catalogue import CATALOGUE, site_catalogue
from display_server.feed import live
from display_server.feed.follower import StateFollower
from display_server.feed.records import TodayRecords
from display_server.pages import (
    booking,
    checkin,
    console,
    kiosk,
    otp,
    procedures,
    rating,
    remote,
    reports,
    supervisor,
    track,
)
from display_server.reports import REPORTS, Reports
from display_server.settings import ReportSettings, ServerSettings, default_reports_database, load_server_settings
from display_server.speech.render import Speech
from display_server.tv import page as tv_page
from display_server.tv.announcer import Announcer
from qms_common.config import SiteConfig
from qms_common.signing import Signer, load_secret

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

PageSetup = Callable[[web.Application], None]
PAGES: tuple[PageSetup, ...] = (auth.setup, tv_page.setup, kiosk.setup, checkin.setup, track.setup,
                                 console.setup, rating.setup, supervisor.setup, otp.setup, remote.setup,
                                 booking.setup, procedures.setup, dossiers.setup, reports.setup)


def create_app(site: SiteConfig, settings: ServerSettings | None = None, *,
               pages: Iterable[PageSetup] = PAGES, speech: Speech | None = None) -> web.Application:
    settings = settings or load_server_settings(site)
    app = web.Application(client_max_size=64 * 1024, middlewares=[api_errors])
    app[SITE] = site
    app[SETTINGS] = settings
    app[FOLLOWER] = follower = StateFollower(site, settings.web.server_id, displays=settings.display.ids)
    app[SPEECH] = speech = speech or Speech(settings.speech)
    app[ANNOUNCER] = Announcer(site, follower, speech, settings.speech)
    app[RECORDS] = TodayRecords(follower)
    app[REPORTS] = Reports(site, follower, app[RECORDS],
                           settings.reports or ReportSettings(database=default_reports_database(site)))
    app[SIGNER] = Signer(load_secret(settings.web.secret_file))
    # the procedure catalogue: its pages, the kiosk and the console's procedure picker read it
    app[CATALOGUE] = site_catalogue(site, settings.web.catalogue)
    app[JINJA] = make_templates()
    app[LINKS] = []
    app[TASKS] = []
    live.setup(app)
    metrics.setup(app)  # /healthz and /metrics, whatever pages the app has
    app.on_response_prepare.append(security_headers)
    app.cleanup_ctx.append(_background)
    app.router.add_get("/", index)
    app.router.add_static("/static", STATIC_DIR, name="static", append_version=True)
    for page in pages:
        page(app)
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    """The follower, the announcer, the pre-renderer and today's records live as long as the app."""
    follower, announcer, speech = app[FOLLOWER], app[ANNOUNCER], app[SPEECH]
    # the announcer subscribes first, so it hears everything the follower receives
    tasks = [asyncio.create_task(announcer.run(), name="announcer"),
             asyncio.create_task(app[RECORDS].run(), name="records"),
             asyncio.create_task(follower.run(), name="follower"),
             asyncio.create_task(speech.run_prerender(), name="prerender")]
    for task in tasks:
        task.add_done_callback(_log_death)
    app[TASKS].extend(tasks)
    reports = app[REPORTS]
    try:
        await reports.start()  # the warehouse; history is rolled up in the background
    except Exception:
        # a report warehouse that cannot open (disk, a newer schema) must not stop the office
        log.exception("Không mở được kho báo cáo %s: báo cáo không dùng được", reports.settings.database)
    yield
    await reports.stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(follower.stop(), 5)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _log_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("Tác vụ nền %s dừng vì lỗi", task.get_name(), exc_info=task.exception())


# Every page's scripts and styles are files of /static (page data is a JSON <script> block, which
# is not run): nothing inline, nothing from elsewhere, no frames. 'self' covers the pages' own
# WebSockets (ws: and wss: of this host); data: images only for the empty favicon (href="data:,").
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "media-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # the tracking pages' addresses carry their token: never sent to another site ("no-referrer"
    # would make Chromium send "Origin: null" with our own forms, which the Origin check refuses)
    "Referrer-Policy": "same-origin",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer, errors, static files and redirects included (on_response_prepare runs for
    all of them, unlike a middleware, which never sees what the router answers itself)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


async def index(request: web.Request) -> web.Response:
    return render(request, "index.html", links=request.app[LINKS])
