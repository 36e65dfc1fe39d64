"""What a first office noticed on its first day, in real headless Chromium: the kiosk's language,
its use of the screen and its time zone, the login form and the 403 page, the console after a
skip, and the supervisor's units, dates and tables."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from display_server.timefmt import stamp_text
from qms_common.config import load_site_config
from qms_common.devbroker import Broker, free_port
from tests.support.core import running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site
from tests.support.web import ACCOUNTS, CHROMIUM_ARGS, accounts_extra, running_web, web_extra
from tests.test_web_browser import WAIT_MS, Tab, log_in

PORTRAIT = {"width": 1080, "height": 1920}
LANDSCAPE = {"width": 1280, "height": 800}


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


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


async def test_the_kiosk_returns_to_vietnamese(chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    path = site_file(tmp_path, broker, more="\n[kiosk]\nidle_s = 5\n")
    async with running_core(path), running_web(path) as web:
        context = await chromium.new_context(viewport=PORTRAIT, has_touch=True)
        await context.add_init_script("window.print = () => {};")
        kiosk = await Tab.open(context, web.url + "/kiosk?id=kiosk-1", KIOSK_READY)
        # a foreigner switches to English and takes a ticket
        await kiosk.page.tap("a.lang")
        await kiosk.until("window.qmsKiosk && window.qmsKiosk.view && document.documentElement.lang === 'en'")
        await kiosk.page.tap(".field-button[data-field='dat-dai']")
        await kiosk.until("!document.getElementById('issued').hidden")
        assert await kiosk.text("#t-ahead") == "You are next"
        await kiosk.page.tap("#done")
        # the next citizen finds the kiosk in Vietnamese, as the same kiosk
        await kiosk.until("document.documentElement.lang === 'vi' && window.qmsKiosk && window.qmsKiosk.view")
        assert await kiosk.text(".kiosk-choose h2") == "Mời chọn lĩnh vực để lấy số thứ tự"
        assert "id=kiosk-1" in kiosk.page.url and "lang=" not in kiosk.page.url

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
        await kiosk.page.tap(".field-button[data-field='dat-dai']")
        await kiosk.until("!document.getElementById('issued').hidden")
        ticket = await kiosk.page.evaluate("window.qmsKiosk.last.ticket")
        assert await kiosk.text("#t-time") == stamp_text(ticket["issued_at"], tz)
        await kiosk.until("window.qmsKiosk.view.fields[0].waiting === 1")
        assert await kiosk.text(".field-button[data-field='dat-dai'] .fb-waiting") == "Waiting: 1 person"
        await kiosk.page.goto(web.url + "/kiosk?id=kiosk-1&lang=en")
        await kiosk.until(KIOSK_READY)
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
        assert "Tài khoản này không được dùng quầy này" in await tab.text("main")
        await tab.page.click("#back")
        await tab.page.wait_for_url(web.url + "/counter", timeout=WAIT_MS)  # canbo1's own counters
        await tab.page.goto(web.url + "/supervisor")
        assert "Nguyễn Thị Hoa" in await tab.text("#logout")
        await tab.page.click("#logout")
        await tab.page.wait_for_url(web.url + "/login", timeout=WAIT_MS)
        me = await tab.page.evaluate("fetch('/api/me').then(r => r.status)")
        assert me == 401  # logged out: another officer can log in here
        assert not tab.errors
