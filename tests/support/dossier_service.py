"""The dossier service (dossiers/, `python -m dossiers`) as a real process in a web test, ready
once its presence says online (it has subscribed cmd/dossier by then)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from qms_common.config import load_site_config
from qms_common.devbroker import stop_process
from qms_common.protocol import Topics
from tests.support.mqtt import Probe

# TEMPORARY until helper A's service lands: a dev stand-in
COMMAND = [sys.executable, "/tmp/cw/fake_service.py"]


def start(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


@contextlib.asynccontextmanager
async def running_dossiers(config: Path, log_path: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    site = load_site_config(config)
    topics = Topics(site.id)
    async with Probe(site.mqtt.url(with_password=True)) as probe:
        await probe.subscribe(topics.status_dossiers)
        proc = start([*COMMAND, site.mqtt.host, str(site.mqtt.port), site.id], log_path)
        try:
            await probe.wait_for(lambda m: m.topic == topics.status_dossiers and m.payload == b"online", timeout=20)
            yield proc
        finally:
            stop_process(proc)
