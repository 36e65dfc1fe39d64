"""/healthz and /metrics of the web server (docs/operations.md).

/healthz: no login, nothing secret: 200 {"ok": true, ...} while the server runs and its MQTT
session is connected, else 503 with the reason in Vietnamese. For systemd watchdogs, load
balancers and `qms-admin status`.

/metrics: Prometheus text exposition of display_server.metrics.collector. Answered without login
to the machine itself (loopback, not through a proxy: the Prometheus of the office box); from
elsewhere it needs a supervisor's session or an API key of [[api_keys]] as
`Authorization: Bearer <key>` (the province's Prometheus).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from display_server.accounts.auth import session_of
from display_server.accounts.ratelimit import RateLimiter
from display_server.accounts.store import Role
from display_server.api import error_body, json_response, local_request
from display_server.base import FOLLOWER, SETTINGS, SPEECH
from display_server.metrics.collector import make_registry
from display_server.metrics.today import IssuedToday

log = logging.getLogger(__name__)

REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
ISSUED = web.AppKey("metrics_issued_today", IssuedToday)
KEY_FAILURES = web.AppKey("metrics_key_failures", RateLimiter)
FAILURES_PER_MINUTE = 10

NOT_CONNECTED = "Máy chủ web chưa kết nối được broker MQTT: màn hình và ki-ốt không cập nhật."
LOGIN_NEEDED = ("Cần đăng nhập tài khoản giám sát, hoặc gửi khoá API trong tiêu đề "
                "Authorization: Bearer <khoá> (xem docs/operations.md).")
TOO_MANY = "Sai khoá quá nhiều lần; thử lại sau một phút."


def setup(app: web.Application) -> None:
    follower = app[FOLLOWER]
    app[ISSUED] = issued = IssuedToday(follower)
    app[REGISTRY] = make_registry(follower, app[SPEECH], lambda: issued.count)
    app[KEY_FAILURES] = RateLimiter(FAILURES_PER_MINUTE, 60.0)
    app.cleanup_ctx.append(_counting)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)


async def _counting(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[ISSUED].run(), name="issued-today")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def healthz(request: web.Request) -> web.Response:
    follower = request.app[FOLLOWER]
    body: dict[str, object] = {"ok": follower.connected, "mqtt": follower.connected,
                               "core": follower.state.presence.get("core"), "server": follower.server_id}
    if not follower.connected:
        body["reason"] = NOT_CONNECTED
    return json_response(body, 200 if follower.connected else 503, {"Cache-Control": "no-store"})


def _allowed(request: web.Request) -> str | None:
    """Why this request may not read the metrics, or None."""
    if local_request(request):
        return None
    session = session_of(request)
    if session is not None and session.account.role is Role.SUPERVISOR:
        return None
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return LOGIN_NEEDED
    limiter, address = request.app[KEY_FAILURES], request.remote or "?"
    if limiter.retry_after(address) > 0:
        return TOO_MANY
    if len(presented) <= 512 and request.app[SETTINGS].api_keys.find(presented.strip()) is not None:
        return None
    limiter.hit(address)
    log.warning("/metrics: khoá API sai từ %s", address)
    return LOGIN_NEEDED


async def metrics(request: web.Request) -> web.Response:
    refused = _allowed(request)
    if refused is not None:
        return json_response(error_body("too_many" if refused is TOO_MANY else "unauthorized", refused),
                             429 if refused is TOO_MANY else 401,
                             {"WWW-Authenticate": 'Bearer realm="qms"'})
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
