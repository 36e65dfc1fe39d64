"""The reports' pages over a real broker, core and web server: who may open what (the leader reads
and changes nothing, an officer sees only their own figures), the XLSX export's contract as a
script meets it (401 without a session, 403 for an officer, the file opened with openpyxl), and
/reports in headless Chromium with its charts and a drill-down link followed. The pure parts
(the picker's query, the charts) first."""

from __future__ import annotations

import io
import re
import types
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from urllib.parse import unquote

import aiohttp
import pytest
from openpyxl import load_workbook
from playwright.async_api import Browser

from display_server.base import RECORDS, SITE, make_templates
from display_server.pages.reports import period_query, report_context
from display_server.reports.charts import officers_svg, trend_svg
from display_server.reports.figures import Dimension, Report, Row
from display_server.reports.periods import period_of
from display_server.reports.xlsx import HEADER_ROW
from display_server.texts import Texts
from qms_common.devbroker import Broker
from qms_common.protocol import Topics
from tests.support.core import running_core
from tests.support.mqtt import Probe
from tests.support.web import ACCOUNTS, csrf_of, login, running_web
from tests.test_reports_xlsx import HOA, MINH, figures
from tests.test_web_api import Rig, rig_site, serve, wait_until
from tests.test_web_browser import WAIT_MS, Tab

HOA_NAME, DUC_NAME = "Nguyễn Thị Hoa", "Phạm Văn Đức"


# ---------------------------------------------------------------- pure parts


@pytest.mark.parametrize(("query", "expected"), [
    ({"period": "custom", "from": "2026-03-01", "to": "2026-03-05", "date": "2026-11-01"},
     {"from": "2026-03-01", "to": "2026-03-05"}),
    ({"period": "quarter", "date": "2026-02-03", "from": "2026-03-01", "to": "2026-03-05"},
     {"period": "quarter", "date": "2026-02-03"}),
    ({"from": "2026-01-01", "to": "2026-03-31", "by": "field"}, {"from": "2026-01-01", "to": "2026-03-31"}),
    ({"by": "field"}, {}),
])
def test_the_picker_sends_only_the_chosen_kind_of_period(query: dict[str, str], expected: dict[str, str]) -> None:
    assert period_query(query) == expected


def test_the_trend_chart_draws_a_bar_per_day_and_a_gap_where_no_unit_was_rated() -> None:
    days = [(date(2026, 3, d), f) for d, f in ((2, HOA), (3, figures()), (4, MINH), (5, HOA))]
    svg = trend_svg(days, title="Tháng <3>")
    assert svg.startswith("<svg") and "<title>Tháng &lt;3&gt;</title>" in svg
    assert svg.count('<rect class="served"') == 4
    # day 3 has no satisfaction: the line is broken there (one point alone, then a line of two)
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 3
    assert "02/03/2026: 110 lượt phục vụ, hài lòng 98,0%" in svg
    assert "Chưa có dữ liệu" in trend_svg([], title="x")


def test_the_officers_chart_puts_them_side_by_side() -> None:
    svg = officers_svg([Row("a", "Nguyễn <Thị> Hoa", HOA, None), Row("b", "Trần Văn Minh", MINH, None),
                        Row("c", "Mới", figures(served=1), None)], title="Cán bộ")
    assert "Nguyễn &lt;Thị&gt; Hoa" in svg and "<Thị>" not in svg
    assert svg.count('<rect class="served"') == 3 and svg.count('<rect class="satisfaction"') == 2
    widths = [float(w) for w in re.findall(r'<rect class="served" x="[\d.]+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert widths[0] > widths[1] > widths[2] > 0  # 110, 70, 1 served: the busiest the longest
    assert "98,0%" in svg and "90,0%" in svg and "—" in svg  # no unit: no satisfaction


# ---------------------------------------------------------------- over a real office


@pytest.fixture
async def rig(broker: Broker, tmp_path: Path) -> AsyncIterator[Rig]:
    """A real core and web server on the session's broker (as tests/test_web_api.py's rig)."""
    path = rig_site(tmp_path, broker)
    topics = Topics(path.stem)
    async with Probe(broker.url) as probe, running_core(path) as core, running_web(path) as web, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await probe.subscribe(topics.state_all, topics.event_all)
        await wait_until(web, lambda: web.follower.state.core_online and web.follower.state.site is not None)
        yield Rig(core, web, probe, topics, http, path)


async def a_day_at_the_office(rig: Rig) -> str:
    """Hoa serves two land tickets at counter 1 (rated the highest and the lowest level), Đức one
    civil-status ticket at counter 3 (rated "Hài lòng"), one land ticket still waits. Returns today."""
    await rig.act("1", "open", officer=HOA_NAME)
    await rig.act("3", "open", officer=DUC_NAME)
    for _ in range(3):
        await rig.take("dat-dai")
    await rig.take("ho-tich")
    await serve(rig, "1", score=3)
    await serve(rig, "1", score=1)
    await serve(rig, "3", score=2)
    records = rig.web.app[RECORDS]
    with records.watch():  # the day as the web server reads it, every rating in
        await wait_until(rig.web, lambda: sum(1 for r in records.records
                                              if r.get("status") == "done" and r.get("rating")) == 3)
    day = (rig.web.follower.state.site or {}).get("day")
    assert isinstance(day, str)
    return day


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def test_a_leader_reads_the_dashboard_and_changes_nothing(rig: Rig) -> None:
    async with rig.browser("lanhdao") as http:
        status, page = await get(http, rig.url + "/supervisor")
        assert status == 200 and 'id="reports-link"' in page and "pairing-link" not in page
        feed = await rig.feed(http, "/supervisor/ws")
        await feed.view(lambda v: v["online"])
        await feed.ws.close()
        status, _ = await get(http, rig.url + "/supervisor/export/tickets.csv")
        assert status == 200
        # no action: pairing, a console, a console's command
        for path in ("/supervisor/pairing", "/counter", "/counter/1"):
            status, page = await get(http, rig.url + path)
            assert status == 403, path
        async with http.post(rig.url + "/supervisor/pairing", data={"counter": "1"}, allow_redirects=False) as resp:
            assert resp.status == 403
        csrf = await csrf_of(http, rig.url + "/supervisor")  # the session's own token: refused all the same
        async with http.post(rig.url + "/api/counter/1", json={"action": "open"},
                             headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"
        # nor a dossier: recording one, its events, its receipt, the counter's procedure search
        dossier = {"code": "HS-LD-1", "procedure": {"name": "Đăng ký khai sinh"}, "received_at": "2026-03-02",
                   "due_at": "2026-03-05"}
        for path, body in (("/api/counter/1/dossier", dossier),
                           ("/api/counter/1/dossier-event", {"code": "HS-LD-1", "status": "done"}),
                           ("/api/counter/1/receipt", {"code": "HS-LD-1"})):
            async with http.post(rig.url + path, json=body, headers={"X-CSRF-Token": csrf}) as resp:
                assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden", path
        async with http.get(rig.url + "/api/counter/1/procedures?q=khai") as resp:
            assert resp.status == 403
        assert rig.counter_state("1").get("status", "closed") == "closed"
        async with http.get(rig.url + "/api/me") as resp:
            me = await resp.json()
        assert (me["role"], me["counters"]) == ("leader", [])
    # the leader's login lands on the reports
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as fresh:
        resp = await login(fresh, rig.url, "lanhdao")
        assert resp.status == 303 and resp.headers["Location"] == "/reports"


async def test_the_xlsx_export_as_a_script_meets_it(rig: Rig) -> None:
    today = await a_day_at_the_office(rig)
    url = f"{rig.url}/reports/export.xlsx?from={today}&to={today}&by=officer"
    # a script without a session: 401 JSON, never a login page
    async with aiohttp.ClientSession() as script, script.get(url, allow_redirects=False) as resp:
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"
    async with rig.browser("canbo1") as officer, officer.get(url, allow_redirects=False) as resp:
        assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"
    for user in ("lanhdao", "giamsat"):
        async with rig.browser(user) as http, http.get(url) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.content_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            disposition = resp.headers["Content-Disposition"]
            name = unquote(disposition.split("filename*=UTF-8''", 1)[1])
            assert name == f"Báo cáo theo cán bộ {date.fromisoformat(today):%d-%m-%Y} đến " \
                           f"{date.fromisoformat(today):%d-%m-%Y}.xlsx"
            data = await resp.read()
    wb = load_workbook(io.BytesIO(data))
    assert wb.sheetnames[0] == "Theo cán bộ" and len(wb.sheetnames) == 6
    ws = wb.worksheets[0]
    header = [c.value for c in ws[HEADER_ROW]]
    rows = {r[0]: dict(zip(header, r, strict=False)) for r in ws.iter_rows(min_row=HEADER_ROW + 1, values_only=True)
            if r[0]}
    hoa, duc, total = rows[HOA_NAME], rows[DUC_NAME], rows["Tổng cộng"]
    assert (hoa["Đã phục vụ"], hoa["Rất hài lòng"], hoa["Hài lòng"], hoa["Không hài lòng"]) == (2, 1, 0, 1)
    assert hoa["Tỷ lệ hài lòng (%)"] == 50.0  # two served tickets without a dossier, one rated the lowest level
    assert (duc["Đã phục vụ"], duc["Hài lòng"], duc["Tỷ lệ hài lòng (%)"]) == (1, 1, 100.0)
    assert total["Đã phục vụ"] == 3 and total["Số phiếu đã cấp"] == 4
    wait = hoa["Chờ trung bình (phút)"]  # a number of minutes, never text: here, well under one
    assert isinstance(wait, (int, float)) and 0 <= wait < 1
    by_field = {r[0]: r for r in wb["Theo lĩnh vực"].iter_rows(min_row=HEADER_ROW + 1, values_only=True) if r[0]}
    assert "Đất đai" in by_field and "Hộ tịch" in by_field
    # bad parameters: 400 with the reason, in Vietnamese
    async with rig.browser("lanhdao") as http:
        for query, words in ((f"from=2026-02-30&to={today}", "Ngày bắt đầu không hợp lệ"),
                             (f"from={today}", "cần cả ngày bắt đầu (from) và ngày kết thúc (to)"),
                             (f"from={today}&to=2020-01-01", "Ngày kết thúc phải không sớm hơn ngày bắt đầu"),
                             (f"from=1900-01-01&to={today}", "Kỳ báo cáo quá dài"),
                             (f"from={today}&to={today}&by=nhanvien", "Chiều báo cáo không hợp lệ: 'nhanvien'"),
                             ("period=tuan", "Loại kỳ báo cáo không hợp lệ")):
            async with http.get(f"{rig.url}/reports/export.xlsx?{query}") as r:
                body = await r.json()
                assert r.status == 400 and body["error"]["code"] == "bad_request", query
                assert words in body["error"]["message"], (query, body)


async def test_officers_see_their_own_figures_and_nobody_elses(rig: Rig) -> None:
    today = await a_day_at_the_office(rig)
    async with rig.browser("canbo1") as http:
        status, page = await get(http, rig.url + "/reports")
        assert status == 403 and "giám sát hoặc lãnh đạo" in page
        async with http.get(rig.url + "/api/reports/officer") as resp:
            body = await resp.json()
        assert resp.status == 200 and body["officer"] == HOA_NAME
        assert [p["kind"] for p in body["periods"]] == ["month", "quarter", "year"]
        for p in body["periods"]:
            assert p["from"] <= today <= p["to"]
            f = p["figures"]
            assert (f["served"], f["ratings"], f["satisfaction_pct"]) == (2, [1, 0, 1], 50.0), p
        for other in (DUC_NAME, "giamsat", ""):
            async with http.get(rig.url + "/api/reports/officer", params={"officer": other}) as resp:
                assert resp.status == 403, other
        async with http.get(rig.url + "/api/reports/officer", params={"officer": HOA_NAME}) as resp:
            assert resp.status == 200
        status, page = await get(http, rig.url + "/counter/1")
        assert status == 200 and "Kết quả của tôi" in page
    async with rig.browser("lanhdao") as http, http.get(rig.url + "/api/reports/officer",
                                                        params={"officer": DUC_NAME}) as resp:
        body = await resp.json()
        assert body["officer"] == DUC_NAME and body["periods"][0]["figures"]["served"] == 1
    async with aiohttp.ClientSession() as nobody, nobody.get(rig.url + "/api/reports/officer") as resp:
        assert resp.status == 401


async def test_reports_page_in_chromium_charts_and_drill_down(rig: Rig, chromium: Browser) -> None:
    today = await a_day_at_the_office(rig)
    context = await chromium.new_context(viewport={"width": 1366, "height": 900})
    target = f"/reports?period=day&date={today}&by=officer"
    tab = await Tab.open(context, rig.url + target)
    await tab.page.fill("#username", "lanhdao")
    await tab.page.fill("#password", ACCOUNTS["lanhdao"][0])
    await tab.page.click("#login")
    await tab.page.wait_for_url(rig.url + target, timeout=WAIT_MS)
    assert await tab.page.locator("#trend-chart svg rect.served").count() >= 1
    assert await tab.page.locator("#officers-chart svg text", has_text=HOA_NAME).count() == 1
    assert await tab.page.locator("#officers-chart svg rect.served").count() == 2
    # the picker: a custom range shows its two days, not the day in a period
    await tab.page.select_option("#period", "custom")
    assert await tab.page.is_visible("#from") and not await tab.page.is_visible("#date")
    await tab.page.select_option("#period", "day")
    # Hoa's "Đã phục vụ": the two tickets behind it
    served = tab.page.locator("#report-table tr", has_text=HOA_NAME).locator("td").nth(1).locator("a")
    assert (await served.text_content() or "").strip() == "2"
    await served.click()
    await tab.page.wait_for_url(re.compile(r".*/reports/drill\?.*figure=served.*"), timeout=WAIT_MS)
    numbers = sorted([(await c.text_content() or "").strip()
                      for c in await tab.page.locator("#drill tbody tr td:nth-child(2)").all()])
    assert numbers == ["1001", "1002"]
    assert tab.errors == []

    # the officer's console: their own figures in "Kết quả của tôi"
    officer = await chromium.new_context(viewport={"width": 1366, "height": 900})
    console = await Tab.open(officer, rig.url + "/counter/1")
    await console.page.fill("#username", "canbo1")
    await console.page.fill("#password", ACCOUNTS["canbo1"][0])
    await console.page.click("#login")
    await console.page.wait_for_url(rig.url + "/counter/1", timeout=WAIT_MS)
    await console.until("document.getElementById('mine').dataset.loaded === '1'")
    cell = '#mine td[data-kind="month"][data-figure="served"]'
    assert await console.text(cell) == "2"
    assert await console.text('#mine td[data-kind="year"][data-figure="satisfaction_pct"]') == "50"
    assert console.errors == []
    await context.close()
    await officer.close()


@pytest.mark.parametrize(("most", "top"), [(0, 4), (1, 4), (3, 4), (5, 8), (110, 200), (2000, 2000), (2001, 4000)])
def test_the_trend_axis_has_four_whole_steps(most: int, top: int) -> None:
    svg = trend_svg([(date(2026, 3, 2), figures(served=most))], title="x")
    labels = re.findall(r'<text class="axis" x="[\d.]+" y="[\d.]+" text-anchor="end">([\d.]+)</text>', svg)
    assert [int(x.replace(".", "")) for x in labels] == [top * i // 4 for i in range(5)]


async def test_drill_down_of_the_total_and_of_a_level_and_the_printed_page(rig: Rig) -> None:
    today = await a_day_at_the_office(rig)
    base = f"{rig.url}/reports/drill?period=day&date={today}&by=officer"

    def numbers(page: str) -> list[str]:
        body = page.split('id="drill"', 1)[1]
        return sorted(re.findall(r"<tr><td>[^<]*</td><td>([^<]+)</td>", body))

    async with rig.browser("lanhdao") as http:
        status, page = await get(http, base + "&key=*&figure=served")  # the total row: every served ticket
        assert status == 200 and numbers(page) == ["1001", "1002", "2001"], page
        status, page = await get(http, base + "&key=*&figure=ratings.1")  # the lowest level: Hoa's second
        assert status == 200 and numbers(page) == ["1002"]
        status, page = await get(http, base + f"&key={HOA_NAME}&figure=issued")
        assert status == 200 and numbers(page) == ["1001", "1002"]
        status, page = await get(http, base + "&key=*&figure=khong-co")
        assert status == 400 and "Chỉ số không hợp lệ" in page
        status, page = await get(http, f"{rig.url}/reports/print?period=day&date={today}&by=officer")
        assert status == 200
        for text in (rig.web.app[SITE].name.upper(), "BÁO CÁO KẾT QUẢ PHỤC VỤ THEO CÁN BỘ", HOA_NAME,
                     "Người lập biểu", "Thủ trưởng đơn vị", "reports-print"):
            assert text in page, text
        css = re.search(r'href="(/static/reports-print\.css[^"]*)"', page)
        assert css is not None
        status, sheet = await get(http, rig.url + css.group(1).replace("&amp;", "&"))
        assert status == 200 and "@page { size: A4 landscape" in sheet
    async with rig.browser("canbo1") as officer:
        status, _ = await get(officer, base + "&key=*&figure=served")
        assert status == 403


async def test_without_its_warehouse_the_reports_say_so_and_nothing_crashes(broker: Broker, tmp_path: Path) -> None:
    # the warehouse's file is a directory: it cannot be opened (the web server goes on without it)
    (tmp_path / "kho").mkdir()
    path = rig_site(tmp_path, broker, f'[reports]\ndatabase = "{tmp_path / "kho"}"\n')
    async with running_core(path), running_web(path) as web:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            assert (await login(http, web.url, "lanhdao")).status == 303
            status, page = await get(http, web.url + "/reports")
            assert status == 503 and "Chưa lấy được số liệu báo cáo" in page
            async with http.get(web.url + "/reports/export.xlsx?from=2026-01-01&to=2026-01-31") as resp:
                assert resp.status == 503 and (await resp.json())["error"]["code"] == "unavailable"
            status, _ = await get(http, web.url + "/supervisor")  # the rest of the server works on
            assert status == 200


@pytest.mark.parametrize("pending", [0, 12])
def test_the_page_says_while_history_is_still_being_added_up(pending: int) -> None:
    march = period_of("month", date(2026, 3, 1))
    report = Report(march, march.previous(), Dimension.OFFICER, [Row(HOA_NAME, HOA_NAME, HOA, MINH)],
                    Row("", "Tổng cộng", HOA, MINH), ["Tỷ lệ hài lòng tính cả lượt phục vụ không có hồ sơ."],
                    [(date(2026, 3, 2), HOA)], pending)
    context = report_context(report, ["Không hài lòng", "Hài lòng", "Rất hài lòng"], 15)
    site = types.SimpleNamespace(name="Bộ phận Một cửa UBND xã Hòa Bình")
    session = types.SimpleNamespace(csrf="x", account=types.SimpleNamespace(name="Phạm Thị Thu"))
    html = make_templates().get_template("reports.html").render(
        **context, t=Texts(), site=site, session=session, lang_href="/reports?lang=en", static=lambda p: "/static/" + p,
        trend_svg="", officers_svg="", picked="month", anchor=march.start, supervisor=False)
    assert ("đang tổng hợp dữ liệu cũ" in html) == bool(pending)
    assert ("còn 12 ngày chưa tổng hợp" in html) == bool(pending)
    assert "Quyết định 766/QĐ-TTg" in html and "Tỷ lệ hài lòng tính cả lượt phục vụ không có hồ sơ." in html
    # Hoa's served, against February's: ▲ 57,1% (110 against 70), green; her longer wait red
    row = html.split(f"<th scope=\"row\">{HOA_NAME}</th>", 1)[1].split("</tr>", 1)[0]
    assert '▲ 57,1%' in row and 'class="change good"' in row and 'class="change bad"' in row
    assert "/reports/drill?period=month&amp;date=2026-03-01&amp;by=officer&amp;key=" in row
    total = html.split("Tổng cộng</th>", 1)[1].split("</tr>", 1)[0]
    assert "key=%2A&amp;figure=served" in total  # the total row drills into every ticket
