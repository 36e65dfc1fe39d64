"""What the JSON APIs of the pages share: reading a body strictly, answering errors in the shape of
the protocol's replies, and sending a command to the core.

Every error is `{"ok": false, "error": {"code", "message"}}` with a fitting HTTP status and a
message for people (Vietnamese, or English with `?lang=en`); nothing a client sends can make a
handler fail with a stack trace.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from display_server.base import FOLLOWER, SETTINGS, texts_for
from display_server.feed.live import dumps
from display_server.texts import Texts
from qms_common.mqtt import NotConnected, RequestTimeout
from qms_common.protocol import ErrorCode, ProtocolError, loads_object

log = logging.getLogger(__name__)

# No API body of the pages comes near this.
MAX_BODY = 4096

# What a core error means over HTTP.
HTTP_STATUS = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNKNOWN_FIELD: 404,
    ErrorCode.UNKNOWN_COUNTER: 404,
    ErrorCode.UNKNOWN_TICKET: 404,
    ErrorCode.QUEUE_EMPTY: 409,
    ErrorCode.INVALID_STATE: 409,
    ErrorCode.RANGE_EXHAUSTED: 409,
    ErrorCode.COUNTER_CLOSED: 409,
    ErrorCode.EXPIRED: 409,
    ErrorCode.RATING_CLOSED: 409,
    ErrorCode.INTERNAL: 503,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.SLOT_FULL: 409,
    ErrorCode.OUTSIDE_HOURS: 409,
    ErrorCode.QUOTA_REACHED: 409,
    ErrorCode.TOO_EARLY: 409,
    ErrorCode.TOO_LATE: 409,
    ErrorCode.UNKNOWN_BOOKING: 404,
}
# Keys of a core's error reply a page may use (too_early says from when, and of which day).
ERROR_EXTRAS = ("from", "day")
# How long a page's command waits for the core. When it runs out (503 `unavailable`) the command's
# deadline has passed too: it will never take effect (docs/protocol.md, deadlines).
CORE_TIMEOUT_S = 5.0


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=dumps(obj), status=status, content_type="application/json", charset="utf-8",
                        headers={"Cache-Control": "no-store", **(headers or {})})


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}, **extra}


@web.middleware
async def api_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        headers = {}
        if "retry_after_s" in exc.extra:
            headers["Retry-After"] = str(exc.extra["retry_after_s"])
        return json_response(error_body(exc.code, exc.message, **exc.extra), exc.status, headers)


def core_message(t: Texts, code: str, message: str) -> str:
    """The core speaks Vietnamese; an English page gets the general meaning of the code."""
    if t.lang == "vi":
        return message
    return t.get(f"err_{code}", message)


# A proxy on the same machine makes every client's peer look local: its requests carry one of these.
PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


def is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False  # a Unix socket's peer, or anything odd: not trusted as local
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def local_request(request: web.Request) -> bool:
    """A request from a program on this machine itself, which may read without logging in: a
    loopback TCP peer that no proxy forwarded (a proxy's headers are never trusted for more, only
    taken as a sign the real client is elsewhere)."""
    return is_loopback(request.remote) and not any(h in request.headers for h in PROXY_HEADERS)


def same_site(request: web.Request) -> bool:
    """Did the browser send this from one of our pages? It names the page's site in Origin:
    this server as the request reached it, or its public address ([web] public_url, behind a
    reverse proxy). Programs that send no Origin are not browsers riding someone's session."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    netloc = urlsplit(origin).netloc
    public = request.app[SETTINGS].web.public_url
    return netloc == request.host or (public is not None and netloc == urlsplit(public).netloc)


def check_origin(request: web.Request) -> None:
    """A state-changing request from a page of another site is refused."""
    if not same_site(request):
        raise ApiError(403, "forbidden", texts_for(request).err_origin)


async def read_body(request: web.Request, max_bytes: int = MAX_BODY) -> bytes:
    t = texts_for(request)
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, "too_large", t.err_too_large.format(max=max_bytes))
    body = bytearray()
    while len(body) <= max_bytes:
        chunk = await request.content.read(max_bytes + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > max_bytes:
        raise ApiError(413, "too_large", t.err_too_large.format(max=max_bytes))
    return bytes(body)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The JSON object a page sent, or ApiError: wrong type, too large, not JSON, not an object."""
    t = texts_for(request)
    check_origin(request)
    if request.content_type != "application/json":
        raise ApiError(415, "bad_request", t.err_content_type)
    body = await read_body(request)
    try:
        obj = loads_object(body)
    except ProtocolError as exc:
        raise ApiError(400, "bad_request", core_message(t, exc.code, exc.message)) from None
    return obj


async def ask_core(request: web.Request, topic: str, payload: dict[str, Any], *,
                   timeout: float = CORE_TIMEOUT_S) -> dict[str, Any]:
    """Send one command to the core; its ok reply, or ApiError with the core's own reason."""
    t = texts_for(request)
    try:
        reply = await request.app[FOLLOWER].requester.request(topic, payload, timeout=timeout)
    except (NotConnected, RequestTimeout) as exc:
        log.warning("Lệnh tới lõi không thành: %s", exc.message)
        raise ApiError(503, "unavailable", t.err_unavailable if isinstance(exc, NotConnected)
                       else t.err_timeout) from None
    if reply.get("ok") is True:
        return reply
    err = reply.get("error") if isinstance(reply.get("error"), dict) else {}
    code = str(err.get("code") or ErrorCode.INTERNAL)
    message = str(err.get("message") or t.err_internal)
    status = HTTP_STATUS.get(ErrorCode(code), 502) if code in set(ErrorCode) else 502
    extra = {k: reply[k] for k in ERROR_EXTRAS if isinstance(reply.get(k), str)}
    raise ApiError(status, code, core_message(t, code, message), counter=reply.get("counter"), **extra)


def bad_request(request: web.Request, key: str, **fmt: Any) -> ApiError:
    return ApiError(400, "bad_request", texts_for(request)[key].format(**fmt))


async def read_command(request: web.Request, allowed: Collection[str]) -> dict[str, Any]:
    """read_json, refusing keys nobody reads (a typo must not pass unnoticed)."""
    body = await read_json(request)
    unknown = set(body) - set(allowed)
    if unknown:
        raise bad_request(request, "err_unknown_keys", keys=", ".join(sorted(unknown)))
    return body


def request_id_in(request: web.Request, body: dict[str, Any]) -> str | None:
    """The page's request id (it retries with the same one), when it sent one."""
    rid = body.get("request_id")
    if rid is not None and (not isinstance(rid, str) or not 0 < len(rid) <= 64):
        raise bad_request(request, "err_request_id")
    return rid
