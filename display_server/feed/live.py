"""Live pages: a WebSocket per page, pushed to, never polled.

Every socket is kept in the app (SOCKETS) so a shutdown closes them with GOING_AWAY at once
(otherwise aiohttp waits for its timeout) and the pages reconnect to the next server. The
heartbeat finds TVs that vanished without closing (power cut, cable pulled).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from qms_common import protocol

log = logging.getLogger(__name__)

SOCKETS = web.AppKey("sockets", set)  # set[web.WebSocketResponse]
HEARTBEAT_S = 10.0
# An idle feed still says something this often, so a page notices a dead link and reconnects.
KEEPALIVE_S = 15.0


class FeedEnded(Exception):
    """A page's view may not be sent any more (its session ended): close with this code."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


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
                if not isinstance(exc, (ConnectionResetError, RuntimeError, FeedEnded)):
                    log.error("Lỗi khi gửi tới trang", exc_info=exc)
    finally:
        for task in (reader, writer):
            task.cancel()
        for task in (reader, writer):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


ViewFn = Callable[[list[Any]], "dict[str, Any] | str | Awaitable[dict[str, Any] | None] | None"]


class _Quiet:
    """The batch of a quiet period: nothing changed, but a view may check its session."""


QUIET = _Quiet()


async def push_views(ws: web.WebSocketResponse, sub: Any, view: ViewFn, *,
                     extra: Callable[[list[Any]], Iterable[dict[str, Any] | str]] | None = None,
                     keepalive_s: float = KEEPALIVE_S,
                     hold: Callable[[list[Any]], float] | None = None) -> None:
    """A live page's writer: `{"type": "view", "view": ...}` at once and whenever the view
    changes, bursts from the hub coalesced into one batch; a keepalive in quiet times.

    view(batch) computes what the page shows after a batch of hub items ([] at first, [QUIET]
    after a keepalive; it may be a coroutine, and None means unchanged); extra(batch) gives other
    messages to send after it. FeedEnded from view() ends it (serve_feed closes with its code).
    hold(batch), when given, says how long a batch may wait for more before it is shown (0: at
    once): a page need not redraw for each of a burst of changes nobody reads that fast."""
    last: dict[str, Any] | None = None
    batch: list[Any] = []
    while True:
        current = view(batch)
        if inspect.isawaitable(current):
            current = await current
        if current is not None and current != last:
            last = current
            # a view may come serialised already (the TV's, shared by every TV of an area)
            await ws.send_str(current if isinstance(current, str) else dumps({"type": "view", "view": current}))
        for message in (extra(batch) if extra and batch else ()):
            await ws.send_str(message if isinstance(message, str) else dumps(message))
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # meets an arriving item, and the page's handler would outlive its socket
            async with asyncio.timeout(keepalive_s):
                first = await sub.get()
            batch = [first, *sub.get_batch()]
            if hold is not None:
                await _gather(sub, batch, hold)
        except TimeoutError:
            await ws.send_str('{"type":"keepalive"}')
            batch = [QUIET]


async def _gather(sub: Any, batch: list[Any], hold: Callable[[list[Any]], float]) -> None:
    """Add to the batch what comes within hold(batch) seconds, or until it holds something that
    must not wait."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + hold(batch)
    while hold(batch) > 0 and (left := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(left):
                item = await sub.get()
        except TimeoutError:
            return
        batch += [item, *sub.get_batch()]


async def serve_feed(request: web.Request, hub: Any, view: ViewFn, *,
                     extra: Callable[[list[Any]], Iterable[dict[str, Any]]] | None = None) -> web.WebSocketResponse:
    """A live page's WebSocket from start to end: subscribed to the hub before the first view is
    computed, so nothing falls between the snapshot and the changes."""
    with hub.subscribe() as sub:
        async with live_socket(request) as ws:
            writer = asyncio.create_task(push_views(ws, sub, view, extra=extra))
            await run_until_closed(ws, writer)
            end = writer.exception() if writer.done() and not writer.cancelled() else None
            if isinstance(end, FeedEnded):  # the page's reader has stopped: the close handshake is ours
                await ws.close(code=end.code, message=end.reason.encode("utf-8")[:120])
    return ws


async def close_all(app: web.Application) -> None:
    """on_shutdown: tell every page the server is going away, so it reconnects to the next one."""
    sockets = list(app[SOCKETS])
    await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in sockets),
                         return_exceptions=True)


def setup(app: web.Application) -> None:
    app[SOCKETS] = set()
    app.on_shutdown.append(close_all)
