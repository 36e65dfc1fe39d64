"""The kiosk's four functions ("4 trong 1") in real headless Chromium at kiosk size (1080x1920,
touch): take a number from the menu; look up a procedure with the on-screen keys, read it, and take
a number for its field; rate a served ticket by its number (and the errors, in Vietnamese); the
dossier look-up is a link. Also /thu-tuc and /thu-tuc/{code} on a phone, whose QR code decodes to
the page itself (zbarimg), and a rating after the window refused in Vietnamese."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from playwright.async_api import Browser

from display_server.catalogue import catalogue_path
from display_server.catalogue.store import write_procedures
from qms_common.config import load_site_config
from qms_common.devbroker import Broker, free_port
from qms_common.protocol import Topics
from tests.support.core import running_core
from tests.support.dossiers import DossierClient, running_dossiers
from tests.support.mqtt import Probe, new_id
from tests.support.procedures import sample
from tests.support.site import write_site
from tests.support.web import running_web, web_extra
from tests.test_web_browser import Tab

KIOSK = {"width": 1080, "height": 1920}
PHONE = {"width": 390, "height": 844}
KIOSK_READY = "window.qmsKiosk.view && window.qmsKiosk.view.online && window.qmsKiosk.connected"
VISIBLE = "(id) => !document.getElementById(id).hidden"


def site_with_catalogue(tmp_path: Path, broker: Broker, more: str = "") -> tuple[Path, Topics]:
    path, site_id = write_site(tmp_path, broker.url, extra=web_extra(tmp_path, free_port(), more=more))
    write_procedures(catalogue_path(load_site_config(path)), sample())
    return path, Topics(site_id)


async def serve_and_finish(probe: Probe, topics: Topics, counter: str, number: str) -> None:
    """The counter calls the next ticket, which must be `number`, and finishes it."""
    await probe.request(topics.cmd_counter(counter), {"request_id": new_id(), "action": "open",
                                                      "officer": "Nguyễn Thị Hoa"})
    reply = await probe.request(topics.cmd_counter(counter), {"request_id": new_id(), "action": "call_next"})
    assert reply["ok"] and reply["ticket"]["number"] == number, reply
    reply = await probe.request(topics.cmd_counter(counter), {"request_id": new_id(), "action": "finish"})
    assert reply["ok"], reply


async def test_the_kiosk_does_four_things(chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    path, topics = site_with_catalogue(tmp_path, broker)
    async with running_core(path), running_dossiers(path), running_web(path) as web, Probe(broker.url) as probe:
        context = await chromium.new_context(viewport=KIOSK, has_touch=True)
        await context.add_init_script("window.print = () => { window.__printed = (window.__printed || 0) + 1; };")
        kiosk = await Tab.open(context, web.url + "/kiosk?id=kiosk-1", KIOSK_READY)
        page = kiosk.page

        # the menu: four big buttons, all on the screen, nothing else showing
        assert await kiosk.text("#menu h2") == "Mời chọn dịch vụ"
        names = await page.locator(".menu-button .mb-name").all_text_contents()
        assert names == ["Lấy số thứ tự", "Tra cứu thủ tục", "Tra cứu hồ sơ", "Đánh giá"]
        await page.screenshot(path=str(tmp_path / "kiosk-menu.png"))
        for box in await page.evaluate("""() => Array.from(document.querySelectorAll('.menu-button'))
                .map(e => e.getBoundingClientRect().toJSON())"""):
            assert box["height"] >= 200 and box["bottom"] <= KIOSK["height"] and box["width"] >= 900, box
        assert await page.get_attribute("#menu-dossiers", "href") == "/kiosk/ho-so?id=kiosk-1"
        assert await page.is_hidden("#choose")

        # 1. take a number: the menu, a field, the ticket; "Xong" brings the menu back
        await page.tap("#menu-ticket")
        await kiosk.until(VISIBLE, "choose")
        await page.tap(".field-button[data-field='dat-dai']")
        await kiosk.until(VISIBLE, "issued")
        assert await kiosk.text("#t-number") == "1001"
        await page.tap("#done")
        await kiosk.until(VISIBLE, "menu")
        assert await page.is_hidden("#issued")

        # 2. look up a procedure: typed without marks on the screen's keys, in any word order
        await page.tap("#menu-procedures")
        await kiosk.until(VISIBLE, "procs")
        await kiosk.until("document.querySelectorAll('#proc-fields .chip').length > 0")
        assert "Hộ tịch" in await page.locator("#proc-fields .chip").all_text_contents()
        for ch in "ket hon dang ky":
            await page.tap(f"#proc-keys [data-key='{ch}']")
        assert await page.input_value("#proc-q") == "ket hon dang ky"
        await kiosk.until("window.qmsKioskMore.results.length > 0 "
                          "&& document.querySelector('#proc-results .proc-name')")
        await kiosk.until("document.querySelector('#proc-results .proc-name').textContent === 'Đăng ký kết hôn'")
        await page.screenshot(path=str(tmp_path / "kiosk-search.png"))
        await page.tap("#proc-results .proc-item[data-code='1.000894']")
        await kiosk.until(VISIBLE, "proc")
        assert await kiosk.text("#proc-name") == "Đăng ký kết hôn"
        assert await kiosk.text("#proc-fees") == "Miễn lệ phí (công dân Việt Nam cư trú ở trong nước)"
        assert "Tờ khai đăng ký kết hôn theo mẫu (hai bên cùng ký)" in await page.locator(
            "#proc-documents li").all_text_contents()
        await kiosk.until("document.getElementById('proc-qr').complete "
                          "&& document.getElementById('proc-qr').naturalWidth > 0")
        assert await page.get_attribute("#proc-qr", "src") == "/thu-tuc/1.000894/qr.svg"
        await page.screenshot(path=str(tmp_path / "kiosk-procedure.png"))
        # "Lấy số cho thủ tục này": a ticket of its field, as the field's button gives
        assert await page.is_visible("#proc-take") and await page.is_hidden("#proc-note")
        await page.tap("#proc-take")
        await kiosk.until(VISIBLE, "issued")
        assert await kiosk.text("#t-number") == "2001"
        assert await kiosk.text("#t-field") == "Hộ tịch"
        await page.tap("#done")
        await kiosk.until(VISIBLE, "menu")

        # browse by field; a procedure of a field the office does not have: no button, a note
        await page.tap("#menu-procedures")
        await kiosk.until("document.querySelectorAll('#proc-fields .chip').length > 0")
        await page.tap("#proc-fields .chip[data-field='Bảo trợ xã hội']")
        await kiosk.until("window.qmsKioskMore.results.length === 6")
        assert all(m.startswith("Bảo trợ xã hội") for m in await page.locator("#proc-results .proc-meta")
                   .all_text_contents())
        await page.tap("#proc-results .proc-item[data-code='1.001731']")
        await kiosk.until(VISIBLE, "proc")
        assert await page.is_hidden("#proc-take")
        assert await kiosk.text("#proc-note") == "Thủ tục này không lấy số tại đây. Mời xem nơi tiếp nhận bên dưới."
        await page.tap("#proc [data-home]")
        await kiosk.until(VISIBLE, "menu")

        # 3. rate: the ticket 1001 was served; its number and a level
        await serve_and_finish(probe, topics, "1", "1001")
        await page.tap("#menu-rate")
        await kiosk.until(VISIBLE, "rate")
        labels = await page.locator("#rate-levels .rate-button").all_text_contents()
        assert labels == ["Rất hài lòng", "Hài lòng", "Không hài lòng"]
        # no number yet: asked for one, nothing sent
        await page.tap("#rate-levels [data-score='3']")
        await kiosk.until(VISIBLE, "rate-msg")
        assert await kiosk.text("#rate-msg") == "Mời nhập số thứ tự trên phiếu trước."
        # a ticket still waiting cannot be rated: the core says why, in Vietnamese
        for ch in "2001":
            await page.tap(f"#rate-keys [data-key='{ch}']")
        await page.tap("#rate-levels [data-score='3']")
        await kiosk.until("document.getElementById('rate-msg').textContent.includes('2001')")
        assert await kiosk.text("#rate-msg") == "Vé số 2001 đang chờ, chưa đánh giá được."
        for _ in range(4):
            await page.tap("#rate-delete")
        for ch in "1001":
            await page.tap(f"#rate-keys [data-key='{ch}']")
        assert await kiosk.text("#rate-number") == "1001"
        await page.tap("#rate-levels [data-score='3']")
        await kiosk.until("document.getElementById('rate-msg').textContent === 'Cảm ơn ông/bà đã đánh giá!'")
        await page.screenshot(path=str(tmp_path / "kiosk-rated.png"))
        reply = await probe.request(topics.cmd_query, {"request_id": new_id(), "query": "ticket", "ticket": "1001"})
        assert reply["ticket"]["rating"] == 3
        await kiosk.until(VISIBLE, "menu")  # thanked, the next citizen finds the menu
        # rated once: again is refused, and says so
        await page.tap("#menu-rate")
        for ch in "1001":
            await page.tap(f"#rate-keys [data-key='{ch}']")
        await page.tap("#rate-levels [data-score='1']")
        await kiosk.until("document.getElementById('rate-msg').textContent.includes('đã được đánh giá')")
        assert await kiosk.text("#rate-msg") == "Vé số 1001 đã được đánh giá."
        reply = await probe.request(topics.cmd_query, {"request_id": new_id(), "query": "ticket", "ticket": "1001"})
        assert reply["ticket"]["rating"] == 3
        await page.tap("#rate [data-home]")
        await kiosk.until(VISIBLE, "menu")

        # 4. look up a dossier: the menu's "Tra cứu hồ sơ", its code typed on the screen's keys, and
        # back to the menu
        code = "H23.26-0042"
        assert (await DossierClient(probe, topics).create(code, due_at="2099-12-31"))["ok"]
        await page.tap("#menu-dossiers")
        await page.wait_for_url(web.url + "/kiosk/ho-so?id=kiosk-1")
        await kiosk.until("window.qmsKioskDossier !== undefined")
        for ch in code:
            await page.tap(f"#hs-keys [data-key='{ch}']")
        await page.tap("#scan-go")
        await kiosk.until(VISIBLE, "result")
        assert await kiosk.text("#hs-status") == "Đã tiếp nhận"
        assert await kiosk.text("#hs-procedure") == "Đăng ký kết hôn" and await kiosk.text("#hs-due") == "31/12/2099"
        await page.screenshot(path=str(tmp_path / "kiosk-dossier.png"))
        await page.tap("a.home")
        await page.wait_for_url(web.url + "/kiosk?id=kiosk-1")
        await kiosk.until(KIOSK_READY)
        assert await page.locator(".menu-button .mb-name").count() == 4
        assert kiosk.errors == []


async def test_an_idle_kiosk_goes_back_to_its_menu(chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    path, _ = site_with_catalogue(tmp_path, broker, more="[kiosk]\nidle_s = 5\n")
    async with running_core(path), running_web(path) as web:
        context = await chromium.new_context(viewport=KIOSK, has_touch=True)
        kiosk = await Tab.open(context, web.url + "/kiosk?id=kiosk-1", KIOSK_READY)
        await kiosk.page.tap("#menu-procedures")
        await kiosk.page.tap("#proc-keys [data-key='k']")
        await kiosk.until("document.getElementById('proc-q').value === 'k'")
        started = time.monotonic()
        await kiosk.until(VISIBLE, "menu")
        assert time.monotonic() - started >= 4  # idle_s after the last touch, not before
        await kiosk.page.tap("#menu-procedures")  # the next citizen starts with an empty search
        assert await kiosk.page.input_value("#proc-q") == ""
        # left on "Tra cứu hồ sơ" with a code half typed: back to the menu too, not to the code
        await kiosk.page.goto(web.url + "/kiosk?id=kiosk-1")
        await kiosk.until(KIOSK_READY)
        await kiosk.page.tap("#menu-dossiers")
        await kiosk.page.wait_for_url(web.url + "/kiosk/ho-so?id=kiosk-1")
        await kiosk.until("window.qmsKioskDossier !== undefined")
        await kiosk.page.tap("#hs-keys [data-key='H']")
        started = time.monotonic()
        await kiosk.page.wait_for_url(web.url + "/kiosk?id=kiosk-1", timeout=15_000)
        assert time.monotonic() - started >= 4
        await kiosk.until(KIOSK_READY)
        await kiosk.until(VISIBLE, "menu")
        assert kiosk.errors == []


async def test_a_ticket_only_kiosk_opens_on_its_fields(chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    path, _ = site_with_catalogue(tmp_path, broker, more='[kiosk]\nfunctions = ["ticket"]\n')
    async with running_core(path), running_web(path) as web:
        context = await chromium.new_context(viewport=KIOSK, has_touch=True)
        kiosk = await Tab.open(context, web.url + "/kiosk?id=kiosk-1", KIOSK_READY)
        assert await kiosk.page.locator("#menu").count() == 0
        assert await kiosk.page.is_visible(".field-button[data-field='ho-tich']")
        async with aiohttp.ClientSession() as http, http.post(
                web.url + "/api/kiosk/rate", json={"kiosk": "kiosk-1", "ticket": "1001", "score": 1}) as resp:
            assert resp.status == 403
            assert (await resp.json())["error"]["message"] == "Ki-ốt này không nhận đánh giá."


async def test_a_procedure_page_on_a_phone(chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    remote = '[remote]\nhours = ["00:00-23:59"]\n[remote.quota]\nho-tich = 5\n'
    path, _ = site_with_catalogue(tmp_path, broker, more=remote)
    async with running_core(path), running_web(path) as web:
        context = await chromium.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
        tab = await Tab.open(context, web.url + "/thu-tuc")
        fields = await tab.page.locator(".proc-field-list a").all_text_contents()
        assert any(f.startswith("Hộ tịch") for f in fields) and any(f.startswith("Bảo trợ xã hội") for f in fields)
        # results as the citizen types, marks or not
        await tab.page.fill("#q", "khai sinh")
        await tab.until("document.querySelector('#results .proc-name') "
                        "&& document.querySelector('#results .proc-name').textContent === 'Đăng ký khai sinh'")
        assert await tab.page.is_hidden("#fields")
        await tab.page.screenshot(path=str(tmp_path / "thu-tuc.png"), full_page=True)
        await tab.page.click("#results a >> nth=0")
        await tab.page.wait_for_url(web.url + "/thu-tuc/1.001193")
        assert await tab.text("#p-name") == "Đăng ký khai sinh"
        await tab.page.screenshot(path=str(tmp_path / "thu-tuc-page.png"), full_page=True)
        assert await tab.text("#p-time") == ("Trong ngày (tiếp nhận sau 15 giờ thì trả trong ngày làm việc "
                                             "tiếp theo)")
        # what to bring and what it costs, from the catalogue
        assert await tab.text("#p-fees") == ("Miễn lệ phí đăng ký khai sinh đúng hạn; đăng ký quá hạn theo mức "
                                             "HĐND tỉnh quy định")
        documents = await tab.page.locator("#p-documents li").all_text_contents()
        assert documents[0] == "Tờ khai đăng ký khai sinh theo mẫu" and len(documents) == 4
        # its field takes remote tickets: the button opens /lay-so with the field chosen
        assert await tab.page.get_attribute("#take", "href") == "/lay-so?field=ho-tich"
        await tab.page.click("#take")
        await tab.page.wait_for_url(web.url + "/lay-so?field=ho-tich")
        assert await tab.page.input_value("#field") == "ho-tich"
        # a field without remote tickets: take a number at the kiosk
        await tab.page.goto(web.url + "/thu-tuc/2.000815")
        assert await tab.page.locator("#take").count() == 0
        assert await tab.text("#take-note") == "Mời ông/bà lấy số lĩnh vực Chứng thực tại ki-ốt của Bộ phận Một cửa."
        # the QR code is this very page
        await tab.until("document.getElementById('p-qr').complete && document.getElementById('p-qr').naturalWidth > 0")
        png = tmp_path / "qr.png"
        await tab.page.locator("#p-qr").screenshot(path=str(png))
        zbar = await asyncio.create_subprocess_exec("zbarimg", "--quiet", "--raw", str(png),
                                                    stdout=asyncio.subprocess.PIPE)
        out, _ = await zbar.communicate()
        assert zbar.returncode == 0 and out.decode().strip() == web.url + "/thu-tuc/2.000815"
        # browse a field, and an unknown procedure
        await tab.page.goto(web.url + "/thu-tuc?field=chung-thuc")
        names = await tab.page.locator("#results .proc-name").all_text_contents()
        assert len(names) == 10 and all("hứng thực" in n for n in names)
        resp = await tab.page.goto(web.url + "/thu-tuc/9.999999")
        assert resp is not None and resp.status == 404
        assert tab.errors == []


async def test_a_rating_after_its_window_is_refused_in_vietnamese(broker: Broker, tmp_path: Path) -> None:
    path, topics = site_with_catalogue(tmp_path, broker, more="[rating]\nwindow_s = 10\n")
    async with running_core(path), running_web(path) as web, Probe(broker.url) as probe, \
            aiohttp.ClientSession() as http:
        async with http.post(web.url + "/api/tickets", json={"field": "dat-dai", "kiosk": "kiosk-1"}) as resp:
            assert resp.status == 200
        await serve_and_finish(probe, topics, "1", "1001")
        finished = time.monotonic()
        # the window is the core's clock: wait it out
        await asyncio.sleep(max(0.0, finished + 10.5 - time.monotonic()))
        async with http.post(web.url + "/api/kiosk/rate", json={"kiosk": "kiosk-1", "ticket": "1001",
                                                                  "score": 2}) as resp:
            body = await resp.json()
        assert resp.status == 409 and body["error"]["code"] == "rating_closed"
        assert body["error"]["message"].startswith("Đã hết thời gian đánh giá vé số 1001")
        # bad input: a clear error, nothing sent
        async with http.post(web.url + "/api/kiosk/rate", json={"kiosk": "kiosk-1", "ticket": "10 01",
                                                                  "score": 2}) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["message"] == ("Số thứ tự gồm chữ số (có thể có chữ cái đầu), "
                                                               "như trên phiếu.")


async def test_the_menu_in_english_and_back_to_vietnamese(chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    path, _ = site_with_catalogue(tmp_path, broker)
    async with running_core(path), running_web(path) as web:
        context = await chromium.new_context(viewport=KIOSK, has_touch=True)
        kiosk = await Tab.open(context, web.url + "/kiosk?id=kiosk-1&lang=en", KIOSK_READY)
        names = await kiosk.page.locator(".menu-button .mb-name").all_text_contents()
        assert names == ["Take a number", "Procedures", "My dossier", "Rate our service"]
        assert await kiosk.page.get_attribute("#menu-dossiers", "href") == "/kiosk/ho-so?id=kiosk-1&lang=en"
        await kiosk.page.tap("#menu-procedures")
        await kiosk.until("document.getElementById('proc-count').textContent === "
                          "'Type a procedure name or choose a field.'")
        for ch in "xyzq":
            await kiosk.page.tap(f"#proc-keys [data-key='{ch}']")
        await kiosk.until("document.getElementById('proc-count').textContent "
                          "=== 'No procedure found. Try other words.'")
        # "Home": the next citizen finds the kiosk in Vietnamese
        await kiosk.page.tap("#procs [data-home]")
        await kiosk.until("document.documentElement.lang === 'vi' && window.qmsKiosk && window.qmsKiosk.view")
        assert await kiosk.text("#menu h2") == "Mời chọn dịch vụ"
        assert kiosk.errors == []
