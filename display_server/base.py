"""What every page of the web server shares: the app keys, templates, texts and the index links.

The keys: the site (SITE), the settings (SETTINGS), the one MQTT follower (FOLLOWER: state, hub,
requester), speech (SPEECH), the announcer (ANNOUNCER), today's ticket records (RECORDS), the
signer of tokens and cookies (SIGNER). Pages
render templates/ with render() (render_page() for a live page's script configuration), get their
texts with texts_for(), and put a link on the index page with add_link().
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from display_server.feed.follower import StateFollower
from display_server.feed.live import dumps
from display_server.feed.records import TodayRecords
from display_server.settings import ServerSettings
from display_server.speech.render import Speech
from display_server.texts import DEFAULT_LANGUAGE, LANGUAGES, Texts
from display_server.tv.announcer import Announcer
from qms_common.config import SiteConfig
from qms_common.signing import Signer

SITE = web.AppKey("site", SiteConfig)
SETTINGS = web.AppKey("settings", ServerSettings)
FOLLOWER = web.AppKey("follower", StateFollower)
SPEECH = web.AppKey("speech", Speech)
ANNOUNCER = web.AppKey("announcer", Announcer)
JINJA = web.AppKey("jinja", jinja2.Environment)
LINKS = web.AppKey("links", list[tuple[str, str]])  # (path, text key) on the index page
TASKS = web.AppKey("tasks", list[asyncio.Task[None]])
RECORDS = web.AppKey("records", TodayRecords)  # today's ticket records, for statistics and consoles
SIGNER = web.AppKey("signer", Signer)  # tracking tokens, paired tablets


def make_templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("display_server", "templates"),
        autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined)


def add_link(app: web.Application, path: str, text_key: str) -> None:
    app[LINKS].append((path, text_key))


def texts_for(request: web.Request) -> Texts:
    """The page language: ?lang=en|vi, else Vietnamese."""
    lang = request.query.get("lang", DEFAULT_LANGUAGE)
    return Texts(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """A page from templates/, in UTF-8, with the site, the texts and static() at hand."""
    t = context.setdefault("t", texts_for(request))
    context.setdefault("site", request.app[SITE])
    context.setdefault("lang_href", lang_switch_url(request, t))
    html = request.app[JINJA].get_template(template).render(
        static=lambda path: request.app.router["static"].url_for(filename=path), **context)
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status,
                        headers={"Cache-Control": "no-cache"})


def lang_switch_url(request: web.Request, t: Texts) -> str:
    """This page in the other language."""
    query = {k: v for k, v in request.query.items() if k != "lang"}
    if t.lang == DEFAULT_LANGUAGE:
        query["lang"] = "en"
    return request.path + ("?" + urlencode(query) if query else "")


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", status=status, message=message)


def script_json(obj: Any) -> str:
    """JSON for a <script type="application/json"> element ("<" escaped: it cannot end the element)."""
    return dumps(obj).replace("<", "\\u003c")


def render_page(request: web.Request, template: str, page: dict[str, Any], **context: Any) -> web.Response:
    """A live page: its template with the page's configuration for its script (`page_json`)."""
    return render(request, template, page_json=script_json(page), **context)
