"""The province dashboard's web application: `make_app(settings, store)`, served beside the
aggregator by `qms-province` (province/cli.py)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from display_server.settings import SecuritySettings
from province.settings import ProvinceSettings
from province.store import ProvinceStore
from province.web import auth, pages
from province.web.base import JINJA, QUERIES, SETTINGS, STORE, make_templates, render
from province.web.queries import Queries

log = logging.getLogger("province.web")

STATIC = Path(__file__).parent / "static"
# scripts and styles are files of /static, nothing inline, nothing from elsewhere, no frames
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                                "frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def make_app(settings: ProvinceSettings, store: ProvinceStore,
             security: SecuritySettings | None = None) -> web.Application:
    """The dashboard, its API and reports. ConfigError for an account whose hash cannot be read."""
    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app[STORE] = store
    app[QUERIES] = Queries(store.pool)
    app[JINJA] = make_templates()
    auth.setup(app, settings, security or SecuritySettings())
    pages.setup(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", STATIC, name="static")
    app.on_response_prepare.append(_security_headers)
    return app


async def healthz(request: web.Request) -> web.Response:
    """For a load balancer or a monitor: up, and the database answers."""
    try:
        await request.app[STORE].pool.fetchval("SELECT 1", timeout=5)
    except Exception as exc:
        return pages.json_response(
            {"ok": False, "database": False, "message": f"Không truy vấn được PostgreSQL: {exc}"}, 503)
    return pages.json_response({"ok": True, "database": True})


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    """Vietnamese pages for what the router answers itself, and for a failure: no stack trace out."""
    try:
        return await handler(request)
    except web.HTTPNotFound as exc:
        if exc.content_type == "text/html":
            raise
        return render(request, "error.html", status=404, message="Không có trang này.")
    except web.HTTPMethodNotAllowed:
        return render(request, "error.html", status=405, message="Trang này không nhận yêu cầu kiểu này.")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("Lỗi khi xử lý %s %s", request.method, request.path)
        return render(request, "error.html", status=500,
                      message="Có lỗi khi tạo trang. Vui lòng thử lại sau ít phút.")
