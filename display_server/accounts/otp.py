"""One-time codes that verify a citizen's phone before a remote ticket or a booking: pure logic,
no HTTP, no MQTT, the clock injected.

A code has 6 digits, lives `ttl_s` (5 minutes) and allows `tries` (5) wrong guesses; a right one
is good once. Sending is limited per phone and per client address, so nobody can make the office
pay for a flood of SMS to one number or from one machine. A verified phone gets a proof: a
signed, short-lived `purpose|phone|until` (qms_common.signing), so the booking or ticket step
needs no server-side session. Codes are kept in memory only: a restart of the web server asks
people for a new code, which is cheap, and no code ever reaches a disk or a log.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from display_server.accounts.ratelimit import RateLimiter
from qms_common.signing import Signer

CODE_DIGITS = 6
TTL_S = 300.0
TRIES = 5
# sends per phone and per address, and the least time between two sends to one phone
PHONE_SENDS, PHONE_WINDOW_S = 3, 900.0
ADDRESS_SENDS, ADDRESS_WINDOW_S = 10, 3600.0
RESEND_GAP_S = 30.0
# how long a verified phone may go on to take its number or book (several tries of slots)
PROOF_S = 1800
PROOF_PURPOSE = "phone-verified"
# Codes held at most: beyond, the expired ones go, then the oldest.
_MAX_CODES = 10_000


class Purpose(StrEnum):
    REMOTE = "remote"
    BOOKING = "booking"


class Refusal(StrEnum):
    PHONE_LIMIT = "phone_limit"      # too many codes sent to this phone
    ADDRESS_LIMIT = "address_limit"  # too many codes asked from this address
    TOO_SOON = "too_soon"            # a code was sent to this phone a moment ago


class Failure(StrEnum):
    WRONG = "wrong"            # tries remain
    NO_TRIES = "no_tries"      # 5 wrong: a new code is needed
    EXPIRED = "expired"        # or never sent: a new code is needed


@dataclass
class SendRefused(Exception):
    reason: Refusal
    retry_after_s: float


@dataclass
class CheckFailed(Exception):
    reason: Failure
    tries_left: int = 0


@dataclass
class _Code:
    code: str
    expires: float
    tries_left: int
    sent_at: float


class OtpBook:
    """The codes in flight, one per (phone, purpose)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, ttl_s: float = TTL_S, tries: int = TRIES,
                 phone_sends: int = PHONE_SENDS, phone_window_s: float = PHONE_WINDOW_S,
                 address_sends: int = ADDRESS_SENDS, address_window_s: float = ADDRESS_WINDOW_S,
                 resend_gap_s: float = RESEND_GAP_S,
                 new_code: Callable[[], str] | None = None) -> None:
        self.clock = clock
        self.ttl_s = ttl_s
        self.tries = tries
        self.resend_gap_s = resend_gap_s
        self._phones = RateLimiter(phone_sends, phone_window_s, clock)
        self._addresses = RateLimiter(address_sends, address_window_s, clock)
        self._new_code = new_code or (lambda: f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}")
        self._codes: dict[tuple[str, str], _Code] = {}

    def issue(self, phone: str, purpose: Purpose, address: str) -> str:
        """A new code for this phone (it replaces the one before), or SendRefused (nothing counted)."""
        now = self.clock()
        held = self._codes.get((phone, purpose))
        if held is not None and now - held.sent_at < self.resend_gap_s:
            raise SendRefused(Refusal.TOO_SOON, self.resend_gap_s - (now - held.sent_at))
        wait = self._phones.retry_after(phone)
        if wait > 0:
            raise SendRefused(Refusal.PHONE_LIMIT, wait)
        wait = self._addresses.take(address)
        if wait > 0:
            raise SendRefused(Refusal.ADDRESS_LIMIT, wait)
        self._phones.take(phone)
        if len(self._codes) >= _MAX_CODES:
            self._sweep(now)
        code = self._new_code()
        self._codes[(phone, purpose)] = _Code(code, now + self.ttl_s, self.tries, now)
        return code

    def check(self, phone: str, purpose: Purpose, code: str) -> None:
        """Returns if `code` is this phone's live code (then used up), else CheckFailed."""
        now = self.clock()
        held = self._codes.get((phone, purpose))
        if held is None or now >= held.expires:
            raise CheckFailed(Failure.EXPIRED)
        if held.tries_left <= 0:
            raise CheckFailed(Failure.NO_TRIES)
        if hmac.compare_digest(held.code.encode(), code.strip().encode("utf-8", "replace")):
            # good once; the send time stays, so the resend gap still holds
            held.tries_left = 0
            held.expires = now
            return
        held.tries_left -= 1
        raise CheckFailed(Failure.WRONG if held.tries_left > 0 else Failure.NO_TRIES, held.tries_left)

    def _sweep(self, now: float) -> None:
        for key in [k for k, c in self._codes.items() if now >= c.expires]:
            del self._codes[key]
        while len(self._codes) >= _MAX_CODES:
            del self._codes[next(iter(self._codes))]


def make_proof(signer: Signer, phone: str, purpose: Purpose, now_s: float, valid_s: int = PROOF_S) -> str:
    """What the page holds once the phone is verified: signed, it says which phone, for what, until when."""
    return signer.sign(PROOF_PURPOSE, f"{purpose}|{phone}|{int(now_s) + valid_s}")


def read_proof(signer: Signer, proof: object, purpose: Purpose, now_s: float) -> str | None:
    """The verified phone of a proof made here for this purpose and still valid; None otherwise."""
    if not isinstance(proof, str) or len(proof) > 200:
        return None
    value = signer.unsign(PROOF_PURPOSE, proof)
    if value is None:
        return None
    parts = value.split("|")
    if len(parts) != 3 or parts[0] != purpose or not parts[2].isdigit() or int(parts[2]) < now_s:
        return None
    return parts[1]
