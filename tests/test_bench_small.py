"""scripts/bench_small.py's parts that decide what its numbers mean: the office's site file (all
local, offline, the production broker's port) and the confinement (a real cgroup: every process
started through it, and what that process starts, is inside)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.settings import load_notify_settings
from qms_common.config import load_site_config
from scripts.bench_small import (
    TVS,
    Confinement,
    ConfinementError,
    cgroup_v1,
    confine,
    office_site_text,
    own_cgroups,
)
from scripts.demo import not_at_standin


def test_the_office_is_the_example_site_made_local_and_offline(tmp_path: Path) -> None:
    standin = "http://127.0.0.1:29001"
    path = tmp_path / "site.toml"
    path.write_text(office_site_text(tmp_path, web_port=29002, standin_url=standin, listen_port=29003, rate=120,
                                     broker_port=29004), encoding="utf-8")
    site = load_site_config(path, env={})
    assert site.mqtt.port == 29004  # never the machine's own broker on 1883
    assert site.web_port == 29002
    assert Path(site.storage_path).parent == tmp_path
    assert len(site.counters) == 6 and list(site.agents[0].counters) == ["1", "2", "3", "4", "5", "6"]
    notify = load_notify_settings(site, env={})
    assert notify is not None and not_at_standin(notify, standin) == []
    text = path.read_text(encoding="utf-8")
    assert re.search(r'(?m)^engines = \["espeak"\]$', text)  # offline: no gTTS
    assert f"ids = {list(TVS)!r}".replace("'", '"') in text
    # 120× the day's 500 tickets in 8 h is ~2 a second: the kiosks' limits must let 4× that through
    assert "tickets_per_minute = 500" in text and "site_tickets_per_minute = 500" in text


@pytest.fixture
def box() -> Iterator[Confinement]:
    if os.geteuid() != 0:
        pytest.skip("a cgroup needs root")
    try:
        made = confine(True)
    except ConfinementError as exc:
        pytest.skip(str(exc))
    yield made
    made.close()


def test_a_process_and_its_children_run_inside_the_box(box: Confinement, tmp_path: Path) -> None:
    out = tmp_path / "child.pid"
    # the process starts a child of its own, as the web server starts espeak-ng
    parent = subprocess.Popen(box.wrap(["sh", "-c", f"sleep 30 & echo $! > {out}; wait"]))
    child: int | None = None
    try:
        deadline = time.monotonic() + 10
        while not out.exists() or not out.read_text().strip():
            assert time.monotonic() < deadline, "the wrapped process never started its child"
            time.sleep(0.05)
        child = int(out.read_text())
        ours = own_cgroups()
        for pid in (parent.pid, child):
            theirs = own_cgroups(pid)
            assert theirs != ours
            inside = [c for c, p in theirs.items() if p.endswith(f"qms-bench-small-{os.getpid()}")]
            assert inside, theirs
        assert box.memory_peak_mb() is not None and box.memory_peak_mb() > 0
        assert "periods" in box.cpu_stat()
    finally:
        if child is not None:
            os.kill(child, signal.SIGKILL)
        parent.kill()
        parent.wait()


def test_no_cgroup_wraps_nothing() -> None:
    box = confine(False)
    assert box.wrap(["true"]) == ["true"] and box.memory_peak_mb() is None and box.cpu_stat() == {}


def test_a_cgroup_that_cannot_be_made_is_said_in_vietnamese(tmp_path: Path) -> None:
    with pytest.raises(ConfinementError, match="không tạo được cgroup v1"):
        cgroup_v1("qms-bench-small-test", root=tmp_path / "no-cgroups-here")
    assert not (tmp_path / "no-cgroups-here").exists()  # nothing made, nothing left behind
