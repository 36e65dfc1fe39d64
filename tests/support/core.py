"""The queue core in a test: in this process (with an injectable clock) or as a real subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from qms_common.config import load_site_config
from qms_common.devbroker import stop_process
from queue_core.clock import Clock, SystemClock
from queue_core.link import CoreLink
from queue_core.service import QueueService
from queue_core.store import Store


@dataclass
class InProcessCore:
    service: QueueService
    link: CoreLink
    store: Store
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def running_core(config: Path, clock: Clock | None = None) -> AsyncIterator[InProcessCore]:
    site = load_site_config(config)
    store = await Store.open(site.storage_path)
    service = QueueService(site, store, clock or SystemClock())
    await service.load()
    link = CoreLink(service)
    task = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(10):
            await link.ready.wait()
        yield InProcessCore(service, link, store, task)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()


class CoreProcess:
    """`python -m queue_core` as a real process, for kill -9 and restarts."""

    def __init__(self, config: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CoreProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "queue_core", "--config", str(self.config)],
                                     stdout=log, stderr=log, env=self.env, stdin=subprocess.DEVNULL)
        log.close()
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        stop_process(self.proc)
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")
