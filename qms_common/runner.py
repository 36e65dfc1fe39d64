"""Running a long-lived asyncio process until SIGTERM or Ctrl-C, with a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from qms_common.tomlconf import ConfigError

log = logging.getLogger(__name__)


def _quiet_socket_races(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """aiomqtt schedules add_writer for a socket from paho's callback; when the connection dies
    in between, the callback meets a closed descriptor. Harmless (the session reconnects), but
    the default handler prints a traceback an operator would take for a crash."""
    exc = context.get("exception")
    if isinstance(exc, OSError) and exc.errno == errno.EBADF and "add_" in repr(context.get("handle")):
        log.debug("socket closed before its callback ran: %s", exc)
        return
    loop.default_exception_handler(context)


async def until_signalled(main: Awaitable[None], on_stop: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run `main` until it ends or a stop signal comes; then run `on_stop`."""
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_socket_races)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    task = asyncio.ensure_future(main)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
            return
        if on_stop is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(on_stop(), 5)
    finally:
        for t in (task, stopper):
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def exit_on_config_error(error: ConfigError) -> int:
    print(str(error), file=sys.stderr)
    return 2
