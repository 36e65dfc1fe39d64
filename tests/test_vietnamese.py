"""Vietnamese number reading (the CLDR rules of ../shared/vietnamese.md), prefixes and phrasing."""

from __future__ import annotations

import unicodedata

import pytest

from display_server.speech.vietnamese import (
    LETTER_NAMES,
    NumberStyle,
    Phrasing,
    TemplateError,
    announcement_text,
    digits_to_words,
    number_to_words,
    ticket_to_words,
)

DEFAULT_TABLE = {
    0: "không",
    1: "một",
    4: "bốn",
    5: "năm",
    10: "mười",
    11: "mười một",
    14: "mười bốn",
    15: "mười lăm",
    20: "hai mươi",
    21: "hai mươi mốt",
    24: "hai mươi tư",
    25: "hai mươi lăm",
    31: "ba mươi mốt",
    55: "năm mươi lăm",
    99: "chín mươi chín",
    100: "một trăm",
    101: "một trăm linh một",
    104: "một trăm linh bốn",
    105: "một trăm linh năm",
    110: "một trăm mười",  # not "một trăm mốt", which people say for 110 colloquially
    111: "một trăm mười một",
    115: "một trăm mười lăm",
    121: "một trăm hai mươi mốt",
    124: "một trăm hai mươi tư",
    200: "hai trăm",
    1000: "một nghìn",
    1001: "một nghìn không trăm linh một",
    1005: "một nghìn không trăm linh năm",
    1010: "một nghìn không trăm mười",  # num2words says "một nghìn lẻ mười"
    1015: "một nghìn không trăm mười lăm",
    1021: "một nghìn không trăm hai mươi mốt",
    1100: "một nghìn một trăm",
    1105: "một nghìn một trăm linh năm",
    1999: "một nghìn chín trăm chín mươi chín",
    2024: "hai nghìn không trăm hai mươi tư",  # num2words says "hai nghìn lẻ hai mươi bốn"
    4001: "bốn nghìn không trăm linh một",
    10000: "mười nghìn",
    10005: "mười nghìn không trăm linh năm",
    15000: "mười lăm nghìn",
    21000: "hai mươi mốt nghìn",
    105000: "một trăm linh năm nghìn",
    999999: "chín trăm chín mươi chín nghìn chín trăm chín mươi chín",
    1000000: "một triệu",
    1000005: "một triệu không trăm linh năm",
    2005000: "hai triệu năm nghìn",
    1000000000: "một tỷ",
}


@pytest.mark.parametrize(("n", "words"), sorted(DEFAULT_TABLE.items()))
def test_default_reading(n: int, words: str) -> None:
    assert number_to_words(n) == words


@pytest.mark.parametrize(("style", "n", "words"), [
    (NumberStyle(zero_tens="lẻ"), 105, "một trăm lẻ năm"),
    (NumberStyle(zero_tens="lẻ"), 1005, "một nghìn không trăm lẻ năm"),
    (NumberStyle(zero_tens="lẻ"), 10005, "mười nghìn không trăm lẻ năm"),
    (NumberStyle(zero_tens="lẻ"), 1010, "một nghìn không trăm mười"),  # lẻ only before a digit
    (NumberStyle(thousand="ngàn"), 1000, "một ngàn"),
    (NumberStyle(thousand="ngàn"), 2024, "hai ngàn không trăm hai mươi tư"),
    (NumberStyle(four="bốn"), 24, "hai mươi bốn"),
    (NumberStyle(four="bốn"), 2024, "hai nghìn không trăm hai mươi bốn"),
    (NumberStyle(four="bốn"), 14, "mười bốn"),
    (NumberStyle(zero_tens="lẻ", thousand="ngàn", four="bốn"), 1104, "một ngàn một trăm lẻ bốn"),
    (NumberStyle(zero_tens="lẻ", thousand="ngàn", four="bốn"), 3024, "ba ngàn không trăm hai mươi bốn"),
])
def test_regional_settings(style: NumberStyle, n: int, words: str) -> None:
    assert number_to_words(n, style) == words


def test_four_is_tu_only_after_muoi() -> None:
    assert number_to_words(4) == "bốn"
    assert number_to_words(104) == "một trăm linh bốn"
    assert number_to_words(14) == "mười bốn"
    assert number_to_words(44) == "bốn mươi tư"


@pytest.mark.parametrize("bad", [-1, -1005])
def test_negative_is_refused(bad: int) -> None:
    with pytest.raises(ValueError):
        number_to_words(bad)


@pytest.mark.parametrize("bad", [1.5, "5", True, None])
def test_non_int_is_refused(bad: object) -> None:
    with pytest.raises(TypeError):
        number_to_words(bad)  # type: ignore[arg-type]


def test_bad_style_is_refused() -> None:
    with pytest.raises(ValueError):
        NumberStyle(zero_tens="lẽ")
    with pytest.raises(ValueError):
        NumberStyle(thousand="ngìn")


def test_every_word_is_nfc() -> None:
    for n in [*range(1200), 2024, 10005, 999999]:
        words = number_to_words(n)
        assert unicodedata.is_normalized("NFC", words), n
        assert "  " not in words and words == words.strip()


def test_digit_by_digit() -> None:
    assert digits_to_words("1005") == "một, không, không, năm"
    assert ticket_to_words("1005", NumberStyle(by_digit=True)) == "một, không, không, năm"
    assert ticket_to_words("A015", NumberStyle(by_digit=True)) == "a không, một, năm"
    with pytest.raises(ValueError):
        digits_to_words("1a")


@pytest.mark.parametrize(("number", "words"), [
    ("1005", "một nghìn không trăm linh năm"),
    ("A005", "a năm"),
    ("B012", "bê mười hai"),
    ("C001", "xê một"),
    ("D105", "dê một trăm linh năm"),
    ("Đ021", "đê hai mươi mốt"),
    ("E5", "e năm"),
    ("AB24", "a bê hai mươi tư"),
    ("a005", "a năm"),
])
def test_ticket_prefixes(number: str, words: str) -> None:
    assert ticket_to_words(number) == words


def test_prefix_letter_names_cover_config_letters() -> None:
    # the site configuration allows prefixes of [A-ZĐ]
    for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZĐ":
        assert LETTER_NAMES[c]


@pytest.mark.parametrize("bad", ["", "A", "10-5", "A 5", "5A"])
def test_bad_ticket_numbers(bad: str) -> None:
    with pytest.raises(ValueError):
        ticket_to_words(bad)


def test_default_announcement() -> None:
    assert announcement_text("1005", "3") == \
        "Mời công dân có số thứ tự một nghìn không trăm linh năm đến quầy số ba"
    assert announcement_text("2024", "12") == \
        "Mời công dân có số thứ tự hai nghìn không trăm hai mươi tư đến quầy số mười hai"


def test_spoken_counter_name() -> None:
    assert announcement_text("1005", "3", "Quầy 3", "quầy tiếp nhận số ba") == \
        "Mời công dân có số thứ tự một nghìn không trăm linh năm đến quầy tiếp nhận số ba"


def test_non_numeric_counter_id_is_read_by_name() -> None:
    assert announcement_text("1001", "tiep-nhan", "Bàn tiếp nhận") == \
        "Mời công dân có số thứ tự một nghìn không trăm linh một đến quầy số Bàn tiếp nhận"


def test_custom_template_and_style() -> None:
    p = Phrasing(template="Xin mời khách hàng số {number} đến bàn số {counter}",
                 spoken_template="tới {spoken}",
                 style=NumberStyle(zero_tens="lẻ", thousand="ngàn"))
    assert p.ticket_phrase("1005") == "Xin mời khách hàng số một ngàn không trăm lẻ năm"
    assert p.counter_phrase("2", "Quầy 2") == "đến bàn số hai"
    assert p.counter_phrase("2", "Quầy 2", "quầy hai") == "tới quầy hai"
    assert announcement_text("1005", "2", phrasing=p) == \
        "Xin mời khách hàng số một ngàn không trăm lẻ năm đến bàn số hai"


def test_template_is_normalised_to_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "Mời số {number} đến quầy {counter}")
    p = Phrasing(template=decomposed)
    assert unicodedata.is_normalized("NFC", p.ticket_phrase("5"))
    assert p.ticket_phrase("5") == "Mời số năm"


@pytest.mark.parametrize("template", [
    "Mời {counter} số {number}",  # the counter before the number: no ticket clip to pre-render
    "Mời số {number}",
    "Mời số {number} {number} đến {counter}",
    "Mời số {numbr} đến {counter}",
    "Mời số {number} đến {counter} {x}",
])
def test_bad_templates(template: str) -> None:
    with pytest.raises(TemplateError):
        Phrasing(template=template)
    with pytest.raises(TemplateError):
        Phrasing(spoken_template="đến quầy")
