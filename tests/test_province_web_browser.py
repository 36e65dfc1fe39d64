"""The province dashboard in real headless Chromium: the login form, every office in Vietnamese
as written (no mojibake), an office's live view following its state without a reload."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser

from province.store import ProvinceStore
from tests.test_province_web import PASSWORD, Office, app_of, province_settings, safe_past
from tests.test_web_browser import WAIT_MS, Tab


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[ProvinceStore]:
    s = await ProvinceStore.open(pg_dsn)
    await s.ensure_sites([(x.id, x.name, x.district) for x in province_settings().sites])
    yield s
    await s.close()


@pytest.fixture
async def base(store: ProvinceStore) -> AsyncIterator[str]:
    server = TestServer(app_of(store), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def test_the_dashboard_in_chromium(chromium: Browser, store: ProvinceStore, base: str, tmp_path: Path) -> None:
    office = Office(store, "xa-hoa-binh")
    await office.presence(True)
    await office.queue("dat-dai", "Đất đai", 1)
    await office.counter("1", "open", officer="Nguyễn Thị Hoa")
    waiting = await office.ticket(safe_past(10))

    context = await chromium.new_context(viewport={"width": 1600, "height": 1000})
    tab = await Tab.open(context, base + "/")
    assert tab.page.url.startswith(base + "/dang-nhap?next="), tab.page.url
    await tab.page.fill("#username", "tinh")
    await tab.page.fill("#password", "sai")
    await tab.page.click("#login")
    await tab.until("document.getElementById('message') !== null")
    assert await tab.text("#message") == "Sai tên đăng nhập hoặc mật khẩu."
    await tab.page.fill("#password", PASSWORD)
    await tab.page.click("#login")
    await tab.page.wait_for_url(base + "/", timeout=WAIT_MS)

    assert await tab.page.evaluate("document.characterSet") == "UTF-8"
    assert await tab.text("h1") == "Các điểm một cửa"
    name = await tab.text("tr[data-site='xa-hoa-binh'] td a")
    assert name == "UBND xã Hòa Bình" and unicodedata.is_normalized("NFC", name)
    assert await tab.text("tr[data-site='phuong-tan-an'] td:nth-child(2)") == "Thành phố Hải Đông"
    assert await tab.text("tr[data-site='xa-an-phu'] .presence") == "ngoại tuyến (chưa từng kết nối)"
    assert await tab.text("tr[data-site='xa-hoa-binh'] .presence") == "Trực tuyến"
    # no mojibake anywhere: the UTF-8 of Vietnamese read as Latin-1 shows "Ã" or "á»"
    body = await tab.page.inner_text("body")
    assert "Ã" not in body and "á»" not in body and "Đông Sơn" in body
    await tab.page.screenshot(path=str(tmp_path / "dashboard.png"))

    # the district filter, then the office's live view
    await tab.page.select_option("#district", "Huyện Đông Sơn")
    await tab.page.click("form.filter button")
    await tab.until("document.querySelectorAll('#offices tbody tr').length === 2")
    await tab.page.click("tr[data-site='xa-hoa-binh'] td a")
    await tab.page.wait_for_url(base + "/diem/xa-hoa-binh", timeout=WAIT_MS)
    assert await tab.text("#name") == "UBND xã Hòa Bình"
    assert await tab.text("#counters tr[data-counter='1'] .s") == "Mở, chưa phục vụ"

    # the counter calls the waiting ticket: the page follows on its next poll, without a reload
    await tab.page.evaluate("window.__same_page = true")
    waiting.update(status="serving", counter="1", calls=1, called_at=waiting["issued_at"])
    await office.counter("1", "serving", ticket=waiting, officer="Nguyễn Thị Hoa")
    await office.queue("dat-dai", "Đất đai", 0)
    await tab.until(f"document.querySelector(\"#counters tr[data-counter='1'] .t\").textContent === "
                    f"'{waiting['number']}'")
    assert await tab.text("#counters tr[data-counter='1'] .s") == "Đang phục vụ"
    assert await tab.text("#queues tr[data-field='dat-dai'] .w") == "0"
    assert await tab.text("#queues tr[data-field='dat-dai'] .l") == "—"  # nobody waits: no longest wait
    assert await tab.page.evaluate("window.__same_page === true && window.qmsProvinceSite.polls >= 1")
    await tab.page.screenshot(path=str(tmp_path / "site.png"))

    # the report of this month, from the bar
    await tab.page.click("nav a[href='/bao-cao']")
    await tab.page.wait_for_url(base + "/bao-cao", timeout=WAIT_MS)
    assert await tab.text("h1") == "Báo cáo chỉ số phục vụ (Quyết định 766)"
    assert await tab.text("#report tr[data-site='xa-hoa-binh'] .issued") == "1"
    await tab.page.screenshot(path=str(tmp_path / "report.png"))
    assert tab.errors == []
    await context.close()
