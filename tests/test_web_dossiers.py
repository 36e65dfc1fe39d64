"""Dossiers on the web, end to end over a real broker, the real queue core, the real dossier
service and the web server: the integrators' HTTP API (keys, idempotent events, the timeline in
time order, lateness across a weekend, errors that change nothing), the public page /hs/… (token,
live in Chromium), the A5 receipt printed to PDF by Chromium whose QR code zbarimg reads back, the
console's "Tiếp nhận hồ sơ" in Chromium, and the kiosk's look-up with a scanned address or a code
typed on its screen's keys (a summary only, rate-limited)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import sys
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from PIL import Image, ImageOps
from playwright.async_api import Browser

from qms_common.config import load_site_config
from qms_common.devbroker import Broker, free_port
from qms_common.protocol import Topics
from tests.support.core import running_core
from tests.support.dossiers import running_dossiers
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site
from tests.support.web import WebServer, accounts_extra, csrf_of, login, running_web, web_extra
from tests.test_web_browser import Tab, log_in
from tests.test_web_printer import parse_raster_prints

KEY = "khoa-thu-nghiem-cua-tinh-7Qz"
OTHER_KEY = "khoa-cua-ben-khac-9Xw"
PUBLIC_URL = "https://xephang.example.gov.vn"
CODE = "000.00.12.H23-261126-0001"


def api_keys() -> str:
    return "".join(f'[[api_keys]]\nname = "{name}"\nkey_sha256 = "{hashlib.sha256(key.encode()).hexdigest()}"\n'
                   for name, key in (("motcua-tinh", KEY), ("cong-dvc", OTHER_KEY)))


@dataclass
class Rig:
    web: WebServer
    probe: Probe
    topics: Topics
    http: aiohttp.ClientSession
    path: Path

    @property
    def url(self) -> str:
        return self.web.url

    async def call(self, method: str, path: str, body: Any = None, *, key: str | None = KEY,
                   raw: bytes | None = None, content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": content_type}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.http.request(method, self.url + path, data=data, headers=headers) as resp:
            return resp.status, await resp.json()

    async def create(self, code: str = CODE, **kw: Any) -> dict[str, Any]:
        body = {"code": code, "procedure": "Đăng ký khai sinh", "received_at": "2026-11-26T09:00:00+07:00",
                "due_at": "2026-11-27", **kw}
        status, answer = await self.call("POST", "/api/v1/dossiers", body)
        assert status in (200, 201), answer
        return answer

    async def event(self, code: str = CODE, **body: Any) -> tuple[int, dict[str, Any]]:
        return await self.call("POST", f"/api/v1/dossiers/{code}/events", body)

    async def dossier(self, code: str = CODE) -> dict[str, Any]:
        status, answer = await self.call("GET", f"/api/v1/dossiers/{code}")
        assert status == 200, answer
        return answer["dossier"]

    async def status_page(self, url: str) -> tuple[int, dict[str, Any]]:
        """The kiosk's JSON of a dossier page's address (the page's own model)."""
        parts = urlsplit(url)
        async with self.http.get(f"{self.url}{parts.path}/trang-thai?{parts.query}") as resp:
            return resp.status, await resp.json()


def rig_site(tmp_path: Path, broker: Broker, more: str = "") -> Path:
    path, _ = write_site(tmp_path, broker.url, extra=web_extra(
        tmp_path, free_port(), web=f'public_url = "{PUBLIC_URL}"', more=more + api_keys() + accounts_extra()))
    return path


@contextlib.asynccontextmanager
async def rig_for(path: Path, broker: Broker, tmp_path: Path, *, service: bool = True) -> AsyncIterator[Rig]:
    topics = Topics(path.stem)
    async with contextlib.AsyncExitStack() as stack:
        probe = await stack.enter_async_context(Probe(broker.url))
        await probe.subscribe(topics.event("dossier"))
        await stack.enter_async_context(running_core(path))
        if service:
            await stack.enter_async_context(running_dossiers(path))
        web = await stack.enter_async_context(running_web(path))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        yield Rig(web, probe, topics, http, path)


@pytest.fixture
async def rig(broker: Broker, tmp_path: Path) -> AsyncIterator[Rig]:
    async with rig_for(rig_site(tmp_path, broker), broker, tmp_path) as r:
        yield r


# ---------------------------------------------------------------- the API


async def test_a_wrong_or_missing_key_is_refused_and_changes_nothing(rig: Rig) -> None:
    body = {"code": CODE, "procedure": "Đăng ký khai sinh", "due_at": "2026-12-04"}
    for key in ("khoa-sai", None, KEY + " "):
        status, answer = await rig.call("POST", "/api/v1/dossiers", body, key=key if key != KEY + " " else None)
        assert status == 401, answer
        assert answer["error"]["code"] == "unauthorized"
        assert answer["error"]["message"].startswith("Khoá API sai hoặc thiếu.")
        assert answer["error"]["message_en"].startswith("Wrong or missing API key.")
    async with rig.http.post(rig.url + "/api/v1/dossiers", json=body, headers={"Authorization": "Basic " + KEY}) as r:
        assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    # nothing was created
    status, answer = await rig.call("GET", f"/api/v1/dossiers/{CODE}")
    assert status == 404 and answer["error"]["code"] == "unknown_dossier"
    # an event with a wrong key changes nothing either
    await rig.create()
    before = await rig.dossier()
    status, _ = await rig.call("POST", f"/api/v1/dossiers/{CODE}/events", {"id": "e1", "status": "processing"},
                               key="khoa-sai")
    assert status == 401
    assert await rig.dossier() == before
    # and the right key of another integrator works
    status, answer = await rig.call("GET", f"/api/v1/dossiers/{CODE}", key=OTHER_KEY)
    assert status == 200 and answer["dossier"]["version"] == before["version"]


async def test_many_wrong_keys_from_one_address_are_slowed_down(rig: Rig) -> None:
    statuses = [(await rig.call("GET", f"/api/v1/dossiers/{CODE}", key=f"doan-{i}"))[0] for i in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    # even the right key waits now: the address is refused before any key of it is looked at
    async with rig.http.get(f"{rig.url}/api/v1/dossiers/{CODE}", headers={"Authorization": f"Bearer {KEY}"}) as resp:
        answer = await resp.json()
        assert resp.status == 429 and answer["error"]["code"] == "rate_limited"
        retry = int(resp.headers["Retry-After"])
        assert 1 <= retry <= 60 and answer["retry_after_s"] == retry


async def test_the_same_code_twice_is_one_dossier(rig: Rig) -> None:
    body = {"code": CODE, "procedure": "Đăng ký khai sinh", "received_at": "2026-11-26T09:00:00+07:00",
            "due_at": "2026-11-27", "phone": "0912 345 678", "documents": ["Tờ khai", "Giấy chứng sinh"]}
    status, first = await rig.call("POST", "/api/v1/dossiers", body)
    assert status == 201, first
    assert first["code"] == CODE and re.fullmatch(r"[A-Za-z0-9_-]{16}", first["token"])
    assert first["url"] == f"{PUBLIC_URL}/hs/{CODE}?k={first['token']}"
    status, again = await rig.call("POST", "/api/v1/dossiers", {**body, "due_at": "2026-12-31"})
    assert status == 200 and again == first
    d = await rig.dossier()
    assert d["due_at"] == "2026-11-27" and d["source"] == "api" and d["has_phone"] is True
    assert d["documents"] == ["Tờ khai", "Giấy chứng sinh"] and "phone" not in d
    assert [e["status"] for e in d["timeline"]] == ["received"]


async def test_a_replayed_event_id_is_applied_once(rig: Rig) -> None:
    await rig.create()
    mark = rig.probe.mark()
    event = {"id": "evt-8812", "status": "processing", "at": "2026-11-27T08:30:00+07:00", "department": "Phòng Tư pháp"}
    status, first = await rig.event(**event)
    assert status == 200 and first == {"ok": True, "applied": True, "status": "processing"}
    status, again = await rig.event(**{**event, "department": "Phòng khác"})
    assert status == 200 and again == {"ok": True, "applied": False, "status": "processing"}
    d = await rig.dossier()
    assert [e["id"] for e in d["timeline"]] == ["received", "evt-8812"]
    assert d["department"] == "Phòng Tư pháp"
    published = await rig.probe.wait_topic(rig.topics.event("dossier"), start=mark)
    assert published["entry"]["id"] == "evt-8812" and published["entry"]["by"] == "api:motcua-tinh"
    assert len(rig.probe.since(mark, rig.topics.event("dossier"))) == 1


async def test_events_out_of_order_keep_the_timeline_in_time_order(rig: Rig) -> None:
    created = await rig.create(due_at="2026-12-04")
    for eid, status, at in (("e3", "done", "2026-11-30T10:00:00+07:00"),
                            ("e1", "processing", "2026-11-27T08:30:00+07:00"),
                            ("e2", "needs_documents", "2026-11-27T15:00:00+07:00")):
        assert (await rig.event(id=eid, status=status, at=at, note="Bản sao CCCD" if eid == "e2" else None,
                                department="Phòng Tư pháp" if eid == "e1" else None))[0] == 200
    status, page = await rig.status_page(created["url"])
    assert status == 200, page
    d = page["dossier"]
    assert [(e["status"], e["at"]) for e in d["timeline"]] == [
        ("received", "09:00 26/11/2026"), ("processing", "08:30 27/11/2026"),
        ("needs_documents", "15:00 27/11/2026"), ("done", "10:00 30/11/2026")]
    assert d["status_text"] == "Đã có kết quả"  # the latest in time, though not the last to arrive
    assert d["lateness"] == {"kind": "early", "text": "Trước hẹn"}


async def test_overdue_across_a_weekend_is_shown_as_late(rig: Rig) -> None:
    # due Friday 27/11/2026, the result came Monday 30/11: one working day late, not three days
    created = await rig.create(due_at="2026-11-27")
    assert (await rig.event(id="kq", status="done", at="2026-11-30T10:00:00+07:00"))[0] == 200
    _, page = await rig.status_page(created["url"])
    assert page["dossier"]["lateness"] == {"kind": "overdue", "text": "Trễ hẹn 1 ngày làm việc"}
    assert (await rig.dossier())["late_days"] == 1


async def test_bad_input_is_refused_and_changes_nothing(rig: Rig) -> None:
    await rig.create()
    before = await rig.dossier()
    cases: list[tuple[int, str, dict[str, Any] | None, bytes | None]] = [
        (400, "err_hs_status", {"id": "x", "status": "finished"}, None),
        (400, "", {"id": "x", "status": "done", "at": "hôm qua"}, None),
        (400, "", {"id": "", "status": "done"}, None),
        (400, "", {"id": "x", "status": "done", "colour": "red"}, None),
        (400, "", None, b"{not json"),
        (400, "", None, b"[1, 2]"),
        (413, "", None, b'{"id": "x", "note": "' + b"a" * 40_000 + b'"}'),
    ]
    for expected, _, body, raw in cases:
        status, answer = await rig.call("POST", f"/api/v1/dossiers/{CODE}/events", body, raw=raw)
        assert status == expected, (body, raw and raw[:40], answer)
        assert answer["ok"] is False and answer["error"]["message"] and answer["error"]["message_en"]
    status, answer = await rig.event(id="x", status="finished")
    assert answer["error"]["message"] == ("Trạng thái (status) phải là một trong: received, processing, "
                                          "needs_documents, done, returned, refused.")
    status, answer = await rig.call("POST", f"/api/v1/dossiers/{CODE}/events", {"id": "x", "status": "done"},
                                    content_type="text/plain")
    assert status == 415
    # a status without what it must say: who handles it, what to bring, why it was refused
    for body, message in (
            ({"id": "x", "status": "processing"},
             "Trạng thái processing cần “department”: phòng, ban đang xử lý hồ sơ."),
            ({"id": "x", "status": "processing", "note": "Đang thẩm định", "department": " "},
             "Trạng thái processing cần “department”: phòng, ban đang xử lý hồ sơ."),
            ({"id": "x", "status": "needs_documents", "department": "Phòng Tư pháp"},
             "Trạng thái needs_documents cần “note”: giấy tờ công dân cần bổ sung."),
            ({"id": "x", "status": "refused", "note": ""}, "Trạng thái refused cần “note”: lý do từ chối giải quyết.")):
        status, answer = await rig.event(**body)
        assert status == 400 and answer["error"]["message"] == message, (body, answer)
        assert answer["error"]["message_en"].startswith(f"The status {body['status']} needs")
    assert await rig.dossier() == before
    # an unknown dossier: 404, and none is made
    status, answer = await rig.event("KHONG-CO-1", id="x", status="done")
    assert status == 404 and answer["error"]["code"] == "unknown_dossier"
    # creations with bad parts
    for body in ({"code": "có dấu", "procedure": "A", "due_at": "2026-12-01"},
                 {"code": "A1", "procedure": "", "due_at": "2026-12-01"},
                 {"code": "A1", "procedure": "Thủ tục lạ", "received_at": "2026-11-26T09:00:00+07:00",
                  "due_at": "2026-11-25"},
                 {"code": "A1", "procedure": "Thủ tục lạ"},
                 {"code": "A1", "procedure": "A", "due_at": "2026-12-01", "phone": "12345"}):
        status, answer = await rig.call("POST", "/api/v1/dossiers", body)
        assert status == 400, (body, answer)
    assert (await rig.call("GET", "/api/v1/dossiers/A1"))[0] == 404


async def test_the_service_away_is_a_clear_503(broker: Broker, tmp_path: Path) -> None:
    async with rig_for(rig_site(tmp_path, broker), broker, tmp_path, service=False) as rig:
        status, answer = await rig.call("POST", "/api/v1/dossiers",
                                        {"code": CODE, "procedure": "A", "due_at": "2026-12-31"})
        assert status == 503 and answer["error"]["code"] == "unavailable"
        assert answer["error"]["message"] == "Dịch vụ hồ sơ không trả lời. Vui lòng thử lại sau ít phút."


# ---------------------------------------------------------------- the public page


async def test_the_page_needs_its_token(rig: Rig) -> None:
    created = await rig.create()
    good = f"/hs/{CODE}?k={created['token']}"
    async with rig.http.get(rig.url + good) as resp:
        html = await resp.text()
        assert resp.status == 200 and "Đăng ký khai sinh" in html and "27/11/2026" in html
    answers = []
    for path in (f"/hs/{CODE}", f"/hs/{CODE}?k=AAAAAAAAAAAAAAAA", f"/hs/{CODE[:-1]}2?k={created['token']}",
                 f"/hs/{CODE}/bien-nhan?k=sai", f"/hs/KHONG-CO?k={created['token']}"):
        async with rig.http.get(rig.url + path) as resp:
            answers.append((resp.status, await resp.text()))
    assert {status for status, _ in answers} == {404}
    # the same page for a wrong token and an unknown code: nothing tells whether a code exists
    assert len({re.sub(r"<html lang=\"vi\">", "", text) for _, text in answers}) == 1


# ---------------------------------------------------------------- in Chromium


async def run(*command: str) -> str:
    """A program's output; it must succeed."""
    proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, (command, err.decode(errors="replace"))
    return out.decode()


def local(url: str, rig: Rig) -> str:
    """A public address as this test server serves it."""
    return url.replace(PUBLIC_URL, rig.url)


async def test_the_page_updates_live(rig: Rig, chromium: Browser, tmp_path: Path) -> None:
    created = await rig.create(due_at="2026-12-04")
    phone = await chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    tab = await Tab.open(phone, local(created["url"], rig), "window.qmsDossier && window.qmsDossier.connected")
    assert await tab.text("#hs-status") == "Đã tiếp nhận"
    assert await tab.text("#hs-due") == "04/12/2026"
    await rig.event(id="e1", status="processing", at="2026-11-27T08:30:00+07:00", department="Phòng Tư pháp")
    await tab.until("document.getElementById('hs-status').textContent === 'Đang xử lý (Phòng Tư pháp)'")
    await rig.event(id="e0", status="needs_documents", at="2026-11-26T15:00:00+07:00", note="Bản sao CCCD")
    await tab.until("document.querySelectorAll('#hs-timeline li').length === 3")
    items = await tab.page.locator("#hs-timeline li .what").all_text_contents()
    assert items == ["Đã tiếp nhận", "Cần bổ sung", "Đang xử lý (Phòng Tư pháp)"]  # in time order
    assert await tab.text("#hs-status") == "Đang xử lý (Phòng Tư pháp)"
    assert await tab.page.locator("#hs-lateness").is_hidden()
    assert not tab.errors
    await tab.page.screenshot(path=str(tmp_path / "hs.png"), full_page=True)
    await phone.close()


async def test_the_a5_receipt_prints_to_pdf_with_a_qr_code_to_the_page(rig: Rig, chromium: Browser,
                                                                       tmp_path: Path) -> None:
    created = await rig.create(documents=["Tờ khai đăng ký khai sinh", "Giấy chứng sinh"])
    context = await chromium.new_context()
    page_url = created["url"]
    receipt = local(page_url.replace(f"/hs/{CODE}?", f"/hs/{CODE}/bien-nhan?"), rig)
    tab = await Tab.open(context, receipt)
    assert await tab.text("#rc-due") == "27/11/2026"
    assert await tab.page.locator("#rc-documents li").all_text_contents() == ["Tờ khai đăng ký khai sinh",
                                                                            "Giấy chứng sinh"]
    pdf = tmp_path / "bien-nhan.pdf"
    await tab.page.pdf(path=str(pdf), prefer_css_page_size=True)
    assert not tab.errors
    await context.close()
    info = await run("pdfinfo", str(pdf))
    assert re.search(r"Pages:\s+1\b", info), info
    width, height = map(float, re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info).groups())  # type: ignore[union-attr]
    assert abs(width - 419.5) < 2 and abs(height - 595.3) < 2  # A5: 148 × 210 mm
    await run("pdftoppm", "-r", "200", "-png", "-singlefile", str(pdf), str(tmp_path / "page"))
    decoded = await run("zbarimg", "-q", "--raw", str(tmp_path / "page.png"))
    assert decoded.splitlines() == [page_url]
    # every part the issue lists, in the PDF itself, with its marks: the office, the procedure,
    # the code, both dates, the documents
    text = " ".join((await run("pdftotext", str(pdf), "-")).split())
    office = load_site_config(rig.path).name
    for part in ("GIẤY BIÊN NHẬN HỒ SƠ", office, "Đăng ký khai sinh", CODE, "09:00 26/11/2026", "27/11/2026",
                 "Tờ khai đăng ký khai sinh", "Giấy chứng sinh"):
        assert part in text, (part, text)
    assert unicodedata.normalize("NFC", text) == text


async def test_the_console_records_a_dossier(rig: Rig, chromium: Browser, tmp_path: Path) -> None:
    assert (await rig.probe.request(rig.topics.cmd_ticket, {"request_id": new_id(), "field": "ho-tich"}))["ok"]
    office = await chromium.new_context(viewport={"width": 1366, "height": 1000})
    await office.add_init_script("window.open = (url) => { window.__opened = url; };")
    console = await log_in(office, rig.url, "canbo1", "/counter/2")
    await console.until("window.qmsConsole.view && window.qmsConsole.view.online && !window.qmsConsole.busy")
    await console.page.click("#a-call_next")
    await console.until("document.getElementById('number').textContent === '2001'")
    # without a procedure the officer writes its name; the phone goes only with consent
    await console.page.keyboard.press("d")
    await console.page.keyboard.type("H23.26-0042")
    await console.page.fill("#hs-procedure", "Chứng thực bản sao từ bản chính")
    await console.page.fill("#hs-due", "2026-12-31")
    await console.page.fill("#hs-docs-more", "Bản chính giấy khai sinh\nBản sao cần chứng thực")
    await console.page.fill("#hs-phone", "0912345678")
    await console.page.click("#a-dossier")
    await console.until("document.getElementById('hs-message').classList.contains('error')")
    assert await console.text("#hs-message") == ("Chỉ gửi số điện thoại khi công dân đồng ý: đánh dấu ô đồng ý, "
                                                 "hoặc xoá số.")
    await console.page.check("#hs-consent")
    await console.page.click("#a-dossier")
    await console.until("document.getElementById('hs-message').textContent.startsWith('Đã tiếp nhận')")
    assert await console.text("#hs-message") == "Đã tiếp nhận hồ sơ H23.26-0042, gắn với vé 2001."
    # the phone does not wait in the form for the next citizen
    assert await console.page.input_value("#hs-phone") == ""
    assert not await console.page.is_checked("#hs-consent")
    d = await rig.dossier("H23.26-0042")
    assert d["procedure"] == {"code": None, "name": "Chứng thực bản sao từ bản chính"}
    assert d["ticket"].endswith("-ho-tich-2001") and d["counter"] == "2" and d["officer"] == "Nguyễn Thị Hoa"
    assert d["field"] == "ho-tich" and d["source"] == "counter" and d["has_phone"] is True
    assert d["documents"] == ["Bản chính giấy khai sinh", "Bản sao cần chứng thực"] and d["due_at"] == "2026-12-31"
    # the core's ticket carries the code (the rating follows it)
    reply = await rig.probe.request(rig.topics.cmd_query, {"request_id": new_id(), "query": "ticket",
                                                           "ticket": d["ticket"]})
    assert reply["ticket"]["dossier"] == "H23.26-0042"
    # saved again: the same dossier
    await console.page.click("#a-dossier")
    await console.until("document.getElementById('hs-message').textContent.includes('trước đó')")
    # no receipt printer at counter 2: the A5 page opens for the browser to print
    await console.page.click("#hs-print")
    await console.until("!!window.__opened")
    opened = await console.page.evaluate("window.__opened")
    assert opened.startswith("/hs/H23.26-0042/bien-nhan?k=") and opened.endswith("&in=1")
    # and the officer moves it on
    await console.page.select_option("#hsu-status", "needs_documents")
    await console.page.fill("#hsu-note", "Bản sao sổ hộ khẩu")
    await console.page.click("#hsu-save")
    await console.until("document.getElementById('hs-message').textContent.includes('Cần bổ sung')")
    assert (await rig.dossier("H23.26-0042"))["needs"] == "Bản sao sổ hộ khẩu"
    # the next citizen: the form starts afresh
    assert (await rig.probe.request(rig.topics.cmd_ticket, {"request_id": new_id(), "field": "ho-tich"}))["ok"]
    await console.page.click("#a-call_next")
    await console.until("document.getElementById('number').textContent === '2002'")
    await console.until("document.getElementById('dossier').value === ''")
    assert await console.page.input_value("#hs-procedure") == "" and await console.page.input_value("#hs-due") == ""
    assert not console.errors
    await console.page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
    await office.close()


async def test_the_console_picks_a_procedure_from_the_catalogue(broker: Broker, tmp_path: Path,
                                                                chromium: Browser) -> None:
    catalogue = tmp_path / "thu-tuc.json"
    catalogue.write_text(json.dumps([{
        "code": "1.001193", "name": "Đăng ký khai sinh", "field": "Hộ tịch", "level": "Toàn trình",
        "processing_time": "3 ngày làm việc", "fees": "Miễn phí",
        "documents": ["Tờ khai đăng ký khai sinh", "Giấy chứng sinh"], "legal_basis": "Luật Hộ tịch 2014",
        "submit_at": "Bộ phận Một cửa"}], ensure_ascii=False), encoding="utf-8")
    path = rig_site(tmp_path, broker)
    await run(sys.executable, "-m", "display_server", "import-procedures", str(catalogue), "--config", str(path))
    async with rig_for(path, broker, tmp_path) as rig:
        assert (await rig.probe.request(rig.topics.cmd_ticket, {"request_id": new_id(), "field": "ho-tich"}))["ok"]
        office = await chromium.new_context(viewport={"width": 1366, "height": 1000})
        console = await log_in(office, rig.url, "canbo1", "/counter/2")
        await console.until("window.qmsConsole.view && window.qmsConsole.view.online && !window.qmsConsole.busy")
        await console.page.click("#a-call_next")
        await console.until("document.getElementById('number').textContent === '2001'")
        await console.page.fill("#dossier", "H23.26-0043")
        # received on a Thursday: three working days later is the Tuesday
        await console.page.fill("#hs-received", "2026-11-26T09:00")
        await console.page.locator("#hs-procedure").press_sequentially("khai sinh dang ky")
        await console.until("document.querySelector('#hs-procedures button[data-code=\"1.001193\"]') !== null")
        await console.page.click("#hs-procedures button[data-code='1.001193']")
        await console.until("document.getElementById('hs-due').value === '2026-12-01'")
        assert await console.page.locator("#hs-docs label").all_text_contents() == [
            " Tờ khai đăng ký khai sinh", " Giấy chứng sinh"]
        await console.page.uncheck("#hs-doc-1")
        await console.page.click("#a-dossier")
        await console.until("document.getElementById('hs-message').textContent.startsWith('Đã tiếp nhận')")
        d = await rig.dossier("H23.26-0043")
        assert d["procedure"] == {"code": "1.001193", "name": "Đăng ký khai sinh"}
        assert d["documents"] == ["Tờ khai đăng ký khai sinh"] and d["due_at"] == "2026-12-01"
        assert d["received_at"].startswith("2026-11-26T09:00:00")
        # the API finds it by its code too, and counts the promised day itself
        status, answer = await rig.call("POST", "/api/v1/dossiers", {"code": "ONLINE-1", "procedure": "1.001193",
                                                                     "received_at": "2026-11-27T16:00:00+07:00"})
        assert status == 201, answer
        online = await rig.dossier("ONLINE-1")
        assert online["due_at"] == "2026-12-02" and online["procedure"]["code"] == "1.001193"
        assert online["field"] == "ho-tich"
        assert not console.errors
        await office.close()


async def test_the_kiosk_reads_a_scanned_receipt(rig: Rig, chromium: Browser, tmp_path: Path) -> None:
    created = await rig.create()
    await rig.event(id="kq", status="done", at="2026-11-30T10:00:00+07:00")
    kiosk = await chromium.new_context(viewport={"width": 1080, "height": 1920}, has_touch=True)
    tab = await Tab.open(kiosk, rig.url + "/kiosk/ho-so?id=kiosk-1", "window.qmsKioskDossier !== undefined")
    # this Chromium has no camera: no camera button (tests/test_kiosk_camera_browser.py has one)
    assert await tab.page.locator("#camera").is_hidden()
    # the scanner types the receipt's address and Enter into the focused box: the whole page's model
    await tab.page.keyboard.type(created["url"] + "\n")
    await tab.until("!document.getElementById('result').hidden")
    assert await tab.text("#hs-status") == "Đã có kết quả"
    assert await tab.text("#hs-lateness") == "Trễ hẹn 1 ngày làm việc"
    assert await tab.text("#hs-procedure") == "Đăng ký khai sinh"
    assert await tab.page.locator("#hs-timeline li").count() == 2
    assert await tab.page.evaluate("window.qmsKioskDossier.summary") is False
    await tab.page.screenshot(path=str(tmp_path / "kiosk.png"))
    # a forged token: not found
    await tab.page.click("#again")
    await tab.page.keyboard.type(created["url"][:-3] + "abc\n")
    await tab.until("document.getElementById('ask-message').textContent.startsWith('Không tìm thấy')")
    assert not tab.errors
    await kiosk.close()


async def test_the_kiosk_looks_up_a_code_typed_on_its_screen_keys(rig: Rig, chromium: Browser,
                                                                    tmp_path: Path) -> None:
    await rig.create(due_at="2026-12-04")
    await rig.event(id="e1", status="processing", at="2026-11-27T08:30:00+07:00", department="Phòng Tư pháp")
    kiosk = await chromium.new_context(viewport={"width": 1080, "height": 1920}, has_touch=True)
    tab = await Tab.open(kiosk, rig.url + "/kiosk/ho-so?id=kiosk-1", "window.qmsKioskDossier !== undefined")
    page = tab.page

    async def tap_code(code: str) -> None:
        for ch in code:
            await page.tap(f"#hs-keys [data-key='{ch}']")

    # a slip of the finger, taken back with ⌫
    await tap_code(CODE[:-1] + "9")
    await page.tap("#hs-backspace")
    await tap_code(CODE[-1])
    assert await page.input_value("#scan") == CODE
    await page.screenshot(path=str(tmp_path / "kiosk-keys.png"))
    await page.tap("#scan-go")
    await tab.until("!document.getElementById('result').hidden")
    # the status and the dates, without the department, the timeline or the way to the page
    assert await tab.text("#hs-status") == "Đang xử lý"
    assert await tab.text("#hs-code") == CODE and await tab.text("#hs-due") == "04/12/2026"
    assert await tab.text("#hs-procedure") == "Đăng ký khai sinh"
    assert await page.locator("#hs-timeline").count() == 0
    assert "Phòng Tư pháp" not in await tab.text("#result")
    assert (await tab.text("#hs-summary-note")).startswith("Muốn xem toàn bộ quá trình xử lý")
    assert await page.evaluate("window.qmsKioskDossier.summary") is True
    await page.screenshot(path=str(tmp_path / "kiosk-typed.png"))
    # an unknown code: not found, and the code stays in the box to be corrected
    await page.tap("#again")
    await tab.until("!document.getElementById('ask').hidden")
    await tap_code("H23-0000")
    await page.tap("#scan-go")
    await tab.until("document.getElementById('ask-message').textContent.startsWith('Không tìm thấy hồ sơ')")
    assert await page.input_value("#scan") == "H23-0000"
    await page.tap("#hs-clear")
    assert await page.input_value("#scan") == ""
    # something that cannot be a code says what a code is
    await page.keyboard.type("mã?\n")
    await tab.until("document.getElementById('ask-message').textContent.startsWith('Mã hồ sơ gồm chữ')")
    assert await page.locator("#result").is_hidden()
    assert not tab.errors
    await kiosk.close()


async def test_a_kiosk_not_listed_is_refused(rig: Rig) -> None:
    async with rig.http.get(rig.url + "/kiosk/ho-so?id=la-may") as resp:
        assert resp.status == 403
    await rig.create()
    await rig.probe.subscribe(rig.topics.cmd_dossier)
    mark = rig.probe.mark()
    # nor does its typed code reach the dossier service
    status, answer = await rig.call("POST", "/api/kiosk/dossier", {"kiosk": "la-may", "code": CODE}, key=None)
    assert status == 403 and answer["error"]["code"] == "forbidden", answer
    assert answer["error"]["message"].startswith("Ki-ốt này không có trong cấu hình")
    status, answer = await rig.call("POST", "/api/kiosk/dossier", {"kiosk": "Ki ốt", "code": CODE}, key=None)
    assert status == 400, answer
    # the web's next command to the service is the first since
    await rig.dossier()
    await rig.probe.wait_topic(rig.topics.cmd_dossier, start=mark)
    assert len(rig.probe.since(mark, rig.topics.cmd_dossier)) == 1


# ---------------------------------------------------------------- the kiosk's typed code


async def kiosk_lookup(rig: Rig, code: str, kiosk: str = "kiosk-1") -> tuple[int, dict[str, Any], dict[str, str]]:
    async with rig.http.post(rig.url + "/api/kiosk/dossier", json={"kiosk": kiosk, "code": code}) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def test_a_typed_code_answers_a_summary_without_notes_departments_or_token(rig: Rig) -> None:
    created = await rig.create(due_at="2026-11-27", documents=["Tờ khai đăng ký khai sinh"], phone="0912345678")
    assert (await rig.event(id="e1", status="processing", at="2026-11-26T10:00:00+07:00",
                            department="Phòng Tư pháp", note="Cán bộ Hoa đang thẩm định"))[0] == 200
    assert (await rig.event(id="e2", status="needs_documents", at="2026-11-27T09:00:00+07:00",
                            note="Bản sao CCCD của người mẹ"))[0] == 200
    status, answer, _ = await kiosk_lookup(rig, " 000.00.12.H23 - 261126-0001 ")  # spaces are dropped
    assert status == 200, answer
    d = answer["dossier"]
    assert set(d) == {"code", "procedure", "received", "due", "status", "status_text", "lateness", "needs"}
    assert d["code"] == CODE and d["procedure"] == "Đăng ký khai sinh"
    assert d["received"] == "26/11/2026" and d["due"] == "27/11/2026"
    assert d["status"] == "needs_documents" and d["needs"] == "Bản sao CCCD của người mẹ"
    assert d["status_text"] == "Cần bổ sung: Bản sao CCCD của người mẹ"
    assert d["lateness"]["kind"] == "overdue" and d["lateness"]["text"].startswith("Trễ hẹn")
    # nothing of the timeline, the department, the officer, the phone or the receipt's address
    text = json.dumps(answer, ensure_ascii=False)
    for secret in ("Phòng Tư pháp", "thẩm định", created["token"], "/hs/", "0912345678", "84912345678",
                   "timeline", "department", "officer", "phone", "ticket", "Tờ khai"):
        assert secret not in text, secret
    # a refusal's reason is a note as well; the status is all a typed code gets
    assert (await rig.event(id="e3", status="refused", at="2026-11-30T09:00:00+07:00",
                            note="Hồ sơ giả mạo chữ ký"))[0] == 200
    _, answer, _ = await kiosk_lookup(rig, CODE)
    assert answer["dossier"]["status_text"] == "Từ chối" and answer["dossier"]["needs"] is None
    assert "giả mạo" not in json.dumps(answer, ensure_ascii=False)
    # typed in small letters on a keyboard: the code as the office wrote it
    _, answer, _ = await kiosk_lookup(rig, CODE.lower())
    assert answer["dossier"]["code"] == CODE
    # an unknown code: the page's "not found"; a code that cannot be one: why
    status, answer, _ = await kiosk_lookup(rig, "000.00.12.H23-261126-0002")
    assert status == 404 and answer["error"]["code"] == "unknown_dossier"
    assert answer["error"]["message"] == "Không tìm thấy hồ sơ. Xin quét lại mã QR trên giấy biên nhận."
    for bad in ("mã có dấu", "", "A" * 65, 42):
        status, answer, _ = await kiosk_lookup(rig, bad)  # type: ignore[arg-type]
        assert status == 400 and answer["error"]["message"].startswith("Mã hồ sơ gồm chữ, số"), (bad, answer)
    async with rig.http.post(rig.url + "/api/kiosk/dossier", json={"kiosk": "kiosk-1", "code": CODE, "k": "x"}) as r:
        assert r.status == 400


async def test_typed_codes_are_limited_per_kiosk_and_per_address(rig: Rig) -> None:
    await rig.create()
    await rig.probe.subscribe(rig.topics.cmd_dossier)
    # guesses, as a script would make them: ten a minute on a kiosk
    guesses = [f"000.00.12.H23-261126-{n:04d}" for n in range(2, 12)]
    for code in guesses:
        status, answer, _ = await kiosk_lookup(rig, code)
        assert status == 404, answer
    before = await rig.dossier()
    mark = rig.probe.mark()
    status, answer, headers = await kiosk_lookup(rig, CODE)  # even a real code waits now
    assert status == 429 and answer["error"]["code"] == "rate_limited", answer
    assert answer["error"]["message"].startswith("Đã có quá nhiều lượt tra cứu hồ sơ trong một phút.")
    assert 1 <= int(headers["Retry-After"]) <= 60
    # refused before the dossier service is asked (the web's next command is the first since), and
    # nothing changed
    assert await rig.dossier() == before
    await rig.probe.wait_topic(rig.topics.cmd_dossier, start=mark)
    assert [m.json["action"] for m in rig.probe.since(mark, rig.topics.cmd_dossier)] == ["get"]
    # another kiosk has its own ten; the address has twenty in all
    for _ in range(10):
        status, answer, _ = await kiosk_lookup(rig, CODE, "kiosk-2")
        assert status == 200, answer
    status, answer, _ = await kiosk_lookup(rig, CODE, "kiosk")
    assert status == 429 and answer["error"]["code"] == "rate_limited", answer


async def test_all_kiosks_together_have_the_site_s_look_ups(broker: Broker, tmp_path: Path) -> None:
    path = rig_site(tmp_path, broker, "[kiosk]\nsite_dossier_lookups_per_minute = 3\n")
    async with rig_for(path, broker, tmp_path) as rig:
        await rig.create()
        for kiosk in ("kiosk-1", "kiosk-2", "kiosk"):
            status, answer, _ = await kiosk_lookup(rig, CODE, kiosk)
            assert status == 200, answer
        status, answer, _ = await kiosk_lookup(rig, CODE, "kiosk-2")
        assert status == 429 and answer["error"]["code"] == "rate_limited", answer
    # a kiosk without "Tra cứu hồ sơ" looks nothing up
    other = tmp_path / "other"
    other.mkdir()
    path = rig_site(other, broker, '[kiosk]\nfunctions = ["ticket", "procedures"]\n')
    async with rig_for(path, broker, other) as rig:
        await rig.create()
        status, answer, _ = await kiosk_lookup(rig, CODE)
        assert status == 403 and answer["error"]["message"] == "Ki-ốt này không tra cứu hồ sơ.", answer


async def test_the_console_prints_the_receipt_on_the_counter_s_printer(broker: Broker, tmp_path: Path) -> None:
    device = tmp_path / "lp-quay-1"
    device.write_bytes(b"")
    path = rig_site(tmp_path, broker, f'[[receipt_printers]]\ntype = "file"\ndevice = "{device}"\ncounters = ["1"]\n')
    async with rig_for(path, broker, tmp_path) as rig, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as officer:
        created = await rig.create(documents=["Tờ khai đăng ký khai sinh"])
        assert (await login(officer, rig.url, "canbo1")).status == 303
        csrf = await csrf_of(officer, rig.url + "/counter/1")
        async with officer.post(rig.url + "/api/counter/1/receipt", json={"code": CODE},
                                headers={"X-CSRF-Token": csrf}) as resp:
            answer = await resp.json()
        assert resp.status == 200 and answer["mode"] == "escpos" and answer["print"]["ok"], answer
        assert answer["message"] == f"Đã in giấy biên nhận hồ sơ {CODE}."
        # what reached the printer: raster images (GS v 0) then the cut; its QR code is the page's
        width, height, rows, rest = parse_raster_prints(device.read_bytes())
        assert width == 576 // 8 and rest == b"\x1bd\x06\x1dV\x00"
        image = ImageOps.invert(Image.frombytes("1", (width * 8, height), rows).convert("L"))
        image.save(tmp_path / "printed.png")
        assert (await run("zbarimg", "-q", "--raw", str(tmp_path / "printed.png"))).splitlines() == [created["url"]]
        # counter 2 has no receipt printer: the browser prints the A5 page
        csrf2 = await csrf_of(officer, rig.url + "/counter/2")
        async with officer.post(rig.url + "/api/counter/2/receipt", json={"code": CODE},
                                headers={"X-CSRF-Token": csrf2}) as resp:
            answer = await resp.json()
        assert answer["mode"] == "browser" and answer["url"] == f"/hs/{CODE}/bien-nhan?k={created['token']}&in=1"
        # an officer cannot print at another's counter; a missing CSRF token is refused
        async with officer.post(rig.url + "/api/counter/3/receipt", json={"code": CODE},
                                headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == 403
        async with officer.post(rig.url + "/api/counter/1/receipt", json={"code": CODE}) as resp:
            assert resp.status == 403


async def test_a_code_with_slashes_has_its_page_receipt_and_events(rig: Rig) -> None:
    code = "12/2026/ws"  # codes like "12/2026/…" are common; this one's page is not the feed of "12/2026"
    created = await rig.create(code)
    assert created["url"] == f"{PUBLIC_URL}/hs/{code}?k={created['token']}"
    status, answer = await rig.event(code, id="e1", status="processing", department="Văn phòng")
    assert status == 200 and answer["applied"], answer
    for suffix, marker in (("", "Đang xử lý (Văn phòng)"), ("/bien-nhan", "GIẤY BIÊN NHẬN HỒ SƠ")):
        async with rig.http.get(f"{rig.url}/hs/{code}{suffix}?k={created['token']}") as resp:
            assert resp.status == 200 and marker in await resp.text()
    # the feed of the code "12/2026" would need that code's token
    async with rig.http.get(f"{rig.url}/hs/12/2026/bien-nhan?k={created['token']}") as resp:
        assert resp.status == 404


async def test_the_console_says_why_when_no_ticket_takes_the_code(rig: Rig) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as officer:
        assert (await login(officer, rig.url, "canbo3")).status == 303
        csrf = await csrf_of(officer, rig.url + "/counter/3")
        body = {"code": "H23.26-0099", "procedure": {"name": "Chứng thực chữ ký"}, "due_at": "2099-01-01",
                "request_id": new_id()}
        async with officer.post(rig.url + "/api/counter/3/dossier", json=body, headers={"X-CSRF-Token": csrf}) as resp:
            answer = await resp.json()
        # counter 3 serves nobody: the core refuses, and no dossier is made
        assert resp.status == 409, answer
        assert answer["error"]["message"].startswith("Chưa gắn được mã hồ sơ vào vé đang phục vụ: ")
        assert (await rig.call("GET", "/api/v1/dossiers/H23.26-0099"))[0] == 404
        # a status the console does not set, and a refusal without its reason
        for event, words in (({"status": "received"}, "Trạng thái"), ({"status": "refused"}, "lý do từ chối")):
            async with officer.post(rig.url + "/api/counter/3/dossier-event", json={"code": CODE, **event},
                                    headers={"X-CSRF-Token": csrf}) as resp:
                answer = await resp.json()
            assert resp.status == 400 and words in answer["error"]["message"], answer
