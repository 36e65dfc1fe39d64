"""Running a long-lived asyncio process until SIGTERM or Ctrl-C, with a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable

from qms_common.tomlconf import ConfigError


async def until_signalled(main: Awaitable[None], on_stop: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run `main` until it ends or a stop signal comes; then run `on_stop`."""
    loop = asyncio.get_running_loop()
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
