"""What the dashboard's modules share: the app keys and the page renderer."""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web

from province.settings import ProvinceSettings
from province.store import ProvinceStore
from province.web import figures
from province.web.queries import Queries

SETTINGS = web.AppKey("province_settings", ProvinceSettings)
STORE = web.AppKey("province_store", ProvinceStore)
QUERIES = web.AppKey("province_queries", Queries)
JINJA = web.AppKey("province_jinja", jinja2.Environment)


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("province.web", "templates"),
                             autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined)
    env.filters.update(minutes=figures.minutes, percent=figures.percent, number=figures.number)
    return env


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """A page of templates/ in UTF-8, with the province and static() at hand."""
    context.setdefault("province", request.app[SETTINGS])
    context.setdefault("session", None)
    html = request.app[JINJA].get_template(template).render(
        static=lambda path: request.app.router["static"].url_for(filename=path), **context)
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status,
                        headers={"Cache-Control": "no-cache"})
