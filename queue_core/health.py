"""The core's own health: how long the disk takes to commit, how much room is left on it, and
whether the wall clock jumped. Each condition is logged once with its stable code
(qms_common.codes) when it starts and when it ends, and the whole is the retained JSON of
`qms/{site}/health/core` (docs/protocol.md), sent on every change and every `publish_s`.

The checks are pure functions of numbers (commit_p99_ms, disk_level, clock_jump); CoreHealth
feeds them from its probes (a timer, shutil.disk_usage, the monotonic and wall clocks), which
tests may replace.
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

from qms_common import codes
from qms_common.config import SiteConfig
from qms_common.protocol import dumps
from qms_common.tomlconf import Table

log = logging.getLogger(__name__)

MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclass(frozen=True)
class HealthSettings:
    """[health] of site.toml (every key optional)."""

    commit_warn_ms: float = 250.0      # p99 of the recent commits above this: QMS-CORE-W101
    commit_window: int = 1000          # how many recent commits the p99 is taken over
    commit_min_samples: int = 20       # fewer than this: no verdict (a quiet office)
    disk_warn_bytes: int = GIB         # free below this, or below disk_warn_percent: QMS-CORE-W111
    disk_warn_percent: float = 5.0
    disk_critical_bytes: int = 200 * MIB  # free below this: QMS-CORE-E112
    clock_forward_s: float = 120.0     # the wall clock moved this much more than the monotonic one
    clock_backward_s: float = 5.0      # or went back this much
    clock_keep_s: float = 3600.0       # a clock jump stays in the list this long
    check_s: float = 60.0
    publish_s: float = 60.0

    @classmethod
    def of(cls, site: SiteConfig) -> HealthSettings:
        t = Table(site.path, "", site.raw).table("health")
        d = cls()
        s = cls(commit_warn_ms=t.float("commit_warn_ms", d.commit_warn_ms, minimum=1),
                commit_window=t.int("commit_window", d.commit_window, minimum=10, maximum=100_000),
                commit_min_samples=t.int("commit_min_samples", d.commit_min_samples, minimum=1),
                disk_warn_bytes=t.int("disk_warn_bytes", d.disk_warn_bytes, minimum=0),
                disk_warn_percent=t.float("disk_warn_percent", d.disk_warn_percent, minimum=0),
                disk_critical_bytes=t.int("disk_critical_bytes", d.disk_critical_bytes, minimum=0),
                clock_forward_s=t.float("clock_forward_s", d.clock_forward_s, minimum=1),
                clock_backward_s=t.float("clock_backward_s", d.clock_backward_s, minimum=0.1),
                clock_keep_s=t.float("clock_keep_s", d.clock_keep_s, minimum=0),
                check_s=t.float("check_s", d.check_s, minimum=0.05),
                publish_s=t.float("publish_s", d.publish_s, minimum=0.05))
        if s.disk_warn_percent > 100:
            t.fail("disk_warn_percent", f"phải từ 0 đến 100 (đang là {s.disk_warn_percent}).")
        t.reject_unknown()
        return s


# ---------------------------------------------------------------- pure checks

def p99(samples: Iterable[float]) -> float | None:
    """The 99th percentile (nearest rank) of the samples, None for none."""
    ordered = sorted(samples)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


# A slow-commit warning ends only below this share of the limit: a p99 hovering at the limit
# must not log a warning and its end at every check.
COMMIT_CLEAR_RATIO = 0.8


def commit_slow(p99_ms: float | None, samples: int, settings: HealthSettings, *, warned: bool = False) -> bool:
    """Whether commits are slow now; `warned`: they were at the last check."""
    if p99_ms is None or samples < settings.commit_min_samples:
        return False
    limit = settings.commit_warn_ms * (COMMIT_CLEAR_RATIO if warned else 1.0)
    return p99_ms > limit


class DiskLevel(Enum):
    OK = "ok"
    LOW = "low"
    CRITICAL = "critical"


def disk_level(free: int, total: int, settings: HealthSettings) -> DiskLevel:
    if free < settings.disk_critical_bytes:
        return DiskLevel.CRITICAL
    percent = 100.0 * free / total if total > 0 else 100.0
    if free < settings.disk_warn_bytes or percent < settings.disk_warn_percent:
        return DiskLevel.LOW
    return DiskLevel.OK


class Jump(NamedTuple):
    forward: bool
    seconds: float   # how far, always positive


def clock_jump(before: tuple[float, float], after: tuple[float, float], settings: HealthSettings) -> Jump | None:
    """(monotonic, wall) at two checks: the wall clock moved apart from the monotonic one by
    more than the limits (a forward drift of a few ms per check is no jump)."""
    drift = (after[1] - before[1]) - (after[0] - before[0])
    if drift > settings.clock_forward_s:
        return Jump(True, drift)
    if drift < -settings.clock_backward_s:
        return Jump(False, -drift)
    return None


# ---------------------------------------------------------------- the monitor

def _since_boot() -> float:
    """Like time.monotonic, but counting the time the machine was suspended: a mini PC that
    slept has not had its clock jump."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic()


@dataclass
class CommitTimes:
    """The store's commit probe (queue_core.store.CommitProbe): the store reads `timer` around
    each transaction, on its writer thread, and records the seconds it took here."""

    window: int
    timer: Callable[[], float] = time.perf_counter
    samples: deque[float] = field(init=False)

    def __post_init__(self) -> None:
        self.samples = deque(maxlen=self.window)  # append is atomic: safe from the writer thread

    def record(self, seconds: float) -> None:
        self.samples.append(seconds)

    def p99_ms(self) -> float | None:
        # list() of a deque is one C call under the GIL: the writer thread cannot append midway
        value = p99(list(self.samples))
        return None if value is None else value * 1000.0


@dataclass
class HealthWarning:
    code: str
    message: str
    since: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "since": self.since}


# which warning keys a condition owns (one at a time per key)
_COMMIT, _DISK, _CLOCK = "commit", "disk", "clock"


class CoreHealth:
    def __init__(self, settings: HealthSettings, db_path: Path, *,
                 disk_usage: Callable[[Path], Any] = shutil.disk_usage,
                 monotonic: Callable[[], float] | None = None,
                 wall: Callable[[], float] = time.time, tz: tzinfo = UTC) -> None:
        self.settings = settings
        self.db_path = db_path
        self.commits = CommitTimes(settings.commit_window)
        self.disk_usage = disk_usage
        self.monotonic = monotonic or _since_boot
        self.wall = wall
        self.tz = tz  # of the times in the payload: the site's, as everywhere an operator reads
        self.warnings: dict[str, HealthWarning] = {}
        self.disk_free: int | None = None
        self._clock_at: tuple[float, float] | None = None
        self._clock_until = 0.0  # monotonic time the clock warning is dropped
        self._sent: dict[str, Any] | None = None
        self._sent_at = -math.inf

    def _now_iso(self) -> str:
        return datetime.fromtimestamp(self.wall(), self.tz).isoformat(timespec="seconds")

    def _raise(self, key: str, code: codes.Code, **values: Any) -> None:
        held = self.warnings.get(key)
        if held is not None and held.code == code.code:
            return  # still the same condition: logged when it began
        text = codes.log_code(log, code, **values)
        self.warnings[key] = HealthWarning(code.code, text, self._now_iso())

    def _clear(self, key: str, code: codes.Code | None, **values: Any) -> None:
        if self.warnings.pop(key, None) is not None and code is not None:
            codes.log_code(log, code, **values)

    def check_commits(self) -> None:
        p99_ms = self.commits.p99_ms()
        if commit_slow(p99_ms, len(self.commits.samples), self.settings, warned=_COMMIT in self.warnings):
            self._raise(_COMMIT, codes.DISK_COMMIT_SLOW, p99_ms=p99_ms, limit_ms=self.settings.commit_warn_ms)
        elif p99_ms is not None:
            self._clear(_COMMIT, codes.DISK_COMMIT_OK, p99_ms=p99_ms)

    def check_disk(self) -> None:
        try:
            usage = self.disk_usage(self.db_path.parent)
        except OSError as exc:
            log.warning("Không đọc được chỗ trống của đĩa tại %s (%s)", self.db_path.parent, exc)
            return
        self.disk_free = int(usage.free)
        level = disk_level(usage.free, usage.total, self.settings)
        values = {"free_mib": usage.free / MIB, "free_pct": 100.0 * usage.free / usage.total if usage.total else 100.0,
                  "path": str(self.db_path.parent)}
        if level is DiskLevel.CRITICAL:
            self._raise(_DISK, codes.DISK_FULL, **values)
        elif level is DiskLevel.LOW:
            self._raise(_DISK, codes.DISK_LOW, **values)
        else:
            self._clear(_DISK, codes.DISK_OK, **values)

    def check_clock(self) -> None:
        now = (self.monotonic(), self.wall())
        if self._clock_at is not None:
            jump = clock_jump(self._clock_at, now, self.settings)
            if jump is not None:
                self.warnings.pop(_CLOCK, None)  # a new jump is news even if one is listed
                self._raise(_CLOCK, codes.CLOCK_FORWARD if jump.forward else codes.CLOCK_BACKWARD,
                            jump_s=jump.seconds)
                self._clock_until = now[0] + self.settings.clock_keep_s
            elif _CLOCK in self.warnings and now[0] >= self._clock_until:
                self._clear(_CLOCK, None)
        self._clock_at = now

    def check(self) -> None:
        self.check_clock()
        self.check_commits()
        self.check_disk()

    def payload(self) -> dict[str, Any]:
        p99_ms = self.commits.p99_ms()
        return {"warnings": [w.as_json() for w in self.warnings.values()],
                "commit_ms_p99": None if p99_ms is None else round(p99_ms, 3),
                "disk_free_bytes": self.disk_free, "at": self._now_iso()}

    def publish(self, send: Callable[[bytes], bool], *, force: bool = False) -> bool:
        """Send the payload (retained) when the warnings changed since the last one sent, or
        publish_s after it, or when forced (a new connection: the broker may have lost it).
        `send` returns False when not connected: it is tried again at the next check."""
        body = self.payload()
        changed = self._sent is None or body["warnings"] != self._sent["warnings"]
        if not (force or changed or self.monotonic() - self._sent_at >= self.settings.publish_s):
            return False
        if not send(dumps(body)):
            return False
        self._sent, self._sent_at = body, self.monotonic()
        return True

    async def run(self, send: Callable[[bytes], bool]) -> None:
        """Check every check_s and publish what is due."""
        while True:
            try:
                self.check()
                self.publish(send)
            except Exception:
                log.exception("Lỗi khi kiểm tra sức khoẻ của lõi")
            await asyncio.sleep(self.settings.check_s)
