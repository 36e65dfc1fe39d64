"""Tra cứu thủ tục: /thu-tuc (search and browse by field, phone-first; works without script),
/thu-tuc/{code} (a procedure's public page, the target of its QR code), …/qr.svg, and the JSON the
pages and the kiosk read: GET /api/procedures?q=&field=&limit= and GET /api/procedures/{code}.

"Lấy số cho thủ tục này": from a phone, the remote ticket page for the procedure's field when the
site takes remote tickets for it ([remote.quota]); otherwise a note to take a number at the kiosk.
On the kiosk itself the button issues a ticket for the field as its field button does (kiosk.js).
A procedure whose field is not one of the site's has no such button.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from display_server.api import ApiError, json_response
from display_server.base import SETTINGS, SITE, add_link, error_page, render, script_json, texts_for
from display_server.catalogue import CATALOGUE, Catalogue, Procedure, site_catalogue
from display_server.printing import qr
from display_server.texts import Texts
from qms_common.config import SiteConfig

MAX_QUERY = 200
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def setup(app: web.Application) -> None:
    if CATALOGUE not in app:  # tests and benchmarks may give the app a catalogue of their own
        app[CATALOGUE] = site_catalogue(app[SITE], app[SETTINGS].web.catalogue)
    app.router.add_get("/thu-tuc", index)
    app.router.add_get("/thu-tuc/{code}", page)
    app.router.add_get("/thu-tuc/{code}/qr.svg", qr_code)
    app.router.add_get("/api/procedures", api_search)
    app.router.add_get("/api/procedures/{code}", api_one)
    add_link(app, "/thu-tuc", "proc_title")


def procedure_path(code: str) -> str:
    return "/thu-tuc/" + quote(code, safe="")


def public_url(request: web.Request, path: str) -> str:
    base = request.app[SETTINGS].web.public_url or f"{request.scheme}://{request.host}"
    return base + path


def remote_takes(site: SiteConfig, field: str | None) -> bool:
    """Does the site take remote tickets for this field (a quota above 0)?"""
    return field is not None and site.remote is not None and site.remote.quota.get(field, 0) > 0


def take_link(site: SiteConfig, p: Procedure, lang: str = "vi") -> str | None:
    """Where a phone takes a number for this procedure: the remote ticket page, its field chosen."""
    if not remote_takes(site, p.field):
        return None
    query = {"field": p.field} | ({"lang": lang} if lang != "vi" else {})
    return "/lay-so?" + urlencode(query)


def procedure_json(site: SiteConfig, p: Procedure, lang: str = "vi") -> dict[str, Any]:
    return {**p.as_json(), "url": procedure_path(p.code), "remote": take_link(site, p, lang),
            "kiosk": p.field is not None and site.field(p.field) is not None}


def _query(request: web.Request) -> tuple[str, str | None, int]:
    t = texts_for(request)
    q = request.query.get("q", "")
    if len(q) > MAX_QUERY:
        raise ApiError(400, "bad_request", t.err_proc_query.format(n=MAX_QUERY))
    field = request.query.get("field") or None
    if field is not None and len(field) > MAX_QUERY:
        raise ApiError(400, "bad_request", t.err_proc_query.format(n=MAX_QUERY))
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, "bad_request", t.err_proc_limit.format(n=MAX_LIMIT))
    return q, field, int(raw)


def find(catalogue: Catalogue, q: str, field: str | None, limit: int) -> list[Procedure]:
    """The search's best, or the field's procedures when there is no query."""
    if q.strip():
        return catalogue.search(q, field, limit)
    return catalogue.by_field(field)[:limit] if field else []


def fields_json(catalogue: Catalogue) -> list[dict[str, Any]]:
    return [{"id": key, "name": name, "count": n} for key, name, n in catalogue.fields()]


async def api_search(request: web.Request) -> web.Response:
    q, field, limit = _query(request)
    catalogue, site, lang = request.app[CATALOGUE], request.app[SITE], texts_for(request).lang
    found = find(catalogue, q, field, limit)
    return json_response({"ok": True, "procedures": [procedure_json(site, p, lang) for p in found],
                          "fields": fields_json(catalogue)},
                         headers={"Cache-Control": "no-cache"})


async def api_one(request: web.Request) -> web.Response:
    t = texts_for(request)
    p = request.app[CATALOGUE].get(request.match_info["code"])
    if p is None:
        raise ApiError(404, "unknown_procedure", t.proc_not_found)
    return json_response({"ok": True, "procedure": procedure_json(request.app[SITE], p, t.lang)})


async def index(request: web.Request) -> web.Response:
    t = texts_for(request)
    try:
        q, field, limit = _query(request)
    except ApiError as exc:
        return error_page(request, exc.status, exc.message)
    catalogue = request.app[CATALOGUE]
    found = find(catalogue, q, field, MAX_LIMIT if field and not q.strip() else limit)
    fields = fields_json(catalogue)
    field_name = next((f["name"] for f in fields if field and f["id"] == field), None)
    suffix = f"&lang={t.lang}" if t.lang != "vi" else ""
    return render(request, "procedures.html", q=q, field=field, field_name=field_name, found=found, fields=fields,
                  total=len(catalogue), path=procedure_path, suffix=suffix, searched=bool(q.strip() or field),
                  page_json=_page_json(t))


def _page_json(t: Texts) -> str:
    return script_json({"api": "/api/procedures", "lang": t.lang,
                        "texts": t.pick("proc_none", "proc_results", "proc_results_one")})


def take_note(t: Texts, site: SiteConfig, p: Procedure) -> str:
    """What a phone is told when it cannot take a number for this procedure itself."""
    if p.field is None or site.field(p.field) is None:
        return t.proc_take_elsewhere
    return t.proc_take_kiosk.format(field=p.field_name)


async def page(request: web.Request) -> web.Response:
    t = texts_for(request)
    p = request.app[CATALOGUE].get(request.match_info["code"])
    if p is None:
        return error_page(request, 404, t.proc_not_found)
    site = request.app[SITE]
    return render(request, "procedure.html", p=p, qr_url=procedure_path(p.code) + "/qr.svg",
                  take=take_link(site, p, t.lang), note=take_note(t, site, p),
                  back="/thu-tuc" + (f"?lang={t.lang}" if t.lang != "vi" else ""),
                  page_url=public_url(request, procedure_path(p.code)))


async def qr_code(request: web.Request) -> web.Response:
    p = request.app[CATALOGUE].get(request.match_info["code"])
    if p is None:
        raise web.HTTPNotFound(text=texts_for(request).proc_not_found)
    return web.Response(text=qr.svg(public_url(request, procedure_path(p.code))), content_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=86400"})
