"""Years of history must not slow the core's start: the statements it runs at start-up (and once a
day) read through an index, not every ticket ever issued (issue 14). Checked on the query plans of
a real store, and by counting the rows SQLite visits, not by timing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from queue_core.store import FORGET_BOOKING_PHONES_SQL, FORGET_TICKET_PHONES_SQL, MAX_ORDER_SQL, Store


def _plan(conn: sqlite3.Connection, sql: str, *args: object) -> str:
    return " | ".join(str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))


async def _history(path: Path, days: int, per_day: int) -> None:
    store = await Store.open(path)
    await store.close()
    conn = sqlite3.connect(path)
    rows = []
    order = 0
    for d in range(days):
        day = f"2025-{1 + d // 28:02d}-{1 + d % 28:02d}"
        for n in range(per_day):
            order += 1
            rows.append((f"{day}-a-{n}", day, str(n), n, "a", "a", 0, "done", f"{day}T08:00:00+07:00", order, 0,
                         "84900000000" if d == days - 1 else None))
    conn.executemany("INSERT INTO tickets (id, day, number, value, origin_field, field, priority, status, issued_at, "
                     "ord, calls, phone) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


async def test_start_up_statements_use_indexes(tmp_path: Path) -> None:
    path = tmp_path / "core.sqlite3"
    await _history(path, 60, 50)
    conn = sqlite3.connect(path)
    assert "tickets_ord" in _plan(conn, MAX_ORDER_SQL)
    assert "tickets_phone" in _plan(conn, FORGET_TICKET_PHONES_SQL, "2025-03-01")
    assert "bookings_phone" in _plan(conn, FORGET_BOOKING_PHONES_SQL, "2025-03-01")
    conn.close()


def _start_up_steps(path: Path) -> int:
    """SQLite virtual-machine steps (a progress handler called at each) of the start-up statements."""
    conn = sqlite3.connect(path)
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(count, 1)
    conn.execute(MAX_ORDER_SQL).fetchall()
    conn.execute(FORGET_TICKET_PHONES_SQL, ("2025-01-01",))
    conn.execute(FORGET_BOOKING_PHONES_SQL, ("2025-01-01",))
    conn.rollback()
    conn.close()
    return steps[0]


async def test_start_up_reads_do_not_grow_with_history(tmp_path: Path) -> None:
    """Six times the history, the same work: only index seeks, no row of an old day visited."""
    await _history(tmp_path / "short.sqlite3", 10, 50)
    await _history(tmp_path / "long.sqlite3", 60, 50)
    short, long = _start_up_steps(tmp_path / "short.sqlite3"), _start_up_steps(tmp_path / "long.sqlite3")
    assert long <= short + 10, (short, long)


async def test_load_finds_the_next_order_of_a_long_history(tmp_path: Path) -> None:
    path = tmp_path / "core.sqlite3"
    await _history(path, 10, 50)
    store = await Store.open(path)
    try:
        snap = await store.load()
    finally:
        await store.close()
    assert snap.next_order == 501
