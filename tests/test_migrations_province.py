"""The province's PostgreSQL schema: version 1 (tests/fixtures/schemas/province/v1.sql) migrates
with its rows; a failed migration leaves the database as it was and names the version; a newer
database is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import asyncpg
import pytest

from province.store import MIGRATIONS, ProvinceStore
from qms_common.sqlite import MigrationError

V1 = Path(__file__).parent / "fixtures" / "schemas" / "province" / "v1.sql"


async def load_v1(dsn: str, extra: str = "") -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(V1.read_text(encoding="utf-8") + extra)
    finally:
        await conn.close()


async def checksum(dsn: str) -> str:
    """The schema (tables, columns, indexes) and every row, as text."""
    conn = await asyncpg.connect(dsn)
    try:
        parts = [repr(await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2")),
            repr(await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"))]
        for (table,) in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"):
            parts.append(repr(await conn.fetch(f"SELECT to_jsonb(t)::text AS r FROM {table} t ORDER BY 1")))
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()
    finally:
        await conn.close()


async def test_version_1_migrates_with_its_rows(pg_dsn: str) -> None:
    await load_v1(pg_dsn)
    store = await ProvinceStore.open(pg_dsn)
    try:
        async with store.pool.acquire() as conn:
            assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == len(MIGRATIONS)
            site = await conn.fetchrow("SELECT name, last_seq, core_online FROM sites WHERE site = 'xa-hoa-binh'")
            assert site["name"] == "Bộ phận Một cửa UBND xã Hòa Bình" and site["last_seq"] == 3
            ticket = await conn.fetchrow("SELECT number, record FROM tickets WHERE id = 't1'")
            assert ticket["number"] == "1001" and json.loads(ticket["record"])["number"] == "1001"
            assert await conn.fetchval("SELECT count(*) FROM events") == 1
            assert await conn.fetchval("SELECT rating FROM ratings WHERE ticket = 't0'") == 2
            assert await conn.fetchval("SELECT count(*) FROM dossiers") == 0
    finally:
        await store.close()


async def test_a_failed_migration_leaves_the_database_as_it_was(pg_dsn: str) -> None:
    # migration 2 creates dossier_entries: one of that name is already there (and blocks it)
    await load_v1(pg_dsn, "CREATE TABLE dossier_entries (x integer);")
    before = await checksum(pg_dsn)
    with pytest.raises(MigrationError) as err:
        await ProvinceStore.open(pg_dsn)
    assert "lên phiên bản 2" in str(err.value) and "dossier_entries" in str(err.value)
    assert "phiên bản 1" in str(err.value)
    assert await checksum(pg_dsn) == before, "the new columns of sites and the dossiers table must not stay"


async def test_a_newer_database_is_refused(pg_dsn: str) -> None:
    await load_v1(pg_dsn, f"INSERT INTO schema_migrations (version) VALUES ({len(MIGRATIONS) + 1});")
    before = await checksum(pg_dsn)
    with pytest.raises(MigrationError, match="mới hơn phần mềm này"):
        await ProvinceStore.open(pg_dsn)
    assert await checksum(pg_dsn) == before
