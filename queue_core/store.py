"""SQLite persistence of the queue (aiosqlite, WAL, synchronous=FULL).

A printed ticket must survive a power cut: each command is one transaction, and the caller
replies and publishes only after commit() returns.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite

from qms_common.protocol import BookingStatus, CounterStatus, TicketStatus, Via
from qms_common.sqlite import open_database
from queue_core.book import Change
from queue_core.model import Booking, Counter, Ticket

log = logging.getLogger(__name__)
T = TypeVar("T")

# Forward migrations, in order; the schema_version table records how many have run.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE numbers (day TEXT NOT NULL, field TEXT NOT NULL, last INTEGER NOT NULL,
                          PRIMARY KEY (day, field));
    CREATE TABLE tickets (
        id TEXT PRIMARY KEY, day TEXT NOT NULL, number TEXT NOT NULL, value INTEGER NOT NULL,
        origin_field TEXT NOT NULL, field TEXT NOT NULL, priority INTEGER NOT NULL,
        status TEXT NOT NULL, issued_at TEXT NOT NULL, ord INTEGER NOT NULL,
        called_at TEXT, finished_at TEXT, counter TEXT, officer TEXT, calls INTEGER NOT NULL,
        source TEXT, phone TEXT, rating INTEGER, rated_at TEXT, dossier TEXT,
        UNIQUE (day, origin_field, value)
    );
    CREATE INDEX tickets_day ON tickets (day);
    CREATE TABLE counters (id TEXT PRIMARY KEY, status TEXT NOT NULL, ticket TEXT,
                           officer TEXT, last_served TEXT, since TEXT);
    CREATE TABLE requests (request_id TEXT PRIMARY KEY, reply TEXT NOT NULL, at TEXT NOT NULL);
    CREATE INDEX requests_at ON requests (at);
    """,
    # A request id is one sender's: stored replies are keyed by (sender, request_id), the sender
    # being the owner of the reply namespace the request was answered in (docs/security.md).
    # Replies stored before had no known sender; they go to the sender "" (no reply topic).
    """
    CREATE TABLE requests_v2 (sender TEXT NOT NULL, request_id TEXT NOT NULL, reply TEXT NOT NULL,
                              at TEXT NOT NULL, PRIMARY KEY (sender, request_id));
    INSERT INTO requests_v2 (sender, request_id, reply, at) SELECT '', request_id, reply, at FROM requests;
    DROP TABLE requests;
    ALTER TABLE requests_v2 RENAME TO requests;
    CREATE INDEX requests_at ON requests (at);
    """,
    # Remote tickets and appointments (issue 12). Tickets written before came from the kiosk.
    """
    ALTER TABLE tickets ADD COLUMN via TEXT NOT NULL DEFAULT 'kiosk';
    ALTER TABLE tickets ADD COLUMN awaiting_checkin INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tickets ADD COLUMN appointment TEXT;
    ALTER TABLE tickets ADD COLUMN code TEXT;
    ALTER TABLE tickets ADD COLUMN slot_at TEXT;
    ALTER TABLE tickets ADD COLUMN passed_over INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE bookings (
        code TEXT PRIMARY KEY, field TEXT NOT NULL, day TEXT NOT NULL, slot TEXT NOT NULL, phone TEXT,
        status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, ticket TEXT
    );
    CREATE INDEX bookings_day ON bookings (day);
    """,
    # Years of history (issue 14): start-up reads the highest issue order and erases old phones.
    # Without these, both read every ticket ever issued: start-up time grew with history.
    # The partial indexes hold only the few rows that still have a phone.
    """
    CREATE INDEX tickets_ord ON tickets (ord);
    CREATE INDEX tickets_phone ON tickets (day) WHERE phone IS NOT NULL;
    CREATE INDEX bookings_phone ON bookings (day) WHERE phone IS NOT NULL;
    """,
)

# The start-up and daily statements (tests/test_core_history.py checks their query plans).
MAX_ORDER_SQL = "SELECT MAX(ord) FROM tickets"
FORGET_TICKET_PHONES_SQL = "UPDATE tickets SET phone = NULL WHERE day < ? AND phone IS NOT NULL"
FORGET_BOOKING_PHONES_SQL = "UPDATE bookings SET phone = NULL WHERE day < ? AND phone IS NOT NULL"

TICKET_COLUMNS = ("id", "day", "number", "value", "origin_field", "field", "priority", "status",
                  "issued_at", "ord", "called_at", "finished_at", "counter", "officer", "calls",
                  "source", "phone", "rating", "rated_at", "dossier", "via", "awaiting_checkin", "appointment",
                  "code", "slot_at", "passed_over")
_TICKET_UPSERT = (
    f"INSERT INTO tickets ({', '.join(TICKET_COLUMNS)}) VALUES ({', '.join('?' * len(TICKET_COLUMNS))}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in TICKET_COLUMNS if c != "id")
)
_COUNTER_UPSERT = (
    "INSERT INTO counters (id, status, ticket, officer, last_served, since) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET status = excluded.status, ticket = excluded.ticket, "
    "officer = excluded.officer, last_served = excluded.last_served, since = excluded.since"
)
BOOKING_COLUMNS = ("code", "field", "day", "slot", "phone", "status", "created_at", "updated_at", "ticket")
_BOOKING_UPSERT = (
    f"INSERT INTO bookings ({', '.join(BOOKING_COLUMNS)}) VALUES ({', '.join('?' * len(BOOKING_COLUMNS))}) "
    "ON CONFLICT (code) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in BOOKING_COLUMNS if c != "code")
)


def _ts(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def ticket_row(t: Ticket) -> tuple[Any, ...]:
    return (t.id, t.day, t.number, t.value, t.origin_field, t.field, int(t.priority), str(t.status),
            _ts(t.issued_at), t.order, _ts(t.called_at), _ts(t.finished_at), t.counter, t.officer,
            t.calls, t.source, t.phone, t.rating, _ts(t.rated_at), t.dossier, str(t.via), int(t.awaiting_checkin),
            t.appointment, t.code, _ts(t.slot_at), int(t.passed_over))


def ticket_from_row(r: Any) -> Ticket:
    issued = _dt(r["issued_at"])
    assert issued is not None
    return Ticket(id=r["id"], day=r["day"], number=r["number"], value=r["value"],
                  origin_field=r["origin_field"], field=r["field"], priority=bool(r["priority"]),
                  status=TicketStatus(r["status"]), issued_at=issued, order=r["ord"],
                  called_at=_dt(r["called_at"]), finished_at=_dt(r["finished_at"]),
                  counter=r["counter"], officer=r["officer"], calls=r["calls"], source=r["source"],
                  phone=r["phone"], rating=r["rating"], rated_at=_dt(r["rated_at"]),
                  dossier=r["dossier"], via=Via(r["via"]), awaiting_checkin=bool(r["awaiting_checkin"]),
                  appointment=r["appointment"], code=r["code"], slot_at=_dt(r["slot_at"]),
                  passed_over=bool(r["passed_over"]))


def booking_row(b: Booking) -> tuple[Any, ...]:
    return (b.code, b.field, b.day, b.slot, b.phone, str(b.status), _ts(b.created_at), _ts(b.updated_at), b.ticket)


def booking_from_row(r: Any) -> Booking:
    created, updated = _dt(r["created_at"]), _dt(r["updated_at"])
    assert created is not None and updated is not None
    return Booking(code=r["code"], field=r["field"], day=r["day"], slot=r["slot"], phone=r["phone"],
                   status=BookingStatus(r["status"]), created_at=created, updated_at=updated, ticket=r["ticket"])


@dataclass
class Snapshot:
    day: str | None
    seq: int
    next_order: int
    tickets: list[Ticket] = field(default_factory=list)
    counters: dict[str, Counter] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)
    # (sender, request id) -> when its reply was stored (POSIX seconds), oldest first
    request_ids: dict[tuple[str, str], float] = field(default_factory=dict)
    bookings: list[Booking] = field(default_factory=list)  # of the business day and later


class CommitProbe(Protocol):
    """Times each command's transaction, BEGIN to COMMIT (queue_core.health.CommitTimes); used on
    the writer thread."""

    timer: Callable[[], float]

    def record(self, seconds: float) -> None: ...


class StoreFailed(RuntimeError):
    """A write was refused because an earlier one failed (see Store.reset_after_failure)."""


class Unstorable(ValueError):
    """A value SQLite cannot hold as it is (a string with no UTF-8 form, an integer beyond 64
    bits). Found before anything is written, so the command can be refused as bad input."""


_INT64 = range(-(2**63), 2**63)


def _check_storable(values: tuple[Any, ...]) -> None:
    for v in values:
        if isinstance(v, str):
            if not v.isascii():
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError:
                    raise Unstorable("chuỗi không có dạng UTF-8") from None
        elif isinstance(v, int) and v not in _INT64:
            raise Unstorable("số nguyên vượt quá 64 bit")


@dataclass(frozen=True)
class Rows:
    """One command's effects as the rows it writes, checked to be storable."""

    tickets: list[tuple[Any, ...]]
    counters: list[tuple[Any, ...]]
    numbers: list[tuple[str, int]]
    request_id: str | None = None
    sender: str = ""  # whose request id it is (Topics.reply_owner)
    bookings: list[tuple[Any, ...]] = field(default_factory=list)

    @classmethod
    def of(cls, change: Change, request_id: str | None = None, sender: str = "") -> Rows:
        """Unstorable if any value could not be written: the caller refuses the command then,
        instead of finding out inside a transaction (which would fail the commands queued behind)."""
        rows = cls([ticket_row(t) for t in change.tickets],
                   [(c.id, str(c.status), c.ticket, c.officer, c.last_served, _ts(c.since))
                    for c in change.counters],
                   list(change.numbers.items()), request_id, sender, [booking_row(b) for b in change.bookings])
        for row in (*rows.tickets, *rows.counters, *rows.numbers, *rows.bookings, (request_id, sender)):
            _check_storable(row)
        return rows


class Store:
    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        # Set on the writer thread when a transaction fails: the transactions queued behind it
        # were decided on a state that included the lost one, so none of them may be written
        # until the service has reloaded its state from the database.
        self._failed = False
        self.commit_probe: CommitProbe | None = None  # the core's health measures commits with it

    @property
    def failed(self) -> bool:
        """A write failed and nothing is written until reset_after_failure()."""
        return self._failed

    def reset_after_failure(self) -> None:
        self._failed = False

    @classmethod
    async def open(cls, path: Path, *, exclusive: bool = False) -> Store:
        """exclusive: a tool that must be alone with the file (scripts/gen_history.py). It is
        refused (sqlite3.OperationalError "database is locked") while any other process has the
        database open, the running core included, and holds the file until it closes, so the
        core cannot start meanwhile."""
        # one transaction per command, BEGIN/COMMIT ours
        return cls(await open_database(path, MIGRATIONS, exclusive=exclusive, row_factory=aiosqlite.Row), path)

    async def close(self) -> None:
        await self._db.close()

    async def load(self) -> Snapshot:
        meta = {r["key"]: r["value"] for r in await self._db.execute_fetchall("SELECT key, value FROM meta")}
        day = meta.get("day")
        seq = int(meta.get("seq", "0"))
        rows = await self._db.execute_fetchall(MAX_ORDER_SQL)
        next_order = int(next(iter(rows))[0] or 0) + 1
        snap = Snapshot(day=day, seq=seq, next_order=next_order)
        if day is not None:
            snap.tickets = [ticket_from_row(r) for r in
                            await self._db.execute_fetchall("SELECT * FROM tickets WHERE day = ?", (day,))]
            snap.numbers = {r["field"]: r["last"] for r in await self._db.execute_fetchall(
                "SELECT field, last FROM numbers WHERE day = ?", (day,))}
            snap.bookings = [booking_from_row(r) for r in await self._db.execute_fetchall(
                "SELECT * FROM bookings WHERE day >= ?", (day,))]
        for r in await self._db.execute_fetchall("SELECT * FROM counters"):
            snap.counters[r["id"]] = Counter(id=r["id"], status=CounterStatus(r["status"]),
                                             ticket=r["ticket"], officer=r["officer"],
                                             last_served=r["last_served"], since=_dt(r["since"]))
        # Only read: a load also recovers from a failed write, when the disk may still refuse
        # writes. The service prunes old replies with its next transaction.
        snap.request_ids = {(r[0], r[1]): datetime.fromisoformat(r[2]).timestamp() for r in
                            await self._db.execute_fetchall(
                                "SELECT sender, request_id, at FROM requests ORDER BY rowid")}
        return snap

    async def stored_replies(self) -> int:
        rows = await self._db.execute_fetchall("SELECT COUNT(*) FROM requests")
        return int(next(iter(rows))[0])

    async def reply_for(self, sender: str, request_id: str) -> dict[str, Any] | None:
        async with self._db.execute("SELECT reply FROM requests WHERE sender = ? AND request_id = ?",
                                    (sender, request_id)) as cur:
            row = await cur.fetchone()
        return json.loads(row[0]) if row else None

    async def _in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn on aiosqlite's own connection thread: one thread hop for a whole transaction.

        A hop costs ~0.2 ms on a small VM; a command of eight statements awaited one by one
        spent more time crossing threads than writing. aiosqlite has no public call for this,
        so this is the one place that uses its worker directly (version pinned in pyproject)."""
        db = self._db
        return await db._execute(lambda: fn(db._conn))

    async def commit(self, rows: Rows, *, day: str, seq: int, now: datetime,
                     reply: dict[str, Any] | None = None,
                     forget: list[tuple[str, str]] | None = None) -> None:
        """Write one command's effects, its reply and the new seq in one durable transaction;
        `forget`: (sender, request id) pairs whose stored replies are dropped in the same transaction."""
        tickets, counters, bookings = rows.tickets, rows.counters, rows.bookings
        numbers = [(day, f, n) for f, n in rows.numbers]
        request = ((rows.sender, rows.request_id, json.dumps(reply, ensure_ascii=False), now.isoformat())
                   if rows.request_id is not None and reply is not None else None)
        forgotten = list(forget or ())
        probe = self.commit_probe

        def write(conn: sqlite3.Connection) -> None:
            if self._failed:
                raise StoreFailed("an earlier write failed")
            started = probe.timer() if probe is not None else 0.0
            try:
                conn.execute("BEGIN IMMEDIATE")
                if tickets:
                    conn.executemany(_TICKET_UPSERT, tickets)
                if counters:
                    conn.executemany(_COUNTER_UPSERT, counters)
                if bookings:
                    conn.executemany(_BOOKING_UPSERT, bookings)
                if numbers:
                    conn.executemany("INSERT INTO numbers (day, field, last) VALUES (?, ?, ?) "
                                     "ON CONFLICT (day, field) DO UPDATE SET last = excluded.last", numbers)
                if forgotten:
                    conn.executemany("DELETE FROM requests WHERE sender = ? AND request_id = ?", forgotten)
                if request is not None:
                    # REPLACE: a reply the service has forgotten may still be here
                    conn.execute("INSERT OR REPLACE INTO requests (sender, request_id, reply, at) VALUES (?, ?, ?, ?)",
                                 request)
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?) "
                                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                                 [("seq", str(seq)), ("day", day)])
                conn.execute("COMMIT")
            except BaseException:
                self._failed = True
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            if probe is not None:
                probe.record(probe.timer() - started)

        await self._in_thread(write)

    async def tickets(self, *, day_from: str | None, day_to: str | None, after_order: int,
                      limit: int) -> list[Ticket]:
        """Tickets in issue order, for statistics and exports, a page at a time."""
        sql = "SELECT * FROM tickets WHERE ord > ?"
        args: list[Any] = [after_order]
        if day_from is not None:
            sql += " AND day >= ?"
            args.append(day_from)
        if day_to is not None:
            sql += " AND day <= ?"
            args.append(day_to)
        sql += " ORDER BY ord LIMIT ?"
        args.append(limit)
        return [ticket_from_row(r) for r in await self._db.execute_fetchall(sql, args)]

    async def current_day(self) -> str | None:
        """The business day the core works in (None: it never ran on this database)."""
        rows = await self._db.execute_fetchall("SELECT value FROM meta WHERE key = 'day'")
        return str(next(iter(rows))[0]) if rows else None

    async def next_order(self) -> int:
        rows = await self._db.execute_fetchall(MAX_ORDER_SQL)
        return int(next(iter(rows))[0] or 0) + 1

    async def newest_day(self) -> str | None:
        """The latest business day with tickets (None: none yet)."""
        rows = await self._db.execute_fetchall("SELECT MAX(day) FROM tickets")
        return next(iter(rows))[0]

    async def days_with_tickets(self, day_from: str, day_to: str) -> set[str]:
        rows = await self._db.execute_fetchall("SELECT DISTINCT day FROM tickets WHERE day BETWEEN ? AND ?",
                                               (day_from, day_to))
        return {r[0] for r in rows}

    async def add_past_day(self, tickets: list[Ticket]) -> None:
        """A finished business day written at once (scripts/gen_history.py), as the core would
        have left it: its tickets and each field's last number, in one transaction. Plain
        INSERTs: a ticket already here fails the whole day rather than being overwritten."""
        rows = [ticket_row(t) for t in tickets]
        for row in rows:
            _check_storable(row)
        last: dict[tuple[str, str], int] = {}
        for t in tickets:
            key = (t.day, t.origin_field)
            last[key] = max(last.get(key, 0), t.value)
        numbers = [(day, f, n) for (day, f), n in last.items()]

        def write(conn: sqlite3.Connection) -> None:
            if self._failed:
                raise StoreFailed("an earlier write failed")
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(f"INSERT INTO tickets ({', '.join(TICKET_COLUMNS)}) "
                                 f"VALUES ({', '.join('?' * len(TICKET_COLUMNS))})", rows)
                conn.executemany("INSERT INTO numbers (day, field, last) VALUES (?, ?, ?)", numbers)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

        await self._in_thread(write)

    async def forget_phones(self, *, before_day: str) -> int:
        """Erase the phone numbers of tickets of business days before this one."""
        def erase(conn: sqlite3.Connection) -> int:
            if self._failed:
                raise StoreFailed("an earlier write failed")
            cur = conn.execute(FORGET_TICKET_PHONES_SQL, (before_day,))
            conn.execute(FORGET_BOOKING_PHONES_SQL, (before_day,))
            return cur.rowcount
        return await self._in_thread(erase)

    async def booking(self, code: str) -> Booking | None:
        """The booking of this code, of any day (its primary key: one index seek)."""
        rows = await self._db.execute_fetchall("SELECT * FROM bookings WHERE code = ?", (code,))
        return booking_from_row(rows[0]) if rows else None

    async def ticket(self, ticket_id: str) -> Ticket | None:
        rows = await self._db.execute_fetchall("SELECT * FROM tickets WHERE id = ?", (ticket_id,))
        return ticket_from_row(rows[0]) if rows else None
