"""The province's PostgreSQL store, on a real PostgreSQL started for the tests."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from province.gaps import missing_ranges
from province.settings import ConfigError, parse_province
from province.store import MIGRATIONS, Message, ProvinceStore
from tests.support.postgres import Postgres

AT = "2026-11-21T09:12:00+07:00"


def ticket(status: str, **extra: object) -> dict[str, object]:
    return {"id": "20261121-dat-dai-1001", "number": "1001", "field": "dat-dai", "priority": False,
            "status": status, "issued_at": "2026-11-21T09:00:00+07:00", "called_at": None, "finished_at": None,
            "counter": None, "calls": 0, "rating": None, "via": "kiosk", **extra}


def event(kind: str, seq: int, t: dict[str, object]) -> Message:
    return Message("xa-hoa-binh", f"event/{kind}", {"kind": kind, "ticket": t, "counter": t.get("counter"),
                                                     "seq": seq, "at": AT})


async def test_schema_is_created_in_an_empty_database(pg_dsn: str) -> None:
    store = await ProvinceStore.open(pg_dsn)
    try:
        tables = {r["tablename"] for r in await store.pool.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"schema_migrations", "sites", "events", "tickets", "ratings", "state"} <= tables
        assert await store.pool.fetchval("SELECT max(version) FROM schema_migrations") == len(MIGRATIONS)
        # a second start (or a second instance) finds it done and changes nothing
        assert await store.migrate() == len(MIGRATIONS)
        assert await store.pool.fetchval("SELECT count(*) FROM schema_migrations") == len(MIGRATIONS)
    finally:
        await store.close()


async def test_an_event_delivered_twice_is_stored_once(pg_dsn: str) -> None:
    store = await ProvinceStore.open(pg_dsn)
    try:
        m = event("issued", 7, ticket("waiting"))
        assert await store.write(m) is True
        assert await store.write(m) is False
        assert await store.pool.fetchval("SELECT count(*) FROM events") == 1
        assert await store.pool.fetchval("SELECT count(*) FROM tickets") == 1
        assert await store.last_seq("xa-hoa-binh") == 7
    finally:
        await store.close()


async def test_events_out_of_order_keep_the_latest_ticket_state(pg_dsn: str) -> None:
    store = await ProvinceStore.open(pg_dsn)
    try:
        done = ticket("done", counter="1", calls=1, called_at="2026-11-21T09:05:00+07:00",
                      finished_at="2026-11-21T09:10:00+07:00")
        rated = {**done, "rating": 3}
        # the rating arrives first, then the older events (a bridge resending its queue, say)
        await store.write(event("rated", 12, rated))
        await store.write(event("finished", 11, done))
        await store.write(event("called", 10, ticket("serving", counter="1", calls=1)))
        await store.write(event("issued", 9, ticket("waiting")))
        row = await store.ticket("xa-hoa-binh", "20261121-dat-dai-1001")
        assert row is not None
        assert (row["status"], row["rating"], row["seq"], row["counter"]) == ("done", 3, 12, "1")
        assert await store.pool.fetchval("SELECT count(*) FROM events") == 4
        r = await store.pool.fetchrow("SELECT * FROM ratings")
        assert (r["ticket"], r["rating"], r["seq"]) == ("20261121-dat-dai-1001", 3, 12)
    finally:
        await store.close()


async def test_state_keeps_the_latest_and_presence_says_since_when(pg_dsn: str) -> None:
    store = await ProvinceStore.open(pg_dsn)
    try:
        await store.write(Message("xa-a", "state/queue/dat-dai", {"field": "dat-dai", "waiting": 4, "seq": 21}))
        await store.write(Message("xa-a", "state/queue/dat-dai", {"field": "dat-dai", "waiting": 9, "seq": 20}))
        body = await store.pool.fetchval("SELECT body FROM state WHERE site = 'xa-a'")
        assert '"waiting": 4' in body
        await store.write(Message("xa-a", "status/core", "online"))
        first = await store.site_row("xa-a")
        await store.write(Message("xa-a", "status/core", "online"))
        again = await store.site_row("xa-a")
        assert first is not None and again is not None
        assert first["online"] is True and again["status_at"] == first["status_at"]
        await store.write(Message("xa-a", "status/core", "offline"))
        off = await store.site_row("xa-a")
        assert off is not None and off["online"] is False and off["status_at"] >= first["status_at"]
        # messages without a usable seq are not part of the stream
        assert await store.write(Message("xa-a", "event/dossier", {"kind": "dossier"})) is False
        assert await store.write(Message("xa-a", "event/called", {"seq": True})) is False
    finally:
        await store.close()


async def test_seqs_feed_the_gap_detector(pg_dsn: str) -> None:
    store = await ProvinceStore.open(pg_dsn)
    try:
        for seq in (1, 2, 5, 6, 9):
            await store.write(Message("xa-b", "state/site", {"seq": seq}))
        assert missing_ranges(await store.seqs("xa-b")) == [(3, 4), (7, 8)]
    finally:
        await store.close()


def test_missing_ranges() -> None:
    assert missing_ranges([]) == []
    assert missing_ranges([1, 2, 3]) == []
    assert missing_ranges([3, 1]) == [(2, 2)]
    assert missing_ranges([5]) == [(1, 4)]
    assert missing_ranges([11, 14, 12], after=10) == [(13, 13)]
    assert missing_ranges([1, 2], upto=5) == [(3, 5)]
    assert missing_ranges([2, 2, 4, 9], upto=5) == [(1, 1), (3, 3), (5, 5)]
    assert missing_ranges([3, 4], after=5) == []


async def test_the_server_is_a_real_postgres(postgres: Postgres) -> None:
    conn = await asyncpg.connect(postgres.dsn())
    try:
        assert (await conn.fetchval("SHOW listen_addresses")) == "127.0.0.1"
    finally:
        await conn.close()


GOOD = """
[province]
id = "tinh-demo"
name = "Tỉnh Demo"
[mqtt]
url = "mqtt://province:secret@central:1883"
[postgres]
dsn = "postgresql://qms@db:5432/qms_province"
[web]
host = "0.0.0.0"
port = 8090
[[sites]]
id = "xa-hoa-binh"
name = "UBND xã Hòa Bình"
district = "Huyện Đông"
[[accounts]]
username = "tinh"
password_hash = "scrypt$x"
role = "province"
"""


def parse(text: str) -> object:
    import tomllib
    return parse_province(Path("province.toml"), tomllib.loads(text))


def test_settings_read_as_in_the_issue() -> None:
    s = parse(GOOD)
    assert s.id == "tinh-demo" and s.mqtt.host == "central" and s.mqtt.username == "province"  # type: ignore[attr-defined]
    assert s.postgres_dsn.endswith("/qms_province") and s.web_port == 8090  # type: ignore[attr-defined]
    assert s.sites[0].district == "Huyện Đông" and s.accounts[0].role == "province"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("change", "key"), [
    (("[postgres]\ndsn = \"postgresql://qms@db:5432/qms_province\"\n", ""), "postgres"),
    (("dsn = \"postgresql://", "dsn = \"mysql://"), "postgres.dsn"),
    (("role = \"province\"", "role = \"admin\""), "accounts[1].role"),
    (("url = \"mqtt://", "url = \"http://"), "mqtt.url"),
    (("port = 8090", "port = 0"), "web.port"),
    (("district = \"Huyện Đông\"", "distric = \"Huyện Đông\""), "sites[1].district"),
    (("id = \"xa-hoa-binh\"", "id = \"Xã Hòa Bình\""), "sites[1].id"),
])
def test_bad_settings_name_the_key_in_vietnamese(change: tuple[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(GOOD.replace(*change))
    assert info.value.key == key
    assert str(info.value).startswith("Lỗi cấu hình province.toml")


def test_the_dsn_is_logged_without_its_password() -> None:
    from province.cli import safe_dsn
    assert safe_dsn("postgresql://qms:bí-mật@db:5432/qms_province") == "postgresql://qms:***@db:5432/qms_province"
    assert safe_dsn("postgresql://qms@db/qms_province") == "postgresql://qms@db/qms_province"
