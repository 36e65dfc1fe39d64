"""The dashboard's pages and JSON: every office, one office live, the 766 report and its export."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from province.web import figures, xlsx
from province.web.auth import ApiDenied, api_access, page_session, session_of
from province.web.base import QUERIES, SETTINGS, render
from province.web.queries import SiteName

# the live view asks for its office's state this often (the page's script reads it from here)
POLL_S = 3


def setup(app: web.Application) -> None:
    app.router.add_get("/", dashboard)
    app.router.add_get("/diem/{site}", site_page)
    app.router.add_get("/diem/{site}/trang-thai.json", site_json)
    app.router.add_get("/bao-cao", report_page)
    app.router.add_get("/bao-cao/export.xlsx", report_xlsx)
    app.router.add_get("/api/v1/sites", api_sites)


def _sites(request: web.Request, district: str | None = None) -> list[SiteName]:
    return [SiteName(s.id, s.name, s.district) for s in request.app[SETTINGS].sites
            if district is None or s.district == district]


def districts(request: web.Request) -> list[str]:
    return sorted({s.district for s in request.app[SETTINGS].sites})


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(obj, status=status, headers={"Cache-Control": "no-store", **(headers or {})},
                             dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


async def summaries(request: web.Request, district: str | None = None) -> list[figures.SiteSummary]:
    settings = request.app[SETTINGS]
    now = datetime.now(settings.tz)
    return await request.app[QUERIES].dashboard(_sites(request, district), figures.today_in(settings.tz, now),
                                                settings.tz, now)


async def dashboard(request: web.Request) -> web.Response:
    session = page_session(request)
    district = request.query.get("district") or None
    known = districts(request)
    if district is not None and district not in known:
        return render(request, "error.html", status=400, session=session, message=unknown_district(district))
    started = time.perf_counter()
    rows = await summaries(request, district)
    queried = time.perf_counter()
    resp = render(request, "dashboard.html", session=session, rows=rows, totals=figures.totals(rows),
                  districts=known, district=district, tz=request.app[SETTINGS].tz,
                  offline_text=figures.offline_text, basis_vi=figures.BASIS_VI)
    done = time.perf_counter()
    # the server's share of a load, for the benchmark and a browser's developer tools
    resp.headers["Server-Timing"] = (f"db;dur={(queried - started) * 1000:.1f}, "
                                     f"render;dur={(done - queried) * 1000:.1f}, "
                                     f"total;dur={(done - started) * 1000:.1f}")
    return resp


def _known_site(request: web.Request) -> SiteName:
    site = request.app[SETTINGS].site(request.match_info["site"])
    if site is None:
        raise web.HTTPNotFound(text=render(request, "error.html", status=404, session=None,
                                           message="Không có điểm này trong province.toml.").text,
                               content_type="text/html")
    return SiteName(site.id, site.name, site.district)


async def site_view(request: web.Request, site: SiteName) -> dict[str, Any]:
    """One office now: its line of the dashboard, and its queues and counters as its state says."""
    settings = request.app[SETTINGS]
    now = datetime.now(settings.tz)
    queries = request.app[QUERIES]
    summary = (await queries.dashboard([site], figures.today_in(settings.tz, now), settings.tz, now))[0]
    state = await queries.site_state(site.id)
    counters = []
    for topic, body in state:
        if topic.startswith("state/counter/") and isinstance(body, dict):
            ticket = body.get("ticket") if isinstance(body.get("ticket"), dict) else None
            counters.append({"counter": str(body.get("counter", topic[14:])), "name": str(body.get("name") or ""),
                             "status": str(body.get("status") or ""),
                             "status_vi": COUNTER_STATUS_VI.get(str(body.get("status")), str(body.get("status"))),
                             "officer": body.get("officer") if isinstance(body.get("officer"), str) else None,
                             "ticket": str(ticket.get("number")) if ticket else None})
    pct = summary.today.satisfaction_pct
    return {
        "site": site.id, "name": site.name, "district": site.district, "online": summary.online,
        "presence": "Trực tuyến" if summary.online else figures.offline_text(summary.status_at, settings.tz),
        "queues": [{"field": q.field, "name": q.name, "waiting": q.waiting,
                    "longest_wait": figures.minutes(q.longest_wait_s)} for q in summary.queues],
        "counters": counters, "counters_open": summary.counters_open,
        "issued_today": summary.issued_today, "served_today": summary.served_today,
        "satisfaction": figures.percent(pct), "basis": figures.BASIS_VI[summary.today.basis],
        "updated": now.strftime("%H:%M:%S"),
    }


COUNTER_STATUS_VI = {"closed": "Đóng", "open": "Mở, chưa phục vụ", "serving": "Đang phục vụ",
                     "paused": "Tạm nghỉ"}


async def site_page(request: web.Request) -> web.Response:
    session = page_session(request)
    site = _known_site(request)
    view = await site_view(request, site)
    return render(request, "site.html", session=session, view=view, poll_ms=POLL_S * 1000,
                  json_url=f"/diem/{site.id}/trang-thai.json")


async def site_json(request: web.Request) -> web.Response:
    """What the live view polls (a session's page: no API key here)."""
    if session_of(request) is None:
        return json_response({"ok": False, "error": {"code": "unauthorized", "message": SESSION_ENDED}}, 401)
    return json_response(await site_view(request, _known_site(request)))


SESSION_ENDED = "Phiên đăng nhập đã hết. Vui lòng đăng nhập lại."


async def api_sites(request: web.Request) -> web.Response:
    try:
        api_access(request)
    except ApiDenied as exc:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="qms-province"'
        return json_response({"ok": False, "error": {"code": "unauthorized" if exc.status == 401 else "rate_limited",
                                                     "message": exc.message}}, exc.status, headers)
    district = request.query.get("district") or None
    if district is not None and district not in districts(request):
        return json_response({"ok": False, "error": {"code": "bad_request", "message": unknown_district(district)}},
                             400)
    return json_response([figures.api_entry(r) for r in await summaries(request, district)])


def unknown_district(district: str) -> str:
    return f"Không có huyện/thị xã/thành phố {district[:80]!r} trong danh sách các điểm."


async def _report(request: web.Request) -> figures.Report:
    settings = request.app[SETTINGS]
    try:
        first, last = figures.parse_period(request.query.get("from"), request.query.get("to"),
                                           figures.today_in(settings.tz))
    except figures.PeriodError as exc:
        raise web.HTTPBadRequest(text=render(request, "error.html", status=400, message=str(exc)).text,
                                 content_type="text/html") from None
    return await request.app[QUERIES].report(_sites(request), first, last, settings.tz)


async def report_page(request: web.Request) -> web.Response:
    session = page_session(request)
    report = await _report(request)
    return render(request, "report.html", session=session, report=report, basis_vi=figures.BASIS_VI,
                  notes=xlsx.notes(report),
                  query=f"from={report.first.isoformat()}&to={report.last.isoformat()}")


async def report_xlsx(request: web.Request) -> web.Response:
    page_session(request)
    report = await _report(request)
    settings = request.app[SETTINGS]
    body = xlsx.workbook_bytes(report, province=settings.name, made_on=figures.today_in(settings.tz))
    name = f"bao-cao-766-{settings.id}-{report.first:%Y%m%d}-{report.last:%Y%m%d}.xlsx"
    return web.Response(body=body, headers={
        "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})
