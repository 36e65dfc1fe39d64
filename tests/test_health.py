"""The core's health (queue_core.health): pure checks fed numbers, then a real core over a real
broker publishing qms/{site}/health/core."""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from broker_config.tool import site_users
from qms_common.config import load_site_config
from qms_common.devbroker import Broker
from qms_common.protocol import Topics
from qms_common.tomlconf import ConfigError
from queue_core.health import (
    GIB,
    MIB,
    CoreHealth,
    DiskLevel,
    HealthSettings,
    Jump,
    clock_jump,
    commit_slow,
    disk_level,
    p99,
)
from tests.support.core import running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site

S = HealthSettings()
Usage = namedtuple("Usage", "total used free")


def test_p99_nearest_rank() -> None:
    assert p99([]) is None
    assert p99([0.004]) == 0.004
    samples = [0.001] * 99 + [0.5]
    assert p99(samples) == 0.001  # one slow commit in a hundred is the 100th percentile, not the 99th
    assert p99([*samples, 0.6]) == 0.5
    assert p99(range(1, 1001)) == 990


def test_commit_slow_needs_enough_samples() -> None:
    assert commit_slow(300, 100, S)
    assert not commit_slow(250, 100, S)  # at the limit is not above it
    assert not commit_slow(900, S.commit_min_samples - 1, S)
    assert not commit_slow(None, 0, S)
    # once warned, it ends only well below the limit
    assert commit_slow(240, 100, S, warned=True) and commit_slow(201, 100, S, warned=True)
    assert not commit_slow(200, 100, S, warned=True)


def test_disk_levels() -> None:
    total = 100 * GIB
    assert disk_level(50 * GIB, total, S) is DiskLevel.OK
    assert disk_level(int(4.9 * GIB), total, S) is DiskLevel.LOW    # under 5 %
    assert disk_level(900 * MIB, 8 * GIB, S) is DiskLevel.LOW        # under 1 GiB (11 % of a small card)
    assert disk_level(199 * MIB, total, S) is DiskLevel.CRITICAL
    assert disk_level(0, 0, S) is DiskLevel.CRITICAL


def test_clock_jumps() -> None:
    assert clock_jump((100.0, 1000.0), (160.0, 1060.02), S) is None        # normal running
    assert clock_jump((100.0, 1000.0), (160.0, 1000.0 + 60 + 121), S) == Jump(True, 121.0)
    assert clock_jump((100.0, 1000.0), (160.0, 1000.0 + 60 + 119), S) is None  # NTP slewing a little
    back = clock_jump((100.0, 1000.0), (160.0, 1054.0), S)
    assert back == Jump(False, 6.0)
    assert clock_jump((100.0, 1000.0), (160.0, 1056.0), S) is None


def test_monitor_logs_each_condition_once_with_its_code(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mono, wall = [1000.0], [1_800_000_000.0]
    free = [50 * GIB]
    health = CoreHealth(S, tmp_path / "db.sqlite3", disk_usage=lambda _: Usage(100 * GIB, 0, free[0]),
                        monotonic=lambda: mono[0], wall=lambda: wall[0])
    sent: list[dict[str, object]] = []

    def send(body: bytes) -> bool:
        sent.append(json.loads(body))
        return True

    def tick(seconds: float = 60, clock_extra: float = 0) -> None:
        mono[0] += seconds
        wall[0] += seconds + clock_extra
        health.check()
        health.publish(send)

    caplog.set_level(logging.INFO, logger="queue_core.health")
    tick()
    assert sent[-1]["warnings"] == [] and sent[-1]["disk_free_bytes"] == 50 * GIB
    assert sent[-1]["commit_ms_p99"] is None
    for _ in range(50):
        health.commits.record(0.4)
    free[0] = 150 * MIB
    tick(clock_extra=-30)
    codes = [w["code"] for w in sent[-1]["warnings"]]  # type: ignore[union-attr]
    assert codes == ["QMS-CORE-W122", "QMS-CORE-W101", "QMS-CORE-E112"]
    assert sent[-1]["commit_ms_p99"] == 400.0
    n = len(sent)
    tick(seconds=10)  # nothing changed, publish_s not reached: nothing sent, nothing logged again
    assert len(sent) == n
    assert [r.code for r in caplog.records] == ["QMS-CORE-W122", "QMS-CORE-W101", "QMS-CORE-E112"]  # type: ignore[attr-defined]
    assert "Đĩa gần hết chỗ: chỉ còn 150 MiB" in caplog.records[2].getMessage()
    tick()  # 70 s since the last one sent: sent again, same warnings
    assert len(sent) == n + 1
    free[0] = 2 * GIB  # still under 5 %: low, no longer critical
    for _ in range(S.commit_window):
        health.commits.record(0.003)
    tick(seconds=S.clock_keep_s)
    assert [w["code"] for w in sent[-1]["warnings"]] == ["QMS-CORE-W111"]  # type: ignore[union-attr]
    assert [r.code for r in caplog.records][3:] == ["QMS-CORE-I102", "QMS-CORE-W111"]  # type: ignore[attr-defined]


def test_settings_from_site_file(broker: Broker, tmp_path: Path) -> None:
    path, _ = write_site(tmp_path, broker.url, extra="[health]\ncommit_warn_ms = 80\ndisk_warn_percent = 10\n")
    s = HealthSettings.of(load_site_config(path))
    assert s.commit_warn_ms == 80 and s.disk_warn_percent == 10 and s.check_s == 60
    bad, _ = write_site(tmp_path, broker.url, extra="[health]\ndisk_warn_persent = 10\n")
    with pytest.raises(ConfigError, match=r"health\.disk_warn_persent"):
        HealthSettings.of(load_site_config(bad))


def test_a_core_with_a_wrong_health_setting_stops_with_one_clear_line(broker: Broker, tmp_path: Path) -> None:
    path, _ = write_site(tmp_path, broker.url, extra="[health]\ndisk_warn_percent = 150\n")
    proc = subprocess.run([sys.executable, "-m", "queue_core", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "LC_ALL": "C"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("QMS-CFG-E401 Cấu hình sai: "), proc.stderr
    assert "health.disk_warn_percent" in lines[0] and "phải từ 0 đến 100" in lines[0]
    assert not (tmp_path / f"{path.stem}.sqlite3").exists()  # nothing was opened


def test_broker_acl_lets_the_core_publish_health_and_watchers_read_it(broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url)
    users = {u.name: u.rules for u in site_users(load_site_config(path))}
    t = Topics(site_id)
    assert ("readwrite", f"{t.root}/#") in users["core"]
    assert t.health_core.startswith(t.health_all.removesuffix("#"))
    for reader in ("web", "readonly"):
        assert ("read", t.health_all) in users[reader]


async def test_real_core_publishes_health_with_slow_commits_and_a_full_disk(
        broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # a critical threshold above any real free space: the real disk is "full"
    extra = ("[health]\ncheck_s = 0.1\ncommit_min_samples = 3\ncommit_warn_ms = 100\n"
             f"disk_critical_bytes = {2**60}\n")
    path, site_id = write_site(tmp_path, broker.url, extra=extra)
    t = Topics(site_id)
    caplog.set_level(logging.INFO, logger="queue_core.health")
    async with running_core(path) as core, Probe(broker.url) as probe:
        await probe.subscribe(t.health_core)
        first = await probe.wait_for(lambda m: m.topic == t.health_core)
        assert first.retain  # retained: whoever subscribes later gets it
        body = first.json
        assert [w["code"] for w in body["warnings"]] == ["QMS-CORE-E112"]
        assert body["warnings"][0]["message"].startswith("Đĩa gần hết chỗ: chỉ còn ")
        assert body["disk_free_bytes"] > 0 and body["at"]
        # The disk's real commits, timed with a clock that runs 0.3 s fast at every reading:
        # each commit looks 0.3 s long. SQLite itself is untouched.
        ticks = itertools.count()
        real = core.link.health.commits.timer
        core.link.health.commits.timer = lambda: real() + 0.3 * next(ticks)
        for _ in range(4):
            reply = await probe.request(t.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            assert reply["ok"]
        slow = await probe.wait_for(lambda m: m.topic == t.health_core
                                    and any(w["code"] == "QMS-CORE-W101" for w in m.json["warnings"]), timeout=10)
        assert slow.json["commit_ms_p99"] >= 300
        warning = next(w for w in slow.json["warnings"] if w["code"] == "QMS-CORE-W101")
        assert warning["message"].startswith("Ghi đĩa chậm: p99 thời gian ghi") and warning["since"]
        assert core.service.site.id == site_id
    logged = [(r.code, r.levelno) for r in caplog.records if hasattr(r, "code")]
    assert ("QMS-CORE-E112", logging.ERROR) in logged and ("QMS-CORE-W101", logging.WARNING) in logged
    async with Probe(broker.url) as late:  # after the core stopped: the retained copy remains
        await late.subscribe(t.health_core)
        kept = await late.wait_for(lambda m: m.topic == t.health_core)
        assert kept.retain and any(w["code"] == "QMS-CORE-W101" for w in kept.json["warnings"])
