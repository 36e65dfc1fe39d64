"""The web side of dossiers without a broker: what the public page shows (from the dossier
service's own model, so both agree), the receipt's image (its QR code read back by zbarimg, its
Vietnamese text), the receipt printer's bytes, and the site file's [[api_keys]] and
[[receipt_printers]]."""

from __future__ import annotations

import hashlib
import subprocess
import unicodedata
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from display_server.dossiers.receipt import Receipt, ReceiptPrinter, receipt_lines, render_receipt
from display_server.dossiers.view import kiosk_summary, public_view, typed_code
from display_server.printing.ticket_image import Fonts
from display_server.settings import DEFAULT_BOLD_FONT, DEFAULT_FONT, PrinterSettings, load_server_settings
from display_server.texts import Texts
from dossiers.calendar import BusinessCalendar
from dossiers.model import apply_event, create
from qms_common.config import load_site_config
from qms_common.protocol import DossierCreate, DossierEvent, DossierSource, DossierStatus
from qms_common.tomlconf import ConfigError
from tests.support.site import write_site

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
T = Texts("vi")
CAL = BusinessCalendar()
FONTS = Fonts(DEFAULT_FONT, DEFAULT_BOLD_FONT)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def dossier(due: date, *events: tuple[str, str, str | None, str | None]):  # type: ignore[no-untyped-def]
    """A dossier received Thursday 26/11/2026 09:00, with events applied in the order given."""
    d = create(DossierCreate(request_id="r", code="H23.26-0001", procedure_name="Đăng ký khai sinh", due_at=due,
                             source=DossierSource.COUNTER, by="canbo1", received_at=at("2026-11-26T09:00")),
               at("2026-11-26T09:00"), TZ)
    for i, (status, when, note, department) in enumerate(events):
        applied = apply_event(d, DossierEvent(request_id=f"r{i}", code=d.code, id=f"e{i}", status=DossierStatus(status),
                                              at=at(when), by="api:tinh", note=note, department=department),
                              at("2026-11-30T12:00"), TZ)
        assert applied is not None
        d = applied[0]
    return d


def test_events_out_of_order_show_in_time_order_and_late_across_the_weekend() -> None:
    # due Friday 27/11; the result came Monday 30/11: one working day late (the weekend does not count)
    d = dossier(date(2026, 11, 27), ("done", "2026-11-30T10:00", None, None),
                ("processing", "2026-11-27T08:30", None, "Phòng Tư pháp"))
    v = public_view(d.view(date(2026, 11, 30), CAL, TZ), T, TZ)
    assert [e["status"] for e in v["timeline"]] == ["received", "processing", "done"]
    assert [e["at"] for e in v["timeline"]] == ["09:00 26/11/2026", "08:30 27/11/2026", "10:00 30/11/2026"]
    assert v["timeline"][1]["text"] == "Đang xử lý (Phòng Tư pháp)"
    assert v["status_text"] == "Đã có kết quả"
    assert v["lateness"] == {"kind": "overdue", "text": "Trễ hẹn 1 ngày làm việc"}
    assert v["due"] == "27/11/2026" and v["received"] == "09:00 26/11/2026"


def test_not_finished_and_past_the_promised_day_is_late_in_working_days() -> None:
    d = dossier(date(2026, 11, 26), ("processing", "2026-11-26T10:00", None, "Phòng Tài nguyên và Môi trường"))
    # Tuesday 01/12: Friday, Monday and Tuesday are late; Saturday and Sunday are not
    v = public_view(d.view(date(2026, 12, 1), CAL, TZ), T, TZ)
    assert v["lateness"]["text"] == "Trễ hẹn 3 ngày làm việc"
    assert v["status_text"] == "Đang xử lý (Phòng Tài nguyên và Môi trường)"


def test_early_needs_and_refused_say_so() -> None:
    early = dossier(date(2026, 12, 4), ("done", "2026-11-30T10:00", None, None))
    assert public_view(early.view(date(2026, 11, 30), CAL, TZ), T, TZ)["lateness"] == {"kind": "early",
                                                                                        "text": "Trước hẹn"}
    needs = dossier(date(2026, 12, 4), ("needs_documents", "2026-11-27T10:00", "Bản sao giấy chứng sinh", None))
    v = public_view(needs.view(date(2026, 11, 30), CAL, TZ), T, TZ)
    assert v["status_text"] == "Cần bổ sung: Bản sao giấy chứng sinh" and v["lateness"] is None
    refused = dossier(date(2026, 12, 4), ("refused", "2026-11-27T10:00", "Không thuộc thẩm quyền", None))
    v = public_view(refused.view(date(2026, 11, 30), CAL, TZ), T, TZ)
    assert v["status_text"] == "Từ chối: Không thuộc thẩm quyền" and v["finished"]
    # nothing inside the office reaches the page: who wrote it, the officer, the phone, the ticket
    assert not {"by", "officer", "ticket", "counter", "has_phone", "phone"} & set(v)
    assert {k for e in v["timeline"] for k in e} == {"status", "at", "text", "note"}


def test_a_typed_code_s_summary_says_where_it_stands_and_nothing_more() -> None:
    d = dossier(date(2026, 11, 26), ("processing", "2026-11-26T10:00", "Chờ ký", "Phòng Tư pháp"),
                ("needs_documents", "2026-11-27T10:00", "Bản sao giấy chứng sinh", None))
    s = kiosk_summary(d.view(date(2026, 12, 1), CAL, TZ), T, TZ)
    assert s == {"code": "H23.26-0001", "procedure": "Đăng ký khai sinh", "received": "26/11/2026",
                 "due": "26/11/2026", "status": "needs_documents",
                 "status_text": "Cần bổ sung: Bản sao giấy chứng sinh", "needs": "Bản sao giấy chứng sinh",
                 "lateness": {"kind": "overdue", "text": "Trễ hẹn 3 ngày làm việc"}}
    # a department and a refusal's reason are notes of the timeline: not in the summary
    busy = dossier(date(2026, 12, 4), ("processing", "2026-11-27T10:00", None, "Phòng Tư pháp"))
    assert kiosk_summary(busy.view(date(2026, 11, 30), CAL, TZ), T, TZ)["status_text"] == "Đang xử lý"
    refused = dossier(date(2026, 12, 4), ("refused", "2026-11-27T10:00", "Không thuộc thẩm quyền", None))
    s = kiosk_summary(refused.view(date(2026, 11, 30), CAL, TZ), T, TZ)
    assert s["status_text"] == "Từ chối" and s["needs"] is None
    early = dossier(date(2026, 12, 4), ("done", "2026-11-30T10:00", None, None))
    assert kiosk_summary(early.view(date(2026, 11, 30), CAL, TZ), Texts("en"), TZ)["lateness"] == {
        "kind": "early", "text": "Ahead of the promised date"}


@pytest.mark.parametrize(("typed", "code"), [
    ("H23.26-0001", "H23.26-0001"), (" h23.26 - 0001\n", "h23.26-0001"), ("12/2026/ws", "12/2026/ws"),
    ("mã hồ sơ", None), ("", None), ("   ", None), ("A" * 65, None), ("https://x/hs/A?k=b", None), (42, None),
])
def test_a_typed_code_loses_its_spaces_and_keeps_its_case(typed: object, code: str | None) -> None:
    assert typed_code(typed) == code


def test_every_text_of_the_page_is_nfc() -> None:
    d = dossier(date(2026, 11, 27), ("done", "2026-11-30T10:00", None, None))
    for lang in ("vi", "en"):
        v = public_view(d.view(date(2026, 11, 30), CAL, TZ), Texts(lang), TZ)
        texts = [v["status_text"], v["lateness"]["text"], *(e["text"] for e in v["timeline"])]
        assert all(unicodedata.normalize("NFC", s) == s for s in texts)
    assert public_view(d.view(date(2026, 11, 30), CAL, TZ), Texts("en"), TZ)["lateness"]["text"] == \
        "1 working day late"


RECEIPT = Receipt(office="Bộ phận Một cửa UBND xã Hòa Bình", code="000.00.12.H23-261126-0001",
                  procedure="Đăng ký khai sinh", received="09:00 26/11/2026", due="01/12/2026",
                  documents=("Tờ khai đăng ký khai sinh", "Giấy chứng sinh (bản chính)"),
                  url="http://192.168.1.10:8080/hs/000.00.12.H23-261126-0001?k=AbCdEfGhIjKlMnOp")


def zbar(path: Path) -> list[str]:
    out = subprocess.run(["zbarimg", "-q", "--raw", str(path)], capture_output=True, text=True, timeout=30)
    return out.stdout.splitlines()


@pytest.mark.parametrize("width", [576, 384])
def test_receipt_image_qr_decodes_to_the_page(tmp_path: Path, width: int) -> None:
    image = render_receipt(RECEIPT, width=width, fonts=FONTS)
    assert image.width == width and image.mode == "1"
    path = tmp_path / "receipt.png"
    image.save(path)
    assert zbar(path) == [RECEIPT.url]


def test_receipt_text_is_correct_vietnamese() -> None:
    lines = receipt_lines(RECEIPT, T)
    assert [text for _, text in lines] == [
        "Bộ phận Một cửa UBND xã Hòa Bình", "GIẤY BIÊN NHẬN HỒ SƠ", "Mã hồ sơ: 000.00.12.H23-261126-0001",
        "Thủ tục: Đăng ký khai sinh", "Ngày tiếp nhận: 09:00 26/11/2026", "Ngày hẹn trả kết quả: 01/12/2026",
        "Giấy tờ đã nhận:", "1. Tờ khai đăng ký khai sinh", "2. Giấy chứng sinh (bản chính)"]
    assert all(unicodedata.normalize("NFC", text) == text for _, text in lines)
    # decomposed input (from a Mac keyboard, say) comes out composed
    nfd = Receipt(**{**RECEIPT.__dict__, "procedure": unicodedata.normalize("NFD", "Đăng ký khai sinh")})
    assert receipt_lines(nfd, T)[3][1] == "Thủ tục: Đăng ký khai sinh"
    # the diacritics are drawn, not boxes: the DejaVu font has every glyph, so the rendered
    # receipt differs from one whose text lost its marks
    plain = Receipt(**{**RECEIPT.__dict__, "procedure": "Dang ky khai sinh"})
    assert render_receipt(nfd, width=576, fonts=FONTS).tobytes() != render_receipt(plain, width=576,
                                                                                   fonts=FONTS).tobytes()


async def test_receipt_printer_sends_the_image_and_cuts(tmp_path: Path) -> None:
    device = tmp_path / "lp0"
    device.write_bytes(b"")
    printer = ReceiptPrinter(PrinterSettings(type="file", device=str(device), font=DEFAULT_FONT,
                                             font_bold=DEFAULT_BOLD_FONT))
    try:
        result = await printer.print_receipt(RECEIPT, T)
    finally:
        printer.close()
    assert result.ok, result
    data = device.read_bytes()
    assert data.startswith(b"\x1b@") or b"\x1dv0" in data[:64]
    assert data.endswith(b"\x1dV\x00")


def site_with(tmp_path: Path, extra: str):  # type: ignore[no-untyped-def]
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra=extra)
    return load_site_config(path)


def test_api_keys_are_read_as_hashes(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"khoa-bi-mat-cua-tinh").hexdigest()
    extra = f'[[api_keys]]\nname = "motcua-tinh"\nkey_sha256 = "{digest.upper()}"\n'
    s = load_server_settings(site_with(tmp_path, extra))
    assert s.api_keys.find("khoa-bi-mat-cua-tinh").name == "motcua-tinh"
    assert s.api_keys.find("khoa-bi-mat-cua-tinH") is None and s.api_keys.find("") is None


@pytest.mark.parametrize(("extra", "key", "words"), [
    ('[[api_keys]]\nname = "tinh"\nkey_sha256 = "khoa-bi-mat"\n', "api_keys[1].key_sha256", "SHA-256"),
    ('[[api_keys]]\nname = "tinh"\n', "api_keys[1].key_sha256", "thiếu"),
    (f'[[api_keys]]\nname = "a"\nkey_sha256 = "{"0" * 64}"\n[[api_keys]]\nname = "a"\nkey_sha256 = "{"1" * 64}"\n',
     "api_keys[2].name", "trùng"),
    (f'[[api_keys]]\nname = "a"\nkey_sha256 = "{"0" * 64}"\nkey = "x"\n', "api_keys[1].key", "không được hỗ trợ"),
    ('[[receipt_printers]]\ntype = "network"\nhost = "10.0.0.5"\ncounters = ["9"]\n', "receipt_printers[1].counters",
     "không có"),
    ('[[receipt_printers]]\ntype = "network"\nhost = "10.0.0.5"\ncounters = ["1"]\n'
     '[[receipt_printers]]\ntype = "network"\nhost = "10.0.0.6"\ncounters = ["1"]\n', "receipt_printers[2].counters",
     "đã có máy in"),
    ('[[receipt_printers]]\ntype = "network"\ncounters = ["1"]\n', "receipt_printers[1].host", "cần địa chỉ"),
])
def test_bad_keys_and_printers_stop_start_up_naming_the_key(tmp_path: Path, extra: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_server_settings(site_with(tmp_path, extra))
    assert err.value.key == key and words in str(err.value)


def test_a_counter_prints_on_its_own_receipt_printer(tmp_path: Path) -> None:
    s = load_server_settings(site_with(tmp_path, '[[receipt_printers]]\ntype = "network"\nhost = "10.0.0.5"\n'
                                                 'paper_width_mm = 58\ncounters = ["1", "2"]\n'))
    assert s.receipt_printer("1").host == "10.0.0.5" and s.receipt_printer("2").width_px == 384
    assert s.receipt_printer("3") is None
