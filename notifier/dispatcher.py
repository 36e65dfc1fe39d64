"""Sending from the outbox: one worker per channel (Zalo, SMS, each webhook), so a slow provider
never delays another; each with its own request-rate limit, retries with capped exponential
backoff and jitter, and falls back to the next channel on a permanent refusal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from notifier.outbox import Outbox, Row
from notifier.providers.base import Outcome, Verdict

log = logging.getLogger(__name__)

# what a worker does with a row before sending: None to send it, or a reason to drop it
Check = Callable[[Row], str | None]
# the request to a provider, built from the row when it is sent (templates may have changed)
Send = Callable[[Row], Awaitable[Outcome]]


def backoff_s(attempts: int, *, base: float = 2.0, cap: float = 300.0, rng: random.Random | None = None) -> float:
    """Capped exponential backoff with jitter: retries of many messages after one outage spread
    out instead of hitting the provider together."""
    ceiling = min(cap, base * 2 ** max(0, attempts - 1))
    return ceiling * (rng or random).uniform(0.5, 1.0)


@dataclass
class RateLimit:
    per_s: float
    _next: float = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + 1.0 / self.per_s
        if slot > now:
            await asyncio.sleep(slot - now)  # pacing requests, not waiting for an event


@dataclass
class RouteStats:
    """Seen by the supervisor's dashboard: the provider's last word on its quota."""

    quota_left: int | None = None


@dataclass
class Worker:
    route: str
    outbox: Outbox
    send: Send
    deduplicates: bool
    rate: RateLimit
    check: Check
    next_route: Callable[[Row], tuple[str, list[str]] | None]
    retry_max_s: float = 300.0
    give_up_s: float = 3600.0
    concurrency: int = 8
    on_sent: Callable[[Row, Outcome], None] | None = None
    moved: Callable[[str], None] | None = None    # a message went over to another channel's worker
    stats: RouteStats = field(default_factory=RouteStats)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _busy: set[int] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        try:
            while True:
                self._wake.clear()
                rows = await self.outbox.due(self.route, time.time(), self.concurrency * 4, exclude=self._busy)
                for row in rows:
                    await slots.acquire()
                    self._busy.add(row.id)
                    task = asyncio.create_task(self._one(row, slots))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                if rows:
                    continue
                nxt = await self.outbox.next_due(self.route)
                timeout = None if nxt is None else max(0.0, nxt - time.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout if timeout is None else timeout + 0.01)
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def _one(self, row: Row, slots: asyncio.Semaphore) -> None:
        try:
            await self._attempt(row)
        except asyncio.CancelledError:
            raise
        except Exception:
            # never lose the worker to one message: it is tried again later
            log.exception("Lỗi khi gửi tin %s qua %s", row.id, self.route)
            with contextlib.suppress(Exception):
                await self.outbox.retry(row.id, next_at=time.time() + self.retry_max_s, attempts=row.attempts + 1,
                                        reason="lỗi nội bộ khi gửi")
        finally:
            self._busy.discard(row.id)
            slots.release()
            self._wake.set()

    async def _attempt(self, row: Row) -> None:
        reason = self.check(row)
        if reason is not None:
            await self.outbox.drop(row.id, reason)
            log.info("Bỏ tin %s (%s %s): %s", row.id, row.kind, row.ticket, reason)
            return
        attempts = row.attempts + 1
        if time.time() - row.created_at > self.give_up_s:
            await self.outbox.fail(row.id, reason="quá thời gian cho phép, không gửi nữa", attempts=row.attempts)
            return
        if not self.deduplicates:
            await self.outbox.mark_sending(row.id)
        await self.rate.wait()
        outcome = await self.send(row)
        if outcome.quota_left is not None:
            self.stats.quota_left = outcome.quota_left
        if outcome.verdict is Verdict.ACCEPTED:
            await self.outbox.sent(row.id, via=self.route, provider_id=outcome.provider_id, attempts=attempts)
            if self.on_sent is not None:
                self.on_sent(row, outcome)
            return
        if outcome.verdict is Verdict.RETRY:
            delay = outcome.retry_after_s or backoff_s(attempts, cap=self.retry_max_s)
            log.warning("Gửi tin %s qua %s chưa được (%s); thử lại sau %.0f giây", row.id, self.route,
                        outcome.reason, delay)
            await self.outbox.retry(row.id, next_at=time.time() + delay, attempts=attempts, reason=outcome.reason)
            return
        nxt = self.next_route(row)
        if nxt is not None:
            route, rest = nxt
            log.info("Tin %s: %s từ chối (%s); chuyển sang %s", row.id, self.route, outcome.reason, route)
            await self.outbox.fall_back(row.id, route=route, rest=rest, attempts=attempts, reason=outcome.reason)
            if self.moved is not None:
                self.moved(route)
            return
        log.warning("Tin %s không gửi được: %s", row.id, outcome.reason)
        await self.outbox.fail(row.id, reason=outcome.reason, attempts=attempts)
