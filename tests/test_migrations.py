"""Schema migrations: every earlier version's database (tests/fixtures/schemas, made by
scripts/gen_schema_fixtures.py) migrates to the current one with its rows; a migration that fails
leaves the file exactly as it was and says which version failed and why; a newer one is refused."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from display_server.reports.figures import Dimension
from display_server.reports.warehouse import MIGRATIONS as REPORTS
from display_server.reports.warehouse import Settings as WarehouseSettings
from display_server.reports.warehouse import Warehouse
from dossiers.store import MIGRATIONS as DOSSIERS
from dossiers.store import DossierStore
from notifier.outbox import MIGRATIONS as NOTIFY
from notifier.outbox import Outbox
from notifier.providers.tokens import ZaloTokens
from qms_common.sqlite import MigrationError, migrate, statements
from queue_core.store import MIGRATIONS as CORE
from queue_core.store import Store
from scripts.gen_schema_fixtures import STORES, earlier_versions

FIXTURES = Path(__file__).parent / "fixtures" / "schemas"
CURRENT = {"core": len(CORE), "dossiers": len(DOSSIERS), "notify": len(NOTIFY), "reports": len(REPORTS)}


def load(sql: Path, db: Path) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executescript(sql.read_text(encoding="utf-8"))


def dump_sha(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()


def rows(db: Path) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows (column -> value) except schema_version."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT IN ('schema_version') ORDER BY name")]
        return {t: [dict(r) for r in conn.execute(f'SELECT * FROM "{t}"')] for t in tables}


def version_of(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT version FROM schema_version").fetchone()[0])


def fixtures() -> list[tuple[str, int]]:
    return [(store, v) for store, (migs, _, _) in STORES.items() for v in earlier_versions(store, migs)]


def test_every_earlier_version_has_a_fixture() -> None:
    """A new migration makes the version before it "earlier": scripts/gen_schema_fixtures.py adds it."""
    assert fixtures(), "every store with more than one version has earlier ones"
    for store, v in fixtures():
        assert (FIXTURES / store / f"v{v}.sql").is_file(), f"run scripts/gen_schema_fixtures.py ({store} v{v})"


async def _core_works(db: Path) -> None:
    store = await Store.open(db)
    try:
        snap = await store.load()
        assert snap.day == "2026-11-27" and snap.seq == 42
        by_number = {t.number: t for t in snap.tickets}
        assert set(by_number) == {"1001", "1002", "1003", "2001"}
        assert by_number["1002"].phone == "0912345678" and by_number["1001"].rating == 3
        assert snap.numbers == {"dat-dai": 1003, "ho-tich": 2001}
        assert snap.next_order == 5
        assert await store.reply_for("web", "r-1") is not None or await store.reply_for("", "r-1") is not None
    finally:
        await store.close()


async def _dossiers_work(db: Path) -> None:
    store = await DossierStore.open(db)
    try:
        d = await store.get("HS-0001")
        assert d is not None and d.procedure_name == "Cấp giấy chứng nhận quyền sử dụng đất"
        assert d.rating is not None and d.rating.score == 3 and d.phone == "0912345678"
        done = await store.get("HS-0002")
        assert done is not None and [str(e.status) for e in done.entries] == ["received", "returned"]
        changed = await store.changed_since(datetime(1970, 1, 1, tzinfo=UTC), None, 10)
        assert {x.code for x in changed} == {"HS-0001", "HS-0002"}
    finally:
        await store.close()


async def _notify_works(db: Path) -> None:
    box = await Outbox.open(db)
    try:
        assert [r.key for r in await box.all_rows()] == ["c:2026-11-27-dat-dai-1002:called",
                                                          "w:2026-11-27-dat-dai-1001:finished:cong"]
        assert await box.kinds_of("2026-11-27-dat-dai-1002") == {"called"}
    finally:
        await box.close()
    tokens = ZaloTokens(db)
    try:
        state = await tokens.load()
        assert state is not None and state.refresh_token == "rt-2"
    finally:
        await tokens.close()


async def _reports_work(db: Path) -> None:
    """The warehouse keeps its rolled day (same settings: nothing to roll again) and reads it, the
    procedure dimension through the indexes of version 2."""
    w = await Warehouse.open(db, WarehouseSettings(target_s=600, levels=3))
    try:
        assert await w.rolled_days() == {"2026-11-27"}
        for dimension in (Dimension.OFFICER, Dimension.PROCEDURE):
            groups, days = await w.ticket_groups("2026-11-01", "2026-11-30", dimension, by_day=True)
            f = groups["Nguyễn Thị Hoa" if dimension is Dimension.OFFICER else "1.001"].figures()
            assert (f.served, f.ratings) == (1, (0, 0, 1)), dimension
            assert days["2026-11-27"].figures().issued == 2
        groups, _ = await w.ticket_groups("2026-11-01", "2026-11-30", Dimension.OFFICER)
        assert groups["Nguyễn Thị Hoa"].figures().wait_max_s == 900
        dossiers, _ = await w.dossier_measures("2026-11-01", "2026-11-30", "2026-11-28", Dimension.PROCEDURE)
        assert dossiers["1.001"].dossiers_received == 1
    finally:
        await w.close()


WORKS: dict[str, Callable[[Path], Awaitable[None]]] = {
    "core": _core_works, "dossiers": _dossiers_work, "notify": _notify_works, "reports": _reports_work}


@pytest.mark.parametrize(("store", "version"), fixtures())
async def test_a_database_of_each_earlier_version_migrates_and_works(tmp_path: Path, store: str,
                                                                      version: int) -> None:
    db = tmp_path / f"{store}.sqlite3"
    load(FIXTURES / store / f"v{version}.sql", db)
    before = rows(db)
    await WORKS[store](db)
    assert version_of(db) == CURRENT[store]
    after = rows(db)
    for table, old in before.items():
        assert len(after[table]) == len(old), f"{store} v{version}: rows of {table} lost"
        # every value of then is still there, under its column (later versions add columns)
        for row in old:
            assert any(row.items() <= new.items() for new in after[table]), f"{store} v{version} {table}: {row}"


async def test_a_failed_migration_leaves_the_database_exactly_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "core.sqlite3"
    load(FIXTURES / "core" / "v2.sql", db)
    # migration 3 (new columns, bookings) would succeed; 4 then meets an index of the same name
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE INDEX tickets_ord ON tickets (ord, day)")
        conn.commit()
    before = dump_sha(db)
    with pytest.raises(MigrationError) as err:
        await Store.open(db)
    text = str(err.value)
    assert "lên phiên bản 4" in text and "tickets_ord already exists" in text and "phiên bản 2" in text
    assert dump_sha(db) == before, "nothing of migration 3 may stay"
    assert version_of(db) == 2


async def test_a_fresh_database_whose_first_migration_fails_keeps_nothing(tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite3"
    async with aiosqlite.connect(str(db), isolation_level=None) as conn:
        with pytest.raises(MigrationError, match="lên phiên bản 2: no such table: nope"):
            await migrate(conn, db, ["CREATE TABLE a (x)", "INSERT INTO nope VALUES (1)"])
        tables = await conn.execute_fetchall("SELECT name FROM sqlite_master")
    assert list(tables) == [], "not even schema_version"


async def test_a_database_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "core.sqlite3"
    load(FIXTURES / "core" / "v3.sql", db)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (len(CORE) + 1,))
        conn.commit()
    before = dump_sha(db)
    with pytest.raises(MigrationError, match="mới hơn phần mềm này"):
        await Store.open(db)
    assert dump_sha(db) == before


def test_statements_split_only_where_sqlite_ends_one() -> None:
    assert statements("CREATE TABLE a (x TEXT); -- a note; with a semicolon\nINSERT INTO a VALUES (';');\n") == [
        "CREATE TABLE a (x TEXT)", "-- a note; with a semicolon\nINSERT INTO a VALUES (';')"]
