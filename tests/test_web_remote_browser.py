"""Issue 12 in real headless Chromium at phone size (360 px), with a real core on a clock the test
controls, the real web server and a real Mosquitto: a citizen takes today's number from their
phone (/lay-so) with a one-time code, is passed over while not checked in, checks in at the
kiosk and is called right after; a citizen books (/dat-lich), cancels, books again, moves, and
checks in at the kiosk at the slot's time to be called before a walk-in.

The one-time code is read from what the web server asked the notifier to send (private/otp, on
the broker, through a Probe): the notifier does not handle the "otp" kind yet (docs/web.md)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, BrowserContext

from qms_common.devbroker import Broker, free_port
from qms_common.protocol import CODE_ALPHABET, Topics
from queue_core.clock import ManualClock
from tests import test_notify
from tests.support.appointments import appointment_site
from tests.support.core import running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site
from tests.support.web import accounts_extra, running_web, web_extra
from tests.test_notify import Standin, notify_toml, running_notifier
from tests.test_web_browser import Tab, log_in, to_fields

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def days_ago(n: int, hour: int, minute: int = 0) -> datetime:
    """A moment of a past day, site time. The core's clock must never run ahead of the real one:
    the web server's commands carry deadlines in real time, and a core in the future would
    refuse them all as expired."""
    today = datetime.now(TZ).date() - timedelta(days=n)
    return datetime(today.year, today.month, today.day, hour, minute, tzinfo=TZ)


standin = test_notify.standin  # the stand-in provider server, as a fixture here too
PHONE_SIZE = {"width": 360, "height": 740}


@pytest.fixture
def site(broker: Broker, tmp_path: Path) -> tuple[Path, Topics]:
    path, site_id = write_site(tmp_path, broker.url,
                               extra=appointment_site() + web_extra(tmp_path, free_port()))
    return path, Topics(site_id)


async def phone_context(chromium: Browser) -> BrowserContext:
    return await chromium.new_context(viewport=PHONE_SIZE, is_mobile=True, has_touch=True)


async def kiosk_context(chromium: Browser) -> BrowserContext:
    ctx = await chromium.new_context(viewport={"width": 1080, "height": 1920}, has_touch=True)
    await ctx.add_init_script("window.print = () => { window.__printed = (window.__printed || 0) + 1; };")
    return ctx


async def verify_phone(tab: Tab, probe: Probe, topics: Topics, phone: str, purpose: str) -> str:
    """Type the phone, ask for a code, read it where the notifier would, type it: the code."""
    mark = probe.mark()
    await tab.page.fill("#phone", phone)
    await tab.page.click("#send")
    sent = await probe.wait_for(lambda m: m.topic == topics.private_otp, start=mark, timeout=10)
    otp = sent.json
    assert otp["phone"] == "84" + phone.replace(" ", "")[1:] and otp["purpose"] == purpose
    assert re.fullmatch(r"\d{6}", otp["code"]) and otp["request_id"]
    await tab.until("!document.getElementById('otp-box').hidden")
    return str(otp["code"])


async def no_sideways_scroll(tab: Tab) -> None:
    assert await tab.page.evaluate("document.documentElement.scrollWidth") <= PHONE_SIZE["width"]


async def counter(probe: Probe, topics: Topics, action: str, number: str = "1") -> dict[str, Any]:
    return await probe.request(topics.cmd_counter(number), {"request_id": new_id(), "action": action})


async def check_in_at_kiosk(kiosk: Tab, code: str) -> None:
    """The citizen taps the check-in button and types the code on the screen's keys."""
    await to_fields(kiosk)
    await kiosk.page.tap("#checkin-open")
    await kiosk.until("!document.getElementById('checkin').hidden")
    for ch in code:
        await kiosk.page.tap(f"#code-keys button[data-key='{ch}']")
    await kiosk.page.tap("#checkin-send")


async def test_a_number_from_a_phone_passed_over_then_called_after_check_in(
        chromium: Browser, broker: Broker, site: tuple[Path, Topics], tmp_path: Path) -> None:
    path, topics = site
    clock = ManualClock(days_ago(1, 7))  # before the remote hours (07:30-11:00)
    async with running_core(path, clock), running_web(path) as web, Probe(broker.url) as probe:
        await probe.subscribe(topics.private_otp)
        citizen = await phone_context(chromium)
        tab = await Tab.open(citizen, web.url + "/lay-so", "window.qmsRemote")
        options = await tab.page.eval_on_selector_all("#field option", "os => os.map(o => o.value)")
        assert options == ["dat-dai", "ho-tich"]  # chung-thuc takes no remote numbers
        assert "07:30–11:00, 13:30–16:30" in await tab.text("#hours")
        await tab.page.select_option("#field", "dat-dai")

        # a bad number is refused with the hint; nothing is sent
        mark = probe.mark()
        await tab.page.fill("#phone", "12345")
        await tab.page.click("#send")
        await tab.until("document.getElementById('otp-info').textContent.includes('10 chữ số')")
        code = await verify_phone(tab, probe, topics, "0912 345 678", "remote")
        assert len([m for m in probe.since(mark) if m.topic == topics.private_otp]) == 1
        # a wrong code first: tries left
        await tab.page.fill("#otp", "000000" if code != "000000" else "111111")
        await tab.page.click("#verify")
        await tab.until("document.getElementById('otp-info').textContent.includes('Còn 4 lần thử')")
        await tab.page.fill("#otp", code)
        await tab.page.click("#verify")
        # verified, the number is asked at once: too early, the core's refusal says the hours
        await tab.until("document.getElementById('error').textContent.includes('07:30–11:00')")
        clock.set(days_ago(1, 8))
        await tab.page.click("#take")
        await tab.until("!document.getElementById('result').hidden")
        assert await tab.text("#r-number") == "1001"
        assert await tab.text("#r-field") == "Đất đai"
        assert await tab.text("#r-ahead") == "Ông/bà là người tiếp theo"
        checkin_code = await tab.text("#r-code")
        assert len(checkin_code) == 6 and set(checkin_code) <= set(CODE_ALPHABET)
        assert await tab.page.evaluate("document.getElementById('r-qr').naturalWidth") > 0
        tracking = await tab.page.get_attribute("#r-track", "href")
        assert tracking is not None and tracking.endswith(f"#ma={checkin_code}")
        await no_sideways_scroll(tab)
        await tab.page.screenshot(path=str(tmp_path / "lay-so.png"), full_page=True)
        assert not tab.errors

        # the tracking page of the link asks to check in, with the code; without the fragment, no code
        track = await Tab.open(citizen, tracking, "window.qmsTrack.view && window.qmsTrack.view.found")
        await track.until("!document.getElementById('checkin').hidden")
        assert await track.text("#checkin") == f"Mời ông/bà đến ki-ốt xác nhận có mặt (mã {checkin_code})"
        bare = await Tab.open(citizen, tracking.split("#")[0], "window.qmsTrack.view && window.qmsTrack.view.found")
        await bare.until("!document.getElementById('checkin').hidden")
        assert await bare.text("#checkin") == "Mời ông/bà đến ki-ốt xác nhận có mặt"

        # the same phone again in the same field: the core's refusal, in Vietnamese
        again = tab
        await again.page.goto(web.url + "/lay-so")
        await again.until("!document.getElementById('take').hidden")  # still verified in this tab's session
        await again.page.click("#take")
        await again.until("!document.getElementById('error').hidden")
        assert "tối đa 1" in await again.text("#error")

        # a walk-in comes after; the counter calls: the remote number is passed over, kept
        kiosk_ctx = await kiosk_context(chromium)
        kiosk = await Tab.open(kiosk_ctx, web.url + "/kiosk?id=kiosk-1",
                               "window.qmsKiosk.view && window.qmsKiosk.view.online && window.qmsKiosk.connected")
        await to_fields(kiosk)
        await kiosk.page.tap(".field-button[data-field='dat-dai']")
        await kiosk.until("!document.getElementById('issued').hidden")
        assert await kiosk.text("#t-number") == "1002"
        await kiosk.page.tap("#done")
        assert (await counter(probe, topics, "open"))["ok"]
        assert (await counter(probe, topics, "call_next"))["ticket"]["number"] == "1002"
        assert (await counter(probe, topics, "finish"))["ok"]

        # an unknown code at the kiosk: the core's refusal
        await check_in_at_kiosk(kiosk, "ACDEFG" if checkin_code != "ACDEFG" else "ACDEFH")
        await kiosk.until("!document.getElementById('error').hidden")
        assert await kiosk.page.is_hidden("#issued")
        await kiosk.page.tap("#checkin-back")
        # the citizen checks in with the code: the ticket is shown and printed
        await check_in_at_kiosk(kiosk, checkin_code)
        await kiosk.until("!document.getElementById('issued').hidden")
        assert await kiosk.text("#t-number") == "1001"
        assert await kiosk.text("#t-note") == "Đã xác nhận có mặt. Mời ông/bà chờ gọi số."
        await kiosk.until("window.__printed === 2")
        await track.until("document.getElementById('checkin').hidden")
        # and it is the next called
        assert (await counter(probe, topics, "call_next"))["ticket"]["number"] == "1001"
        await track.until("document.getElementById('status').textContent.includes('Quầy 1')")
        assert not kiosk.errors and not again.errors and not track.errors


@pytest.fixture
def open_every_day(broker: Broker, tmp_path: Path, standin: Standin) -> tuple[Path, Topics]:
    """Bookings every day of the week, no holidays: the test's days are whatever days the real
    clock puts a week back. The notifier sends the codes, to the stand-in's phone inbox."""
    extra = appointment_site(closed="[]", capacity=1).replace('holidays = ["2026-11-26"]', "holidays = []")
    extra = extra.replace("[appointments.fields.weekday_capacity]\nfri = 1\n", "")
    # the links in messages lead to this test's web server ([web] host and port)
    extra += notify_toml(standin).replace('[web]\npublic_url = "https://xephang.example.vn"\n', "")
    path, site_id = write_site(tmp_path, broker.url, extra=extra + web_extra(tmp_path, free_port(),
                                                                             more=accounts_extra()))
    return path, Topics(site_id)


async def code_from_inbox(tab: Tab, standin: Standin, phone: str) -> str:
    """Type the phone, ask for a code, read it on the phone (the stand-in's inbox), as a citizen does."""
    seen = len(standin.state.inbox)
    await tab.page.fill("#phone", phone)
    await tab.page.click("#send")
    await standin.wait(lambda: any(re.search(r"\b\d{6}\b", d.text) for d in standin.state.inbox[seen:]))
    [text] = [d.text for d in standin.state.inbox[seen:] if re.search(r"\b\d{6}\b", d.text)]
    await tab.until("!document.getElementById('otp-box').hidden")
    return re.search(r"\b(\d{6})\b", text).group(1)  # type: ignore[union-attr]


async def slot_button(tab: Tab, slot: str) -> str:
    return f"#slots button[data-slot='{slot}']"


async def test_book_cancel_book_again_move_and_check_in_before_walk_ins(
        chromium: Browser, broker: Broker, open_every_day: tuple[Path, Topics], tmp_path: Path,
        standin: Standin) -> None:
    path, topics = open_every_day
    clock = ManualClock(days_ago(7, 9))
    day = days_ago(6, 0).date().isoformat()  # the first bookable day: tomorrow of the core's today
    async with running_core(path, clock), running_notifier(path), running_web(path) as web, \
            Probe(broker.url) as probe:
        await probe.subscribe(topics.private_otp)
        citizen = await phone_context(chromium)
        tab = await Tab.open(citizen, web.url + "/dat-lich", "window.QmsSlots")
        assert await tab.page.eval_on_selector_all("#field option", "os => os.map(o => o.value)") == ["dat-dai"]
        await tab.until("document.querySelectorAll('#slots button').length > 0")
        assert await tab.page.input_value("#day") == day
        assert (await tab.text(await slot_button(tab, "08:00"))).endswith("còn 1 chỗ")
        await tab.page.click(await slot_button(tab, "08:30"))
        code = await code_from_inbox(tab, standin, "0987 654 321")
        await tab.page.fill("#otp", code)
        await tab.page.click("#verify")
        await tab.until("!document.getElementById('book').disabled")
        await tab.page.click("#book")
        await tab.until("!document.getElementById('result').hidden")
        booking = await tab.text("#r-code")
        assert len(booking) == 8 and set(booking) <= set(CODE_ALPHABET)
        assert (await tab.text("#r-when")).endswith("· 08:30")
        assert await tab.page.evaluate("document.getElementById('r-qr').naturalWidth") > 0
        manage = await tab.page.get_attribute("#r-manage", "href")
        assert manage is not None and f"/dat-lich/{booking}/" in manage
        await no_sideways_scroll(tab)
        await tab.page.screenshot(path=str(tmp_path / "dat-lich.png"), full_page=True)
        # a code alone, or a forged token, opens nothing
        forged = await citizen.new_page()
        resp = await forged.goto(web.url + f"/dat-lich/{booking}/AAAAAAAAAAAAAAAA")
        assert resp is not None and resp.status == 404
        await forged.close()

        # its own page: cancel
        await tab.page.goto(manage)
        await tab.until("document.getElementById('m-status').textContent === 'Đã đặt'")
        tab.page.once("dialog", lambda d: d.accept())
        await tab.page.click("#cancel")
        await tab.until("document.getElementById('m-status').textContent === 'Đã huỷ'")
        assert await tab.page.is_hidden("#actions")

        # book again (the phone is still verified in this tab), the place freed by the cancel
        await tab.page.click("#new")
        await tab.until("document.querySelectorAll('#slots button').length > 0")
        await tab.until("document.querySelector(\"#slots button[data-slot='08:30']\").disabled === false")
        await tab.page.click(await slot_button(tab, "08:30"))
        await tab.until("!document.getElementById('book').disabled")
        await tab.page.click("#book")
        await tab.until("!document.getElementById('result').hidden")
        second = await tab.text("#r-code")
        assert second != booking
        manage = await tab.page.get_attribute("#r-manage", "href")
        assert manage is not None

        # move it to 09:00 from its page; 08:30 is free again, 09:00 full
        await tab.page.goto(manage)
        await tab.until("document.getElementById('m-status').textContent === 'Đã đặt'")
        await tab.page.click("#move-open")
        await tab.until("document.querySelectorAll('#slots button').length > 0")
        assert await tab.page.is_disabled(await slot_button(tab, "08:30"))  # its own place, taken
        await tab.page.click(await slot_button(tab, "09:00"))
        await tab.page.click("#move-do")
        await tab.until("document.getElementById('m-when').textContent.endsWith('· 09:00')")
        got = await probe.request(topics.cmd_appointment, {"request_id": new_id(), "action": "get", "code": second},
                                  reply_topic=topics.reply("web") + "/test")
        assert got["appointment"] == {"code": second, "field": "dat-dai", "day": day, "slot": "09:00",
                                      "status": "booked"}
        assert not tab.errors

        # the day of the booking: too early at the kiosk
        clock.set(days_ago(6, 8, 10))
        kiosk_ctx = await kiosk_context(chromium)
        kiosk = await Tab.open(kiosk_ctx, web.url + "/kiosk?id=kiosk-1",
                               "window.qmsKiosk.view && window.qmsKiosk.view.online && window.qmsKiosk.connected")
        await check_in_at_kiosk(kiosk, second)
        await kiosk.until("!document.getElementById('error').hidden")
        assert "Mời ông/bà quay lại từ 08:30" in await kiosk.text("#error")
        await kiosk.page.tap("#checkin-back")
        # at the slot's time: a walk-in first, then the check-in (typed by a scanner: the code, then Enter)
        clock.set(days_ago(6, 8, 55))
        await to_fields(kiosk)
        await kiosk.page.tap(".field-button[data-field='dat-dai']")
        await kiosk.page.tap("#phone-skip")  # this site sends messages: the kiosk offers a phone entry
        await kiosk.until("!document.getElementById('issued').hidden")
        assert await kiosk.text("#t-number") == "1001"
        await kiosk.page.tap("#done")
        await to_fields(kiosk)
        await kiosk.page.tap("#checkin-open")
        await kiosk.page.keyboard.type(second.lower())
        await kiosk.page.keyboard.press("Enter")
        await kiosk.until("!document.getElementById('issued').hidden && "
                          "document.getElementById('t-number').textContent === '1002'")
        assert not await kiosk.page.is_hidden("#t-appointment")
        await kiosk.until("window.__printed === 2")
        # the appointment is called before the walk-in
        assert (await counter(probe, topics, "open"))["ok"]
        assert (await counter(probe, topics, "call_next"))["ticket"]["number"] == "1002"
        assert (await counter(probe, topics, "call_next"))["ticket"]["number"] == "1001"
        assert not kiosk.errors

        # the supervisor sees today's booking, checked in
        office = await chromium.new_context(viewport={"width": 1600, "height": 1000})
        boss = await log_in(office, web.url, "giamsat", "/supervisor")
        row = "#bookings tr[data-field='dat-dai']"
        await boss.until(f"document.querySelector(\"{row} .checked-in\") && "
                         f"document.querySelector(\"{row} .checked-in\").textContent === '1'")
        assert await boss.text(f"{row} .booked") == "1"
        assert await boss.text(f"{row} .pending") == "0"
        assert not boss.errors
