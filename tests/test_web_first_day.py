"""What a first office noticed on its first day, in real headless Chromium: the kiosk's language,
its use of the screen and its time zone, the login form and the 403 page, the console after a
skip, and the supervisor's units, dates and tables."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page

from display_server.timefmt import day_text, stamp_text
from qms_common.config import load_site_config
from qms_common.devbroker import Broker, free_port
from qms_common.protocol import Topics
from tests.support.core import running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site
from tests.support.web import ACCOUNTS, accounts_extra, login, running_web, web_extra
from tests.test_web_browser import WAIT_MS, Tab, log_in, to_fields

PORTRAIT = {"width": 1080, "height": 1920}
LANDSCAPE = {"width": 1280, "height": 800}


def site_file(tmp_path: Path, broker: Broker, *, timezone: str | None = None, more: str = "",
              counters: str | None = None) -> Path:
    extra = web_extra(tmp_path, free_port(), more=accounts_extra() + more)
    kw: dict[str, Any] = {"counters": counters} if counters is not None else {}
    path, _ = write_site(tmp_path, broker.url, extra=extra, **kw)
    if timezone:
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("[mqtt]", f'timezone = "{timezone}"\n\n[mqtt]', 1), encoding="utf-8")
    return path


async def boxes(page: Page, selector: str) -> list[dict[str, float]]:
    return await page.evaluate("""(sel) => Array.from(document.querySelectorAll(sel)).map(e => {
        const r = e.getBoundingClientRect();
        return {x: r.left, y: r.top, w: r.width, h: r.height};
    })""", selector)


def inside(box: dict[str, float], viewport: dict[str, int]) -> bool:
    return (box["w"] > 0 and box["h"] > 0 and box["x"] >= 0 and box["y"] >= 0
            and box["x"] + box["w"] <= viewport["width"] + 0.5 and box["y"] + box["h"] <= viewport["height"] + 0.5)


KIOSK_READY = "window.qmsKiosk.view && window.qmsKiosk.view.online && window.qmsKiosk.connected"


# ---------------------------------------------------------------- the kiosk


@pytest.mark.parametrize("viewport", [PORTRAIT, LANDSCAPE], ids=["portrait", "landscape"])
async def test_the_kiosk_uses_the_whole_screen(chromium: Browser, broker: Broker, tmp_path: Path,
                                               viewport: dict[str, int]) -> None:
    path = site_file(tmp_path, broker)
    async with running_core(path), running_web(path) as web:
        context = await chromium.new_context(viewport=viewport, has_touch=True)
        await context.add_init_script("window.print = () => {};")
        kiosk = await Tab.open(context, web.url + "/kiosk?id=kiosk-1", KIOSK_READY)
        name = f"{viewport['width']}x{viewport['height']}"
        await kiosk.page.screenshot(path=str(tmp_path / f"kiosk-menu-{name}.png"))
        for b in await boxes(kiosk.page, ".menu-button"):
            assert inside(b, viewport), b
        await to_fields(kiosk)
        await kiosk.page.screenshot(path=str(tmp_path / f"kiosk-{name}.png"))
        buttons = await boxes(kiosk.page, ".field-button")
        assert len(buttons) == 3
        covered = sum(b["w"] * b["h"] for b in buttons)
        assert covered > 0.5 * viewport["width"] * viewport["height"], (covered, buttons)
        for b in buttons + await boxes(kiosk.page, "#priority"):
            assert inside(b, viewport), b

        await kiosk.page.tap(".field-button[data-field='dat-dai']")
        await kiosk.until("!document.getElementById('issued').hidden")
        await kiosk.page.screenshot(path=str(tmp_path / f"kiosk-ticket-{name}.png"))
        for selector in ("#done", "#ticket", "#t-qr"):
            for b in await boxes(kiosk.page, selector):
                assert inside(b, viewport), (selector, b)
        await kiosk.page.tap("#done")  # it can be tapped: nothing covers it
        await kiosk.until("document.getElementById('issued').hidden")
        assert not kiosk.errors


async def test_the_kiosk_returns_to_vietnamese_after_a_ticket(chromium: Browser, broker: Broker,
                                                              tmp_path: Path) -> None:
    path = site_file(tmp_path, broker)
    async with running_core(path), running_web(path) as web:
        context = await chromium.new_context(viewport=PORTRAIT, has_touch=True)
        await context.add_init_script("window.print = () => {};")
        kiosk = await Tab.open(context, web.url + "/kiosk?id=kiosk-1", KIOSK_READY)
        # a foreigner switches to English and takes a ticket
        await kiosk.page.tap("a.lang")
        await kiosk.until("window.qmsKiosk && window.qmsKiosk.view && document.documentElement.lang === 'en'")
        await to_fields(kiosk)
        await kiosk.page.tap(".field-button[data-field='dat-dai']")
        await kiosk.until("!document.getElementById('issued').hidden")
        assert await kiosk.text("#t-ahead") == "You are next"
        await kiosk.page.tap("#done")
        # the next citizen finds the kiosk in Vietnamese, as the same kiosk
        await kiosk.until("document.documentElement.lang === 'vi' && window.qmsKiosk && window.qmsKiosk.view")
        assert await kiosk.text(".kiosk-choose h2") == "Mời chọn lĩnh vực để lấy số thứ tự"
        assert "id=kiosk-1" in kiosk.page.url and "lang=" not in kiosk.page.url
        assert not kiosk.errors


async def test_the_kiosk_returns_to_vietnamese_when_idle(chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    path = site_file(tmp_path, broker, more="\n[kiosk]\nidle_s = 5\n")
    async with running_core(path), running_web(path) as web:
        context = await chromium.new_context(viewport=PORTRAIT, has_touch=True)
        kiosk = await Tab.open(context, web.url + "/kiosk?id=kiosk-1", KIOSK_READY)
        # English, then nobody touches it: Vietnamese again after idle_s
        await kiosk.page.tap("a.lang")
        await kiosk.until("document.documentElement.lang === 'en' && window.qmsKiosk && window.qmsKiosk.view")
        await kiosk.until("document.documentElement.lang === 'vi' && window.qmsKiosk && window.qmsKiosk.view")
        assert "id=kiosk-1" in kiosk.page.url
        assert not kiosk.errors


async def test_the_kiosk_shows_the_site_s_time_and_english_plurals(chromium: Browser, broker: Broker,
                                                                   tmp_path: Path) -> None:
    # UTC+14 and UTC-11: the two never share a date, so a date in the browser's zone shows
    path = site_file(tmp_path, broker, timezone="Pacific/Kiritimati")
    tz = load_site_config(path).tz
    async with running_core(path), running_web(path) as web:
        context = await chromium.new_context(viewport=PORTRAIT, has_touch=True, timezone_id="Pacific/Pago_Pago")
        await context.add_init_script("window.print = () => {};")
        kiosk = await Tab.open(context, web.url + "/kiosk?id=kiosk-1&lang=en", KIOSK_READY)
        await to_fields(kiosk)
        await kiosk.page.tap(".field-button[data-field='dat-dai']")
        await kiosk.until("!document.getElementById('issued').hidden")
        ticket = await kiosk.page.evaluate("window.qmsKiosk.last.ticket")
        assert await kiosk.text("#t-time") == stamp_text(ticket["issued_at"], tz)
        await kiosk.until("window.qmsKiosk.view.fields[0].waiting === 1")
        assert await kiosk.text(".field-button[data-field='dat-dai'] .fb-waiting") == "Waiting: 1 person"
        await kiosk.page.goto(web.url + "/kiosk?id=kiosk-1&lang=en")
        await kiosk.until(KIOSK_READY)
        await to_fields(kiosk)
        await kiosk.page.tap(".field-button[data-field='dat-dai']")
        await kiosk.until("!document.getElementById('issued').hidden && window.qmsKiosk.last.ticket.number === '1002'")
        assert await kiosk.text("#t-ahead") == "1 person ahead of you"
        assert not kiosk.errors


# ---------------------------------------------------------------- the login form and the 403 page


async def test_a_failed_login_keeps_next_and_lang(chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    path = site_file(tmp_path, broker)
    async with running_core(path), running_web(path) as web:
        context = await chromium.new_context()
        tab = await Tab.open(context, web.url + "/counter/1")
        await tab.page.click("text=English")
        await tab.page.wait_for_selector("text=User name", timeout=WAIT_MS)
        await tab.page.fill("#username", "canbo1")
        await tab.page.fill("#password", "sai-mat-khau")
        await tab.page.click("#login")
        await tab.page.wait_for_selector("#login-error", timeout=WAIT_MS)
        assert await tab.text("#login-error") == "Wrong user name or password."  # still English
        assert await tab.page.input_value("input[name='next']") == "/counter/1"
        assert "next=%2Fcounter%2F1" in tab.page.url and "lang=en" in tab.page.url
        # switching language after the failure keeps where the officer was going, too
        await tab.page.click("text=Tiếng Việt")
        await tab.page.wait_for_selector("text=Tên đăng nhập", timeout=WAIT_MS)
        assert await tab.page.input_value("input[name='next']") == "/counter/1"
        await tab.page.fill("#username", "canbo1")
        await tab.page.fill("#password", ACCOUNTS["canbo1"][0])
        await tab.page.click("#login")
        await tab.page.wait_for_url(web.url + "/counter/1", timeout=WAIT_MS)  # not the list of counters
        assert not tab.errors


async def test_the_403_page_offers_a_way_back_and_out(chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    path = site_file(tmp_path, broker)
    async with running_core(path), running_web(path) as web:
        context = await chromium.new_context()
        tab = await log_in(context, web.url, "canbo1", "/counter/1")
        response = await tab.page.goto(web.url + "/counter/3")
        assert response is not None and response.status == 403
        assert "không được dùng quầy này" in await tab.text("main")
        await tab.page.click("#back")
        await tab.page.wait_for_url(web.url + "/counter", timeout=WAIT_MS)  # canbo1's own counters
        await tab.page.goto(web.url + "/supervisor")
        assert "Nguyễn Thị Hoa" in await tab.text("#logout")
        await tab.page.click("#logout")
        await tab.page.wait_for_url(web.url + "/login", timeout=WAIT_MS)
        me = await tab.page.evaluate("fetch('/api/me').then(r => r.status)")
        assert me == 401  # logged out: another officer can log in here
        assert not tab.errors


# ---------------------------------------------------------------- the console


async def test_the_console_says_what_a_skip_did(chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    path = site_file(tmp_path, broker)
    topics = Topics(load_site_config(path).id)
    async with Probe(broker.url) as probe, running_core(path), running_web(path) as web:
        assert (await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"}))["ok"]
        console = await log_in(await chromium.new_context(), web.url, "canbo1", "/counter/1")
        await console.until("window.qmsConsole.view && window.qmsConsole.view.online && !window.qmsConsole.busy")
        await console.page.click("#a-call_next")
        await console.until("document.getElementById('number').textContent === '1001'")
        await console.page.click("#a-skip")
        await console.until("!window.qmsConsole.busy && document.getElementById('number').textContent === '—'")
        assert await console.text("#ticket-info") == "Đã bỏ qua số 1001 (vắng mặt)"  # not "Chưa gọi số nào"
        assert await console.text("#message") == "Đã bỏ qua số 1001 (vắng mặt)."
        assert not console.errors


# ---------------------------------------------------------------- the supervisor

# a cell's text on more than one line: a wrapped "Quầy 1", a split header
WRAPPED_CELLS = """() => {
  const wrapped = [];
  for (const cell of document.querySelectorAll("table.grid th, table.grid td:not(.muted)")) {
    const rects = [];
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!n.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(n);
      for (const r of range.getClientRects()) if (r.width > 0) rects.push(r);
    }
    rects.sort((a, b) => a.top - b.top);
    let lines = 0, bottom = -Infinity;
    for (const r of rects) {
      if (r.top >= bottom - 2) { lines += 1; bottom = r.bottom; } else { bottom = Math.max(bottom, r.bottom); }
    }
    if (lines > 1) wrapped.push(cell.textContent.trim());
  }
  return wrapped;
}"""
DURATION = r"^(\d+ giờ( \d+ phút)?|(\d+ phút )?\d+ giây)$"


async def test_the_supervisor_s_units_dates_and_tables(chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    path = site_file(tmp_path, broker)
    topics = Topics(load_site_config(path).id)
    async with Probe(broker.url) as probe, running_core(path), running_web(path) as web:
        async def ask(topic: str, payload: dict[str, Any]) -> dict[str, Any]:
            return await probe.request(topic, {"request_id": new_id(), **payload})

        for field in ("dat-dai", "dat-dai", "dat-dai", "ho-tich", "ho-tich"):
            assert (await ask(topics.cmd_ticket, {"field": field}))["ok"]
        assert (await ask(topics.cmd_counter("1"), {"action": "open", "officer": "Nguyễn Thị Hoa"}))["ok"]
        assert (await ask(topics.cmd_counter("1"), {"action": "call_next"}))["ok"]
        assert (await ask(topics.cmd_counter("1"), {"action": "finish"}))["ok"]
        # a keypad's N on a closed counter nobody ever opened by name
        assert (await ask(topics.cmd_counter("3"), {"action": "call_next"}))["ok"]
        assert (await ask(topics.cmd_counter("3"), {"action": "finish"}))["ok"]
        for width, height in ((1366, 768), (1920, 1080)):
            context = await chromium.new_context(viewport={"width": width, "height": height},
                                                 timezone_id="Pacific/Pago_Pago")
            dash = await log_in(context, web.url, "giamsat", "/supervisor")
            await dash.until("window.qmsSupervisor.view && window.qmsSupervisor.view.stats "
                             "&& window.qmsSupervisor.view.stats.total.served === 2")
            await dash.page.screenshot(path=str(tmp_path / f"supervisor-{width}.png"), full_page=True)
            view = await dash.page.evaluate("window.qmsSupervisor.view")
            assert await dash.text("#day") == day_text(view["day"])  # dd/mm/yyyy
            assert await dash.page.input_value("#export-from") == day_text(view["day"])
            for key in ("avg_wait", "avg_service"):
                assert re.match(DURATION, await dash.text(f"[data-total='{key}'] .value")), key
            await dash.until("/giây|phút/.test(document.querySelector(\"#fields tr[data-field='dat-dai'] .longest\")"
                             ".textContent)")
            assert re.match(DURATION, await dash.text("#fields tr[data-field='dat-dai'] .longest"))
            labels = await dash.page.locator("#chart svg text").all_text_contents()
            assert labels[1:] and all(re.match(r"^\d{1,2} giờ$", label) for label in labels[1:]), labels
            officers = await dash.page.locator("#officers tr td:first-child").all_text_contents()
            assert sorted(officers) == ["Cán bộ tại Quầy 3", "Nguyễn Thị Hoa"]
            assert "không rõ" not in await dash.text("main")
            assert await dash.page.evaluate(WRAPPED_CELLS) == []
            clipped = await dash.page.evaluate("Array.from(document.querySelectorAll('.dashboard .panel'))"
                                               ".filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.id || "
                                               "p.querySelector('h2').textContent)")
            assert clipped == []  # and nothing hides in a scrolled panel instead
            assert not dash.errors
            await context.close()


async def test_exports_take_the_dates_as_the_dashboard_shows_them(broker: Broker, tmp_path: Path) -> None:
    path = site_file(tmp_path, broker)
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with running_core(path), running_web(path) as web, aiohttp.ClientSession(cookie_jar=jar) as http:
        resp = await login(http, web.url, "giamsat")
        assert resp.status == 303
        today = datetime.now(load_site_config(path).tz).date()
        for value in (today.strftime("%d/%m/%Y"), today.isoformat()):
            async with http.get(f"{web.url}/supervisor/export/tickets.csv?from={value}&to={value}") as r:
                assert r.status == 200, value
                assert (await r.text()).lstrip("\ufeff").startswith("ticket_id")
        async with http.get(f"{web.url}/supervisor/export/tickets.csv?from=31/02/2026") as r:
            assert r.status == 400
            assert "dd/mm/yyyy" in (await r.json())["error"]["message"]
