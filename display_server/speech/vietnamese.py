"""Vietnamese numbers and announcement phrases, as words a speech engine reads correctly.

The number rules are those of the Unicode CLDR Vietnamese spell-out (../shared/vietnamese.md):
a citizen who hears another number than the one on the ticket waits for nothing. Three words
differ between regions and offices and are settings: "linh"/"lẻ" after a zero tens digit,
"nghìn"/"ngàn", and "tư"/"bốn" as the unit 4 after "mươi".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")

ZERO_TENS_WORDS = ("linh", "lẻ")
THOUSAND_WORDS = ("nghìn", "ngàn")
FOUR_WORDS = ("tư", "bốn")

# How Vietnamese speakers name the letters of a ticket prefix ("A005", "Đ012").
LETTER_NAMES = {
    "A": "a", "Ă": "á", "Â": "ớ", "B": "bê", "C": "xê", "D": "dê", "Đ": "đê", "E": "e", "Ê": "ê",
    "F": "ép", "G": "giê", "H": "hát", "I": "i", "J": "gi", "K": "ca", "L": "e lờ", "M": "em mờ",
    "N": "en nờ", "O": "o", "Ô": "ô", "Ơ": "ơ", "P": "pê", "Q": "quy", "R": "e rờ", "S": "ét xì",
    "T": "tê", "U": "u", "Ư": "ư", "V": "vê", "W": "vê kép", "X": "ích xì", "Y": "i dài", "Z": "dét",
}


@dataclass(frozen=True)
class NumberStyle:
    """The regional choices; the defaults are the Northern, formal ones."""

    zero_tens: str = "linh"  # 105 một trăm linh năm / một trăm lẻ năm
    thousand: str = "nghìn"  # 1000 một nghìn / một ngàn
    four: str = "tư"  # 24 hai mươi tư / hai mươi bốn
    by_digit: bool = False  # "1005" read "một, không, không, năm"

    def __post_init__(self) -> None:
        for value, allowed in ((self.zero_tens, ZERO_TENS_WORDS), (self.thousand, THOUSAND_WORDS),
                               (self.four, FOUR_WORDS)):
            if value not in allowed:
                raise ValueError(f"{value!r} is not one of {allowed}")


DEFAULT_STYLE = NumberStyle()


def number_to_words(n: int, style: NumberStyle = DEFAULT_STYLE) -> str:
    """The cardinal number n (0 or more) in Vietnamese words, e.g. 1005 → "một nghìn không trăm linh năm"."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"number_to_words needs an int, not {type(n).__name__}")
    if n < 0:
        raise ValueError("ticket numbers are never negative")
    return _cardinal(n, style)


def _cardinal(n: int, s: NumberStyle) -> str:
    if n < 10:
        return DIGITS[n]
    if n < 20:
        unit = n % 10
        return "mười" if unit == 0 else f"mười {_teen_unit(unit)}"
    if n < 100:
        tens, unit = divmod(n, 10)
        head = f"{DIGITS[tens]} mươi"
        return head if unit == 0 else f"{head} {_after_mươi(unit, s)}"
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        head = f"{DIGITS[hundreds]} trăm"
        return head if rest == 0 else f"{head} {_after_hundred(rest, s)}"
    for scale, word in ((10**9, "tỷ"), (10**6, "triệu"), (1000, s.thousand)):
        if n >= scale:
            high, rest = divmod(n, scale)
            head = f"{_cardinal(high, s)} {word}"
            return head if rest == 0 else f"{head} {_after_thousand(rest, s)}"
    raise AssertionError("unreachable")


def _teen_unit(unit: int) -> str:
    return "lăm" if unit == 5 else DIGITS[unit]


def _after_mươi(unit: int, s: NumberStyle) -> str:
    if unit == 1:
        return "mốt"
    if unit == 4:
        return s.four
    return _teen_unit(unit)


def _after_hundred(rest: int, s: NumberStyle) -> str:
    # 1–9 after a hundred: "linh" + the plain digit, never mốt/tư/lăm (105 một trăm linh năm)
    return f"{s.zero_tens} {DIGITS[rest]}" if rest < 10 else _cardinal(rest, s)


def _after_thousand(rest: int, s: NumberStyle) -> str:
    # 1–99 after a thousand needs "không trăm": 1005 một nghìn không trăm linh năm
    return f"không trăm {_after_hundred(rest, s)}" if rest < 100 else _cardinal(rest, s)


def digits_to_words(digits: str) -> str:
    """Digit by digit, as some offices read ticket numbers: "1005" → "một, không, không, năm"."""
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(f"{digits!r} is not a string of digits")
    return ", ".join(DIGITS[int(d)] for d in digits)


_TICKET_RE = re.compile(r"^([^\W\d_]*)(\d+)$")


def ticket_to_words(number: str, style: NumberStyle = DEFAULT_STYLE) -> str:
    """A ticket number as said aloud: "1005" → "một nghìn không trăm linh năm", "A005" → "a năm"
    (the letters of the prefix by their Vietnamese names, then the number)."""
    text = nfc(number).strip().upper()
    m = _TICKET_RE.match(text)
    if not m:
        raise ValueError(f"{number!r} is not a ticket number")
    prefix, digits = m.groups()
    words = [letter_name(c) for c in prefix]
    words.append(digits_to_words(digits) if style.by_digit else number_to_words(int(digits), style))
    return " ".join(words)


def letter_name(letter: str) -> str:
    try:
        return LETTER_NAMES[letter.upper()]
    except KeyError:
        raise ValueError(f"no Vietnamese name for the letter {letter!r}") from None


def counter_to_words(counter_id: str, name: str, style: NumberStyle = DEFAULT_STYLE) -> str:
    """What fills {counter} in the template: a numeric id in words ("3" → "ba"), else the name."""
    if counter_id.isascii() and counter_id.isdigit():
        return number_to_words(int(counter_id), style)
    return nfc(name)


def nfc(text: str) -> str:
    """Composed Unicode (NFC): the one form pages, caches and speech engines agree on."""
    return unicodedata.normalize("NFC", text)


DEFAULT_TEMPLATE = "Mời công dân có số thứ tự {number} đến quầy số {counter}"
DEFAULT_SPOKEN_TEMPLATE = "đến {spoken}"
_PLACEHOLDER_RE = re.compile(r"\{(\w*)\}")


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Phrasing:
    """The announcement template, split at {number}: the intro before it and the counter part
    after it are rendered at start, the number's words ahead of the ticket, and a call plays the
    three one after the other.

    `template` holds {number} and then {counter} (the counter's id read aloud). A counter whose
    `spoken` name is set ("quầy tiếp nhận số ba") is announced with `spoken_template`, which
    replaces the part after {number} and holds {spoken}.
    """

    template: str = DEFAULT_TEMPLATE
    spoken_template: str = DEFAULT_SPOKEN_TEMPLATE
    style: NumberStyle = DEFAULT_STYLE

    def __post_init__(self) -> None:
        names = _PLACEHOLDER_RE.findall(self.template)
        if names != ["number", "counter"]:
            raise TemplateError("template needs {number} and then {counter}, once each, and nothing else in braces")
        if _PLACEHOLDER_RE.findall(self.spoken_template) != ["spoken"]:
            raise TemplateError("spoken_template needs {spoken} once, and nothing else in braces")
        object.__setattr__(self, "template", nfc(self.template))
        object.__setattr__(self, "spoken_template", nfc(self.spoken_template))

    def _parts(self) -> tuple[str, str]:
        head, _, tail = self.template.partition("{number}")
        return head, tail

    def ticket_phrase(self, number: str) -> str:
        head, _ = self._parts()
        return _tidy(f"{head}{ticket_to_words(number, self.style)}")

    @property
    def intro(self) -> str:
        """The part before {number} ("Mời công dân có số thứ tự"): one clip for every ticket, so a
        new number costs only its own words, and calls that come quickly can leave it out."""
        return _tidy(self._parts()[0])

    def number_phrase(self, number: str) -> str:
        """The ticket number alone, as said aloud ("một nghìn không trăm linh năm")."""
        return ticket_to_words(number, self.style)

    def counter_phrase(self, counter_id: str, name: str, spoken: str | None = None) -> str:
        if spoken:
            return _tidy(self.spoken_template.replace("{spoken}", nfc(spoken)))
        _, tail = self._parts()
        return _tidy(tail.replace("{counter}", counter_to_words(counter_id, name, self.style)))


def _tidy(text: str) -> str:
    return " ".join(text.split())


def announcement_text(number: str, counter_id: str, counter_name: str = "", spoken: str | None = None,
                      phrasing: Phrasing | None = None) -> str:
    """The whole announcement of one call, e.g. ("1005", "3") → "Mời công dân có số thứ tự một
    nghìn không trăm linh năm đến quầy số ba"."""
    p = phrasing or Phrasing()
    return f"{p.ticket_phrase(number)} {p.counter_phrase(counter_id, counter_name, spoken)}"
