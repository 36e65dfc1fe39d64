"""The report warehouse: the web server's own SQLite file (aiosqlite, WAL), a derived cache of the
core's finished business days and of the dossier service's dossiers. It can be deleted at any
time: the web server builds it again from the core and the dossier service (docs/web.md).

- `days`: the business days rolled up, one row each, written in the same transaction as the
  day's facts and aggregates: a day is there whole or not at all, and a day rolled twice is
  rolled once (the second finds its row and does nothing).
- `tickets`: one fact per ticket (the drill-down's rows; the core's record kept whole in JSON).
- `daily`: per (day, officer, counter, field, issue hour) the counts and sums of
  figures.ticket_parts, with every wait and service time as a packed array of unsigned 32-bit
  seconds: a year's report reads these few thousand rows, never the tickets, and still gets the
  exact median and p90.
- `dossiers`: one fact per dossier (the newest view wins); its figures are added up by SQL.
"""

from __future__ import annotations

import json
import sqlite3
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from display_server.reports.figures import (
    Dimension,
    DossierFact,
    Measures,
    TicketFact,
    ticket_parts,
)
from qms_common.sqlite import make_private, migrate

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE days (day TEXT PRIMARY KEY, tickets INTEGER NOT NULL, rolled_at TEXT NOT NULL);
    CREATE TABLE tickets (
        id TEXT PRIMARY KEY, day TEXT NOT NULL, number TEXT NOT NULL, field TEXT NOT NULL,
        origin_field TEXT NOT NULL, counter TEXT NOT NULL, officer TEXT NOT NULL, hour INTEGER NOT NULL,
        status TEXT NOT NULL, wait_s INTEGER, service_s INTEGER, within INTEGER, rating INTEGER,
        dossier TEXT, transferred INTEGER NOT NULL, record TEXT NOT NULL
    );
    CREATE INDEX tickets_day ON tickets (day);
    CREATE TABLE daily (
        day TEXT NOT NULL, officer TEXT NOT NULL, counter TEXT NOT NULL, field TEXT NOT NULL,
        hour INTEGER NOT NULL,
        issued INTEGER NOT NULL, served INTEGER NOT NULL, no_show INTEGER NOT NULL,
        transferred INTEGER NOT NULL, within INTEGER NOT NULL, ticket_units INTEGER NOT NULL,
        ticket_dissatisfied INTEGER NOT NULL, waits BLOB NOT NULL, services BLOB NOT NULL,
        PRIMARY KEY (day, officer, counter, field, hour)
    ) WITHOUT ROWID;
    CREATE INDEX daily_officer ON daily (officer, day);
    -- the ratings of a daily row, one row per level given (SQL adds them up)
    CREATE TABLE daily_ratings (
        day TEXT NOT NULL, officer TEXT NOT NULL, counter TEXT NOT NULL, field TEXT NOT NULL,
        hour INTEGER NOT NULL, level INTEGER NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (day, officer, counter, field, hour, level)
    ) WITHOUT ROWID;
    CREATE TABLE dossiers (
        code TEXT PRIMARY KEY, procedure TEXT NOT NULL, procedure_name TEXT NOT NULL, field TEXT NOT NULL,
        officer TEXT NOT NULL, counter TEXT NOT NULL, ticket TEXT, received_day TEXT NOT NULL,
        received_hour INTEGER NOT NULL, due TEXT NOT NULL, done_day TEXT, status TEXT NOT NULL,
        rating INTEGER, version INTEGER NOT NULL, view TEXT NOT NULL
    );
    -- covering: a year's dossier figures are added up from these indexes alone
    CREATE INDEX dossiers_received ON dossiers (received_day, officer, counter, field, procedure, received_hour,
                                                rating);
    CREATE INDEX dossiers_done ON dossiers (done_day, due, officer, counter, field, procedure, received_hour);
    CREATE INDEX dossiers_due ON dossiers (due) WHERE done_day IS NULL;
    """,
    # the procedure dimension from indexes alone: a year's tickets with their dossiers' procedures
    # read ~3 times faster than from the rows, which hold the whole records and views in JSON
    """
    CREATE INDEX tickets_facts ON tickets (day, officer, dossier, status, transferred, within, rating, wait_s,
                                           service_s);
    DROP INDEX tickets_day;
    CREATE INDEX dossiers_code_procedure ON dossiers (code, procedure);
    CREATE INDEX dossiers_procedure_names ON dossiers (procedure, received_day, procedure_name);
    """,
)

T = TypeVar("T")

ARRAY_TYPE = "I"  # unsigned 32-bit: seconds up to 136 years

# The dossiers' column of a dimension's row (None: the weekday, worked out from the day).
_DOSSIER_COLUMN = {
    Dimension.OFFICER: "officer",
    Dimension.COUNTER: "counter",
    Dimension.FIELD: "field",
    Dimension.PROCEDURE: "procedure",
    Dimension.HOUR: "received_hour",
    Dimension.WEEKDAY: None,
}
_DAILY_GROUP = {
    Dimension.OFFICER: "officer",
    Dimension.COUNTER: "counter",
    Dimension.FIELD: "field",
    Dimension.HOUR: "CAST(hour AS TEXT)",
    Dimension.WEEKDAY: "CAST((CAST(strftime('%w', day) AS INTEGER) + 6) % 7 AS TEXT)",
}


def _pack(values: list[int]) -> bytes:
    return array(ARRAY_TYPE, values).tobytes()


def _unpack(blob: bytes) -> list[int]:
    a = array(ARRAY_TYPE)
    a.frombytes(blob)
    return a.tolist()


@dataclass(frozen=True)
class Settings:
    """What the stored facts depend on: when it changes, the days are rolled up again."""

    target_s: int
    levels: int

    def text(self) -> str:
        return json.dumps({"target_s": self.target_s, "levels": self.levels})


class Warehouse:
    def __init__(self, db: aiosqlite.Connection, path: Path, levels: int) -> None:
        self._db = db
        self.path = path
        self.levels = levels

    @classmethod
    async def open(cls, path: Path, settings: Settings) -> Warehouse:
        make_private(path)  # drill-down records name officers; no phones are stored
        db = await aiosqlite.connect(str(path), isolation_level=None)
        db.row_factory = sqlite3.Row
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = NORMAL")  # a cache: a lost last day is rolled again
        await db.execute("PRAGMA busy_timeout = 5000")
        await migrate(db, path, MIGRATIONS)
        w = cls(db, path, settings.levels)
        held = await w.meta("settings")
        if held != settings.text():
            # another target or rating scale: every stored "within target" or level may be wrong
            await w._write([("DELETE FROM days", ()), ("DELETE FROM tickets", ()), ("DELETE FROM daily", ()),
                            ("DELETE FROM daily_ratings", ()),
                            ("INSERT OR REPLACE INTO meta (key, value) VALUES ('settings', ?)",
                             (settings.text(),))])
        return w

    async def close(self) -> None:
        await self._db.close()

    async def _write(self, statements: Iterable[tuple[str, tuple[Any, ...]]],
                     many: Iterable[tuple[str, list[tuple[Any, ...]]]] = ()) -> None:
        """One transaction: all of it or nothing."""
        statements, many = list(statements), list(many)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    conn.execute(sql, params)
                for sql, rows in many:
                    conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        db = self._db
        await db._execute(lambda: run(db._conn))  # one thread hop for the whole transaction

    # ------------------------------------------------------------ meta

    async def meta(self, key: str) -> str | None:
        rows = await self._db.execute_fetchall("SELECT value FROM meta WHERE key = ?", (key,))
        return next(iter(rows))["value"] if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._write([("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))])

    # ------------------------------------------------------------ days

    async def rolled_days(self) -> set[str]:
        return {r["day"] for r in await self._db.execute_fetchall("SELECT day FROM days")}

    async def roll_day(self, day: str, facts: list[TicketFact], records: Mapping[str, Mapping[str, Any]],
                       now: datetime) -> bool:
        """Store a finished day's facts and aggregates in one transaction; False (nothing written)
        when the day is rolled already."""
        if await self._db.execute_fetchall("SELECT 1 FROM days WHERE day = ?", (day,)):
            return False
        # a daily row is (day, officer, counter, field, hour): tickets of several procedures add up
        # in it (the procedure dimension reads the tickets themselves)
        sums: dict[tuple[str, str, str, str, int], Measures] = {}
        for fact in facts:
            for key, m in ticket_parts(fact, self.levels):
                row = (key[0], key[1], key[2], key[3], key[5])
                if row not in sums:
                    sums[row] = Measures(self.levels)
                sums[row].add(m)
        daily = [(*k, m.issued, m.served, m.no_show, m.transferred, m.within,
                  m.ticket_units, m.ticket_dissatisfied, _pack(m.waits), _pack(m.services))
                 for k, m in sums.items()]
        ratings = [(*k, level + 1, n) for k, m in sums.items() for level, n in enumerate(m.ratings) if n]
        tickets = [(f.id, f.day, f.number, f.field, f.origin_field, f.counter, f.officer, f.hour, f.status,
                    f.wait_s, f.service_s, None if f.within is None else int(f.within), f.rating, f.dossier,
                    int(f.transferred), json.dumps(dict(records.get(f.id, {})), ensure_ascii=False))
                   for f in facts]
        await self._write(
            [("DELETE FROM tickets WHERE day = ?", (day,)), ("DELETE FROM daily WHERE day = ?", (day,)),
             ("DELETE FROM daily_ratings WHERE day = ?", (day,)),
             ("INSERT INTO days (day, tickets, rolled_at) VALUES (?, ?, ?)", (day, len(facts), now.isoformat()))],
            [("INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", tickets),
             ("INSERT INTO daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", daily),
             ("INSERT INTO daily_ratings VALUES (?, ?, ?, ?, ?, ?, ?)", ratings)])
        return True

    # ------------------------------------------------------------ reading figures

    async def ticket_groups(self, day_from: str, day_to: str, dimension: Dimension, *, officer: str | None = None,
                            by_day: bool = False) -> tuple[dict[str, Measures], dict[str, Measures]]:
        """The daily aggregates of these days added up per row of the dimension (and per day, for
        the trend: the counts alone, no wait or service times): SQL adds the counts; only the
        packed wait and service times are read row by row (a year of a busy office: some tens of
        thousands of short rows, never the tickets)."""
        where = "day BETWEEN ? AND ?" + (" AND officer = ?" if officer is not None else "")
        args: list[Any] = [day_from, day_to] + ([officer] if officer is not None else [])
        levels = self.levels

        def sums(conn: sqlite3.Connection, column: str) -> dict[str, Measures]:
            out: dict[str, Measures] = {}
            for (key, issued, served, no_show, transferred, within, units, dissatisfied) in conn.execute(
                    f"SELECT {column}, SUM(issued), SUM(served), SUM(no_show), SUM(transferred), SUM(within), "
                    f"SUM(ticket_units), SUM(ticket_dissatisfied) FROM daily WHERE {where} GROUP BY 1", args):
                out[str(key)] = Measures(levels, issued=issued, served=served, no_show=no_show,
                                         transferred=transferred, within=within, ticket_units=units,
                                         ticket_dissatisfied=dissatisfied)
            for key, level, n in conn.execute(
                    f"SELECT {column}, level, SUM(n) FROM daily_ratings WHERE {where} GROUP BY 1, 2", args):
                if 1 <= level <= levels and str(key) in out:
                    out[str(key)].ratings[level - 1] += n
            return out

        def read(conn: sqlite3.Connection) -> tuple[dict[str, Measures], dict[str, Measures]]:
            days = sums(conn, "day") if by_day else {}
            if dimension == Dimension.PROCEDURE:
                return {}, days
            expr = _DAILY_GROUP[dimension]
            groups = sums(conn, expr)
            waits: dict[str, array[int]] = {k: array(ARRAY_TYPE) for k in groups}
            services: dict[str, array[int]] = {k: array(ARRAY_TYPE) for k in groups}
            for key, w, sv in conn.execute(f"SELECT {expr}, waits, services FROM daily WHERE {where}", args):
                key = str(key)
                waits[key].frombytes(w)
                services[key].frombytes(sv)
            for k, m in groups.items():
                m.waits, m.services = waits[k].tolist(), services[k].tolist()
            return groups, days

        groups, days = await self._raw(read)
        if dimension == Dimension.PROCEDURE:
            groups = await self._procedure_groups(day_from, day_to, officer=officer)
        return groups, days

    async def _procedure_groups(self, day_from: str, day_to: str, *, officer: str | None) -> dict[str, Measures]:
        """Per procedure: each ticket takes its procedure from its dossier (as known now), so this
        dimension reads the facts; a ticket's issue and outcome have the same procedure. SQL adds
        the counts up; only the wait and service times are read ticket by ticket."""
        levels = self.levels
        # INDEXED BY: the planner would take the primary key and read each dossier's row for its procedure
        source = ("FROM tickets t LEFT JOIN dossiers d INDEXED BY dossiers_code_procedure ON d.code = t.dossier "
                  "WHERE t.day BETWEEN ? AND ?")
        args: list[Any] = [day_from, day_to]
        if officer is not None:
            source += " AND t.officer = ?"
            args.append(officer)
        done = "t.status = 'done'"
        unit = f"{done} AND t.dossier IS NULL"
        rated = ", ".join(f"SUM({done} AND t.rating = {level})" for level in range(1, levels + 1))
        counts = (f"SELECT COALESCE(d.procedure, ''), COUNT(*), SUM({done}), SUM(t.status = 'no_show'), "
                  f"SUM(t.transferred), SUM(COALESCE(t.within, 0)), SUM({unit}), SUM({unit} AND t.rating = 1), "
                  f"{rated} {source} GROUP BY 1")
        times = (f"SELECT COALESCE(d.procedure, ''), t.wait_s, CASE WHEN {done} THEN t.service_s END {source} "
                 f"AND t.wait_s IS NOT NULL")

        def read(conn: sqlite3.Connection) -> dict[str, Measures]:
            groups: dict[str, Measures] = {}
            for procedure, issued, served, no_show, transferred, within, units, dissatisfied, *ratings \
                    in conn.execute(counts, args):
                groups[procedure] = Measures(levels, issued=issued, served=served, no_show=no_show,
                                             transferred=transferred, within=within, ticket_units=units,
                                             ticket_dissatisfied=dissatisfied, ratings=list(ratings))
            waits: dict[str, list[int]] = {k: [] for k in groups}
            services: dict[str, list[int]] = {k: [] for k in groups}
            for procedure, wait, service in conn.execute(times, args):
                waits[procedure].append(wait)
                if service is not None:
                    services[procedure].append(service)
            for k, m in groups.items():
                m.waits, m.services = waits[k], services[k]
            return groups

        return await self._raw(read)

    async def procedures_of(self, codes: Iterable[str]) -> dict[str, str]:
        """Dossier code → procedure code (for today's tickets)."""
        codes = [c for c in codes if c]
        out: dict[str, str] = {}
        for i in range(0, len(codes), 500):
            chunk = codes[i:i + 500]
            marks = ", ".join("?" * len(chunk))
            for r in await self._db.execute_fetchall(
                    f"SELECT code, procedure FROM dossiers WHERE code IN ({marks})", chunk):
                out[r["code"]] = r["procedure"]
        return out

    async def procedure_names(self) -> dict[str, str]:
        """Procedure code → its name, as the newest dossier of it says."""
        rows = await self._db.execute_fetchall(
            # the bare column comes from the row of the MAX (SQLite's rule)
            "SELECT procedure, procedure_name, MAX(received_day) FROM dossiers WHERE procedure != '' "
            "GROUP BY procedure")
        return {r["procedure"]: r["procedure_name"] for r in rows}

    async def dossier_measures(self, day_from: str, day_to: str, today: str, dimension: Dimension, *,
                               officer: str | None = None) -> tuple[dict[str, Measures], dict[str, Measures]]:
        """The dossier figures per row of the dimension and per day (the trend), added up by SQL with
        the rules of figures.dossier_parts: received (and dissatisfied) on the received day; on time
        or overdue on the result's day; without a result, overdue on its due day once it has
        passed. One query per rule, grouped by (day, row): the covering indexes are read once for
        both."""
        column = _DOSSIER_COLUMN[Dimension(dimension)]
        who = " AND officer = ?" if officer is not None else ""
        extra: list[Any] = [officer] if officer is not None else []
        row = f", {column}" if column else ", NULL"
        queries = [
            (f"SELECT received_day{row}, COUNT(*), SUM(rating = 1), 0, 0 FROM dossiers "
             f"WHERE received_day BETWEEN ? AND ?{who} GROUP BY 1, 2", [day_from, day_to, *extra]),
            (f"SELECT done_day{row}, 0, 0, SUM(done_day <= due), SUM(done_day > due) FROM dossiers "
             f"WHERE done_day BETWEEN ? AND ?{who} GROUP BY 1, 2", [day_from, day_to, *extra]),
            (f"SELECT due{row}, 0, 0, 0, COUNT(*) FROM dossiers WHERE done_day IS NULL AND status != 'refused' "
             f"AND due BETWEEN ? AND ? AND due < ?{who} GROUP BY 1, 2", [day_from, day_to, today, *extra]),
        ]
        levels = self.levels

        def read(conn: sqlite3.Connection) -> tuple[dict[str, Measures], dict[str, Measures]]:
            groups: dict[str, Measures] = {}
            days: dict[str, Measures] = {}
            for sql, args in queries:
                for day, key, received, dissatisfied, on_time, overdue in conn.execute(sql, args):
                    if column is None:
                        key = date.fromisoformat(day).weekday()
                    for out, k in ((groups, str(key)), (days, day)):
                        m = out.get(k)
                        if m is None:
                            m = out[k] = Measures(levels)
                        m.dossiers_received += received or 0
                        m.dossier_dissatisfied += dissatisfied or 0
                        m.dossiers_on_time += on_time or 0
                        m.dossiers_overdue += overdue or 0
            return groups, days

        return await self._raw(read)

    async def _raw(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        return await db._execute(lambda: fn(db._conn))

    # ------------------------------------------------------------ drill-down

    async def ticket_records(self, day_from: str, day_to: str, where: str, args: list[Any],
                             limit: int) -> list[dict[str, Any]]:
        """The stored records of the tickets that match (SQL over t = tickets, d = dossiers)."""
        rows = await self._db.execute_fetchall(
            "SELECT t.record FROM tickets t LEFT JOIN dossiers d ON d.code = t.dossier "
            f"WHERE t.day BETWEEN ? AND ? AND ({where}) ORDER BY t.day, t.rowid LIMIT ?",
            [day_from, day_to, *args, limit])
        return [json.loads(r["record"]) for r in rows]

    async def dossier_views(self, where: str, args: list[Any], limit: int) -> list[dict[str, Any]]:
        rows = await self._db.execute_fetchall(
            f"SELECT view FROM dossiers WHERE {where} ORDER BY received_day, code LIMIT ?", [*args, limit])
        return [json.loads(r["view"]) for r in rows]

    # ------------------------------------------------------------ dossiers

    async def put_dossiers(self, facts: list[tuple[DossierFact, Mapping[str, Any]]]) -> None:
        """The newest view of each dossier (a replay of an older one is harmless: `list` and the
        live events only ever send the dossier as it is now)."""
        rows = [(f.code, f.procedure, f.procedure_name, f.field, f.officer, f.counter, f.ticket, f.received_day,
                 f.received_hour, f.due, f.done_day, f.status, f.rating,
                 view.get("version") if isinstance(view.get("version"), int) else 0,
                 json.dumps(dict(view), ensure_ascii=False))
                for f, view in facts]
        if rows:
            # an older view (an event that arrives after a listing saw the next change) never wins
            sql = ("INSERT INTO dossiers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (code) "
                   "DO UPDATE SET procedure = excluded.procedure, procedure_name = excluded.procedure_name, "
                   "field = excluded.field, officer = excluded.officer, counter = excluded.counter, "
                   "ticket = excluded.ticket, received_day = excluded.received_day, "
                   "received_hour = excluded.received_hour, due = excluded.due, done_day = excluded.done_day, "
                   "status = excluded.status, rating = excluded.rating, version = excluded.version, "
                   "view = excluded.view WHERE excluded.version >= dossiers.version")
            await self._write([], [(sql, rows)])

    async def counts(self) -> dict[str, int]:
        out = {}
        for table in ("days", "tickets", "daily", "dossiers"):
            rows = await self._db.execute_fetchall(f"SELECT COUNT(*) FROM {table}")
            out[table] = int(next(iter(rows))[0])
        return out
