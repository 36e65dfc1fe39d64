"""Which seqs of a site are missing, and when a backfill is owed: pure, so the backfill can be
planned and tested without I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


def missing_ranges(seen: Iterable[int], *, after: int = 0, upto: int | None = None) -> list[tuple[int, int]]:
    """Inclusive ranges of seqs absent from `seen`, between `after` (excluded) and `upto` (included).

    `upto` defaults to the highest seq seen: what comes after it is not missing yet, only not sent.
    A core's seqs start at 1, so with the default `after=0` a first message with seq 5 means 1-4
    were missed (they may be private messages the province never sees; the backfill tells).
    """
    seqs = sorted({s for s in seen if s > after})
    top = upto if upto is not None else (seqs[-1] if seqs else after)
    gaps: list[tuple[int, int]] = []
    expected = after + 1
    for s in seqs:
        if s > top:
            break
        if s > expected:
            gaps.append((expected, s - 1))
        expected = s + 1
    if expected <= top:
        gaps.append((expected, top))
    return gaps


@dataclass
class SiteTrack:
    """What the service keeps of one office between messages: a few values, whatever the traffic
    (no set of seqs: the store has them). Decides when a backfill is owed and when it may run."""

    last_seq: int = 0
    last_at: datetime | None = None       # the time of the event that carried last_seq
    online: bool = False
    owed_since: datetime | None = None    # a backfill is owed, of the days from this moment on
    forced: bool = False                  # owed at once (the office came back), not after the debounce
    last_start: float | None = None       # monotonic start of the last backfill
    retry_at: float | None = None         # after a failure: not before then
    failures: int = 0                     # in a row: each doubles the wait before the next try
    # Only small gaps owed (most likely the office's private messages, maybe a few lost ones):
    # asked after `small_every_s`, counted from the last backfill or from when first owed.
    small_only: bool = False
    small_since: float | None = None

    def observe(self, seq: int, at: datetime | None, gap_min: int = 1) -> tuple[datetime, bool] | None:
        """One message's seq, in arrival order. When it skips seqs: the moment of the last event
        before the gap (or of this one when that is unknown), and whether the gap is big (at
        least `gap_min` seqs); None otherwise. A repeated or older seq (a message sent again) is no news."""
        if seq <= self.last_seq:
            return None
        skipped = seq - self.last_seq - 1 if self.last_seq > 0 else 0
        before = self.last_at or at
        self.last_seq, self.last_at = seq, at or self.last_at
        if skipped <= 0 or before is None:
            return None
        return before, skipped >= gap_min

    def owe(self, since: datetime, *, forced: bool, small: bool = False, now: float | None = None) -> None:
        if small and self.owed_since is None:
            self.small_only, self.small_since = True, now
        elif not small:
            self.small_only = False
        self.owed_since = since if self.owed_since is None else min(self.owed_since, since)
        self.forced = self.forced or forced

    def due_in(self, now: float, every_s: float, small_every_s: float | None = None) -> float | None:
        """Seconds until the owed backfill may start; None while nothing is owed or the office is
        offline (it cannot answer; its coming back forces one anyway)."""
        if self.owed_since is None or not self.online:
            return None
        wait = 0.0
        if self.small_only and not self.forced and small_every_s is not None:
            since = self.last_start if self.last_start is not None else self.small_since
            if since is not None:
                wait = since + small_every_s - now
        elif not self.forced and self.last_start is not None:
            wait = self.last_start + every_s - now
        if self.retry_at is not None:
            wait = max(wait, self.retry_at - now)
        return max(0.0, wait)

    def take(self, now: float) -> datetime:
        """Start the owed backfill: what it covers."""
        assert self.owed_since is not None
        since, self.owed_since = self.owed_since, None
        self.forced, self.retry_at, self.last_start = False, None, now
        self.small_only, self.small_since = False, None
        return since

    def failed(self, since: datetime, now: float, retry_s: float, retry_max_s: float) -> float:
        """The office did not answer (or answered nonsense): owed again, tried after retry_s,
        doubled for each failure in a row up to retry_max_s (an office whose bridge does not let
        backfills in is not asked every minute forever). Returns the wait."""
        self.owe(since, forced=False)
        self.failures += 1
        wait = min(retry_s * 2 ** min(self.failures - 1, 16), max(retry_s, retry_max_s))
        self.retry_at = now + wait
        return wait

    def succeeded(self) -> None:
        self.failures = 0
