"""The citizen's phone number in real headless Chromium: the kiosk's keypad (a wrong number
refused on screen, a right one taken, "Bỏ qua" in one tap, the entry cleared when the kiosk is
left alone), the tracking page's promise, and the supervisor's panel of the notifier's stats."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser

from qms_common.devbroker import Broker, free_port
from qms_common.phones import PHONE_HINT
from qms_common.protocol import Topics
from tests.support.core import running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site
from tests.support.web import accounts_extra, running_web, web_extra
from tests.test_web_browser import Tab, log_in, to_fields
from tests.test_web_notify import NOTIFY, STATS

KIOSK_READY = "window.qmsKiosk.view && window.qmsKiosk.view.online && window.qmsKiosk.connected"


async def test_a_citizen_leaves_a_phone_at_the_kiosk(chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    more = NOTIFY + '[kiosk]\nidle_s = 5\n' + accounts_extra()
    path, site_id = write_site(tmp_path, broker.url, extra=web_extra(tmp_path, free_port(), more=more))
    topics = Topics(site_id)
    async with Probe(broker.url) as probe, running_core(path), running_web(path) as web:
        await probe.subscribe(topics.private_contact)
        for _ in range(4):  # four citizens before this one: the message comes at three
            reply = await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            assert reply["ok"], reply
        citizen = await chromium.new_context(viewport={"width": 1080, "height": 1920}, has_touch=True)
        await citizen.add_init_script("window.print = () => { window.__printed = (window.__printed || 0) + 1; };")
        kiosk = await Tab.open(citizen, web.url + "/kiosk?id=kiosk-1", KIOSK_READY)
        page = kiosk.page

        # the field first, then the keypad with its consent line
        await to_fields(kiosk)
        await page.tap(".field-button[data-field='dat-dai']")
        await kiosk.until("!document.getElementById('phone').hidden")
        assert await kiosk.text("#phone-field") == "Đất đai"
        assert "được xoá sau 30 ngày" in await kiosk.text("#phone-consent")
        # a number too short: said on screen, no ticket
        for d in "12345":
            await page.tap(f"#keypad [data-digit='{d}']")
        await page.tap("#phone-take")
        await kiosk.until("!document.getElementById('phone-error').hidden")
        assert await kiosk.text("#phone-error") == PHONE_HINT
        assert await page.is_hidden("#issued")
        for _ in range(5):
            await page.tap("#phone-delete")
        for d in "0912345678":
            await page.tap(f"#keypad [data-digit='{d}']")
        assert await kiosk.text("#phone-number") == "0912 345 678"
        await page.screenshot(path=str(tmp_path / "kiosk-phone.png"))
        await page.tap("#phone-take")
        await kiosk.until("!document.getElementById('issued').hidden")
        assert await kiosk.text("#t-number") == "1005"
        contact = await probe.wait_topic(topics.private_contact)
        assert contact["phone"] == "84912345678" and contact["ticket"]["number"] == "1005"
        # the number is gone from the kiosk: not on the ticket, not in its state
        assert "912" not in await kiosk.text("#ticket") and await page.evaluate("window.qmsKiosk.phone") == ""
        assert await page.is_hidden("#phone-error")
        tracking = await page.evaluate("window.qmsKiosk.last.tracking_url")

        # the tracking page promises the message
        phone = await Tab.open(citizen, tracking, "window.qmsTrack.view && window.qmsTrack.view.found")
        await phone.until("!document.getElementById('notify').hidden")
        assert await phone.text("#notify") == "Ông/bà sẽ nhận tin Zalo khi còn 3 người phía trước"

        # the next citizen skips with one tap
        await page.tap("#done")
        await to_fields(kiosk)
        await page.tap(".field-button[data-field='dat-dai']")
        await kiosk.until("!document.getElementById('phone').hidden")
        await page.tap("#phone-skip")
        await kiosk.until("!document.getElementById('issued').hidden && window.qmsKiosk.last.ticket.number === '1006'")

        # digits typed and left: the kiosk starts over after idle_s
        await page.tap("#done")
        await to_fields(kiosk)
        await page.tap(".field-button[data-field='dat-dai']")
        for d in "09":
            await page.tap(f"#keypad [data-digit='{d}']")
        await kiosk.until("document.getElementById('phone').hidden && !document.getElementById('menu').hidden")
        assert await page.evaluate("window.qmsKiosk.phone") == "" and await kiosk.text("#phone-number") == ""
        assert kiosk.errors == [] and phone.errors == []

        # the supervisor sees the notifier's figures
        await probe.publish(topics.notify_stats, STATS, retain=True)
        await probe.publish(topics.status_notify, b"online", retain=True)
        office = await chromium.new_context(viewport={"width": 1600, "height": 1000})
        boss = await log_in(office, web.url, "giamsat", "/supervisor")
        await boss.until("document.querySelector(\"#notify-channels tr[data-route='zalo'] .sent\")")
        assert await boss.text("#notify-channels tr[data-route='zalo'] .sent") == "10"
        assert await boss.text("#notify-channels tr[data-route='sms'] .dropped") == "2"
        assert await boss.text("#notify-channels tr[data-route='webhook:0'] td") == "Webhook 1"
        assert await boss.text("#notify-status") == "đang chạy"
        assert await boss.text("#notify-quota") == "487"
        cells = await boss.page.locator("#notify-failures tr td").all_text_contents()
        assert cells == ["09:05", "Zalo", "sắp đến lượt", "09x…x78", "-124: người dùng chưa quan tâm OA"]
        await probe.publish(topics.status_notify, b"offline", retain=True)
        await boss.until("document.getElementById('notify-status').textContent === 'mất kết nối'")
        await boss.page.screenshot(path=str(tmp_path / "supervisor-notify.png"), full_page=True)
        assert boss.errors == []
