"""The reports' pages, for supervisors and leaders: /reports (a period, a dimension, the table of
every figure beside the previous period's, the charts), /reports/drill (the tickets behind one
figure), /reports/print (the table on A4), /reports/export.xlsx (the province's contract, see
docs/web.md) and /api/reports/officer (one officer's own figures, for their console).

The figures come from Reports (display_server/reports/service.py); this module only shows them.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from display_server.accounts.auth import api_session, page_session
from display_server.accounts.store import REPORT_READERS, Role
from display_server.api import ApiError, json_response
from display_server.base import FOLLOWER, SITE, add_link, render
from display_server.pages.rating import levels_of
from display_server.reports import REPORTS
from display_server.reports.charts import officers_svg, trend_svg
from display_server.reports.figures import ALL_KEY, Dimension, Figures, Report, Row
from display_server.reports.figures import label as fig_label
from display_server.reports.layout import DIMENSION_NAMES, Column, cell_text, change, columns, number_text
from display_server.reports.periods import Period, PeriodKind, parse_period, period_of
from display_server.reports.service import DOSSIER_FIGURES, UNIT_DOSSIERS, is_dossier_view
from display_server.reports.stats import service_s, wait_s
from display_server.reports.xlsx import title_of, workbook_bytes
from display_server.texts import Texts
from display_server.timefmt import local, stamp_text
from qms_common.config import business_day
from qms_common.protocol import ProtocolError

log = logging.getLogger(__name__)

PERIOD_KINDS = [(str(k), name) for k, name in (
    (PeriodKind.DAY, "Ngày"), (PeriodKind.WEEK, "Tuần"), (PeriodKind.MONTH, "Tháng"),
    (PeriodKind.QUARTER, "Quý"), (PeriodKind.YEAR, "Năm"), (PeriodKind.CUSTOM, "Tùy chọn (từ ngày … đến ngày)"))]
# the console's own figures: these periods, each holding today
OWN_PERIODS = (PeriodKind.MONTH, PeriodKind.QUARTER, PeriodKind.YEAR)
DRILL_LIMIT = 500
STATUS_VI = {"waiting": "Đang chờ", "serving": "Đang phục vụ", "done": "Đã phục vụ", "no_show": "Vắng mặt",
             "transferred": "Đã chuyển", "expired": "Hết hạn"}
RULE_766 = ("Tỷ lệ hài lòng theo Quyết định 766/QĐ-TTg: (số hồ sơ giải quyết − số hồ sơ bị đánh giá "
            "“không hài lòng”) ÷ số hồ sơ giải quyết × 100; hồ sơ không được đánh giá tính là hài lòng. "
            "Hệ thống chưa có nguồn phản ánh, kiến nghị nên chỉ tính theo đánh giá.")


def setup(app: web.Application) -> None:
    app.router.add_get("/reports", reports_page)
    app.router.add_get("/reports/drill", drill_page)
    app.router.add_get("/reports/print", print_page)
    app.router.add_get("/reports/export.xlsx", export_xlsx)
    app.router.add_get("/api/reports/officer", officer_figures)
    add_link(app, "/reports", "rp_title")


# ------------------------------------------------------------ the query


def today_of(request: web.Request) -> date:
    """Today's business day: the core's, else the site's clock."""
    day = (request.app[FOLLOWER].state.site or {}).get("day")
    if isinstance(day, str):
        try:
            return date.fromisoformat(day)
        except ValueError:
            pass
    site = request.app[SITE]
    return date.fromisoformat(business_day(datetime.now(site.tz), site.tz, site.day_starts))


def period_query(query: Mapping[str, str]) -> dict[str, str]:
    """The keys parse_period reads: the picker sends period=custom with from/to, and leaves the
    other inputs filled in; only those of the chosen kind count."""
    if query.get("period") == PeriodKind.CUSTOM or ("period" not in query and ("from" in query or "to" in query)):
        return {"from": query.get("from", ""), "to": query.get("to", "")}
    return {k: query[k] for k in ("period", "date") if query.get(k)}


def parse_query(request: web.Request) -> tuple[Period, Dimension]:
    """The period and dimension a page asks for; ValueError with a Vietnamese message otherwise."""
    period = parse_period(period_query(request.query), today_of(request))
    by = request.query.get("by") or Dimension.OFFICER
    try:
        dimension = Dimension(by)
    except ValueError:
        raise ValueError(f"Chiều báo cáo không hợp lệ: {by!r} (officer, counter, field, procedure, hour hoặc "
                         "weekday).") from None
    return period, dimension


def _levels(request: web.Request) -> list[str]:
    return levels_of(request.app[FOLLOWER].state, request.app[SITE])


def target_min(request: web.Request) -> float:
    return float(request.app[REPORTS].settings.target_wait_min)


def _href(path: str, **query: str) -> str:
    return path + "?" + urlencode(query)


# ------------------------------------------------------------ the table as the pages show it


# the total row's key in a drill-down link (the engine's total row has no key of its own)
TOTAL_KEY = ALL_KEY


def _cell(column: Column, row: Row, base: dict[str, str], key: str) -> dict[str, Any]:
    value = column.value(row.figures)
    before = column.value(row.previous) if row.previous is not None else None
    moved = change(value, before, lower_is_better=column.lower_is_better) if row.previous is not None else None
    return {
        "text": cell_text(column, value),
        "href": _href("/reports/drill", **base, key=key, figure=column.figure),
        "change": moved.text if moved else "",
        "tone": "" if moved is None or moved.good is None else ("good" if moved.good else "bad"),
        "previous": cell_text(column, before) if row.previous is not None else "",
    }


def table(report: Report, cols: list[Column], base: dict[str, str]) -> list[dict[str, Any]]:
    """The rows of the page's table, the total last: label and, per column, the text, the drill-down
    link and the change since the previous period."""
    out = []
    for row in [*report.rows, report.total]:
        total = row is report.total
        out.append({"label": row.label, "total": total,
                    "cells": [_cell(c, row, base, TOTAL_KEY if total else row.key) for c in cols]})
    return out


def notes_of(report: Report) -> list[str]:
    """The engine's notes (the basis of the satisfaction, the history still being added up), and
    the 766 formula."""
    return [*report.notes, RULE_766]


# What the engine may fail with (its database missing or broken, the core not answering): the page
# says the figures are unavailable, never a stack trace. Its refusals of bad input are ValueError.
ENGINE_ERRORS = (TimeoutError, OSError, RuntimeError, sqlite3.Error, ProtocolError)


def _unavailable(exc: Exception) -> str:
    log.warning("Không lấy được báo cáo: %r", exc)
    return "Chưa lấy được số liệu báo cáo. Vui lòng thử lại sau ít phút."


async def _report(request: web.Request, period: Period, dimension: Dimension, *,
                  officer: str | None = None, compare: bool = True, trend: bool = True) -> Report:
    try:
        return await request.app[REPORTS].report(period, dimension, officer=officer, compare=compare, trend=trend)
    except ENGINE_ERRORS as exc:
        raise ApiError(503, "unavailable", _unavailable(exc)) from None


def report_context(report: Report, levels: list[str], target: float) -> dict[str, Any]:
    """What reports.html and reports_print.html show of a report (pure)."""
    period, dimension = report.period, report.dimension
    cols = columns(levels, target)
    base = {**period.query(), "by": str(dimension)}
    return {
        "report": report, "period": period, "dimension": str(dimension),
        "dimension_name": DIMENSION_NAMES[str(dimension)], "columns": cols,
        "rows": table(report, cols, base), "notes": notes_of(report),
        "previous_label": report.previous_period.label,
        "pending": report.pending_days > 0,
        "query": urlencode(base), "kinds": PERIOD_KINDS, "dimensions": list(DIMENSION_NAMES.items()),
    }


# ------------------------------------------------------------ routes


async def reports_page(request: web.Request) -> web.Response:
    session = page_session(request, role=REPORT_READERS)
    try:
        period, dimension = parse_query(request)
    except ValueError as exc:
        return _bad(request, session, str(exc))
    try:
        if dimension is Dimension.OFFICER:
            report = officers = await _report(request, period, dimension)
        else:
            report, officers = await asyncio.gather(_report(request, period, dimension),
                                                    _report(request, period, Dimension.OFFICER, trend=False))
    except ApiError as exc:
        return _bad(request, session, exc.message, status=exc.status)
    context = report_context(report, _levels(request), target_min(request))
    trend = trend_svg(report.trend, title=f"Lượt phục vụ và tỷ lệ hài lòng theo ngày, {period.label}")
    side = officers_svg([r for r in officers.rows if r.key],
                        title=f"Cán bộ: lượt phục vụ và tỷ lệ hài lòng, {period.label}")
    picked = request.query.get("period") if request.query.get("period") in dict(PERIOD_KINDS) else str(period.kind)
    return render(request, "reports.html", session=session, **context, trend_svg=trend, officers_svg=side,
                  picked=picked, anchor=(period.start if period.kind != PeriodKind.CUSTOM else today_of(request)),
                  supervisor=session.account.role is Role.SUPERVISOR)


async def print_page(request: web.Request) -> web.Response:
    session = page_session(request, role=REPORT_READERS)
    try:
        period, dimension = parse_query(request)
        report = await _report(request, period, dimension, trend=False)  # no chart on paper
    except ValueError as exc:
        return _bad(request, session, str(exc))
    except ApiError as exc:
        return _bad(request, session, exc.message, status=exc.status)
    context = report_context(report, _levels(request), target_min(request))
    return render(request, "reports_print.html", session=session, **context, made_on=today_of(request),
                  title=title_of(str(dimension)))


async def drill_page(request: web.Request) -> web.Response:
    session = page_session(request, role=REPORT_READERS)
    figure, key = request.query.get("figure", ""), request.query.get("key", "")
    engine = request.app[REPORTS]
    try:
        period, dimension = parse_query(request)
        cols = {c.figure: c for c in columns(_levels(request), target_min(request))}
        if figure not in cols:
            raise ValueError(f"Chỉ số không hợp lệ: {figure!r}.")
        try:
            found = await engine.drill(period, dimension, key, figure, limit=DRILL_LIMIT + 1)
            names = await engine.names(dimension)
        except ENGINE_ERRORS as exc:
            return _bad(request, session, _unavailable(exc), status=503)
    except ValueError as exc:
        return _bad(request, session, str(exc))
    site = request.app[SITE]
    levels = _levels(request)
    fields = {str(f["id"]): str(f.get("name", f["id"]))
              for f in request.app[FOLLOWER].state.field_list(site)}
    counters = {str(c["id"]): str(c.get("name", c["id"])) for c in request.app[FOLLOWER].state.counter_list(site)}
    shown = found[:DRILL_LIMIT]
    tickets = sorted((r for r in shown if not is_dossier_view(r)), key=lambda r: str(r.get("issued_at") or ""))
    dossiers = sorted((r for r in shown if is_dossier_view(r)), key=lambda r: str(r.get("received_at") or ""))
    # which tables the figure has: the dossier figures only dossiers, the 766 figures both
    kinds = ("dossiers",) if figure in DOSSIER_FIGURES else (
        ("tickets", "dossiers") if figure in UNIT_DOSSIERS else ("tickets",))
    back = _href("/reports", **period.query(), by=str(dimension))
    label = "Tổng cộng" if key == TOTAL_KEY else _row_label(dimension, key, names)
    return render(request, "reports_drill.html", session=session, period=period, kinds=kinds,
                  tickets=[_ticket_row(r, site.tz, fields, counters, levels) for r in tickets],
                  dossiers=[_dossier_row(r, site.tz, fields, counters, levels) for r in dossiers],
                  more=len(found) > DRILL_LIMIT, limit=DRILL_LIMIT, figure=cols[figure].header,
                  dimension_name=DIMENSION_NAMES[str(dimension)], key=label, back=back)


def _row_label(dimension: Dimension, key: str, names: dict[str, str]) -> str:
    """The row's name as the report's table shows it; a key no row has (an hour "x") as it is."""
    try:
        return fig_label(dimension, key, names)
    except (ValueError, IndexError):
        return key or "(không có)"


def _ticket_row(r: Mapping[str, Any], tz: Any, fields: dict[str, str], counters: dict[str, str],
                levels: list[str]) -> dict[str, str]:
    def minutes(seconds: Any) -> str:
        return number_text(seconds / 60, 1) if isinstance(seconds, (int, float)) else "—"

    score = r.get("rating")
    moment = local(r.get("issued_at"), tz)
    return {
        "day": f"{moment:%d/%m/%Y}" if moment else str(r.get("day", "")),
        "number": str(r.get("number", "")),
        "field": fields.get(str(r.get("field")), str(r.get("field") or "")),
        "counter": counters.get(str(r.get("counter")), str(r.get("counter") or "")),
        "officer": str(r.get("officer") or ""),
        "status": STATUS_VI.get(str(r.get("status")), str(r.get("status") or "")),
        "issued": stamp_text(r.get("issued_at"), tz),
        "wait": minutes(wait_s(dict(r))),
        "service": minutes(service_s(dict(r))),
        "rating": levels[score - 1] if isinstance(score, int) and 1 <= score <= len(levels) else "",
        "dossier": str(r.get("dossier") or ""),
    }


def _dossier_row(v: Mapping[str, Any], tz: Any, fields: dict[str, str], counters: dict[str, str],
                 levels: list[str]) -> dict[str, str]:
    procedure = v.get("procedure") if isinstance(v.get("procedure"), dict) else {}
    rating = v.get("rating") if isinstance(v.get("rating"), dict) else {}
    score = rating.get("score")
    status = str(v.get("status") or "")
    return {
        "code": str(v.get("code") or ""),
        "procedure": str(procedure.get("name") or procedure.get("code") or ""),
        "field": fields.get(str(v.get("field")), str(v.get("field") or "")),
        "counter": counters.get(str(v.get("counter")), str(v.get("counter") or "")),
        "officer": str(v.get("officer") or ""),
        "received": stamp_text(v.get("received_at"), tz),
        "due": _day_text(v.get("due_at")),
        "done": stamp_text(v.get("done_at"), tz),
        "status": Texts().get("hs_status_" + status, status),
        "rating": levels[score - 1] if isinstance(score, int) and 1 <= score <= len(levels) else "",
    }


def _day_text(value: Any) -> str:
    try:
        return f"{date.fromisoformat(str(value)[:10]):%d/%m/%Y}"
    except ValueError:
        return ""


def _bad(request: web.Request, session: Any, message: str, *, status: int = 400) -> web.Response:
    return render(request, "error.html", status=status, message=message, session=session, back="/reports")


async def export_xlsx(request: web.Request) -> web.StreamResponse:
    """The contract of docs/web.md: a supervisor's or a leader's session (401 without one, 403 for
    another role), ?from&to (or period&date) and by; one sheet per dimension, `by` first."""
    api_session(request, role=REPORT_READERS, csrf=False)  # a download: it changes nothing
    try:
        period, dimension = parse_query(request)
    except ValueError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    order = [dimension, *(d for d in Dimension if d is not dimension)]
    # the file shows no comparison and no chart: neither the previous period nor the days are read
    reports = await asyncio.gather(*(_report(request, period, d, compare=False, trend=False) for d in order))
    site = request.app[SITE]
    data = await asyncio.to_thread(workbook_bytes, reports, office=site.name, levels=_levels(request),
                                   target_wait_min=target_min(request), made_on=today_of(request))
    ascii_name = f"bao-cao-{dimension}-{period.start.isoformat()}-{period.end.isoformat()}.xlsx"
    name = (f"Báo cáo theo {DIMENSION_NAMES[str(dimension)].lower()} "
            f"{period.start:%d-%m-%Y} đến {period.end:%d-%m-%Y}.xlsx")
    resp = web.StreamResponse(headers={
        "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "Cache-Control": "no-store",
        # RFC 6266/5987: the Vietnamese name for browsers, an ASCII one for the rest
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}",
    })
    resp.content_length = len(data)
    await resp.prepare(request)
    for i in range(0, len(data), 64 * 1024):
        await resp.write(data[i:i + 64 * 1024])
    await resp.write_eof()
    return resp


def _own(figures: Figures, previous: Figures | None, levels: list[str]) -> dict[str, Any]:
    def pct(v: float | None) -> float | None:
        return None if v is None else round(v, 1)

    def mins(v: float | None) -> float | None:
        return None if v is None else round(v / 60, 1)

    return {
        "served": figures.served, "no_show": figures.no_show,
        "wait_mean_min": mins(figures.wait_mean_s), "service_mean_min": mins(figures.service_mean_s),
        "within_target_pct": pct(None if figures.within_target is None else figures.within_target * 100),
        # one count per level, lowest first (as [rating] levels lists them)
        "ratings": [figures.ratings[i] if i < len(figures.ratings) else 0 for i in range(len(levels))],
        "units": figures.units, "dissatisfied": figures.dissatisfied,
        "satisfaction_pct": pct(figures.satisfaction_pct),
        "previous_satisfaction_pct": pct(previous.satisfaction_pct) if previous else None,
        "previous_served": previous.served if previous else None,
        "dossiers_received": figures.dossiers_received, "dossiers_on_time": figures.dossiers_on_time,
        "dossiers_overdue": figures.dossiers_overdue,
    }


async def officer_figures(request: web.Request) -> web.Response:
    """One officer's figures for this month, quarter and year. An officer gets only their own (naming
    another officer is 403); a supervisor or a leader names whom they want (default: themselves)."""
    session = api_session(request, csrf=False)
    account = session.account
    asked = request.query.get("officer")
    if asked is not None and asked != account.name and not account.reads_reports:
        raise ApiError(403, "forbidden", "Cán bộ chỉ xem được kết quả của chính mình.")
    officer = asked if asked is not None else account.name
    if not officer or len(officer) > 64:
        raise ApiError(400, "bad_request", "Tên cán bộ không hợp lệ.")
    today = today_of(request)
    periods = [period_of(kind, today) for kind in OWN_PERIODS]
    reports = await asyncio.gather(*(_report(request, p, Dimension.OFFICER, officer=officer, trend=False)
                                     for p in periods))
    levels = _levels(request)
    return json_response({"ok": True, "officer": officer, "periods": [
        {"kind": str(p.kind), "label": p.label, "from": p.start.isoformat(), "to": p.end.isoformat(),
         "pending": r.pending_days > 0, "figures": _own(r.total.figures, r.total.previous, levels)}
        for p, r in zip(periods, reports, strict=True)]})
