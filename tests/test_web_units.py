"""The pure parts of the web pages: accounts and their hashes, the rate limiter, statistics, CSV
exports, the printed ticket's image, the settings of [kiosk], [printer], [security] and
[[accounts]], and what the state keeps for the rating tablet and the dashboard."""

from __future__ import annotations

import csv
import io
import json
import runpy
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image, ImageFont

from display_server.accounts.ratelimit import RateLimiter, seconds_text
from display_server.accounts.store import (
    HashFormatError,
    Role,
    hash_password,
    parse_hash,
    verify_password,
)
from display_server.feed.state import SiteState
from display_server.printing import qr
from display_server.printing.ticket_image import Fonts, PrintedTicket, render, wait_text
from display_server.reports import stats
from display_server.reports.exports import BOM, RATING_COLUMNS, TICKET_COLUMNS, CsvWriter, Names, is_rated
from display_server.settings import DEFAULT_FONT, load_server_settings
from display_server.texts import EN, VI, Texts
from display_server.timefmt import stamp_text
from qms_common.config import load_site_config
from qms_common.tomlconf import ConfigError
from tests.support.site import write_site

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- accounts


def test_a_password_hash_verifies_only_its_password() -> None:
    h = hash_password("mật-khẩu-đúng")
    assert h.startswith("scrypt$16384$8$1$")
    parsed = parse_hash(h)
    assert verify_password("mật-khẩu-đúng", parsed)
    assert not verify_password("mật-khẩu-sai", parsed)
    assert hash_password("mật-khẩu-đúng") != h  # a new salt each time


@pytest.mark.parametrize("bad", ["", "plain", "scrypt$16384$8$1$c2FsdA==",
                                 "scrypt$16385$8$1$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5",
                                 "scrypt$2097152$8$1$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5",
                                 "scrypt$16384$8$1$!!!$a2V5a2V5a2V5a2V5a2V5", "bcrypt$12$abc"])
def test_bad_hashes_are_refused(bad: str) -> None:
    with pytest.raises(HashFormatError):
        parse_hash(bad)


def site_with(tmp_path: Path, extra: str) -> Path:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1883", extra=extra)
    return path


def settings_of(path: Path) -> Any:
    return load_server_settings(load_site_config(path, env={}))


HASH = hash_password("mat-khau-thu")


def account(**kw: Any) -> str:
    fields = {"username": "canbo1", "name": "Nguyễn Thị Hoa", "role": "officer", "password_hash": HASH, **kw}
    return "[[accounts]]\n" + "\n".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in fields.items()
                                        if v is not None) + "\n"


def test_accounts_are_read_with_their_counters(tmp_path: Path) -> None:
    s = settings_of(site_with(tmp_path, account(counters=["1", "3"]) + account(username="giamsat", role="supervisor",
                                                                             name="Lê Quang Hải")))
    officer, boss = s.accounts.get("canbo1"), s.accounts.get("GiamSat ")
    assert officer.role is Role.OFFICER and officer.counters == ("1", "3") and officer.name == "Nguyễn Thị Hoa"
    assert officer.may_use_counter("1") and not officer.may_use_counter("2")
    assert boss.role is Role.SUPERVISOR and boss.may_use_counter("2")
    assert s.accounts.check("canbo1", "mat-khau-thu") is officer
    assert s.accounts.check("canbo1", "sai") is None
    assert s.accounts.check("khong-co", "mat-khau-thu") is None


def test_a_leader_reads_the_reports_and_uses_no_counter(tmp_path: Path) -> None:
    s = settings_of(site_with(tmp_path, account(username="lanhdao", role="leader", name="Phạm Thị Thu")))
    leader = s.accounts.get("lanhdao")
    assert leader.role is Role.LEADER and leader.reads_reports
    assert not any(leader.may_use_counter(c) for c in ("1", "2", "3"))


@pytest.mark.parametrize(("extra", "key"), [
    (account(username="Cán Bộ"), "accounts[1].username"),
    (account() + account(), "accounts[2].username"),
    (account(role="admin"), "accounts[1].role"),
    (account(password_hash="123456"), "accounts[1].password_hash"),
    (account(password_hash=None), "accounts[1].password_hash"),
    (account(counters=["9"]), "accounts[1].counters"),
    (account(counters=[]), "accounts[1].counters"),
    (account(role="supervisor", counters=["1"]), "accounts[1].counters"),
    (account(role="leader", counters=["1"]), "accounts[1].counters"),
    (account(password="mat-khau"), "accounts[1].password"),
])
def test_bad_accounts_stop_start_up_naming_the_key(tmp_path: Path, extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_of(site_with(tmp_path, extra))
    assert err.value.key == key, str(err.value)


def test_the_demo_logins_printed_by_make_run_match_the_example_site() -> None:
    demo_logins = runpy.run_path(str(ROOT / "scripts" / "demo.py"), run_name="demo_under_test")["DEMO_LOGINS"]
    s = settings_of(ROOT / "examples" / "site.toml")
    roles = set()
    for user, password, _ in demo_logins:
        found = s.accounts.check(user, password)
        assert found is not None, user
        roles.add(found.role)
    assert roles == {Role.OFFICER, Role.SUPERVISOR, Role.LEADER}
    assert len(s.accounts) == len(demo_logins)


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(("extra", "key"), [
    ('[printer]\ntype = "network"', "printer.host"),
    ('[printer]\ntype = "serial"', "printer.device"),
    ('[printer]\ntype = "usb"\nvendor_id = 0x0416', "printer.vendor_id"),
    ('[printer]\ntype = "cups"', "printer.type"),
    ('[printer]\npaper_width_mm = 72', "printer.paper_width_mm"),
    ('[printer]\ntype = "file"\ndevice = "/dev/usb/lp0"\nfont = "/khong/co.ttf"', "printer.font"),
    ('[printer]\nkiosks = ["Ki ốt"]', "printer.kiosks"),
    ('[printer]\ncolour = true', "printer.colour"),
    ('[kiosk]\ntickets_per_minute = 0', "kiosk.tickets_per_minute"),
    ('[kiosk]\ndossier_lookups_per_minute = 0', "kiosk.dossier_lookups_per_minute"),
    ('[kiosk]\nids = ["kiosk 1"]', "kiosk.ids"),
    ('[security]\nlogin_failures = 0', "security.login_failures"),
    ('[security]\nsession = 3', "security.session"),
    ('[web]\npublic_url = "ftp://x"', "web.public_url"),
])
def test_bad_web_settings_stop_start_up_naming_the_key(tmp_path: Path, extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_of(site_with(tmp_path, extra))
    assert err.value.key == key, str(err.value)


def test_web_settings(tmp_path: Path) -> None:
    s = settings_of(site_with(tmp_path, """
[web]
public_url = "https://xephang.hoabinh.gov.vn/"
[kiosk]
ids = ["kiosk-1", "kiosk-2"]
tickets_per_minute = 4
[printer]
type = "network"
host = "192.168.1.50"
paper_width_mm = 58
kiosks = ["kiosk-1"]
[security]
session_hours = 8
cookie_secure = true
"""))
    assert s.web.public_url == "https://xephang.hoabinh.gov.vn"
    assert s.kiosk.ids == ("kiosk-1", "kiosk-2") and s.kiosk.tickets_per_minute == 4
    assert (s.kiosk.dossier_lookups_per_minute, s.kiosk.address_dossier_lookups_per_minute,
            s.kiosk.site_dossier_lookups_per_minute) == (10, 20, 60)
    assert s.printer.width_px == 384 and s.printer.port == 9100
    assert s.printer.serves("kiosk-1") and not s.printer.serves("kiosk-2")
    assert s.security.session_hours == 8 and s.security.cookie_secure
    default = settings_of(site_with(tmp_path, ""))
    assert not default.printer.enabled and not default.printer.serves("kiosk")
    assert default.printer.width_px == 576 and default.printer.font == DEFAULT_FONT


# ---------------------------------------------------------------- rate limits


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_token_bucket_per_key() -> None:
    clock = Clock()
    limit = RateLimiter(3, 60.0, clock)
    assert [limit.take("kiosk-1") for _ in range(3)] == [0, 0, 0]
    assert limit.take("kiosk-1") == pytest.approx(20.0)  # one token every 20 s
    assert limit.take("kiosk-2") == 0  # another kiosk has its own
    clock.t += 19.0
    assert limit.take("kiosk-1") == pytest.approx(1.0)
    clock.t += 1.0
    assert limit.take("kiosk-1") == 0 and limit.take("kiosk-1") > 0
    clock.t += 3600
    assert [limit.take("kiosk-1") for _ in range(4)][:3] == [0, 0, 0]  # full again, never more than 3


def test_hits_count_even_when_refused() -> None:
    clock = Clock()
    limit = RateLimiter(2, 10.0, clock)
    limit.hit("user:a")
    limit.hit("user:a")
    assert limit.retry_after("user:a") == pytest.approx(5.0)
    limit.hit("user:a")  # still counted: the wait does not shrink by trying
    assert limit.retry_after("user:a") == pytest.approx(5.0)
    assert seconds_text(0.2) == 1 and seconds_text(4.01) == 5


# ---------------------------------------------------------------- statistics


def record(number: str, status: str, *, field: str = "dat-dai", issued: str = "08:00:00", called: str | None = None,
           finished: str | None = None, officer: str | None = None, counter: str | None = None,
           rating: int | None = None, dossier: str | None = None, priority: bool = False) -> dict[str, Any]:
    def at(t: str | None) -> str | None:
        return f"2026-11-21T{t}+07:00" if t else None

    return {"id": f"20261121-{field}-{number}", "number": number, "field": field, "priority": priority,
            "status": status, "issued_at": at(issued), "called_at": at(called), "finished_at": at(finished),
            "counter": counter, "calls": 1 if called else 0, "rating": rating, "dossier": dossier,
            "day": "2026-11-21", "origin_field": field, "officer": officer, "source": "kiosk-1",
            "rated_at": at(finished) if rating else None, "order": int(number)}


RECORDS = [
    record("1001", "done", issued="08:00:00", called="08:05:00", finished="08:15:00", officer="Hoa", counter="1",
           rating=3, dossier="H12-0001"),
    record("1002", "done", issued="08:01:00", called="08:16:00", finished="09:06:00", officer="Hoa", counter="1",
           rating=1),
    record("1003", "no_show", issued="08:02:00", called="09:07:00", officer="Hoa", counter="1"),
    record("1004", "serving", issued="08:30:00", called="09:10:00", officer="Minh", counter="2"),
    record("1005", "waiting", issued="09:00:00"),
    record("2001", "waiting", field="ho-tich", issued="08:45:00", priority=True),
    record("2002", "done", field="ho-tich", issued="08:50:00", called="08:55:00", finished="09:00:00", counter="3"),
]


def test_statistics_of_a_day() -> None:
    s = stats.compute(RECORDS, levels=3, tz=TZ)
    total = s["total"]
    assert (total["issued"], total["called"], total["served"], total["waiting"], total["no_show"]) == (7, 5, 3, 2, 1)
    # waits: 5, 15, 65, 40, 5 minutes; services: 10, 50, 5 minutes
    assert total["avg_wait_s"] == round((5 + 15 + 65 + 40 + 5) * 60 / 5)
    assert total["avg_service_s"] == round((10 + 50 + 5) * 60 / 3)
    assert total["ratings"] == [1, 0, 1] and total["rated"] == 2 and total["avg_rating"] == 2.0
    assert total["top_share"] == 50
    assert total["oldest_waiting"] == "2026-11-21T08:45:00+07:00"
    assert s["fields"]["dat-dai"]["oldest_waiting"] == "2026-11-21T09:00:00+07:00"
    assert s["fields"]["ho-tich"]["served"] == 1
    officers = {o["officer"]: o for o in s["officers"]}
    assert list(officers) == ["Hoa", "", "Minh"]  # most served first; "" is a call without a name
    unnamed = officers[""]  # shown as its counter's officer ("Cán bộ tại Quầy 2"), never "(không rõ tên)"
    assert unnamed["counter"] is not None and officers["Hoa"]["counter"] is None
    hoa = officers["Hoa"]
    assert (hoa["called"], hoa["served"], hoa["no_show"], hoa["ratings"]) == (3, 2, 1, [1, 0, 1])
    assert hoa["avg_service_s"] == 30 * 60
    assert officers["Minh"]["served"] == 0 and officers["Minh"]["avg_service_s"] is None
    assert s["counters"]["1"]["served"] == 2
    hours = {h["hour"]: h for h in s["by_hour"]}
    assert list(hours) == [8, 9]
    assert (hours[8]["issued"], hours[8]["served"]) == (6, 1)
    assert (hours[9]["issued"], hours[9]["served"]) == (1, 2)
    assert json.loads(json.dumps(s)) == s  # ready for the page as it is


def test_statistics_of_nothing_and_of_garbage() -> None:
    empty = stats.compute([], levels=3, tz=TZ)
    assert empty["total"]["issued"] == 0 and empty["total"]["avg_wait_s"] is None and empty["by_hour"] == []
    odd = stats.compute([{"status": "done", "issued_at": "not a time", "rating": 9, "called_at": 5}], levels=3, tz=TZ)
    assert odd["total"]["served"] == 1 and odd["total"]["rated"] == 0 and odd["by_hour"] == []


# ---------------------------------------------------------------- CSV exports


NAMES = Names(fields={"dat-dai": "Đất đai", "ho-tich": "Hộ tịch"}, counters={"1": "Quầy 1", "3": "Quầy 3"},
              levels=("Không hài lòng", "Hài lòng", "Rất hài lòng"))


def read_csv(text: str) -> list[dict[str, str]]:
    assert text.startswith(BOM)
    return list(csv.DictReader(io.StringIO(text.removeprefix(BOM), newline="")))


def test_tickets_csv() -> None:
    w = CsvWriter(TICKET_COLUMNS)
    text = w.header() + w.rows(RECORDS[:2], NAMES) + w.rows(RECORDS[2:], NAMES)
    assert text.split("\r\n")[0] == BOM + ",".join(TICKET_COLUMNS)
    assert text.count("\r\n") == 1 + len(RECORDS)
    rows = read_csv(text)
    first = rows[0]
    assert first["ticket_id"] == "20261121-dat-dai-1001" and first["number"] == "1001"
    assert first["field_name"] == "Đất đai" and first["counter_name"] == "Quầy 1" and first["officer"] == "Hoa"
    assert (first["status"], first["status_name"], first["priority"]) == ("done", "Đã phục vụ", "0")
    assert (first["wait_s"], first["service_s"]) == ("300", "600")
    assert (first["dossier_code"], first["rating_score"], first["rating_level"]) == ("H12-0001", "3", "Rất hài lòng")
    assert first["issued_at"] == "2026-11-21T08:00:00+07:00" and first["kiosk"] == "kiosk-1"
    waiting = rows[4]
    assert waiting["called_at"] == "" and waiting["wait_s"] == "" and waiting["counter_name"] == ""
    assert rows[5]["priority"] == "1"


def test_ratings_csv_has_only_rated_tickets_with_their_dossier() -> None:
    w = CsvWriter(RATING_COLUMNS)
    rows = read_csv(w.header() + w.rows([r for r in RECORDS if is_rated(r)], NAMES))
    assert [(r["dossier_code"], r["rating_score"], r["rating_max"], r["rating_level"], r["officer"]) for r in rows] == [
        ("H12-0001", "3", "3", "Rất hài lòng", "Hoa"), ("", "1", "3", "Không hài lòng", "Hoa")]


def test_a_cell_excel_would_run_as_a_formula_is_defused() -> None:
    r = record("1001", "done", officer='=HYPERLINK("http://x")', dossier="+1-2", called="08:01:00",
               finished="08:02:00")
    row = read_csv(CsvWriter(TICKET_COLUMNS).header() + CsvWriter(TICKET_COLUMNS).rows([r], NAMES))[0]
    assert row["officer"] == "'=HYPERLINK(\"http://x\")" and row["dossier_code"] == "'+1-2"


# ---------------------------------------------------------------- the printed ticket


FONTS = Fonts(DEFAULT_FONT, DEFAULT_FONT.with_name("DejaVuSans-Bold.ttf"))
TICKET = PrintedTicket(office="Bộ phận Một cửa UBND xã Hòa Bình", field_name="Đăng ký kinh doanh", number="3005",
                       priority=True, issued=stamp_text(datetime(2026, 11, 21, 8, 3, tzinfo=TZ), TZ),
                       ahead=12, est_wait_s=3700,
                       url="http://192.168.1.10:8080/t/20261121-dang-ky-kinh-doanh-3005")


@pytest.mark.parametrize("width", [576, 384])
def test_the_ticket_is_a_one_bit_image_of_the_paper_width(width: int) -> None:
    img = render(TICKET, width=width, fonts=FONTS)
    assert img.mode == "1" and img.width == width
    assert width < img.height < width * 3
    histogram = img.convert("L").histogram()
    black, white = histogram[0], histogram[255]
    assert black + white == img.width * img.height  # nothing grey
    assert 0.05 < black / (img.width * img.height) < 0.5


def test_the_ticket_font_draws_every_vietnamese_letter() -> None:
    """A missing glyph is drawn as the same empty box (.notdef) as a private-use character."""
    font = ImageFont.truetype(str(DEFAULT_FONT), 40)
    notdef = bytes(font.getmask("\ue000"))
    for ch in "ăâđêôơưàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵĐỜỮẶ":
        assert bytes(font.getmask(ch)) != notdef, ch


def test_the_ticket_shows_the_qr_code_of_its_page() -> None:
    img = render(TICKET, width=576, fonts=FONTS)
    m = qr.modules(TICKET.url)
    box = 250 // (len(m) + 2 * qr.QUIET)
    side = box * len(m)
    # the code is drawn module by module, centred, above the last line: find its top-left finder
    pixels = img.load()
    x0 = (576 - side) // 2
    rows = [y for y in range(img.height) if pixels[x0 + box // 2, y] == 0 and pixels[x0 + side - box // 2, y] == 0]
    top = next(y for y in rows if all(pixels[x0 + c * box + box // 2, y + box // 2] == (0 if dark else 255)
                                      for c, dark in enumerate(m[0])))
    for r, row in enumerate(m):
        for c, dark in enumerate(row):
            assert pixels[x0 + c * box + box // 2, top + r * box + box // 2] == (0 if dark else 255), (r, c)


def test_wait_lines() -> None:
    t = Texts("vi")
    assert wait_text(t, 0, 0) == ("Ông/bà là người tiếp theo", "")
    assert wait_text(t, 3, 61) == ("Có 3 người đang chờ trước ông/bà", "Thời gian chờ dự kiến: khoảng 2 phút")
    assert wait_text(Texts("en"), 1, 0) == ("1 person ahead of you", "")
    assert wait_text(Texts("en"), 2, 0) == ("2 people ahead of you", "")
    assert wait_text(t, 12, 3700)[1] == "Thời gian chờ dự kiến: khoảng 1 giờ 2 phút"
    assert wait_text(t, 12, 7200)[1] == "Thời gian chờ dự kiến: khoảng 2 giờ"
    assert wait_text(t, None, None) == ("", "")


def test_qr_svg_is_self_contained() -> None:
    svg = qr.svg("http://x/t/1")
    assert svg.startswith("<svg xmlns=\"http://www.w3.org/2000/svg\"") and "<path d=\"M" in svg
    assert "http" not in svg.split("xmlns=")[1][40:]  # nothing fetched from the network


def test_texts_exist_in_both_languages() -> None:
    assert set(VI) == set(EN)
    for key, value in VI.items():
        assert value.count("{") == EN[key].count("{"), key  # the same placeholders


# ---------------------------------------------------------------- state for the pages


def test_the_state_keeps_health_and_the_last_served_ticket() -> None:
    s = SiteState()
    health = {"agent": "a1", "ports": [{"port": "/dev/ttyUSB0", "open": True}], "counters": []}
    ch = s.apply(("health", "agent", "a1"), json.dumps(health).encode(), retained=True)
    assert ch is not None and ch.kind == "health" and s.health["a1"] == health
    assert s.apply(("health", "agent", "a1"), b"{broken") is None and s.health["a1"] == health
    s.apply(("health", "agent", "a1"), b"")
    assert "a1" not in s.health
    site = {"site": "t", "day": "2026-11-21", "fields": [], "counters": [], "seq": 1}
    s.apply(("state", "site"), json.dumps(site).encode())
    done = {"id": "t-1001", "number": "1001", "rating": None}
    s.apply(("event", "finished"), json.dumps({"kind": "finished", "ticket": done, "counter": "1", "seq": 2}).encode())
    assert s.last_served["1"]["number"] == "1001"
    rated = {**done, "rating": 3}
    s.apply(("event", "rated"), json.dumps({"kind": "rated", "ticket": rated, "counter": "1", "seq": 3}).encode())
    assert s.last_served["1"]["rating"] == 3
    s.apply(("state", "site"), json.dumps({**site, "day": "2026-11-22", "seq": 4}).encode())
    assert s.last_served == {}  # a new day: nothing of yesterday is rated at the tablet


def test_image_of_ticket_is_deterministic() -> None:
    a, b = render(TICKET, width=384, fonts=FONTS), render(TICKET, width=384, fonts=FONTS)
    assert isinstance(a, Image.Image) and a.tobytes() == b.tobytes()


def test_the_hash_password_command() -> None:
    out = subprocess.run([sys.executable, "-m", "display_server", "hash-password", "--stdin"],
                         input="mật-khẩu-mới-2026\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith('password_hash = "scrypt$') and line.endswith('"')
    parsed = parse_hash(line.split('"')[1])
    assert verify_password("mật-khẩu-mới-2026", parsed) and not verify_password("mật-khẩu-mới", parsed)
    short = subprocess.run([sys.executable, "-m", "display_server", "hash-password", "--stdin"],
                           input="ngan\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 1 and "ít nhất 8 ký tự" in short.stderr and not short.stdout
