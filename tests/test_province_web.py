"""The province dashboard, its JSON API and its cross-office 766 reports, on a real PostgreSQL with
a real ProvinceStore fed the way the aggregator feeds it (store.write of office messages), through
aiohttp's test client on a real socket."""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import socket
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openpyxl import load_workbook

from display_server.accounts.store import hash_password
from display_server.settings import SecuritySettings
from province.settings import ConfigError, ProvinceSettings, parse_province
from province.store import Message, ProvinceStore
from province.web.app import make_app

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
PASSWORD = "Mật-khẩu-tỉnh-1"
API_KEY = "khoa-bi-mat-cua-tinh-0123456789"
HASH = hash_password(PASSWORD)

PROVINCE_TOML = f"""
[province]
id = "tinh-demo"
name = "Tỉnh Hòa Bình Thử Nghiệm"
[mqtt]
url = "mqtt://province:secret@127.0.0.1:1883"
[postgres]
dsn = "postgresql://qms@127.0.0.1:5432/x"
[[sites]]
id = "xa-hoa-binh"
name = "UBND xã Hòa Bình"
district = "Huyện Đông Sơn"
[[sites]]
id = "xa-an-phu"
name = "UBND xã An Phú"
district = "Huyện Đông Sơn"
[[sites]]
id = "phuong-tan-an"
name = "UBND phường Tân An"
district = "Thành phố Hải Đông"
[[accounts]]
username = "tinh"
password_hash = "{HASH}"
role = "province"
[[api_keys]]
name = "so-noi-vu"
key_sha256 = "{hashlib.sha256(API_KEY.encode()).hexdigest()}"
"""


def province_settings(text: str = PROVINCE_TOML) -> ProvinceSettings:
    return parse_province(Path("province.toml"), tomllib.loads(text))


def iso(t: datetime) -> str:
    return t.astimezone(TZ).isoformat(timespec="seconds")


@dataclass
class Office:
    """One office's messages as its bridge forwards them, written as the aggregator writes them."""
    store: ProvinceStore
    site: str
    seq: int = 0
    numbers: dict[str, int] = field(default_factory=dict)

    async def send(self, topic: str, body: dict[str, Any], at: datetime | None = None) -> None:
        self.seq += 1
        assert await self.store.write(Message(self.site, topic, {
            **body, "seq": self.seq, "at": iso(at or datetime.now(TZ))}))

    async def presence(self, online: bool) -> None:
        await self.store.write(Message(self.site, "status/core", "online" if online else "offline"))

    async def queue(self, field_id: str, name: str, waiting: int) -> None:
        await self.send(f"state/queue/{field_id}", {"field": field_id, "name": name, "waiting": waiting,
                                                    "priority_waiting": 0, "next": [], "served": 0,
                                                    "avg_wait_s": None, "est_wait_s": 0, "awaiting_checkin": 0})

    async def counter(self, counter: str, status: str, ticket: dict[str, Any] | None = None,
                      officer: str | None = None) -> None:
        await self.send(f"state/counter/{counter}", {"counter": counter, "name": f"Quầy {counter}", "status": status,
                                                     "ticket": ticket, "officer": officer, "fields": ["dat-dai"],
                                                     "since": iso(datetime.now(TZ))})

    async def ticket(self, issued: datetime, *, field_id: str = "dat-dai", status: str = "waiting",
                     wait_s: int | None = None, rating: int | None = None, dossier: str | None = None,
                     counter: str = "1") -> dict[str, Any]:
        """A ticket through its life: issued, then called after wait_s, then finished and rated."""
        n = self.numbers[field_id] = self.numbers.get(field_id, 1000) + 1
        day = issued.astimezone(TZ).strftime("%Y%m%d")
        t: dict[str, Any] = {"id": f"{day}-{field_id}-{n}", "number": str(n), "field": field_id, "priority": False,
                             "status": "waiting", "issued_at": iso(issued), "called_at": None,
                             "finished_at": None, "counter": None, "calls": 0, "rating": None, "via": "kiosk",
                             "dossier": dossier}
        await self.send("event/issued", {"kind": "issued", "ticket": dict(t)}, issued)
        if status == "waiting":
            return t
        called = issued + timedelta(seconds=wait_s or 0)
        t.update(status="serving", called_at=iso(called), counter=counter, calls=1)
        await self.send("event/called", {"kind": "called", "ticket": dict(t), "counter": counter}, called)
        if status == "serving":
            return t
        finished = called + timedelta(minutes=5)
        t.update(status=status, finished_at=iso(finished))
        await self.send("event/finished", {"kind": "finished", "ticket": dict(t), "counter": counter}, finished)
        if rating is not None:
            t.update(rating=rating)
            await self.send("event/rated", {"kind": "rated", "ticket": dict(t), "counter": counter}, finished)
        return t


async def add_dossier(store: ProvinceStore, site: str, code: str, received: datetime,
                      due: datetime | None = None, done: datetime | None = None) -> None:
    # the aggregator's rows of a dossier fed from event/dossier, written directly
    await store.pool.execute(
        "INSERT INTO dossiers (site, code, procedure, status, received_at, due_at, done_at, updated_at) "
        "VALUES ($1, $2, '1.000894', $3, $4, $5, $6, now())", site, code, "done" if done else "processing",
        received, due, done)


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[ProvinceStore]:
    s = await ProvinceStore.open(pg_dsn)
    settings = province_settings()
    await s.ensure_sites([(x.id, x.name, x.district) for x in settings.sites])
    yield s
    await s.close()


def app_of(store: ProvinceStore, settings: ProvinceSettings | None = None,
           security: SecuritySettings | None = None) -> web.Application:
    return make_app(settings or province_settings(), store, security)


@pytest.fixture
async def client(store: ProvinceStore) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(app_of(store), host="127.0.0.1")) as c:
        yield c


async def log_in(c: TestClient[web.Request, web.Application], username: str = "tinh",
                 password: str = PASSWORD, nxt: str = "/") -> aiohttp.ClientResponse:
    form = await c.get("/dang-nhap")
    token = re.search(r'name="csrf" value="([^"]+)"', await form.text())
    assert token is not None
    return await c.post("/dang-nhap", data={"csrf": token.group(1), "username": username, "password": password,
                                            "next": nxt}, allow_redirects=False)


def local_non_loopback_address() -> str | None:
    """This machine's address on its outward interface (no packet is sent: a UDP socket is only
    pointed there), to reach the server as a peer that is not loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@contextlib.asynccontextmanager
async def remote_client(app: web.Application) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A client the server sees as a peer that is not loopback: over the machine's outward
    address when it has one, else (a machine with loopback alone) through a first middleware that
    gives the request another peer address: the narrowest seam, where aiohttp reads the peer."""
    address = local_non_loopback_address()
    if address is None:
        @web.middleware
        async def elsewhere(request: web.Request, handler: Any) -> web.StreamResponse:
            return await handler(request.clone(remote="203.0.113.9"))

        app.middlewares.insert(0, elsewhere)
    async with TestClient(TestServer(app, host=address or "127.0.0.1")) as c:
        yield c


def cells(html: str, site: str, cls: str) -> str:
    """The text of one cell of an office's row (class `cls`), tags removed."""
    row = re.search(rf'<tr data-site="{site}"[^>]*>(.*?)</tr>', html, re.S)
    assert row is not None, site
    cell = re.search(rf'<td class="[^"]*\b{cls}\b[^"]*"[^>]*>(.*?)</td>', row.group(1), re.S)
    assert cell is not None, (site, cls)
    return re.sub(r"<[^>]+>", "", cell.group(1)).strip()


def safe_past(minutes: int) -> datetime:
    """`minutes` ago, but never before today's midnight (a test run just after it stays today)."""
    now = datetime.now(TZ)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return max(now - timedelta(minutes=minutes), midnight + (now - midnight) / 2)


# ------------------------------------------------------------------ settings


def test_api_keys_and_timezone_are_read_strictly() -> None:
    s = province_settings()
    assert s.timezone == "Asia/Ho_Chi_Minh" and s.api_keys.find(API_KEY) is not None
    assert s.api_keys.find("khoa-sai") is None
    with pytest.raises(ConfigError) as bad_key:
        province_settings(PROVINCE_TOML.replace('key_sha256 = "', 'key_sha256 = "zz'))
    assert bad_key.value.key == "api_keys[1].key_sha256" and "SHA-256" in str(bad_key.value)
    with pytest.raises(ConfigError) as bad_tz:
        province_settings(PROVINCE_TOML.replace('name = "Tỉnh Hòa Bình Thử Nghiệm"',
                                                'name = "Tỉnh Hòa Bình Thử Nghiệm"\ntimezone = "Asia/Hà_Nội"'))
    assert bad_tz.value.key == "province.timezone" and "múi giờ" in str(bad_tz.value)


async def test_an_unreadable_password_hash_stops_the_app_naming_the_key(store: ProvinceStore) -> None:
    with pytest.raises(ConfigError) as info:
        app_of(store, province_settings(PROVINCE_TOML.replace(HASH, "scrypt$x")))
    assert info.value.key == "accounts[1].password_hash"
    assert str(info.value).startswith("Lỗi cấu hình province.toml")


# ------------------------------------------------------------------ login and sessions


async def test_pages_need_a_login_and_a_right_password_opens_them(client: TestClient[Any, Any]) -> None:
    for path in ("/", "/diem/xa-hoa-binh", "/bao-cao", "/bao-cao/export.xlsx", "/?district=x"):
        r = await client.get(path, allow_redirects=False)
        assert r.status == 302 and r.headers["Location"].startswith("/dang-nhap?next="), path
    live = await client.get("/diem/xa-hoa-binh/trang-thai.json")
    assert live.status == 401 and "đăng nhập" in (await live.json())["error"]["message"]

    wrong = await log_in(client, password="sai-mat-khau")
    assert wrong.status == 401 and "Sai tên đăng nhập hoặc mật khẩu." in await wrong.text()
    assert (await client.get("/", allow_redirects=False)).status == 302  # still no session

    ok = await log_in(client, nxt="/bao-cao")
    assert ok.status == 303 and ok.headers["Location"] == "/bao-cao"
    page = await client.get("/")
    assert page.status == 200 and "Các điểm một cửa" in await page.text()

    # out: the session ends (the form carries the session's CSRF token)
    csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert csrf is not None
    refused = await client.post("/dang-xuat", data={"csrf": "sai"}, allow_redirects=False)
    assert refused.status == 403 and (await client.get("/", allow_redirects=False)).status == 200
    out = await client.post("/dang-xuat", data={"csrf": csrf.group(1)}, allow_redirects=False)
    assert out.status == 303 and (await client.get("/", allow_redirects=False)).status == 302


async def test_a_login_form_from_elsewhere_or_without_its_token_is_refused(client: TestClient[Any, Any]) -> None:
    no_token = await client.post("/dang-nhap", data={"username": "tinh", "password": PASSWORD},
                                 allow_redirects=False)
    assert no_token.status == 403 and "hết hạn" in await no_token.text()
    other_site = await client.post("/dang-nhap", data={"username": "tinh", "password": PASSWORD},
                                    headers={"Origin": "http://evil.example"}, allow_redirects=False)
    assert other_site.status == 400
    assert (await client.get("/", allow_redirects=False)).status == 302


async def test_wrong_passwords_are_limited_per_user_name(store: ProvinceStore) -> None:
    security = SecuritySettings(login_failures=3, login_window_s=600)
    async with TestClient(TestServer(app_of(store, security=security), host="127.0.0.1")) as c:
        for _ in range(3):
            assert (await log_in(c, password="sai")).status == 401
        limited = await log_in(c)  # even the right password waits now
        assert limited.status == 429 and "Đăng nhập sai quá nhiều lần" in await limited.text()
        assert (await c.get("/", allow_redirects=False)).status == 302


async def test_an_open_redirect_after_login_goes_home_instead(client: TestClient[Any, Any]) -> None:
    r = await log_in(client, nxt="//evil.example/x")
    assert r.status == 303 and r.headers["Location"] == "/"


# ------------------------------------------------------------------ the API


async def test_the_api_answers_loopback_without_a_session(client: TestClient[Any, Any], store: ProvinceStore) -> None:
    office = Office(store, "xa-hoa-binh")
    await office.presence(True)
    await office.queue("dat-dai", "Đất đai", 3)
    await office.ticket(safe_past(30), status="done", wait_s=60, rating=3)
    r = await client.get("/api/v1/sites")
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    entries = {e["site"]: e for e in await r.json()}
    assert list(entries) == ["xa-hoa-binh", "xa-an-phu", "phuong-tan-an"]  # province.toml's order
    assert entries["xa-hoa-binh"] == {
        "site": "xa-hoa-binh", "name": "UBND xã Hòa Bình", "district": "Huyện Đông Sơn", "online": True,
        "offline_since": None, "waiting": 3, "issued_today": 1, "served_today": 1, "satisfaction": 100.0}
    assert entries["xa-an-phu"]["online"] is False and entries["xa-an-phu"]["satisfaction"] is None
    # a request a proxy on this machine forwarded is not local: its client is elsewhere
    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
        assert (await client.get("/api/v1/sites", headers={header: "203.0.113.9"})).status == 401, header


async def test_the_api_elsewhere_needs_a_key_or_a_session(store: ProvinceStore) -> None:
    async with remote_client(app_of(store)) as c:
        none = await c.get("/api/v1/sites", headers={"X-Forwarded-For": "127.0.0.1"})
        assert none.status == 401 and none.headers["WWW-Authenticate"].startswith("Bearer")
        body = await none.json()
        assert body["ok"] is False and "khoá API" in body["error"]["message"]
        wrong = await c.get("/api/v1/sites", headers={"Authorization": "Bearer khoa-sai"})
        assert wrong.status == 401
        keyed = await c.get("/api/v1/sites", headers={"Authorization": f"Bearer {API_KEY}"})
        assert keyed.status == 200 and len(await keyed.json()) == 3
        assert (await log_in(c)).status == 303
        assert (await c.get("/api/v1/sites")).status == 200  # the session's cookie


async def test_wrong_keys_from_one_address_are_slowed(store: ProvinceStore) -> None:
    security = SecuritySettings(login_address_failures=2, login_window_s=600)
    async with remote_client(app_of(store, security=security)) as c:
        for _ in range(2):
            assert (await c.get("/api/v1/sites", headers={"Authorization": "Bearer sai"})).status == 401
        limited = await c.get("/api/v1/sites", headers={"Authorization": f"Bearer {API_KEY}"})
        assert limited.status == 429 and int(limited.headers["Retry-After"]) > 0


# ------------------------------------------------------------------ the dashboard


async def test_the_dashboard_shows_every_office_now(client: TestClient[Any, Any], store: ProvinceStore) -> None:
    hoa_binh, an_phu = Office(store, "xa-hoa-binh"), Office(store, "xa-an-phu")
    await hoa_binh.presence(True)
    await hoa_binh.queue("dat-dai", "Đất đai", 2)
    await hoa_binh.queue("ho-tich", "Hộ tịch", 0)
    await hoa_binh.counter("1", "serving", officer="Nguyễn Thị Hoa")
    await hoa_binh.counter("2", "closed")
    await hoa_binh.counter("3", "paused", officer="Trần Văn Bình")
    oldest = safe_past(40)
    await hoa_binh.ticket(oldest)  # waiting in dat-dai since `oldest`
    await hoa_binh.ticket(safe_past(5))
    await hoa_binh.ticket(safe_past(60), status="done", wait_s=120, rating=1)  # "Không hài lòng"
    await hoa_binh.ticket(safe_past(50), status="done", wait_s=60, rating=3)
    await hoa_binh.ticket(safe_past(45), status="done", wait_s=60)  # unrated: satisfied
    await hoa_binh.ticket(safe_past(44), status="done", wait_s=60, rating=3)
    await hoa_binh.ticket(safe_past(43), status="no_show", wait_s=60)
    # yesterday's ticket is not today's
    await hoa_binh.ticket(datetime.now(TZ) - timedelta(days=1, hours=1), status="done", wait_s=10, rating=1)
    await an_phu.presence(True)
    await an_phu.presence(False)
    went = (await store.site_row("xa-an-phu"))["status_at"]  # type: ignore[index]

    await log_in(client)
    r = await client.get("/")
    html = await r.text()
    assert r.status == 200
    assert cells(html, "xa-hoa-binh", "presence") == "Trực tuyến"
    assert cells(html, "xa-hoa-binh", "waiting") == "2"
    assert cells(html, "xa-hoa-binh", "counters") == "2/3"  # serving and paused are open
    assert cells(html, "xa-hoa-binh", "issued") == "7"
    assert cells(html, "xa-hoa-binh", "served") == "4"
    assert cells(html, "xa-hoa-binh", "satisfaction") == "75,0 %"  # (4 − 1) ÷ 4 × 100
    longest = round((datetime.now(TZ) - oldest).total_seconds() / 60)
    queues = cells(html, "xa-hoa-binh", "queues")
    assert re.fullmatch(rf"Đất đai: 2 \(({longest - 1}|{longest}|{longest + 1}) phút\)\s*Hộ tịch: 0", queues), queues
    assert cells(html, "xa-an-phu", "presence") == f"ngoại tuyến từ {went.astimezone(TZ):%H:%M %d/%m}"
    assert cells(html, "phuong-tan-an", "presence") == "ngoại tuyến (chưa từng kết nối)"
    assert cells(html, "phuong-tan-an", "satisfaction") == "—"
    total = re.search(r'<tr class="total">(.*?)</tr>', html, re.S)
    assert total is not None and "Tổng cộng (3 điểm)" in total.group(1) and "1 trực tuyến" in total.group(1)
    assert '<a href="/diem/xa-hoa-binh">UBND xã Hòa Bình</a>' in html

    api = {e["site"]: e for e in await (await client.get("/api/v1/sites")).json()}
    assert api["xa-an-phu"]["offline_since"] == went.isoformat()
    assert api["xa-hoa-binh"]["satisfaction"] == 75.0


async def test_the_district_filter(client: TestClient[Any, Any], store: ProvinceStore) -> None:
    await Office(store, "phuong-tan-an").queue("dat-dai", "Đất đai", 4)
    await Office(store, "xa-hoa-binh").queue("dat-dai", "Đất đai", 1)
    await log_in(client)
    html = await (await client.get("/", params={"district": "Thành phố Hải Đông"})).text()
    assert 'data-site="phuong-tan-an"' in html and 'data-site="xa-hoa-binh"' not in html
    assert "Tổng cộng (1 điểm)" in html and "<h1>Các điểm một cửa: Thành phố Hải Đông</h1>" in html
    both = await (await client.get("/", params={"district": "Huyện Đông Sơn"})).text()
    assert 'data-site="xa-hoa-binh"' in both and 'data-site="xa-an-phu"' in both and "phuong-tan-an" not in both
    api = await (await client.get("/api/v1/sites", params={"district": "Thành phố Hải Đông"})).json()
    assert [e["site"] for e in api] == ["phuong-tan-an"] and api[0]["waiting"] == 4
    bad = await client.get("/", params={"district": "Huyện Không Có"})
    assert bad.status == 400 and "Huyện Không Có" in await bad.text()
    bad_api = await client.get("/api/v1/sites", params={"district": "Huyện Không Có"})
    assert bad_api.status == 400 and "Huyện Không Có" in (await bad_api.json())["error"]["message"]


async def test_an_office_opens_to_its_live_view(client: TestClient[Any, Any], store: ProvinceStore) -> None:
    office = Office(store, "xa-hoa-binh")
    await office.presence(True)
    await office.queue("dat-dai", "Đất đai", 1)
    serving = await office.ticket(safe_past(20), status="serving", wait_s=300)
    await office.counter("1", "serving", ticket=serving, officer="Nguyễn Thị Hoa")
    await log_in(client)
    page = await client.get("/diem/xa-hoa-binh")
    html = await page.text()
    assert page.status == 200 and '<h1 id="name">UBND xã Hòa Bình</h1>' in html
    assert 'data-url="/diem/xa-hoa-binh/trang-thai.json"' in html
    live = await (await client.get("/diem/xa-hoa-binh/trang-thai.json")).json()
    assert live["presence"] == "Trực tuyến" and live["issued_today"] == 1
    assert live["counters"] == [{"counter": "1", "name": "Quầy 1", "status": "serving", "status_vi": "Đang phục vụ",
                                 "officer": "Nguyễn Thị Hoa", "ticket": serving["number"]}]
    assert live["queues"] == [{"field": "dat-dai", "name": "Đất đai", "waiting": 1, "longest_wait": "—"}]
    # the next state is there on the next poll
    await office.counter("1", "open", officer="Nguyễn Thị Hoa")
    live = await (await client.get("/diem/xa-hoa-binh/trang-thai.json")).json()
    assert live["counters"][0]["ticket"] is None and live["counters"][0]["status_vi"] == "Mở, chưa phục vụ"
    missing = await client.get("/diem/xa-khong-co")
    assert missing.status == 404 and "Không có điểm này" in await missing.text()


async def test_healthz_and_unknown_pages(client: TestClient[Any, Any]) -> None:
    r = await client.get("/healthz")
    assert r.status == 200 and await r.json() == {"ok": True, "database": True}
    nowhere = await client.get("/khong-co")
    assert nowhere.status == 404 and "Không có trang này." in await nowhere.text()
    assert "default-src 'self'" in nowhere.headers["Content-Security-Policy"]


# ------------------------------------------------------------------ the 766 report


FIRST, LAST = date(2026, 11, 2), date(2026, 11, 3)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ)


async def report_fixture(store: ProvinceStore) -> None:
    """Hand-computed:
    - xa-hoa-binh, no dossier rows: tickets basis. Issued 6 in the period (one more the day
      before, one the day after: outside). Served 4, one rated 1 → (4 − 1) ÷ 4 = 75.0 %.
      Waits of the called tickets: 120, 60, 300, 600, 180 s (the no-show was called) → mean 252 s.
    - xa-an-phu, dossiers: received 5 in the period (one before it: outside); the rated-1 ticket
      with a dossier → (5 − 1) ÷ 5 = 80.0 %. Done in the period with a due date: 3, on time 2 → 66.7 %.
      Tickets: 2 issued, both served, waits 60 and 120 s → mean 90 s.
    - phuong-tan-an: nothing → no figure, ranked last without a rank.
    """
    hb = Office(store, "xa-hoa-binh")
    await hb.ticket(at(FIRST, 8), status="done", wait_s=120, rating=1)
    await hb.ticket(at(FIRST, 9), status="done", wait_s=60, rating=3)
    await hb.ticket(at(FIRST, 23, 50), status="done", wait_s=300)
    await hb.ticket(at(LAST, 10), status="done", wait_s=600, rating=3)
    await hb.ticket(at(LAST, 11), status="no_show", wait_s=180)
    await hb.ticket(at(LAST, 11, 30), status="waiting")
    await hb.ticket(at(FIRST - timedelta(days=1), 23, 59), status="done", wait_s=10, rating=1)
    await hb.ticket(at(LAST + timedelta(days=1), 0, 0), status="done", wait_s=10, rating=1)
    ap = Office(store, "xa-an-phu")
    await ap.ticket(at(FIRST, 8), status="done", wait_s=60, rating=1, dossier="HS-1")
    await ap.ticket(at(LAST, 8), status="done", wait_s=120, rating=3, dossier="HS-2")
    for i, (received, due, done) in enumerate([
        (at(FIRST, 8, 5), at(FIRST + timedelta(days=1), 17), at(LAST, 9)),             # on time
        (at(FIRST, 9), at(FIRST, 17), at(LAST, 10)),                                   # late
        (at(LAST, 8, 10), at(LAST, 17), at(LAST, 16)),                                 # on time
        (at(LAST, 9), None, at(LAST, 15)),                                             # no due date
        (at(LAST, 10), at(LAST + timedelta(days=5), 17), None),                        # still open
        (at(FIRST - timedelta(days=3), 9), at(FIRST - timedelta(days=2), 17), None),   # received before
    ], start=1):
        await add_dossier(store, "xa-an-phu", f"HS-{i}", received, due, done)


async def test_the_report_gives_the_766_figures_and_ranking(client: TestClient[Any, Any],
                                                            store: ProvinceStore) -> None:
    await report_fixture(store)
    await log_in(client)
    r = await client.get("/bao-cao", params={"from": FIRST.isoformat(), "to": LAST.isoformat()})
    html = await r.text()
    assert r.status == 200 and "Kỳ báo cáo: từ ngày 02/11/2026 đến ngày 03/11/2026" in html
    order = re.findall(r'<tr data-site="([^"]+)"', html)
    assert order == ["xa-an-phu", "xa-hoa-binh", "phuong-tan-an"]
    assert [cells(html, s, "rank") for s in order] == ["1", "2", "—"]
    assert cells(html, "xa-an-phu", "satisfaction") == "80,0 %"
    assert cells(html, "xa-an-phu", "basis") == "hồ sơ tiếp nhận"
    assert cells(html, "xa-an-phu", "handled") == "5" and cells(html, "xa-an-phu", "unhappy") == "1"
    assert cells(html, "xa-an-phu", "ontime") == "66,7 % (2/3)"
    assert cells(html, "xa-an-phu", "wait") == "2 phút"  # 90 s
    assert cells(html, "xa-hoa-binh", "satisfaction") == "75,0 %"
    assert cells(html, "xa-hoa-binh", "basis") == "lượt phục vụ (chưa có dữ liệu hồ sơ)"
    assert cells(html, "xa-hoa-binh", "issued") == "6" and cells(html, "xa-hoa-binh", "served") == "4"
    assert cells(html, "xa-hoa-binh", "wait") == "4 phút"  # 252 s
    assert cells(html, "xa-hoa-binh", "ontime") == "—"
    total = re.search(r'<tr class="total">(.*?)</tr>', html, re.S)
    assert total is not None
    # 9 units (5 dossiers + 4 tickets), 2 dissatisfied → 77.8 %
    assert "77,8 %" in total.group(1) and "hồ sơ tiếp nhận và lượt phục vụ" in total.group(1)


async def test_the_report_exports_to_xlsx(client: TestClient[Any, Any], store: ProvinceStore) -> None:
    await report_fixture(store)
    await log_in(client)
    r = await client.get("/bao-cao/export.xlsx", params={"from": FIRST.isoformat(), "to": LAST.isoformat()})
    assert r.status == 200 and r.content_type.endswith("spreadsheetml.sheet")
    assert 'filename="bao-cao-766-tinh-demo-20261102-20261103.xlsx"' in r.headers["Content-Disposition"]
    ws = load_workbook(io.BytesIO(await r.read())).active
    assert ws["A1"].value == "Tỉnh Hòa Bình Thử Nghiệm"
    assert ws["A3"].value == "Kỳ báo cáo: Từ ngày 02/11/2026 đến ngày 03/11/2026"
    headers = [c.value for c in ws[5]]
    assert headers[:3] == ["Xếp hạng", "Mã điểm", "Tên điểm"] and "Tỷ lệ hài lòng (%)" in headers
    col = {h: i for i, h in enumerate(headers)}
    rows = [[c.value for c in ws[r]] for r in range(6, 10)]
    assert [row[col["Mã điểm"]] for row in rows] == ["xa-an-phu", "xa-hoa-binh", "phuong-tan-an", None]
    an_phu, hoa_binh, tan_an, total = rows
    assert an_phu[col["Xếp hạng"]] == 1 and an_phu[col["Tỷ lệ hài lòng (%)"]] == 80.0
    assert an_phu[col["Tỷ lệ đúng hạn (%)"]] == 66.7 and an_phu[col["Thời gian chờ trung bình (phút)"]] == 1.5
    assert hoa_binh[col["Xếp hạng"]] == 2 and hoa_binh[col["Tỷ lệ hài lòng (%)"]] == 75.0
    assert hoa_binh[col["Thời gian chờ trung bình (phút)"]] == 4.2 and hoa_binh[col["Số phát hành"]] == 6
    assert tan_an[col["Xếp hạng"]] is None and tan_an[col["Tỷ lệ hài lòng (%)"]] is None
    assert total[col["Tên điểm"]] == "Tổng cộng" and total[col["Số phát hành"]] == 8
    assert total[col["Số đã tiếp nhận, giải quyết"]] == 9 and total[col["Tỷ lệ hài lòng (%)"]] == 77.8
    assert ws.cell(6, col["Tỷ lệ hài lòng (%)"] + 1).number_format == "0.0"
    assert ws.cell(6, col["Số phát hành"] + 1).number_format == "#,##0"
    assert int(ws.page_setup.paperSize) == int(ws.PAPERSIZE_A4) and ws.page_setup.orientation == "landscape"
    assert ws.print_title_rows == "$5:$5"
    assert "Tỉnh Hòa Bình Thử Nghiệm" in ws.oddHeader.left.text
    assert "02/11/2026" in ws.oddHeader.right.text


@pytest.mark.parametrize(("query", "says"), [
    ({"from": "2026-13-01", "to": "2026-12-01"}, "không có trong lịch"),
    ({"from": "hôm qua"}, "không đúng dạng YYYY-MM-DD"),
    ({"from": "2026-11-05", "to": "2026-11-01"}, "trước ngày bắt đầu"),
    ({"from": "2024-01-01", "to": "2026-01-01"}, "dài quá 366 ngày"),
])
async def test_bad_report_dates_get_a_clear_400(client: TestClient[Any, Any], query: dict[str, str],
                                                says: str) -> None:
    await log_in(client)
    for path in ("/bao-cao", "/bao-cao/export.xlsx"):
        r = await client.get(path, params=query)
        assert r.status == 400 and r.content_type == "text/html", path
        assert says in await r.text()
    assert (await client.get("/healthz")).status == 200  # nothing else happened


async def test_the_report_defaults_to_this_month(client: TestClient[Any, Any], store: ProvinceStore) -> None:
    await Office(store, "xa-hoa-binh").ticket(safe_past(30), status="done", wait_s=60)
    await log_in(client)
    html = await (await client.get("/bao-cao")).text()
    today = datetime.now(TZ).date()
    assert f"từ ngày 01/{today:%m/%Y} đến ngày {today:%d/%m/%Y}" in html
    assert cells(html, "xa-hoa-binh", "issued") == "1"


async def test_today_on_dossiers_where_an_office_has_them(client: TestClient[Any, Any], store: ProvinceStore) -> None:
    """xa-an-phu has dossiers: 4 received today, one of whose tickets was rated 1 → (4 − 1) ÷ 4;
    its served tickets (3) do not count. xa-hoa-binh has none: its served tickets count."""
    an_phu = Office(store, "xa-an-phu")
    await an_phu.ticket(safe_past(50), status="done", wait_s=60, rating=1, dossier="HS-1")
    await an_phu.ticket(safe_past(40), status="done", wait_s=60, rating=3, dossier="HS-2")
    await an_phu.ticket(safe_past(30), status="done", wait_s=60, rating=1)  # no dossier: not a 766 unit here
    for i in range(1, 5):
        await add_dossier(store, "xa-an-phu", f"HS-{i}", safe_past(50 - i))
    await add_dossier(store, "xa-an-phu", "HS-0", datetime.now(TZ) - timedelta(days=3))  # not today's
    await Office(store, "xa-hoa-binh").ticket(safe_past(20), status="done", wait_s=60, rating=1)
    api = {e["site"]: e for e in await (await client.get("/api/v1/sites")).json()}
    assert api["xa-an-phu"]["satisfaction"] == 75.0 and api["xa-an-phu"]["served_today"] == 3
    assert api["xa-hoa-binh"]["satisfaction"] == 0.0
    await log_in(client)
    html = await (await client.get("/")).text()
    assert 'title="Tính trên hồ sơ tiếp nhận">75,0 %' in html
    # the total adds the units: 4 dossiers and 1 ticket, 2 dissatisfied → 60 %
    total = re.search(r'<tr class="total">(.*?)</tr>', html, re.S)
    assert total is not None and "60,0 %" in total.group(1)
