"""The notifier's outbox on a real SQLite file: one row per key, crash recovery by provider,
phones erased in time; and the retry schedule."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path

from notifier.dispatcher import RateLimit, backoff_s
from notifier.outbox import NewMessage, Outbox, idempotency_key


def msg(key: str, day: str = "2026-11-20", phone: str | None = "84912345678", route: str = "zalo") -> NewMessage:
    return NewMessage(key=key, day=day, ticket=f"t-{key}", kind="issued", routes=[route, "sms"],
                      body={"number": "1001"}, phone=phone)


async def test_a_key_is_added_once_even_from_many_writers_at_once(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "n.sqlite3")
    try:
        results = await asyncio.gather(*(box.add([msg(f"k{i % 10}")]) for i in range(50)))
        assert sum(len(r) for r in results) == 10
        assert len(await box.all_rows()) == 10
    finally:
        await box.close()


async def test_after_a_crash_only_deduplicating_providers_are_sent_again(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "n.sqlite3")
    try:
        [z] = await box.add([msg("a", route="zalo")])
        [s] = await box.add([msg("b", route="speedsms")])
        await box.mark_sending(z)
        await box.mark_sending(s)
        assert await box.recover({"zalo"}) == (1, 1)
        states = {r.id: r.state for r in await box.all_rows()}
        assert states == {z: "pending", s: "failed"}
    finally:
        await box.close()


async def test_phones_are_erased_after_their_day(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "n.sqlite3")
    try:
        await box.add([msg("old", day="2026-10-01"), msg("new", day="2026-11-20")])
        assert await box.forget_phones("2026-10-31") == 1
    finally:
        await box.close()
    with sqlite3.connect(tmp_path / "n.sqlite3") as conn:
        assert dict(conn.execute("SELECT key, phone FROM messages")) == {"old": None, "new": "84912345678"}
    assert (tmp_path / "n.sqlite3").stat().st_mode & 0o777 == 0o600


def test_provider_keys_are_stable_short_and_say_nothing() -> None:
    k = idempotency_key("hoa-binh", "c:20261120-dat-dai-1001:issued")
    assert k == idempotency_key("hoa-binh", "c:20261120-dat-dai-1001:issued")
    assert k != idempotency_key("hoa-binh", "c:20261120-dat-dai-1001:called")
    assert len(k) <= 48 and k.isalnum() and "1001" not in k


def test_retries_back_off_exponentially_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(7)
    delays = [backoff_s(n, base=2, cap=60, rng=rng) for n in range(1, 10)]
    assert 1 <= delays[0] <= 2 and 4 <= delays[2] <= 8
    assert all(30 <= d <= 60 for d in delays[5:])
    assert len({round(backoff_s(3, rng=rng), 6) for _ in range(20)}) > 1  # spread, not in lockstep


async def test_a_channel_never_goes_faster_than_its_rate_limit() -> None:
    limit = RateLimit(per_s=20)
    start = time.monotonic()
    for _ in range(11):
        await limit.wait()
    # ten intervals of 1/20 s at least, however fast the caller asks
    assert time.monotonic() - start >= 0.5
