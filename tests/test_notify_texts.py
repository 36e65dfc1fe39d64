"""Phones in one form and never leaked; messages in one GSM-7 SMS, with the number, counter and link
intact; ZNS data within Zalo's limits; waiting times people understand."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.texts import (
    DEFAULT_TEMPLATES,
    GSM7_BASIC,
    KIND_PLACEHOLDERS,
    SMS_MAX,
    Kind,
    TemplateError,
    check_sms_fits,
    format_wait,
    render_sms,
    render_text,
    strip_diacritics,
    zns_data,
)
from qms_common.phones import PHONE_HINT, PhoneError, local_form, mask_phone, normalize_phone

LONG_FIELD = "Đăng ký doanh nghiệp và hộ kinh doanh, hợp tác xã"
LONG_COUNTER = "Quầy tiếp nhận và trả kết quả số 12"
OFFICE = "UBND phường Hòa Bình"
# public_url + "/t/20261129-dang-ky-kinh-doanh-a012/" + a 16-character token
LINK = "http://192.168.100.100:8080/t/20261129-dang-ky-kinh-doanh-a012/abcdefghijklmnop"


# ---------------------------------------------------------------- phones

@pytest.mark.parametrize("text", [
    "0912345678", "091 234 5678", "091.234.5678", "+84912345678", "84912345678", "(+84) 912-345-678",
    " 0912345678 ", "+84 0912345678", "091-234-5678",
])
def test_every_usual_way_of_writing_a_number_gives_one_form(text: str) -> None:
    assert normalize_phone(text) == "84912345678"


@pytest.mark.parametrize("local", ["0312345678", "0512345678", "0712345678", "0812345678", "0987654321"])
def test_every_mobile_prefix_is_accepted(local: str) -> None:
    assert local_form(normalize_phone(local)) == local


@pytest.mark.parametrize("text", [
    "", "0", "091234567", "09123456789", "0112345678", "0212345678", "0412345678", "0612345678",
    "1912345678", "+1 202 555 0100", "+85291234567", "091234567a", "09l2345678", "0912 345 678 ext 1",
    "٠٩١٢٣٤٥٦٧٨", "０９１２３４５６７８", "0912345678" + " " * 11, "++84912345678", "84+912345678",
    "0912\n345678", "849123456789", "8491234567", "+0912345678",
])
def test_anything_else_is_refused_with_the_kiosk_hint_and_without_the_input(text: str) -> None:
    with pytest.raises(PhoneError) as info:
        normalize_phone(text)
    # the fixed hint and nothing else: what was typed never reaches a log through the error
    assert info.value.args == (PHONE_HINT,)
    assert isinstance(info.value, ValueError)


@given(st.text(max_size=30))
@settings(max_examples=300)
def test_normalize_either_gives_a_mobile_or_refuses(text: str) -> None:
    try:
        phone = normalize_phone(text)
    except PhoneError:
        return
    assert len(text) <= 20
    assert phone.isascii() and phone.isdigit() and len(phone) == 11 and phone[:3] in ("843", "845", "847", "848",
                                                                                        "849")
    assert normalize_phone(phone) == phone == normalize_phone(local_form(phone))


@pytest.mark.parametrize(("phone", "masked"), [
    ("84912345678", "09x…x78"), ("0912345678", "09x…x78"), ("0387654321", "03x…x21"),
    ("nonsense", "…"), ("", "…"), ("0112345678", "…"),
])
def test_masks_show_only_the_ends(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_local_form() -> None:
    assert local_form("84912345678") == "0912345678"
    assert local_form("+84 91 234 5678") == "0912345678"
    with pytest.raises(PhoneError):
        local_form("123")


# ---------------------------------------------------------------- waiting time

@pytest.mark.parametrize(("seconds", "vi", "en"), [
    (None, "chưa xác định", "unknown"),
    (0, "dưới 5 phút", "under 5 min"),
    (-30, "dưới 5 phút", "under 5 min"),
    (299, "dưới 5 phút", "under 5 min"),
    (300, "khoảng 5 phút", "about 5 min"),
    (900, "khoảng 15 phút", "about 15 min"),
    (16 * 60, "khoảng 15 phút", "about 15 min"),
    (18 * 60, "khoảng 20 phút", "about 20 min"),
    (3600, "khoảng 1 giờ", "about 1 h"),
    (80 * 60, "khoảng 1 giờ 20 phút", "about 1 h 20 min"),
    (12 * 3600, "hơn 10 giờ", "over 10 h"),
])
def test_waits_are_rounded_and_worded(seconds: int | None, vi: str, en: str) -> None:
    assert format_wait(seconds) == vi
    assert format_wait(seconds, "en") == en


# ---------------------------------------------------------------- diacritics and GSM-7

def test_vietnamese_loses_only_its_marks() -> None:
    assert strip_diacritics("Đất đai, Hộ tịch, Chứng thực — ĐĂNG KÝ") == "Dat dai, Ho tich, Chung thuc - DANG KY"
    assert strip_diacritics("Trường Hợp ưu tiên: Người cao tuổi") == "Truong Hop uu tien: Nguoi cao tuoi"


def test_typography_becomes_plain_gsm() -> None:
    assert strip_diacritics("“Một cửa” ‘A’ – 5…") == '"Mot cua" \'A\' - 5...'
    assert strip_diacritics("[x]{y}\\|~^") == "(x)(y)//-"
    assert strip_diacritics("số\u00a0１２") == "so 12"
    assert strip_diacritics("漢字 ok") == " ok"


@given(st.text(max_size=300))
@settings(max_examples=300)
def test_stripped_text_is_gsm7_basic(text: str) -> None:
    assert set(strip_diacritics(text)) <= GSM7_BASIC


_value = st.text(max_size=60)


@given(office=_value, field=st.text(max_size=120), ahead=st.text(max_size=4), wait=st.text(max_size=24),
       number=st.text(max_size=7), link=st.text(max_size=80), counter=st.text(max_size=40),
       code=st.text(max_size=8), day=st.text(max_size=10), slot=st.text(max_size=5),
       dossier=st.text(max_size=64), procedure=st.text(max_size=500), needs=st.text(max_size=500),
       timing=st.text(max_size=20))
@settings(max_examples=300)
def test_a_rendered_sms_is_one_gsm7_part_or_an_error(office: str, field: str, ahead: str, wait: str,
                                                     number: str, link: str, counter: str, code: str, day: str,
                                                     slot: str, dossier: str, procedure: str, needs: str,
                                                     timing: str) -> None:
    values = {"office": office, "field": field, "ahead": ahead, "wait": wait, "number": number, "link": link,
              "counter": counter, "code": code, "day": day, "slot": slot, "dossier": dossier,
              "procedure": procedure, "needs": needs, "due": day, "timing": timing}
    for kind, template in DEFAULT_TEMPLATES["vi"].items():
        try:
            text = render_sms(template, values, kind=kind)
        except TemplateError as exc:
            assert exc.length is not None and exc.length > SMS_MAX
            continue
        assert len(text) <= SMS_MAX
        assert set(text) <= GSM7_BASIC
        assert text == " ".join(text.split())
        # what the message is for is never cut
        for key in ("number", "link", "counter"):
            if f"{{{key}}}" in template:
                assert " ".join(strip_diacritics(values[key]).split()) in text


def test_default_templates_fit_with_the_longest_names() -> None:
    for lang, templates in DEFAULT_TEMPLATES.items():
        assert set(templates) == set(Kind)
        check_sms_fits(templates, office=OFFICE, field_names=["Đất đai", LONG_FIELD], link_len=len(LINK),
                       counter_names=["Quầy 1", LONG_COUNTER], language=lang)
        for template in templates.values():
            assert unicodedata.is_normalized("NFC", template)


def test_long_names_are_shortened_field_first_and_the_rest_kept() -> None:
    values = {"office": OFFICE, "number": "A012", "field": LONG_FIELD, "ahead": "12",
              "wait": format_wait(80 * 60), "link": LINK}
    text = render_sms(DEFAULT_TEMPLATES["vi"][Kind.ISSUED], values)
    assert len(text) <= SMS_MAX
    assert "A012" in text and text.endswith(LINK) and "khoang 1 gio 20 phut" in text
    assert "Dang ky doanh nghiep va ho kinh doanh" not in text  # the field went first
    # a usual day: nothing needs shortening
    usual = dict(values, field="Đất đai", wait=format_wait(900),
                 link="https://xephang.hoabinh.gov.vn/t/20261129-dat-dai-1005/abcdefghijklmnop")
    assert render_sms(DEFAULT_TEMPLATES["vi"][Kind.ISSUED], usual) == (
        "UBND phuong Hoa Binh: so A012 (Dat dai), con 12 nguoi truoc, cho khoang 15 phut. " + usual["link"])


def test_a_short_message_is_left_whole() -> None:
    text = render_sms(DEFAULT_TEMPLATES["vi"][Kind.CALLED], {"office": OFFICE, "number": "1005",
                                                           "counter": LONG_COUNTER})
    assert text == "UBND phuong Hoa Binh: moi cong dan co so 1005 den Quay tiep nhan va tra ket qua so 12."


def test_a_template_that_cannot_fit_is_a_config_error_naming_kind_and_length() -> None:
    long = "{office}: " + "x" * 150 + " {number} {link}"
    with pytest.raises(TemplateError) as info:
        check_sms_fits({"issued": long}, office=OFFICE, field_names=[LONG_FIELD], link_len=60,
                       counter_names=[LONG_COUNTER])
    assert info.value.kind == "issued"
    assert info.value.length is not None and info.value.length > SMS_MAX
    assert "issued" in str(info.value) and str(info.value.length) in str(info.value)
    assert "SMS" in str(info.value)


@pytest.mark.parametrize(("kind", "template", "words"), [
    ("called", "{office}: {number} {nonsense}", ["{nonsense}"]),
    ("nears", "{office}: {number} đến {counter}", ["{counter}", "nears"]),
    ("issued", "{office}: {number!r}", ["{number}"]),
    ("rate", "{office}: {number:>5}", ["{number}"]),
    ("rate", "{office}: {number", ["ngoặc"]),
    ("rate", "{office.__class__}", ["office.__class__"]),
])
def test_bad_placeholders_are_refused(kind: str, template: str, words: list[str]) -> None:
    with pytest.raises(TemplateError) as info:
        check_sms_fits({kind: template}, office=OFFICE, field_names=[], link_len=10, counter_names=[])
    for w in words:
        assert w in str(info.value)


def test_missing_value_is_a_template_error() -> None:
    with pytest.raises(TemplateError):
        render_sms("{office}: {number}", {"office": OFFICE})


def test_render_text_keeps_diacritics_in_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", OFFICE)
    text = render_text(DEFAULT_TEMPLATES["vi"][Kind.CALLED], {"office": decomposed, "number": "A012",
                                                            "counter": "Quầy  3"})
    assert text == "UBND phường Hòa Bình: mời công dân có số A012 đến Quầy 3."
    assert unicodedata.is_normalized("NFC", text)


def test_every_default_uses_only_its_kinds_values() -> None:
    for templates in DEFAULT_TEMPLATES.values():
        for kind, template in templates.items():
            values = {k: k.upper() for k in KIND_PLACEHOLDERS[kind]}
            assert "{" not in render_text(template, values)


# ---------------------------------------------------------------- ZNS

def test_zns_data_has_the_kinds_keys_within_limits() -> None:
    values = {"office": OFFICE, "number": "A012", "field": LONG_FIELD, "ahead": "12", "wait": "khoảng 15 phút",
              "counter": LONG_COUNTER, "link": "https://x.vn/" + "a" * 250}
    issued = zns_data(Kind.ISSUED, values)
    assert set(issued) == {"office", "number", "field", "ahead", "wait", "link"}
    assert issued["field"] == LONG_FIELD[:29].rstrip() + "…" and len(issued["field"]) <= 30
    assert len(issued["link"]) == 200
    assert issued["number"] == "A012" and issued["office"] == OFFICE
    assert zns_data("called", values) == {"office": OFFICE, "number": "A012", "counter": LONG_COUNTER[:29] + "…"}
    assert set(zns_data(Kind.NEARS, values)) == {"office", "number", "ahead"}
    assert set(zns_data(Kind.RATE, values)) == {"office", "number", "link"}
    # a value the caller does not have is left out, not sent empty
    assert zns_data(Kind.CALLED, {"number": "1005"}) == {"number": "1005"}


@given(st.dictionaries(st.sampled_from(["office", "number", "field", "ahead", "wait", "counter", "link"]),
                       st.text(max_size=400)))
def test_zns_values_never_exceed_limits(values: dict[str, str]) -> None:
    for kind in Kind:
        for key, value in zns_data(kind, values).items():
            assert len(value) <= (200 if key == "link" else 30)
