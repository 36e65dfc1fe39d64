"""Vietnamese mobile numbers: one canonical form (84 + 9 digits) for the kiosk, the core and the notifier.

A phone number is personal data: nothing here ever puts the number a person typed into an
error message, so a refused number cannot leak into a log through str(exc).
"""

from __future__ import annotations

import re

MAX_INPUT_CHARS = 20

PHONE_HINT = "Số điện thoại chưa đúng. Mời nhập 10 chữ số, bắt đầu bằng 0 (ví dụ 0912345678)."

# What people put between digits: spaces, dots, dashes, brackets ("(+84) 912-345-678").
_SEPARATORS_RE = re.compile(r"[ .\-()]+")
# re.ASCII: \d would otherwise accept Arabic-Indic, full-width and other Unicode digits.
_SHAPE_RE = re.compile(r"\+?\d+", re.ASCII)
# Mobile prefixes in use since the 2018 renumbering: 03x, 05x, 07x, 08x, 09x.
_LOCAL_RE = re.compile(r"0[35789]\d{8}", re.ASCII)


class PhoneError(ValueError):
    """A number that is not a Vietnamese mobile; the message is shown to the citizen as is."""

    def __init__(self, message: str = PHONE_HINT) -> None:
        super().__init__(message)


def normalize_phone(text: str) -> str:
    """"091 234 5678", "+84912345678", "(+84) 912-345-678"… → "84912345678"; else PhoneError."""
    if not isinstance(text, str) or len(text) > MAX_INPUT_CHARS:
        raise PhoneError()
    compact = _SEPARATORS_RE.sub("", text.strip())
    if not _SHAPE_RE.fullmatch(compact):
        raise PhoneError()
    international = compact.startswith("+")
    digits = compact.lstrip("+")
    if digits.startswith("84") and len(digits) in (11, 12):
        # "+84 0912…": the trunk 0 is often kept after the country code by mistake
        rest = digits[2:]
        local = rest if rest.startswith("0") else "0" + rest
    elif international:
        raise PhoneError()  # another country's number: gateways here send to Vietnam only
    else:
        local = digits
    if not _LOCAL_RE.fullmatch(local):
        raise PhoneError()
    return "84" + local[1:]


def local_form(phone: str) -> str:
    """The form people read and type: "0912345678"."""
    return "0" + normalize_phone(phone)[2:]


def mask_phone(phone: str) -> str:
    """Enough for a person to recognise their number in a log or a screen: "09x…x78"."""
    try:
        local = local_form(phone)
    except PhoneError:
        return "…"
    return f"{local[:2]}x…x{local[-2:]}"
