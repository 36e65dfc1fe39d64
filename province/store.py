"""PostgreSQL for the province (asyncpg): the schema by migrations, and idempotent writes by (site, seq).

Every message of an office that carries a `seq` (events and state) is one row of `events`, keyed
by (site, seq): a message the broker delivers twice (after a crash before its acknowledgement) or
the bridge sends again is inserted once. Tickets, ratings and the latest state are derived rows,
each updated only by a message with a higher seq than the one that wrote it, so the order in which
messages arrive does not matter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

# Each migration runs once, in order, in its own transaction; never edit one that has shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sites (
        site text PRIMARY KEY,
        name text,
        district text,
        online boolean NOT NULL DEFAULT false,
        status_at timestamptz,
        last_seq bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        site text NOT NULL,
        seq bigint NOT NULL,
        topic text NOT NULL,
        kind text NOT NULL,
        body jsonb NOT NULL,
        at timestamptz,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (site, seq)
    );
    CREATE TABLE tickets (
        site text NOT NULL,
        id text NOT NULL,
        number text NOT NULL,
        field text NOT NULL,
        status text NOT NULL,
        counter text,
        priority boolean NOT NULL DEFAULT false,
        via text,
        calls integer NOT NULL DEFAULT 0,
        rating integer,
        issued_at timestamptz,
        called_at timestamptz,
        finished_at timestamptz,
        record jsonb NOT NULL,
        seq bigint NOT NULL,
        PRIMARY KEY (site, id)
    );
    CREATE TABLE ratings (
        site text NOT NULL,
        ticket text NOT NULL,
        rating integer NOT NULL,
        field text NOT NULL,
        counter text,
        at timestamptz,
        seq bigint NOT NULL,
        PRIMARY KEY (site, ticket)
    );
    CREATE TABLE state (
        site text NOT NULL,
        topic text NOT NULL,
        body jsonb NOT NULL,
        seq bigint NOT NULL,
        PRIMARY KEY (site, topic)
    );
    """,
)

TICKET_KINDS = frozenset({"issued", "called", "skipped", "finished", "transferred", "rated"})
# any two aggregator instances starting on one empty database migrate it one after the other
MIGRATION_LOCK = 0x716D7370  # "qmsp"


@dataclass(frozen=True)
class Message:
    """One office message as the store needs it: where it came from and what it said."""
    site: str
    topic: str  # below qms/{site}/, e.g. "event/called", "state/queue/dat-dai", "status/core"
    body: Any


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class ProvinceStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 4) -> ProvinceStore:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
        store = cls(pool)
        try:
            await store.migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def close(self) -> None:
        await self.pool.close()

    async def migrate(self) -> int:
        """Bring an empty or older database to the current schema; returns the version."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                               "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            done = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
            for version, sql in enumerate(MIGRATIONS, start=1):
                if version > done:
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
        return len(MIGRATIONS)

    async def ensure_sites(self, sites: list[tuple[str, str, str]]) -> None:
        """The offices of province.toml, so an office never heard from is listed (offline)."""
        async with self.pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO sites (site, name, district) VALUES ($1, $2, $3) "
                "ON CONFLICT (site) DO UPDATE SET name = excluded.name, district = excluded.district", sites)

    async def write(self, m: Message) -> bool:
        """Store one message; False when it was already stored (or carries nothing to store)."""
        if m.topic.startswith("status/"):
            if m.topic == "status/core":
                await self.set_presence(m.site, m.body == "online")
            return True
        if not isinstance(m.body, dict):
            return False
        seq = m.body.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq <= 0:
            return False  # e.g. the dossier service's events: no seq, no place in this stream
        kind = m.topic.removeprefix("event/") if m.topic.startswith("event/") else m.topic.split("/")[0]
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO events (site, seq, topic, kind, body, at) VALUES ($1, $2, $3, $4, $5::jsonb, $6) "
                "ON CONFLICT (site, seq) DO NOTHING RETURNING true",
                m.site, seq, m.topic, kind, json.dumps(m.body, ensure_ascii=False), _time(m.body.get("at")))
            if not inserted:
                return False
            await conn.execute(
                "INSERT INTO sites (site, last_seq) VALUES ($1, $2) ON CONFLICT (site) DO UPDATE "
                "SET last_seq = greatest(sites.last_seq, excluded.last_seq)", m.site, seq)
            if m.topic.startswith("state/"):
                await conn.execute(
                    "INSERT INTO state (site, topic, body, seq) VALUES ($1, $2, $3::jsonb, $4) "
                    "ON CONFLICT (site, topic) DO UPDATE SET body = excluded.body, seq = excluded.seq "
                    "WHERE state.seq < excluded.seq",
                    m.site, m.topic, json.dumps(m.body, ensure_ascii=False), seq)
            elif kind in TICKET_KINDS and isinstance(m.body.get("ticket"), dict):
                await self._ticket(conn, m.site, kind, m.body["ticket"], seq, _time(m.body.get("at")))
        return True

    async def _ticket(self, conn: asyncpg.Connection, site: str, kind: str, t: dict[str, Any], seq: int,
                      at: datetime | None) -> None:
        if not isinstance(t.get("id"), str):
            return
        rating = t.get("rating") if isinstance(t.get("rating"), int) else None
        await conn.execute(
            "INSERT INTO tickets (site, id, number, field, status, counter, priority, via, calls, rating, "
            "issued_at, called_at, finished_at, record, seq) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15) "
            "ON CONFLICT (site, id) DO UPDATE SET number = excluded.number, field = excluded.field, "
            "status = excluded.status, counter = excluded.counter, priority = excluded.priority, "
            "via = excluded.via, calls = excluded.calls, rating = excluded.rating, "
            "issued_at = excluded.issued_at, called_at = excluded.called_at, "
            "finished_at = excluded.finished_at, record = excluded.record, seq = excluded.seq "
            "WHERE tickets.seq < excluded.seq",
            site, t["id"], str(t.get("number", "")), str(t.get("field", "")), str(t.get("status", "")),
            t.get("counter") if isinstance(t.get("counter"), str) else None, bool(t.get("priority")),
            t.get("via") if isinstance(t.get("via"), str) else None,
            t.get("calls") if isinstance(t.get("calls"), int) else 0, rating,
            _time(t.get("issued_at")), _time(t.get("called_at")), _time(t.get("finished_at")),
            json.dumps(t, ensure_ascii=False), seq)
        if kind == "rated" and rating is not None:
            await conn.execute(
                "INSERT INTO ratings (site, ticket, rating, field, counter, at, seq) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (site, ticket) DO UPDATE SET "
                "rating = excluded.rating, field = excluded.field, counter = excluded.counter, "
                "at = excluded.at, seq = excluded.seq WHERE ratings.seq < excluded.seq",
                site, t["id"], rating, str(t.get("field", "")),
                t.get("counter") if isinstance(t.get("counter"), str) else None, at, seq)

    async def set_presence(self, site: str, online: bool) -> None:
        # status_at is when the office was last seen changing: "offline since" on the dashboard
        await self.pool.execute(
            "INSERT INTO sites (site, online, status_at) VALUES ($1, $2, now()) ON CONFLICT (site) DO UPDATE "
            "SET online = excluded.online, status_at = CASE WHEN sites.online = excluded.online "
            "AND sites.status_at IS NOT NULL THEN sites.status_at ELSE excluded.status_at END", site, online)

    async def last_seq(self, site: str) -> int:
        return int(await self.pool.fetchval("SELECT coalesce(max(seq), 0) FROM events WHERE site = $1", site))

    async def seqs(self, site: str, after: int = 0) -> list[int]:
        rows = await self.pool.fetch("SELECT seq FROM events WHERE site = $1 AND seq > $2 ORDER BY seq", site, after)
        return [r["seq"] for r in rows]

    async def ticket(self, site: str, ticket_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT * FROM tickets WHERE site = $1 AND id = $2", site, ticket_id)

    async def site_row(self, site: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT * FROM sites WHERE site = $1", site)
