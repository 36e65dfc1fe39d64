"""Live pages: a WebSocket per page, pushed to, never polled.

Every socket is kept in the app (SOCKETS) so a shutdown closes them with GOING_AWAY at once
(otherwise aiohttp waits for its timeout) and the pages reconnect to the next server. The
heartbeat finds TVs that vanished without closing (power cut, cable pulled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from qms_common import protocol

log = logging.getLogger(__name__)

SOCKETS = web.AppKey("sockets", set)  # set[web.WebSocketResponse]
HEARTBEAT_S = 10.0


def dumps(obj: Any) -> str:
    """Compact JSON text with the diacritics as they are, like every payload of the contract."""
    return protocol.dumps(obj).decode("utf-8")


@contextlib.asynccontextmanager
async def live_socket(request: web.Request) -> AsyncIterator[web.WebSocketResponse]:
    """A prepared WebSocket, registered for shutdown while the block runs."""
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=64 * 1024)
    await ws.prepare(request)
    sockets = request.app[SOCKETS]
    sockets.add(ws)
    try:
        yield ws
    finally:
        sockets.discard(ws)
        if not ws.closed:
            await ws.close()


async def until_closed(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the page sends until it goes away; pings are answered by aiohttp."""
    async for msg in ws:
        if msg.type == WSMsgType.ERROR:
            log.debug("WebSocket lỗi: %s", ws.exception())


async def run_until_closed(ws: web.WebSocketResponse, writer: asyncio.Future[None] | asyncio.Task[None]) -> None:
    """Run a page's writer until the page closes (or the writer ends or fails)."""
    reader = asyncio.ensure_future(until_closed(ws))
    try:
        done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is writer and not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                if not isinstance(exc, (ConnectionResetError, RuntimeError)):
                    log.error("Lỗi khi gửi tới trang", exc_info=exc)
    finally:
        for task in (reader, writer):
            task.cancel()
        for task in (reader, writer):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def close_all(app: web.Application) -> None:
    """on_shutdown: tell every page the server is going away, so it reconnects to the next one."""
    sockets = list(app[SOCKETS])
    await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in sockets),
                         return_exceptions=True)


def setup(app: web.Application) -> None:
    app[SOCKETS] = set()
    app.on_shutdown.append(close_all)
