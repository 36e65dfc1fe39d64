"""Officer, supervisor and leader accounts: `[[accounts]]` of the site file, with scrypt password hashes.

Roles: an officer uses the consoles of their counters and sees their own figures; a supervisor
uses every console, the dashboard, pairing and the reports; a leader (lãnh đạo) only reads: the
reports and the dashboard, no action and no console.

A hash is `scrypt$N$r$p$salt$key` (salt and key in base64), made by `qms-web hash-password`.
Nothing here stores a password; verification takes tens of milliseconds on purpose, so callers
run it in a thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from qms_common.tomlconf import Table

SCRYPT_N = 2 ** 14
SCRYPT_R = 8
SCRYPT_P = 1
KEY_LEN = 32
# bounds for hashes read from a file: a typo must not make one login cost seconds or gigabytes
_MAX_N = 2 ** 20
_MAXMEM = 256 * 1024 * 1024

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
_HASH_RE = re.compile(r"^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


class Role(StrEnum):
    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    LEADER = "leader"


# who may read the reports and the supervisor's dashboard (the leader without its actions)
REPORT_READERS = frozenset({Role.SUPERVISOR, Role.LEADER})


class HashFormatError(ValueError):
    pass


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                         dklen=KEY_LEN, maxmem=_MAXMEM)
    return (f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$"
            f"{base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}")


@dataclass(frozen=True)
class ParsedHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes


def parse_hash(text: str) -> ParsedHash:
    m = _HASH_RE.match(text)
    if not m:
        raise HashFormatError("không phải dạng scrypt$N$r$p$salt$key")
    n, r, p = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if n < 2 or n > _MAX_N or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise HashFormatError("tham số scrypt ngoài giới hạn")
    try:
        salt, key = base64.b64decode(m.group(4), validate=True), base64.b64decode(m.group(5), validate=True)
    except binascii.Error:
        raise HashFormatError("salt hoặc key không phải base64") from None
    if len(salt) < 8 or len(key) < 16:
        raise HashFormatError("salt hoặc key quá ngắn")
    return ParsedHash(n, r, p, salt, key)


def verify_password(password: str, parsed: ParsedHash) -> bool:
    key = hashlib.scrypt(password.encode("utf-8"), salt=parsed.salt, n=parsed.n, r=parsed.r, p=parsed.p,
                         dklen=len(parsed.key), maxmem=_MAXMEM)
    return hmac.compare_digest(key, parsed.key)


# Verified when the user name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY = parse_hash(hash_password(secrets.token_urlsafe(12)))


@dataclass(frozen=True)
class Account:
    username: str
    name: str  # the officer's name, as counters and statistics show it
    role: Role
    password: ParsedHash
    counters: tuple[str, ...] | None = None  # None: every counter

    def may_use_counter(self, counter_id: str) -> bool:
        if self.role is Role.LEADER:
            return False  # read-only: no console calls a citizen in a leader's name
        return self.role is Role.SUPERVISOR or self.counters is None or counter_id in self.counters

    @property
    def reads_reports(self) -> bool:
        return self.role in REPORT_READERS


@dataclass(frozen=True)
class Accounts:
    by_name: dict[str, Account]

    def get(self, username: str) -> Account | None:
        return self.by_name.get(username.strip().lower())

    def check(self, username: str, password: str) -> Account | None:
        """The account if the password is right. Slow (scrypt): call it in a thread."""
        account = self.get(username)
        ok = verify_password(password, account.password if account else _DUMMY)
        return account if ok and account is not None else None

    def __len__(self) -> int:
        return len(self.by_name)


def parse_accounts(root: Table, counter_ids: set[str]) -> Accounts:
    """`[[accounts]]` of the site file, read strictly."""
    accounts: dict[str, Account] = {}
    for t in root.tables("accounts"):
        username = t.str("username", required=True)
        if not USERNAME_RE.match(username):
            t.fail("username", f"tên đăng nhập {username!r} không hợp lệ.",
                   "Dùng 1–32 ký tự thường không dấu: chữ, số, dấu chấm, gạch dưới, gạch ngang; ví dụ \"canbo1\".")
        if username in accounts:
            t.fail("username", f"tên đăng nhập {username!r} bị trùng.", "Mỗi tài khoản cần một tên riêng.")
        name = t.str("name", required=True).strip()
        role = Role(t.choice("role", tuple(Role), required=True))
        raw_hash = t.str("password_hash", required=True)
        try:
            parsed = parse_hash(raw_hash)
        except HashFormatError as exc:
            t.fail("password_hash", f"mã băm mật khẩu không hợp lệ ({exc}).",
                   "Tạo mã băm bằng lệnh: qms-web hash-password")
        counters = t.str_list("counters")
        if counters is not None:
            if role is Role.SUPERVISOR:
                t.fail("counters", "tài khoản giám sát dùng được mọi quầy.", "Xóa khóa counters của tài khoản này.")
            if role is Role.LEADER:
                t.fail("counters", "tài khoản lãnh đạo chỉ xem, không dùng quầy nào.",
                       "Xóa khóa counters của tài khoản này.")
            if not counters:
                t.fail("counters", "danh sách quầy rỗng.", "Liệt kê ít nhất một quầy, hoặc xóa khóa để dùng mọi quầy.")
            for cid in counters:
                if cid not in counter_ids:
                    t.fail("counters", f"quầy {cid!r} không có trong [[counters]].",
                           f"Dùng một trong: {', '.join(sorted(counter_ids))}.")
        t.reject_unknown()
        accounts[username] = Account(username=username, name=name, role=role, password=parsed,
                                     counters=tuple(dict.fromkeys(counters)) if counters else None)
    return Accounts(accounts)
