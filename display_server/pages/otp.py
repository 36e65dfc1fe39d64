"""Phone verification over HTTP for /lay-so and /dat-lich: POST /api/otp/send asks the notifier to
send a one-time code (qms/{site}/private/otp, QoS 1, on the server's MQTT session), POST
/api/otp/verify checks it and answers a signed proof the page sends with its ticket or booking.

The rules (6 digits, 5 minutes, 5 tries, limits per phone and address) are accounts/otp.py. The
code and the full phone never reach a log: phones are logged masked.
"""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

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
from display_server.accounts.ratelimit import seconds_text
from display_server.api import ApiError, bad_request, json_response, read_json
from display_server.base import FOLLOWER, SIGNER, texts_for
from qms_common.mqtt import NotConnected, new_request_id
from qms_common.phones import PhoneError, mask_phone, normalize_phone

log = logging.getLogger(__name__)

OTP = web.AppKey("otp", OtpBook)


def setup(app: web.Application) -> None:
    app[OTP] = OtpBook()
    app.router.add_post("/api/otp/send", send)
    app.router.add_post("/api/otp/verify", verify)


def read_phone(request: web.Request, value: object) -> str:
    """The phone as the core keeps it (84…), or a 400 with the hint people understand."""
    try:
        return normalize_phone(value)  # type: ignore[arg-type]
    except PhoneError:
        raise ApiError(400, "bad_phone", texts_for(request).otp_bad_phone) from None


def read_purpose(request: web.Request, value: object) -> Purpose:
    if value not in set(Purpose):
        raise bad_request(request, "otp_bad_purpose")
    return Purpose(str(value))


def verified_phone(request: web.Request, proof: object, purpose: Purpose) -> str:
    """The phone a page's proof vouches for, or 401: the citizen verifies again."""
    phone = read_proof(request.app[SIGNER], proof, purpose, time.time())
    if phone is None:
        raise ApiError(401, "not_verified", texts_for(request).otp_not_verified)
    return phone


async def send(request: web.Request) -> web.Response:
    t = texts_for(request)
    body = await read_json(request)
    phone = read_phone(request, body.get("phone"))
    purpose = read_purpose(request, body.get("purpose"))
    address = request.remote or "?"
    try:
        code = request.app[OTP].issue(phone, purpose, address)
    except SendRefused as exc:
        s = seconds_text(exc.retry_after_s)
        key = {Refusal.TOO_SOON: "otp_too_soon", Refusal.PHONE_LIMIT: "otp_phone_limit",
               Refusal.ADDRESS_LIMIT: "otp_address_limit"}[exc.reason]
        log.info("Từ chối gửi mã cho %s (%s)", mask_phone(phone), exc.reason)
        raise ApiError(429, "rate_limited", t[key].format(s=s, m=max(1, -(-s // 60))), retry_after_s=s) from None
    follower = request.app[FOLLOWER]
    message = {"phone": phone, "code": code, "purpose": str(purpose), "request_id": new_request_id()}
    try:
        await follower.session.publish(follower.topics.private_otp, json.dumps(message), qos=1)
    except NotConnected:
        raise ApiError(503, "unavailable", t.err_unavailable) from None
    log.info("Đã nhờ gửi mã xác thực tới %s (%s)", mask_phone(phone), purpose)
    book = request.app[OTP]
    return json_response({"ok": True, "expires_s": int(book.ttl_s), "resend_s": int(book.resend_gap_s)})


async def verify(request: web.Request) -> web.Response:
    t = texts_for(request)
    body = await read_json(request)
    phone = read_phone(request, body.get("phone"))
    purpose = read_purpose(request, body.get("purpose"))
    code = body.get("code")
    if not isinstance(code, str) or len(code) > 16:
        raise bad_request(request, "otp_bad_code")
    try:
        request.app[OTP].check(phone, purpose, code)
    except CheckFailed as exc:
        if exc.reason is Failure.WRONG:
            raise ApiError(400, "wrong_code", t.otp_wrong.format(n=exc.tries_left), tries_left=exc.tries_left) \
                from None
        log.info("Mã xác thực của %s hết hạn hoặc hết lượt thử", mask_phone(phone))
        raise ApiError(410, "code_expired", t.otp_expired if exc.reason is Failure.EXPIRED else t.otp_no_tries,
                       tries_left=0) from None
    return json_response({"ok": True, "proof": make_proof(request.app[SIGNER], phone, purpose, time.time())})
