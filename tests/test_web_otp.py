"""One-time codes (display_server/accounts/otp.py) with a clock the test moves: 6 digits, 5
minutes, 5 tries, sends limited per phone and per address; and the proofs of a verified phone."""

from __future__ import annotations

import re

import pytest

from display_server.accounts.otp import (
    CheckFailed,
    Failure,
    OtpBook,
    Purpose,
    Refusal,
    SendRefused,
    make_proof,
    read_proof,
)
from qms_common.signing import Signer

PHONE = "84912345678"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def a_book(clock: Clock, **kw: float) -> OtpBook:
    return OtpBook(clock=clock, **kw)  # type: ignore[arg-type]


def test_a_code_has_six_digits_and_is_good_once() -> None:
    clock = Clock()
    book = a_book(clock)
    code = book.issue(PHONE, Purpose.REMOTE, "1.2.3.4")
    assert re.fullmatch(r"\d{6}", code)
    book.check(PHONE, Purpose.REMOTE, code)
    with pytest.raises(CheckFailed) as exc:
        book.check(PHONE, Purpose.REMOTE, code)  # used up
    assert exc.value.reason is not Failure.WRONG


def test_a_code_expires_after_five_minutes() -> None:
    clock = Clock()
    book = a_book(clock)
    first = book.issue(PHONE, Purpose.BOOKING, "a")
    second = book.issue("84987654321", Purpose.BOOKING, "a")
    clock.now += 299
    book.check(PHONE, Purpose.BOOKING, first)  # still good just before 5 minutes
    clock.now += 1
    with pytest.raises(CheckFailed) as exc:
        book.check("84987654321", Purpose.BOOKING, second)
    assert exc.value.reason is Failure.EXPIRED


def test_a_code_is_for_its_phone_and_purpose() -> None:
    clock = Clock()
    book = a_book(clock)
    code = book.issue(PHONE, Purpose.REMOTE, "a")
    with pytest.raises(CheckFailed):
        book.check(PHONE, Purpose.BOOKING, code)
    with pytest.raises(CheckFailed):
        book.check("84987654321", Purpose.REMOTE, code)
    book.check(PHONE, Purpose.REMOTE, code)


def test_five_wrong_tries_then_even_the_right_code_fails() -> None:
    clock = Clock()
    book = a_book(clock, new_code=lambda: "123456")  # type: ignore[arg-type]
    book.issue(PHONE, Purpose.REMOTE, "a")
    left = []
    for _ in range(5):
        with pytest.raises(CheckFailed) as exc:
            book.check(PHONE, Purpose.REMOTE, "000000")
        left.append((exc.value.reason, exc.value.tries_left))
    assert left == [(Failure.WRONG, 4), (Failure.WRONG, 3), (Failure.WRONG, 2), (Failure.WRONG, 1),
                    (Failure.NO_TRIES, 0)]
    with pytest.raises(CheckFailed) as exc:
        book.check(PHONE, Purpose.REMOTE, "123456")
    assert exc.value.reason is Failure.NO_TRIES


def test_four_wrong_tries_leave_the_right_code_good() -> None:
    clock = Clock()
    book = a_book(clock, new_code=lambda: "123456")  # type: ignore[arg-type]
    book.issue(PHONE, Purpose.REMOTE, "a")
    for _ in range(4):
        with pytest.raises(CheckFailed):
            book.check(PHONE, Purpose.REMOTE, "654321")
    book.check(PHONE, Purpose.REMOTE, "123456")


def test_a_new_code_replaces_the_old_one_and_not_too_soon() -> None:
    clock = Clock()
    codes = iter(["111111", "222222"])
    book = a_book(clock, new_code=lambda: next(codes))  # type: ignore[arg-type]
    book.issue(PHONE, Purpose.REMOTE, "a")
    with pytest.raises(SendRefused) as exc:
        book.issue(PHONE, Purpose.REMOTE, "a")
    assert exc.value.reason is Refusal.TOO_SOON and 0 < exc.value.retry_after_s <= 30
    clock.now += 30
    assert book.issue(PHONE, Purpose.REMOTE, "a") == "222222"
    with pytest.raises(CheckFailed):
        book.check(PHONE, Purpose.REMOTE, "111111")


def test_sends_are_limited_per_phone() -> None:
    clock = Clock()
    book = a_book(clock)
    for i in range(3):
        book.issue(PHONE, Purpose.REMOTE, f"10.0.0.{i}")
        clock.now += 31
    with pytest.raises(SendRefused) as exc:
        book.issue(PHONE, Purpose.REMOTE, "10.0.0.9")
    assert exc.value.reason is Refusal.PHONE_LIMIT
    book.issue("84987654321", Purpose.REMOTE, "10.0.0.9")  # another phone is not held back
    clock.now += exc.value.retry_after_s
    book.issue(PHONE, Purpose.REMOTE, "10.0.0.9")


def test_sends_are_limited_per_address() -> None:
    clock = Clock()
    book = a_book(clock)
    for i in range(10):
        book.issue(f"8491234{i:04d}", Purpose.BOOKING, "6.6.6.6")
    with pytest.raises(SendRefused) as exc:
        book.issue("84912349999", Purpose.BOOKING, "6.6.6.6")
    assert exc.value.reason is Refusal.ADDRESS_LIMIT
    # a refused send counted nothing against the phone
    book.issue("84912349999", Purpose.BOOKING, "7.7.7.7")


def test_a_proof_names_its_phone_and_purpose_and_expires() -> None:
    signer = Signer(b"k" * 32)
    proof = make_proof(signer, PHONE, Purpose.BOOKING, 1000.0, valid_s=60)
    assert read_proof(signer, proof, Purpose.BOOKING, 1059.0) == PHONE
    assert read_proof(signer, proof, Purpose.BOOKING, 1061.0) is None
    assert read_proof(signer, proof, Purpose.REMOTE, 1000.0) is None
    forged = proof.replace(PHONE, "84987654321")
    assert read_proof(signer, forged, Purpose.BOOKING, 1000.0) is None
    assert read_proof(Signer(b"x" * 32), proof, Purpose.BOOKING, 1000.0) is None
    assert read_proof(signer, 42, Purpose.BOOKING, 1000.0) is None
