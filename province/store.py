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
from datetime import UTC, date, datetime, time
from typing import Any

import asyncpg

from qms_common.sqlite import MigrationError

# Each migration runs once, in order; all the pending ones in one transaction (a failure leaves the
# database as it was); never edit one that has shipped.
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
    # 2: presence from both the core and the bridge; the dossiers of event/dossier
    """
    ALTER TABLE sites ADD COLUMN core_online boolean, ADD COLUMN bridge_online boolean;
    CREATE TABLE dossiers (
        site text NOT NULL,
        code text NOT NULL,
        procedure text,
        status text,
        received_at timestamptz,
        due_at timestamptz,
        done_at timestamptz,
        updated_at timestamptz,
        procedure_code text,
        field text,
        version integer NOT NULL DEFAULT 0,
        PRIMARY KEY (site, code)
    );
    CREATE TABLE dossier_entries (
        site text NOT NULL,
        code text NOT NULL,
        entry_id text NOT NULL,
        status text NOT NULL,
        at timestamptz,
        PRIMARY KEY (site, code, entry_id)
    );
    -- the dashboard and the reports count an office's dossiers of a period by these
    CREATE INDEX dossiers_received ON dossiers (site, received_at);
    CREATE INDEX dossiers_done ON dossiers (site, done_at);
    """,
)

TICKET_KINDS = frozenset({"issued", "called", "skipped", "finished", "transferred", "rated"})
# any two aggregator instances starting on one empty database migrate it one after the other
MIGRATION_LOCK = 0x716D7370  # "qmsp"
# how its sessions show in pg_stat_activity: qms-admin restore refuses while one is connected
APPLICATION_NAME = "qms-province"


@dataclass(frozen=True)
class Message:
    """One office message as the store needs it: where it came from and what it said."""
    site: str
    topic: str  # below qms/{site}/, e.g. "event/called", "state/queue/dat-dai", "status/core"
    body: Any


@dataclass(frozen=True)
class PresenceChange:
    """An office's presence before and after one status message."""
    was_online: bool
    online: bool
    since: datetime | None  # status_at before the change: "offline since" when it comes back

    @property
    def came_back(self) -> bool:
        return self.online and not self.was_online


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _due(value: Any, received: datetime | None) -> datetime | None:
    """A dossier's `due_at` is a day of the office: its start, in the offset of `received_at`."""
    if not isinstance(value, str):
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return _time(value)
    return datetime.combine(day, time(), received.tzinfo if received else UTC)


def _text(value: Any, limit: int = 500) -> str | None:
    return value[:limit] if isinstance(value, str) else None


class ProvinceStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 4) -> ProvinceStore:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                         server_settings={"application_name": APPLICATION_NAME})
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
            if done > len(MIGRATIONS):
                raise MigrationError(f"Cơ sở dữ liệu của tỉnh có phiên bản lược đồ {done}, mới hơn phần mềm này "
                                     f"({len(MIGRATIONS)}). Hãy cập nhật phần mềm.")
            for version, sql in enumerate(MIGRATIONS, start=1):
                if version > done:
                    try:
                        await conn.execute(sql)
                    except asyncpg.PostgresError as exc:
                        raise MigrationError(
                            f"Không nâng được lược đồ cơ sở dữ liệu của tỉnh lên phiên bản {version}: {exc}. "
                            f"Cơ sở dữ liệu được giữ nguyên như trước (phiên bản {done}).") from exc
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
            await self.presence_of(m)
            return True
        if not isinstance(m.body, dict):
            return False
        if m.topic == "event/dossier":
            return await self.write_dossier(m.site, m.body)
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

    async def apply_records(self, site: str, seq: int, records: list[dict[str, Any]]) -> int:
        """Ticket records of a backfill reply, all or none: each as of the reply's `seq`, so a row
        written by a newer event stays, and the rating a record carries is the ticket's one
        rating row. Returns how many tickets changed."""
        changed = 0
        async with self.pool.acquire() as conn, conn.transaction():
            for t in records:
                changed += await self._ticket(conn, site, "record", t, seq, _time(t.get("rated_at")))
        return changed

    async def _ticket(self, conn: asyncpg.Connection, site: str, kind: str, t: dict[str, Any], seq: int,
                      at: datetime | None) -> int:
        if not isinstance(t.get("id"), str):
            return 0
        rating = t.get("rating") if isinstance(t.get("rating"), int) else None
        status = await conn.execute(
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
        if kind in ("rated", "record") and rating is not None:
            await conn.execute(
                "INSERT INTO ratings (site, ticket, rating, field, counter, at, seq) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (site, ticket) DO UPDATE SET "
                "rating = excluded.rating, field = excluded.field, counter = excluded.counter, "
                "at = excluded.at, seq = excluded.seq WHERE ratings.seq < excluded.seq",
                site, t["id"], rating, str(t.get("field", "")),
                t.get("counter") if isinstance(t.get("counter"), str) else None, at, seq)
        return 1 if status.endswith(" 1") else 0

    async def presence_of(self, m: Message) -> PresenceChange | None:
        """status/core (`online`/`offline`) or status/bridge (`1`/`0`, the bridge's notification
        and the central broker's will for it); None for any other presence."""
        if m.topic == "status/core" and m.body in ("online", "offline"):
            return await self.set_presence(m.site, core=m.body == "online")
        if m.topic == "status/bridge" and m.body in ("1", "0"):
            return await self.set_presence(m.site, bridge=m.body == "1")
        return None

    async def set_presence(self, site: str, *, core: bool | None = None,
                           bridge: bool | None = None) -> PresenceChange:
        """An office is online when its core is and its bridge is connected. An office seen
        without a bridge (on the central broker itself) has no bridge state: its core decides.
        status_at is when `online` last changed: "offline since" on the dashboard."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO sites (site) VALUES ($1) ON CONFLICT (site) DO NOTHING", site)
            row = await conn.fetchrow("SELECT online, status_at, core_online, bridge_online FROM sites "
                                      "WHERE site = $1 FOR UPDATE", site)
            core_now = row["core_online"] if core is None else core
            bridge_now = row["bridge_online"] if bridge is None else bridge
            online = bool(core_now) and bridge_now is not False
            await conn.execute(
                "UPDATE sites SET core_online = $2, bridge_online = $3, online = $4, "
                "status_at = CASE WHEN online = $4 AND status_at IS NOT NULL THEN status_at ELSE now() END "
                "WHERE site = $1", site, core_now, bridge_now, online)
        # an office first heard of now is not coming back: nothing of it was missed yet
        since = row["status_at"] if row["core_online"] is not None else None
        return PresenceChange(bool(row["online"]), online, since)

    async def write_dossier(self, site: str, body: dict[str, Any]) -> bool:
        """One `event/dossier` (no seq): stored once per (site, code, entry id); the dossier's row
        keeps the view of the highest `version`, whatever order the events come in."""
        d, e = body.get("dossier"), body.get("entry")
        if not isinstance(d, dict) or not isinstance(e, dict):
            return False
        code, entry_id, version = d.get("code"), e.get("id"), d.get("version")
        if (not isinstance(code, str) or not 0 < len(code) <= 64 or not isinstance(entry_id, str)
                or not 0 < len(entry_id) <= 64 or not isinstance(version, int) or isinstance(version, bool)):
            return False
        procedure = d.get("procedure") if isinstance(d.get("procedure"), dict) else {}
        received = _time(d.get("received_at"))
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO dossier_entries (site, code, entry_id, status, at) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT DO NOTHING RETURNING true",
                site, code, entry_id, _text(e.get("status"), 32) or "", _time(e.get("at")))
            if not inserted:
                return False
            await conn.execute(
                "INSERT INTO dossiers (site, code, procedure, status, received_at, due_at, done_at, updated_at, "
                "procedure_code, field, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
                "ON CONFLICT (site, code) DO UPDATE SET procedure = excluded.procedure, status = excluded.status, "
                "received_at = excluded.received_at, due_at = excluded.due_at, done_at = excluded.done_at, "
                "updated_at = excluded.updated_at, procedure_code = excluded.procedure_code, "
                "field = excluded.field, version = excluded.version WHERE dossiers.version < excluded.version",
                site, code, _text(procedure.get("name")), _text(d.get("status"), 32), received,
                _due(d.get("due_at"), received), _time(d.get("done_at")),
                _time(e.get("applied_at")) or _time(body.get("at")), _text(procedure.get("code"), 64),
                _text(d.get("field"), 64), version)
        return True

    async def tracks(self) -> list[asyncpg.Record]:
        """Per office what the gap detector starts from: presence, last seq and its time."""
        return await self.pool.fetch(
            "SELECT s.site, s.online, s.status_at, s.last_seq, e.at FROM sites s "
            "LEFT JOIN events e ON e.site = s.site AND e.seq = s.last_seq")

    async def last_seq(self, site: str) -> int:
        return int(await self.pool.fetchval("SELECT coalesce(max(seq), 0) FROM events WHERE site = $1", site))

    async def seqs(self, site: str, after: int = 0) -> list[int]:
        rows = await self.pool.fetch("SELECT seq FROM events WHERE site = $1 AND seq > $2 ORDER BY seq", site, after)
        return [r["seq"] for r in rows]

    async def ticket(self, site: str, ticket_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT * FROM tickets WHERE site = $1 AND id = $2", site, ticket_id)

    async def site_row(self, site: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT * FROM sites WHERE site = $1", site)
