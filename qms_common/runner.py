"""Running a long-lived asyncio process until SIGTERM or Ctrl-C, with a clean stop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from qms_common.codes import CONFIG_ERROR
from qms_common.logs import setup_logging, under_journald
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
    # one line with its code (qms_common.codes), at error level in the journal
    lead = "<3>" if under_journald() else ""
    print(f"{lead}{CONFIG_ERROR.code} {CONFIG_ERROR.text(error=error)}", file=sys.stderr)
    return 2


def settle_memory() -> None:
    """After start-up: what is loaded lives as long as the process, and every message allocates a
    few hundred short-lived objects with no cycles. Keep the cyclic collector from rescanning the
    long-lived ones under load (its pauses showed in the latency of key presses)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def service_main(prog: str, description: str, config_help: str, log_name: str,
                 serve: Callable[[Path], Awaitable[None]], argv: list[str] | None = None) -> int:
    """The command line of each long-running part: --config FILE [--log-level], one clear line
    for a configuration mistake (exit 2), no stack trace."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--config", required=True, type=Path, help=config_help)
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (mặc định INFO)")
    args = p.parse_args(argv)
    setup_logging(args.log_level, log_name)
    try:
        asyncio.run(serve(args.config))
    except ConfigError as exc:
        return exit_on_config_error(exc)
    return 0
