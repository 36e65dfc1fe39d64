"""kill -9 of the core at random moments under load, 20 times: nothing lost, duplicated or left in
two places (scripts/chaos.py; `make chaos` runs it longer)."""

from __future__ import annotations

import importlib.util
import random
import sqlite3
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("chaos", ROOT / "scripts" / "chaos.py")
assert _spec and _spec.loader
chaos = importlib.util.module_from_spec(_spec)
sys.modules["chaos"] = chaos
_spec.loader.exec_module(chaos)


async def test_kill_9_twenty_times_under_load(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    print(f"chaos seed {seed}")
    result = await chaos.run(tmp_path, rounds=20, seed=seed, clients=6)
    assert result["problems"] == [], result
    assert result["ok_replies"] > 200, result  # there was real load between the kills


def _db(tmp_path: Path) -> Path:
    db = tmp_path / "t.sqlite3"
    conn = sqlite3.connect(db)
    conn.executescript("""
        CREATE TABLE tickets (id TEXT, value INTEGER, origin_field TEXT, field TEXT, status TEXT, counter TEXT);
        CREATE TABLE counters (id TEXT, ticket TEXT);
        CREATE TABLE requests (request_id TEXT, reply TEXT);
        INSERT INTO tickets VALUES ('a', 1001, 'dat-dai', 'dat-dai', 'serving', '1');
        INSERT INTO tickets VALUES ('b', 1002, 'dat-dai', 'dat-dai', 'waiting', NULL);
        INSERT INTO tickets VALUES ('h', 1, 'ho-tich', 'ho-tich', 'waiting', NULL);
        INSERT INTO counters VALUES ('1', 'a');
        INSERT INTO counters VALUES ('2', NULL);
        INSERT INTO requests VALUES ('r1', '{"ok": true, "request_id": "r1"}');
    """)
    conn.commit()
    conn.close()
    return db


def test_the_checks_can_fail(tmp_path: Path) -> None:
    db = _db(tmp_path)
    ledger = chaos.Ledger(ok={"r1": {"ok": True, "request_id": "r1"}})
    assert chaos.check_database(db, ledger) == []
    conn = sqlite3.connect(db)
    conn.execute("UPDATE counters SET ticket = 'a' WHERE id = '2'")       # one ticket in two places
    conn.execute("DELETE FROM tickets WHERE id = 'b'")                     # ... and a gap: 1002 gone
    conn.execute("INSERT INTO tickets VALUES ('c', 1003, 'dat-dai', 'dat-dai', 'waiting', NULL)")
    conn.commit()
    conn.close()
    ledger.ok["r2"] = {"ok": True, "request_id": "r2"}                     # a reply the database lacks
    problems = chaos.check_database(db, ledger)
    assert any("two" in p or "held by counters" in p for p in problems)
    assert any("exactly once" in p for p in problems)
    assert any("r2" in p for p in problems)
