"""Zalo delivery receipts: POST /zalo/events, checked with X-ZEvent-Signature.

Zalo signs sha256(app_id + raw body + timestamp + OA secret key) in hex, the timestamp being the
body's own `timestamp`. A receipt that fails the check is refused (403) and changes nothing; an
unreadable one gets 400; a valid event we do not use gets 200 so Zalo does not resend it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 64 * 1024  # an event is well under 2 KB
DELIVERED = "user_received_message"
SIGNATURE_HEADER = "X-ZEvent-Signature"

OnDelivered = Callable[[str, str], Awaitable[None]]


def zalo_signature(app_id: str, secret_key: str, body: bytes, timestamp: str) -> str:
    return hashlib.sha256(app_id.encode() + body + timestamp.encode() + secret_key.encode()).hexdigest()


def verify_zalo_signature(app_id: str, secret_key: str, body: bytes, timestamp: str, signature: str) -> bool:
    if not signature or not signature.isascii():
        return False
    expected = zalo_signature(app_id, secret_key, body, timestamp)
    return hmac.compare_digest(expected, signature.strip().lower())


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain", charset="utf-8")


async def _read_limited(request: web.Request) -> bytes | None:
    if request.content_length is not None and request.content_length > MAX_EVENT_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(16384):
        size += len(chunk)
        if size > MAX_EVENT_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def receipt_routes(app: web.Application, *, app_id: str, secret_key: str, on_delivered: OnDelivered) -> None:
    """Add POST /zalo/events to `app`; on_delivered(msg_id, delivery_time) for each valid receipt."""

    async def events(request: web.Request) -> web.Response:
        body = await _read_limited(request)
        if body is None:
            return _text(413, "Sự kiện quá lớn")
        try:
            event = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _text(400, "Sự kiện không phải JSON hợp lệ")
        timestamp = event.get("timestamp") if isinstance(event, dict) else None
        if isinstance(timestamp, bool) or not isinstance(timestamp, str | int) or str(timestamp) == "":
            return _text(400, "Sự kiện thiếu timestamp")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not verify_zalo_signature(app_id, secret_key, body, str(timestamp), signature):
            log.warning("Zalo event refused: bad signature from %s", request.remote)
            return _text(403, "Chữ ký không hợp lệ")
        if event.get("event_name") != DELIVERED:
            return _text(200, "OK")
        message = event.get("message")
        msg_id = message.get("msg_id") if isinstance(message, dict) else None
        delivery_time = message.get("delivery_time") if isinstance(message, dict) else None
        if not isinstance(msg_id, str | int) or isinstance(msg_id, bool) or str(msg_id) == "":
            return _text(400, "Sự kiện thiếu msg_id")
        when = str(delivery_time) if isinstance(delivery_time, str | int) and delivery_time != "" else str(timestamp)
        try:
            await on_delivered(str(msg_id), when)
        except Exception:
            log.exception("Zalo receipt for %s could not be recorded", msg_id)
            return _text(500, "Chưa ghi nhận được, vui lòng gửi lại")  # Zalo resends on non-2xx
        return _text(200, "OK")

    app.router.add_post("/zalo/events", events)
