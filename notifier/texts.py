"""What the notifier says: message kinds, default wording, and rendering for SMS, ZNS and text.

Pure functions only. An SMS goes out without diacritics in the GSM 03.38 basic set (160
characters in one part; with diacritics it would be UCS-2 and 70), so rendering shortens the
field and office names rather than split a message or cut the number, counter or link.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from enum import StrEnum
from itertools import pairwise
from string import Formatter

from qms_common.signing import TOKEN_CHARS

SMS_MAX = 160
ZNS_PARAM_MAX = 30
ZNS_LINK_MAX = 200
LANGUAGES = ("vi", "en")


class Kind(StrEnum):
    ISSUED = "issued"
    NEARS = "nears"
    CALLED = "called"
    RATE = "rate"
    CHECKIN = "checkin"          # a remote ticket's turn came before its check-in
    OTP = "otp"                  # a one-time code for a phone given on the web
    REMIND_EVE = "remind_eve"    # a booking, the evening before
    REMIND_SOON = "remind_soon"  # a booking, 30 minutes before
    DOSSIER_RECEIVED = "dossier_received"  # a dossier was received (at the counter or online)
    DOSSIER_NEEDS = "dossier_needs"        # a dossier needs more documents (which: {needs})
    DOSSIER_DONE = "dossier_done"          # a dossier's result is ready ("trước hẹn" when early)


# The kinds about a dossier rather than a ticket: their {link} opens the dossier's page.
DOSSIER_KINDS = frozenset({Kind.DOSSIER_RECEIVED, Kind.DOSSIER_NEEDS, Kind.DOSSIER_DONE})


# How the kinds are named to an installer reading an error.
KIND_LABELS = {
    Kind.ISSUED: "lấy số",
    Kind.NEARS: "sắp đến lượt",
    Kind.CALLED: "mời đến quầy",
    Kind.RATE: "mời đánh giá",
    Kind.CHECKIN: "mời xác nhận có mặt",
    Kind.OTP: "mã xác nhận",
    Kind.REMIND_EVE: "nhắc lịch hẹn tối hôm trước",
    Kind.REMIND_SOON: "nhắc lịch hẹn trước 30 phút",
    Kind.DOSSIER_RECEIVED: "hồ sơ đã tiếp nhận",
    Kind.DOSSIER_NEEDS: "hồ sơ cần bổ sung",
    Kind.DOSSIER_DONE: "hồ sơ đã có kết quả",
}

PLACEHOLDERS = ("office", "number", "field", "ahead", "wait", "counter", "link", "code", "day", "slot",
                "dossier", "procedure", "due", "needs", "timing")

# The values the notifier has for each kind: a template may use only these (a "nears" message is
# sent before any counter is known, so it cannot name one).
KIND_PLACEHOLDERS: dict[Kind, frozenset[str]] = {
    Kind.ISSUED: frozenset({"office", "number", "field", "ahead", "wait", "link"}),
    Kind.NEARS: frozenset({"office", "number", "field", "ahead", "wait", "link"}),
    Kind.CALLED: frozenset({"office", "number", "field", "counter", "link"}),
    Kind.RATE: frozenset({"office", "number", "field", "counter", "link"}),
    Kind.CHECKIN: frozenset({"office", "number", "field", "link"}),
    Kind.OTP: frozenset({"office", "code"}),
    Kind.REMIND_EVE: frozenset({"office", "field", "day", "slot", "code", "link"}),
    Kind.REMIND_SOON: frozenset({"office", "field", "day", "slot", "code", "link"}),
    # {dossier} is the dossier's code, {due} the promised return date (ngày hẹn trả)
    Kind.DOSSIER_RECEIVED: frozenset({"office", "dossier", "procedure", "due", "link"}),
    Kind.DOSSIER_NEEDS: frozenset({"office", "dossier", "procedure", "due", "needs", "link"}),
    Kind.DOSSIER_DONE: frozenset({"office", "dossier", "procedure", "due", "timing", "link"}),
}

# The ZNS template parameters each kind fills (the approved template must declare them).
ZNS_KEYS: dict[Kind, tuple[str, ...]] = {
    Kind.ISSUED: ("office", "number", "field", "ahead", "wait", "link"),
    Kind.NEARS: ("office", "number", "ahead"),
    Kind.CALLED: ("office", "number", "counter"),
    Kind.RATE: ("office", "number", "link"),
    Kind.CHECKIN: ("office", "number"),
    Kind.OTP: ("code",),
    Kind.REMIND_EVE: ("office", "field", "day", "slot", "code"),
    Kind.REMIND_SOON: ("office", "field", "slot", "code"),
    Kind.DOSSIER_RECEIVED: ("office", "dossier", "procedure", "due", "link"),
    Kind.DOSSIER_NEEDS: ("office", "dossier", "procedure", "needs", "link"),
    Kind.DOSSIER_DONE: ("office", "dossier", "procedure", "timing", "due", "link"),
}

# Short on purpose: an SMS is one GSM-7 part of 160 characters, and the link alone takes ~80.
DEFAULT_TEMPLATES: dict[str, dict[Kind, str]] = {
    "vi": {
        Kind.ISSUED: "{office}: số {number} ({field}), còn {ahead} người trước, chờ {wait}. {link}",
        Kind.NEARS: "{office}: sắp đến lượt số {number}, còn {ahead} người phía trước. "
                    "Mời ông/bà quay lại phòng chờ.",
        Kind.CALLED: "{office}: mời công dân có số {number} đến {counter}.",
        Kind.RATE: "{office}: cảm ơn ông/bà. Mời đánh giá mức độ hài lòng: {link}",
        Kind.CHECKIN: "{office}: đã đến lượt số {number}, mời ông/bà xác nhận có mặt tại ki-ốt.",
        Kind.OTP: "{office}: mã xác nhận của ông/bà là {code}, dùng trong 5 phút. Không đưa mã này cho ai.",
        Kind.REMIND_EVE: "{office}: nhắc lịch hẹn {field} lúc {slot} ngày {day}, mã {code}. {link}",
        Kind.REMIND_SOON: "{office}: lịch hẹn {field} lúc {slot} hôm nay, mã {code}. "
                          "Mời ông/bà đến xác nhận tại ki-ốt.",
        # the link names the dossier's code already: the SMS does not spend characters on it twice
        Kind.DOSSIER_RECEIVED: "{office}: đã tiếp nhận hồ sơ {procedure}, hẹn trả ngày {due}. {link}",
        Kind.DOSSIER_NEEDS: "{office}: hồ sơ {procedure} cần bổ sung: {needs}. {link}",
        Kind.DOSSIER_DONE: "{office}: hồ sơ {procedure} đã có kết quả ({timing}). {link}",
    },
    "en": {
        Kind.ISSUED: "{office}: number {number} ({field}), {ahead} ahead of you, wait {wait}. {link}",
        Kind.NEARS: "{office}: number {number}, your turn is near ({ahead} ahead). "
                    "Please return to the waiting room.",
        Kind.CALLED: "{office}: number {number}, please go to {counter}.",
        Kind.RATE: "{office}: thank you for your visit. Please rate our service: {link}",
        Kind.CHECKIN: "{office}: it is the turn of number {number}. Please check in at the kiosk.",
        Kind.OTP: "{office}: your code is {code}, valid for 5 minutes. Do not share it.",
        Kind.REMIND_EVE: "{office}: appointment ({field}) at {slot} on {day}, code {code}. {link}",
        Kind.REMIND_SOON: "{office}: appointment ({field}) at {slot} today, code {code}. "
                          "Please check in at the kiosk.",
        Kind.DOSSIER_RECEIVED: "{office}: your dossier ({procedure}) was received, result due {due}. {link}",
        Kind.DOSSIER_NEEDS: "{office}: your dossier ({procedure}) needs: {needs}. {link}",
        Kind.DOSSIER_DONE: "{office}: your dossier ({procedure}) is done ({timing}). {link}",
    },
}


class TemplateError(ValueError):
    """A template that cannot be used, or a message that cannot fit; the text says why in Vietnamese."""

    def __init__(self, message: str, *, kind: str | None = None, length: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.length = length


# ---------------------------------------------------------------- waiting time

def format_wait(seconds: float | None, language: str = "vi") -> str:
    """An honest estimate: "dưới 5 phút", "khoảng 15 phút", "khoảng 1 giờ 20 phút"."""
    vi = language != "en"
    if seconds is None:
        return "chưa xác định" if vi else "unknown"
    # to the nearest 5 minutes: a minute-exact figure promises more than the estimate knows
    minutes = int((max(0.0, float(seconds)) / 60 + 2.5) // 5 * 5)
    if seconds < 5 * 60 or minutes < 5:
        return "dưới 5 phút" if vi else "under 5 min"
    if minutes >= 10 * 60:
        return "hơn 10 giờ" if vi else "over 10 h"
    hours, rest = divmod(minutes, 60)
    if vi:
        parts = ([f"{hours} giờ"] if hours else []) + ([f"{rest} phút"] if rest else [])
        return "khoảng " + " ".join(parts)
    parts = ([f"{hours} h"] if hours else []) + ([f"{rest} min"] if rest else [])
    return "about " + " ".join(parts)


# ---------------------------------------------------------------- dossiers

def format_day(day: str) -> str:
    """A date as Vietnamese offices write it: "2026-12-05" → "05/12/2026"."""
    return date.fromisoformat(day).strftime("%d/%m/%Y")


def dossier_timing(early: bool, due: str, language: str = "vi") -> str:
    """How a result came against its promise: "trước hẹn" when early (what Decision 766 counts and
    citizens are glad to read), otherwise the promised date itself."""
    vi = language != "en"
    if early:
        return "trước hẹn" if vi else "ahead of schedule"
    return f"hẹn trả {format_day(due)}" if vi else f"due {format_day(due)}"


# ---------------------------------------------------------------- GSM 03.38

# The basic character set, one septet each (the escape and the extension table are left out:
# an extension character costs two septets and some handsets show it wrongly).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)

# Close ASCII for what typing, word processors and other alphabets bring in.
_REPLACEMENTS = {
    "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ł": "l", "Ł": "L", "ı": "i", "œ": "oe", "Œ": "OE",
    "þ": "th", "Þ": "Th",
    "“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"', "″": '"',
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "`": "'", "´": "'", "‹": "'", "›": "'",
    "–": "-", "—": "-", "‒": "-", "―": "-", "−": "-", "‐": "-", "‑": "-", "~": "-",
    "…": "...", "•": "-", "·": ".", "×": "x", "÷": "/",
    "[": "(", "]": ")", "{": "(", "}": ")", "\\": "/", "|": "/", "^": "",
    "€": "EUR", "₫": "d", "°": "", "\t": " ", "\u00a0": " ", "\u202f": " ", "\u2009": " ",
}


def strip_diacritics(text: str) -> str:
    """Vietnamese without its marks, within the GSM 03.38 basic set: "Đất đai" → "Dat dai"."""
    out: list[str] = []
    # NFKD: marks come apart from their letters, and compatibility forms (full-width digits,
    # ligatures) become the plain ones
    for ch in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(ch):
            continue
        ch = _REPLACEMENTS.get(ch, ch)
        for c in ch:
            if c in GSM7_BASIC:
                out.append(c)
            elif c.isspace():
                out.append(" ")
    return "".join(out)


# ---------------------------------------------------------------- templates

def template_fields(template: str, *, kind: str | None = None) -> list[str]:
    """The placeholders a template uses; TemplateError for a malformed or unknown one."""
    try:
        parsed = list(Formatter().parse(template))
    except ValueError:
        raise TemplateError(f"mẫu {_kind_words(kind)}có dấu ngoặc {{ }} không khớp.", kind=kind) from None
    names: list[str] = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            raise TemplateError(
                f"mẫu {_kind_words(kind)}có chỗ trống {{{name}}} không được hỗ trợ; dùng: "
                + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS) + ".", kind=kind)
        names.append(name)
    return names


def check_template(kind: Kind | str, template: str) -> None:
    """A template uses only the values its kind has; TemplateError otherwise."""
    kind = Kind(kind)
    for name in template_fields(template, kind=kind):
        if name not in KIND_PLACEHOLDERS[kind]:
            raise TemplateError(f"mẫu {_kind_words(kind)}dùng {{{name}}}, nhưng tin này không có giá trị đó; "
                                "dùng: " + ", ".join(f"{{{p}}}" for p in sorted(KIND_PLACEHOLDERS[kind])) + ".",
                                kind=kind)


def _kind_words(kind: str | None) -> str:
    if kind is None:
        return ""
    try:
        label: str | None = KIND_LABELS[Kind(kind)]
    except ValueError:
        label = None
    return f"{kind!r} ({label}) " if label else f"{kind!r} "


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _fill(template: str, values: Mapping[str, str], literal_form: Callable[[str], str] = str) -> str:
    parts: list[str] = []
    for literal, name, _spec, _conv in Formatter().parse(template):
        parts.append(literal_form(literal))
        if name is not None:
            try:
                parts.append(values[name])
            except KeyError:
                raise TemplateError(f"thiếu giá trị cho {{{name}}}.") from None
    return "".join(parts)


def render_text(template: str, values: Mapping[str, str]) -> str:
    """With full diacritics (webhooks, logs, the inbox): filled, NFC, whitespace collapsed."""
    template_fields(template)
    text = _fill(template, {k: str(v) for k, v in values.items()})
    return unicodedata.normalize("NFC", _collapse(text))


# Cut first, in this order, down to this many characters (so "Dang ky kinh doanh" never becomes
# "D."); the number, the counter and the link are what the message is for and are never cut.
# A dossier's procedure name and what it needs give way by turns with the office (the link's page
# has them whole; the brandname names the office), and its code comes last (the link carries it:
# only a code far longer than usual is ever cut).
_SHORTENABLE = (("field", 6), ("procedure", 24), ("needs", 40), ("office", 12), ("procedure", 12),
                ("needs", 24), ("office", 8), ("dossier", 12))


def _shorten(value: str, limit: int, mark: str = ".") -> str:
    """"Dang ky doanh nghiep" → "Dang ky doanh." within limit characters (the mark included)."""
    if len(value) <= limit:
        return value
    cut = value[:max(0, limit - len(mark))].rstrip(" ,;:-.(")
    # end on a whole word when that loses little: "Dang ky doanh." reads better than "Dang ky doan."
    space = cut.rfind(" ")
    if space >= max(1, len(cut) - 4):
        cut = cut[:space].rstrip(" ,;:-.(")
    return cut + mark


# After a shortened value, the template's own punctuation ends it: "Cap Giay chung, hen tra", not
# "Cap Giay chung., hen tra".
_ENDS = ".,;:!?"


def _followed_by_punctuation(template: str) -> set[str]:
    parsed = list(Formatter().parse(template))
    return {name for (_, name, _, _), (after, _, _, _) in pairwise(parsed)
            if name is not None and after[:1] in _ENDS and after}


def render_sms(template: str, values: Mapping[str, str], *, kind: str | None = None) -> str:
    """One GSM-7 part: filled, diacritics stripped, whitespace collapsed, names shortened to fit."""
    used = template_fields(template, kind=kind)
    plain = {k: _collapse(strip_diacritics(str(v))) for k, v in values.items()}

    def render() -> str:
        # only the literal text is stripped: a "{" of a placeholder is not GSM-7 basic
        return _collapse(_fill(template, plain, strip_diacritics))

    text = render()
    punctuated = _followed_by_punctuation(template)
    originals = dict(plain)
    for key, minimum in _SHORTENABLE:
        if key not in used or key not in plain:
            continue
        original = originals[key]
        mark = "" if key in punctuated else "."
        floor = min(len(original), minimum)
        while len(text) > SMS_MAX and len(plain[key]) > floor:
            target = max(floor, len(plain[key]) - (len(text) - SMS_MAX))
            shorter = _shorten(original, target, mark)
            if len(shorter) >= len(plain[key]):
                shorter = _shorten(original, len(plain[key]) - 1, mark)
            plain[key] = shorter
            text = render()
    if len(text) > SMS_MAX:
        raise TemplateError(f"tin SMS {_kind_words(kind)}dài {len(text)} ký tự ngay cả khi đã rút gọn tên, "
                            f"quá {SMS_MAX} ký tự của một tin.", kind=kind, length=len(text))
    return text


def _longest(names: Iterable[str]) -> str:
    return max(names, key=lambda n: len(_collapse(strip_diacritics(n))), default="")


# The longest values a message can carry, for the start-up check.
WORST_NUMBER = "A999"
WORST_AHEAD = "999"


def worst_wait(language: str = "vi") -> str:
    return _longest(format_wait(s, language) for s in range(0, 11 * 3600, 300))


# A dossier's code as the national one-stop system writes it ("000.00.12.H23-261120-0001", 25) with
# room to spare; the contract allows 64, and a code longer than this is shortened in the text (the
# link keeps it whole).
WORST_DOSSIER_CODE_LEN = 30
# Longer than any name an office gives a procedure in an SMS: it is shortened to fit.
WORST_PROCEDURE = ("Cấp Giấy chứng nhận quyền sử dụng đất, quyền sở hữu nhà ở và tài sản khác gắn liền "
                   "với đất lần đầu")
WORST_NEEDS = "Bản sao có chứng thực " * 25


def dossier_link_len(public_url: str, code_len: int = WORST_DOSSIER_CODE_LEN) -> int:
    """public_url + qms_common.signing.dossier_path: "/hs/{code}?k=" and the token."""
    return len(public_url) + len("/hs/") + code_len + len("?k=") + TOKEN_CHARS


def check_sms_fits(templates: Mapping[str, str], *, office: str, field_names: list[str], link_len: int,
                   counter_names: list[str], language: str = "vi", dossier_link: int | None = None) -> None:
    """Raise TemplateError, naming the kind and the length, for a template that may not fit one SMS.

    Called at start-up with the site's own names, so a bad template is a configuration error
    rather than a message that fails in front of a citizen. `dossier_link` is the length of a
    dossier's link (default: as long as the ticket's).
    """
    worst = {
        "office": office,
        "number": WORST_NUMBER,
        "field": _longest(field_names),
        "ahead": WORST_AHEAD,
        "wait": worst_wait(language),
        "counter": _longest(counter_names),
        "link": "x" * link_len,
        "code": "XXXXXXXX",
        "day": "31/12/2026",
        "slot": "16:30",
        "dossier": "X" * WORST_DOSSIER_CODE_LEN,
        "procedure": WORST_PROCEDURE,
        "due": "31/12/2026",
        "needs": WORST_NEEDS,
        "timing": _longest(dossier_timing(early, "2026-12-31", language) for early in (True, False)),
    }
    for kind, template in templates.items():
        check_template(kind, template)
        values, link = worst, link_len
        if kind in DOSSIER_KINDS:
            link = link_len if dossier_link is None else dossier_link
            values = {**worst, "link": "x" * link}
        try:
            render_sms(template, values, kind=kind)
        except TemplateError as exc:
            raise TemplateError(
                f"mẫu tin {_kind_words(kind)}không vừa một tin SMS: dài {exc.length} ký tự "
                f"(tối đa {SMS_MAX}) với tên lĩnh vực, tên quầy dài nhất và đường dẫn {link} ký tự.",
                kind=kind, length=exc.length) from None


# ---------------------------------------------------------------- ZNS

def _clip(value: str, limit: int) -> str:
    value = _collapse(unicodedata.normalize("NFC", value))
    return value if len(value) <= limit else value[:limit - 1].rstrip() + "…"


def zns_data(kind: Kind | str, values: Mapping[str, str]) -> dict[str, str]:
    """The template_data of a ZNS message: the kind's parameters, each within Zalo's limits."""
    data: dict[str, str] = {}
    for key in ZNS_KEYS[Kind(kind)]:
        if key not in values:
            continue
        value = str(values[key])
        # a clipped link would be a broken one: links are checked for length at start-up
        data[key] = value.strip()[:ZNS_LINK_MAX] if key == "link" else _clip(value, ZNS_PARAM_MAX)
    return data

