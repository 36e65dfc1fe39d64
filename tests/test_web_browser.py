"""The pages people use, in real headless Chromium (Debian's /usr/bin/chromium through Playwright):
a citizen takes a ticket at the kiosk and follows it on the tracking page, the officer logs in
and calls it from the console, the citizen rates it on the tablet, and the supervisor sees it
counted on the dashboard; keyboard shortcuts, the login form, and the kiosk's printing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from display_server.texts import Texts
from qms_common.devbroker import Broker, free_port
from qms_common.protocol import Topics
from tests.support.core import CoreProcess, running_core
from tests.support.dossiers import running_dossiers
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site
from tests.support.web import ACCOUNTS, accounts_extra, running_web, web_extra

WAIT_MS = 30_000


class Tab:
    """A page and the script errors it had."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        # what the Content-Security-Policy refused (an inline script or style, another site)
        page.on("console", lambda m: self.errors.append(m.text) if "Content Security Policy" in m.text else None)

    @classmethod
    async def open(cls, context: BrowserContext, url: str, ready: str | None = None) -> Tab:
        tab = cls(await context.new_page())
        await tab.page.goto(url)
        if ready:
            await tab.until(ready)
        return tab

    async def until(self, expression: str, arg: Any = None) -> Any:
        # as a function: Playwright would eval() a bare expression in the page, which the
        # Content-Security-Policy (no 'unsafe-eval') rightly refuses
        if not expression.lstrip().startswith(("(", "function", "async")):
            expression = f"() => ({expression})"
        return await self.page.wait_for_function(expression, arg=arg, timeout=WAIT_MS)

    async def text(self, selector: str) -> str:
        return (await self.page.text_content(selector) or "").strip()


async def to_fields(kiosk: Tab) -> None:
    """The kiosk's menu ("4 trong 1"): "Lấy số thứ tự" opens the field buttons (and check-in)."""
    await kiosk.page.tap("#menu-ticket")
    await kiosk.until("!document.getElementById('choose').hidden")


async def log_in(context: BrowserContext, base: str, user: str, target: str) -> Tab:
    tab = await Tab.open(context, base + target)
    assert tab.page.url.startswith(base + "/login?next="), tab.page.url  # no session: the login form
    await tab.page.fill("#username", user)
    await tab.page.fill("#password", ACCOUNTS[user][0])
    await tab.page.click("#login")
    await tab.page.wait_for_url(base + target, timeout=WAIT_MS)
    return tab


@pytest.fixture
def site(broker: Broker, tmp_path: Path) -> tuple[Path, Topics]:
    path, site_id = write_site(tmp_path, broker.url, extra=web_extra(tmp_path, free_port(), more=accounts_extra()))
    return path, Topics(site_id)


async def test_a_ticket_from_kiosk_to_dashboard(chromium: Browser, broker: Broker, site: tuple[Path, Topics],
                                                tmp_path: Path) -> None:
    path, topics = site
    async with running_core(path), running_dossiers(path), running_web(path) as web:
        base = web.url
        citizen = await chromium.new_context(viewport={"width": 1080, "height": 1920}, has_touch=True)
        await citizen.add_init_script("window.print = () => { window.__printed = (window.__printed || 0) + 1; };")
        kiosk = await Tab.open(citizen, base + "/kiosk?id=kiosk-1",
                               "window.qmsKiosk.view && window.qmsKiosk.view.online && window.qmsKiosk.connected")
        assert await kiosk.text(".field-button[data-field='dat-dai'] .fb-name") == "Đất đai"

        # the citizen takes a ticket with a tap (after "Lấy số thứ tự" on the menu)
        await to_fields(kiosk)
        await kiosk.page.tap(".field-button[data-field='dat-dai']")
        await kiosk.until("!document.getElementById('issued').hidden")
        assert await kiosk.text("#t-number") == "1001"
        assert await kiosk.text("#t-field") == "Đất đai"
        assert await kiosk.text("#t-ahead") == "Ông/bà là người tiếp theo"
        # no printer configured: the browser prints it, once the QR code is there
        await kiosk.until("window.__printed === 1")
        assert await kiosk.page.evaluate("document.getElementById('t-qr').naturalWidth") > 0
        await kiosk.page.screenshot(path=str(tmp_path / "kiosk.png"))
        ticket = await kiosk.page.evaluate("window.qmsKiosk.last.ticket")
        tracking = await kiosk.page.evaluate("window.qmsKiosk.last.tracking_url")

        # and follows it on the QR code's page (its address carries the ticket's token)
        assert tracking.startswith(base + f"/t/{ticket['id']}/")
        phone = await Tab.open(citizen, tracking, "window.qmsTrack.view && window.qmsTrack.view.found")
        assert await phone.text("#number") == "1001"
        assert await phone.text("#status") == "Đang chờ"

        # the officer logs in and calls it
        office = await chromium.new_context(viewport={"width": 1366, "height": 900})
        console = await log_in(office, base, "canbo1", "/counter/1")
        await console.until("window.qmsConsole.view && window.qmsConsole.view.online")
        await console.until("document.querySelector(\"#queues tr[data-field='dat-dai'] .w\").textContent === '1'")
        await console.page.click("#a-open")
        await console.until("document.getElementById('officer').textContent === 'Nguyễn Thị Hoa'")
        await console.page.click("#a-call_next")
        await console.until("document.getElementById('number').textContent === '1001'")
        await phone.until("document.getElementById('status').textContent.includes('Quầy 1')")
        assert await phone.text("#status") == "Mời ông/bà đến Quầy 1"  # "quầy" once
        # the officer records the dossier (its code goes on the ticket), then finishes
        await console.page.fill("#dossier", "H12.34-261121-0007")
        await console.page.fill("#hs-procedure", "Đăng ký biến động đất đai")
        await console.page.fill("#hs-due", "2099-12-31")
        await console.page.click("#a-dossier")
        await console.until("document.getElementById('hs-message').textContent.includes('1001')")
        await console.page.click("#a-finish")
        await console.until("document.getElementById('number').textContent === '—'")
        await console.page.screenshot(path=str(tmp_path / "console.png"))

        # the supervisor pairs the counter's tablet once: a code made on the dashboard
        boss = await chromium.new_context(viewport={"width": 1600, "height": 1000})
        pairing = await log_in(boss, base, "giamsat", "/supervisor/pairing")
        await pairing.page.select_option("#counter", "1")
        await pairing.page.click("#make-code")
        code = await pairing.text("#pairing-code strong")
        tablet = await Tab.open(citizen, base + "/rate/1")
        assert await tablet.text("#unpaired") == "Máy tính bảng này chưa ghép nối với quầy"
        await tablet.page.fill("#code", code)
        await tablet.page.click("#pair")
        await tablet.page.wait_for_url(base + "/rate/1", timeout=WAIT_MS)

        # the tablet asks the citizen, who taps "Rất hài lòng"
        await tablet.until("window.qmsRate && window.qmsRate.view && !document.getElementById('prompt').hidden")
        assert await tablet.text("#prompt-text") == "Mời công dân có số 1001 đánh giá mức độ hài lòng"
        labels = await tablet.page.locator(".rate-button span:not(.face)").all_text_contents()
        assert labels == ["Rất hài lòng", "Hài lòng", "Không hài lòng"]  # the best first
        await tablet.page.screenshot(path=str(tmp_path / "rate-prompt.png"))
        await tablet.page.tap(".rate-button[data-score='3']")
        await tablet.until("!document.getElementById('thanks').hidden")
        assert await tablet.text("#thanks") == "Cảm ơn ông/bà đã đánh giá!"
        await phone.until("document.getElementById('status').textContent.includes('đánh giá')")
        assert await phone.text("#status") == "Đã phục vụ xong. Cảm ơn ông/bà đã đánh giá!"  # thanked once
        await tablet.page.screenshot(path=str(tmp_path / "rate.png"))

        # the supervisor sees it counted
        dash = await Tab.open(boss, base + "/supervisor")
        await dash.until("window.qmsSupervisor.view && window.qmsSupervisor.view.stats "
                         "&& window.qmsSupervisor.view.stats.total.rated === 1")
        assert await dash.text("[data-total='served'] .value") == "1"
        assert await dash.text("[data-total='rated'] .value") == "1"
        officer = dash.page.locator("#officers tr[data-officer='Nguyễn Thị Hoa']")
        assert await officer.locator(".served").text_content() == "1"
        assert "Rất hài lòng 1" in (await officer.text_content() or "")
        assert await dash.page.evaluate("document.querySelector('#chart svg').dataset.hours") == "1"
        assert await dash.text("#counters tr[data-counter='1'] td:nth-child(4)") == "Nguyễn Thị Hoa"
        await dash.page.screenshot(path=str(tmp_path / "supervisor.png"), full_page=True)

        # the record the core keeps has all of it
        async with Probe(broker.url) as probe:
            reply = await probe.request(topics.cmd_query, {"request_id": new_id(), "query": "ticket",
                                                           "ticket": ticket["id"]})
        record = reply["ticket"]
        assert (record["status"], record["rating"], record["dossier"], record["officer"], record["source"]) == (
            "done", 3, "H12.34-261121-0007", "Nguyễn Thị Hoa", "kiosk-1")
        for tab in (kiosk, phone, console, pairing, tablet, dash):
            assert not tab.errors, tab.errors


async def test_the_console_s_keyboard_shortcuts(chromium: Browser, broker: Broker, site: tuple[Path, Topics]) -> None:
    path, topics = site
    async with Probe(broker.url) as probe, running_core(path), running_web(path) as web:
        for _ in range(2):
            assert (await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"}))["ok"]
        office = await chromium.new_context(viewport={"width": 1366, "height": 900})
        console = await log_in(office, web.url, "canbo1", "/counter/1")
        await console.until("window.qmsConsole.view && window.qmsConsole.view.online && !window.qmsConsole.busy "
                            "&& window.qmsConsole.view.queues[0].waiting === 2")
        keys = console.page.keyboard

        async def press(key: str, until: str) -> None:
            # a key pressed while the previous command is on its way does nothing: wait for its answer
            await keys.press(key)
            await console.until(f"!window.qmsConsole.busy && ({until})")

        await press("n", "document.getElementById('number').textContent === '1001'")
        await press("r", "document.getElementById('ticket-info').textContent.startsWith('2 lần gọi')")
        await press("s", "document.querySelector(\"#no-shows button[data-ticket$='-1001']\") !== null")
        assert await console.text("#number") == "—"
        # typing in a box is typing, not a shortcut
        await console.page.click("#dossier")
        await keys.type("n")
        assert await console.page.input_value("#dossier") == "n"
        await keys.press("Escape")
        await press("g", "document.activeElement.id === 'call-number'")
        await keys.type("1001")
        await press("Enter", "document.getElementById('number').textContent === '1001'")
        await press("p", "document.getElementById('status').textContent === 'Tạm dừng'")
        await press("p", "document.getElementById('status').textContent === 'Đang phục vụ'")
        await press("f", "document.getElementById('number').textContent === '—'")
        await press("n", "document.getElementById('number').textContent === '1002'")
        replies = await console.page.evaluate("window.qmsConsole.replies.map(r => [r.action, r.status])")
        assert replies == [["call_next", 200], ["recall", 200], ["skip", 200], ["call", 200], ["pause", 200],
                           ["resume", 200], ["finish", 200], ["call_next", 200]]
        assert not console.errors


async def test_the_login_form_and_the_language_switch(chromium: Browser, site: tuple[Path, Topics]) -> None:
    path, _ = site
    async with running_core(path), running_web(path) as web:
        context = await chromium.new_context()
        tab = await Tab.open(context, web.url + "/counter/3")
        await tab.page.fill("#username", "giamsat")
        await tab.page.fill("#password", "sai-mat-khau")
        await tab.page.click("#login")
        await tab.page.wait_for_selector("#login-error", timeout=WAIT_MS)
        assert await tab.text("#login-error") == "Sai tên đăng nhập hoặc mật khẩu."
        assert tab.page.url.startswith(web.url + "/login")
        await tab.page.click("text=English")
        await tab.page.wait_for_selector("text=User name", timeout=WAIT_MS)
        await tab.page.fill("#username", "canbo3")
        await tab.page.fill("#password", ACCOUNTS["canbo3"][0])
        await tab.page.click("#login")
        await tab.page.wait_for_url(web.url + "/counter/3", timeout=WAIT_MS)
        assert await tab.text("#a-call_next") == "Gọi số tiếp theoN"  # the console speaks Vietnamese again
        kiosk = await Tab.open(context, web.url + "/kiosk?lang=en", "window.qmsKiosk.view")
        assert await kiosk.text(".kiosk-choose h2") == "Choose a service to take a number"
        await kiosk.page.click("a.lang")
        await kiosk.page.wait_for_selector("text=Mời chọn dịch vụ", timeout=WAIT_MS)
        assert await kiosk.text(".kiosk-choose h2") == "Mời chọn lĩnh vực để lấy số thứ tự"
        assert not tab.errors and not kiosk.errors


async def test_the_kiosk_says_when_its_printer_fails_and_when_the_core_is_away(
        chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    no_printer = free_port()  # nothing listens there: the printer is switched off
    printer = f'[printer]\ntype = "network"\nhost = "127.0.0.1"\nport = {no_printer}\ntimeout_s = 1\n'
    path, site_id = write_site(tmp_path, broker.url, extra=web_extra(tmp_path, free_port(), more=printer))
    core = CoreProcess(path, tmp_path / "core.log")
    async with running_web(path) as web, Probe(broker.url) as probe:
        await probe.subscribe(Topics(site_id).status_core)
        core.start()
        try:
            await probe.wait_for(lambda m: m.text == "online", timeout=20)
            context = await chromium.new_context(viewport={"width": 1080, "height": 1920}, has_touch=True)
            await context.add_init_script("window.print = () => { window.__printed = true; };")
            kiosk = await Tab.open(context, web.url + "/kiosk?id=kiosk-1",
                                   "window.qmsKiosk.view && window.qmsKiosk.view.online && window.qmsKiosk.connected")
            await to_fields(kiosk)
            await kiosk.page.tap(".field-button[data-field='ho-tich']")
            await kiosk.until("!document.getElementById('issued').hidden")
            assert await kiosk.text("#t-number") == "2001"  # issued and shown all the same
            assert await kiosk.text("#print-status") == Texts("vi").print_unreachable
            assert "error" in (await kiosk.page.get_attribute("#print-status", "class") or "")
            assert await kiosk.page.evaluate("window.__printed") is None  # not sent to the browser's print
            await kiosk.page.tap("#done")

            mark = probe.mark()
            core.kill9()
            await probe.wait_for(lambda m: m.text == "offline", start=mark)
            await kiosk.until("!document.getElementById('unavailable').hidden")
            assert await kiosk.page.is_disabled(".field-button[data-field='ho-tich']")
            core.start()
            await kiosk.until("document.getElementById('unavailable').hidden "
                              "&& !document.querySelector(\".field-button[data-field='ho-tich']\").disabled")
            assert not kiosk.errors
        finally:
            core.stop()
