"""docs/notify.md's webhook receiver, run as written, against the notifier's webhook sender:
what a deployer copies must accept our deliveries, refuse forgeries and replays, and handle a
repeated delivery once."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from notifier.providers.base import Verdict
from notifier.providers.webhook import WebhookTarget
from qms_common.devbroker import free_port, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
SECRET = "hook-secret-0123456789abcdef"


def receiver_code() -> str:
    text = (ROOT / "docs" / "notify.md").read_text(encoding="utf-8")
    [code] = re.findall(r"```python\n(# webhook_receiver\.py.*?)```", text, flags=re.S)
    return code


EVENT = {"site": "demo", "kind": "called", "counter": "1", "recall": False, "seq": 16,
         "at": "2026-11-29T08:24:02+07:00",
         "ticket": {"id": "20261129-dat-dai-1001", "number": "1001", "field": "dat-dai", "status": "serving"}}


def start_receiver(script: Path, port: int, env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as log:
        return subprocess.Popen([sys.executable, str(script), str(port)], stdout=log, stderr=subprocess.DEVNULL,
                                env=env)


async def test_the_documented_receiver_verifies_refuses_replays_and_drops_repeats(tmp_path: Path) -> None:
    script = tmp_path / "webhook_receiver.py"
    script.write_text(receiver_code(), encoding="utf-8")
    port = free_port()
    env = {**os.environ, "QMS_WEBHOOK_SECRET": SECRET, "QMS_WEBHOOK_DB": str(tmp_path / "seen.sqlite3")}
    out = tmp_path / "out.txt"
    proc = start_receiver(script, port, env, out)
    url = f"http://127.0.0.1:{port}/qms/hook"
    good = WebhookTarget(url=url, secret=SECRET)
    forged = WebhookTarget(url=url, secret="not-the-secret-0123456789")
    replayed = WebhookTarget(url=url, secret=SECRET, clock=lambda: time.time() - 301)
    try:
        await asyncio.to_thread(wait_for_port, port, timeout=15, process=proc)
        assert (await good.send("q" + "1" * 32, EVENT)).verdict is Verdict.ACCEPTED
        assert (await good.send("q" + "1" * 32, EVENT)).verdict is Verdict.ACCEPTED  # the repeat: 2xx, dropped
        assert (await forged.send("q" + "2" * 32, EVENT)).verdict is Verdict.PERMANENT
        assert (await replayed.send("q" + "3" * 32, EVENT)).verdict is Verdict.PERMANENT
        assert (await good.send("q" + "4" * 32, {**EVENT, "seq": 17})).verdict is Verdict.ACCEPTED
    finally:
        for target in (good, forged, replayed):
            await target.close()
        stop_process(proc)
    handled = out.read_text(encoding="utf-8").splitlines()
    assert handled == ["called 1001 dat-dai counter=1"] * 2  # the first and the fourth, once each
