"""The dossier service's own SQLite file (aiosqlite, WAL, synchronous=FULL).

Each change is one transaction, and the service replies and publishes only once it is committed:
a dossier the officer saw created survives a power cut. A dossier is found by its code, an entry
by (code, id): the primary keys make creating twice or applying an event twice impossible even
if the service's own check were bypassed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from dossiers.model import Dossier, Entry, Rating
from qms_common.protocol import DossierSource, DossierStatus
from qms_common.sqlite import open_database

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE dossiers (
        code TEXT PRIMARY KEY,
        procedure_code TEXT, procedure_name TEXT NOT NULL, field TEXT,
        received_at TEXT NOT NULL, due_at TEXT NOT NULL, source TEXT NOT NULL, created_by TEXT NOT NULL,
        created_at TEXT NOT NULL, documents TEXT NOT NULL, ticket TEXT, officer TEXT, counter TEXT,
        phone TEXT,               -- private, erased [notify] phone_days after the dossier is finished
        rating TEXT,              -- JSON {score, level, ticket, at}
        version INTEGER NOT NULL,
        finished_ts REAL          -- Unix time it was returned or refused, while it is
    );
    CREATE INDEX dossiers_finished ON dossiers (finished_ts) WHERE phone IS NOT NULL;
    CREATE TABLE entries (
        code TEXT NOT NULL REFERENCES dossiers (code), id TEXT NOT NULL,
        status TEXT NOT NULL, at TEXT NOT NULL, note TEXT, department TEXT, created_by TEXT NOT NULL,
        applied_at TEXT NOT NULL, applied_ts REAL NOT NULL, arrival INTEGER NOT NULL,
        PRIMARY KEY (code, id)
    );
    CREATE INDEX entries_applied ON entries (applied_ts);
    -- ratings of tickets whose dossier is not (yet) here: attached when it is created
    CREATE TABLE pending_ratings (code TEXT PRIMARY KEY, rating TEXT NOT NULL, held_ts REAL NOT NULL);
    """,
    # When each dossier last changed (an entry, a rating, its phone erased), for `list` (the web's
    # report warehouse, issue 14). Dossiers written before count as changed at the epoch: a
    # listing since any earlier moment holds them.
    """
    ALTER TABLE dossiers ADD COLUMN updated_ts REAL NOT NULL DEFAULT 0;
    CREATE INDEX dossiers_updated ON dossiers (updated_ts, code);
    """,
)


def _rating_json(r: Rating | None) -> str | None:
    if r is None:
        return None
    return json.dumps({"score": r.score, "level": r.level, "ticket": r.ticket, "at": r.at.isoformat()},
                      ensure_ascii=False)


def _rating_of(text: str | None) -> Rating | None:
    if not text:
        return None
    obj = json.loads(text)
    return Rating(int(obj["score"]), obj.get("level"), str(obj["ticket"]), datetime.fromisoformat(obj["at"]))


def _entry_of(r: sqlite3.Row) -> Entry:
    return Entry(r["id"], DossierStatus(r["status"]), datetime.fromisoformat(r["at"]), r["created_by"],
                 datetime.fromisoformat(r["applied_at"]), note=r["note"], department=r["department"],
                 arrival=r["arrival"])


def _dossier_row(d: Dossier) -> tuple[Any, ...]:
    finished = d.finished_at
    return (d.code, d.procedure_code, d.procedure_name, d.field, d.received_at.isoformat(), d.due_at.isoformat(),
            str(d.source), d.by, d.created_at.isoformat(), json.dumps(list(d.documents), ensure_ascii=False),
            d.ticket, d.officer, d.counter, d.phone, _rating_json(d.rating), d.version,
            finished.timestamp() if finished is not None else None, d.updated_ts)


def _entry_row(code: str, e: Entry) -> tuple[Any, ...]:
    return (code, e.id, str(e.status), e.at.isoformat(), e.note, e.department, e.by, e.applied_at.isoformat(),
            e.applied_at.timestamp(), e.arrival)


_INSERT_DOSSIER = f"INSERT INTO dossiers VALUES ({', '.join('?' * 18)})"
_INSERT_ENTRY = ("INSERT INTO entries (code, id, status, at, note, department, created_by, applied_at, applied_ts, "
                 "arrival) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


@dataclass(frozen=True)
class Applied:
    """An entry applied at some time, and its dossier as it is now (for `contacts`)."""

    dossier: Dossier
    entry: Entry


class DossierStore:
    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    @classmethod
    async def open(cls, path: Path, *, exclusive: bool = False) -> DossierStore:
        """exclusive: alone with the file (scripts/gen_history.py); refused ("database is
        locked") while the service or anyone else has it open, which it keeps out meanwhile."""
        # owner-only (it holds citizens' phone numbers), one transaction per change
        return cls(await open_database(path, MIGRATIONS, exclusive=exclusive), path)

    async def close(self) -> None:
        await self._db.close()

    async def _write(self, statements: Iterable[tuple[str, tuple[Any, ...]]]) -> None:
        """One transaction, committed (and on disk) when this returns."""
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                await self._db.execute(sql, params)
            await self._db.execute("COMMIT")
        except BaseException:
            await self._db.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------ reading

    async def get(self, code: str) -> Dossier | None:
        rows = await self._db.execute_fetchall("SELECT * FROM dossiers WHERE code = ?", (code,))
        if not rows:
            return None
        entries = await self._db.execute_fetchall("SELECT * FROM entries WHERE code = ? ORDER BY arrival", (code,))
        return self._dossier_of(next(iter(rows)), [_entry_of(e) for e in entries])

    @staticmethod
    def _dossier_of(r: sqlite3.Row, entries: list[Entry]) -> Dossier:
        return Dossier(
            code=r["code"], procedure_name=r["procedure_name"], procedure_code=r["procedure_code"], field=r["field"],
            received_at=datetime.fromisoformat(r["received_at"]), due_at=date.fromisoformat(r["due_at"]),
            source=DossierSource(r["source"]), by=r["created_by"], created_at=datetime.fromisoformat(r["created_at"]),
            documents=tuple(json.loads(r["documents"])), ticket=r["ticket"], officer=r["officer"],
            counter=r["counter"], phone=r["phone"], entries=tuple(entries), rating=_rating_of(r["rating"]),
            version=r["version"], updated_ts=r["updated_ts"])

    async def applied_since(self, since: datetime, limit: int) -> list[Applied]:
        """Entries applied at or after `since` on dossiers with a phone, oldest first, at most `limit`."""
        rows = await self._db.execute_fetchall(
            "SELECT e.code, e.id FROM entries e JOIN dossiers d ON d.code = e.code "
            "WHERE e.applied_ts >= ? AND d.phone IS NOT NULL ORDER BY e.applied_ts, e.code, e.arrival LIMIT ?",
            (since.timestamp(), limit))
        out: list[Applied] = []
        cache: dict[str, Dossier | None] = {}
        for r in rows:
            code = r["code"]
            if code not in cache:
                cache[code] = await self.get(code)
            d = cache[code]
            entry = d.entry(r["id"]) if d is not None else None
            if d is not None and entry is not None:
                out.append(Applied(d, entry))
        return out

    async def changed_since(self, since: datetime, after: str | None, limit: int) -> list[Dossier]:
        """Dossiers changed at or after `since`, by code after `after`, at most `limit`: two
        queries for the page, not two per dossier."""
        rows = await self._db.execute_fetchall(
            "SELECT * FROM dossiers WHERE updated_ts >= ? AND code > ? ORDER BY code LIMIT ?",
            (since.timestamp(), after or "", limit))
        if not rows:
            return []
        codes = [r["code"] for r in rows]
        entries: dict[str, list[Entry]] = {c: [] for c in codes}
        marks = ", ".join("?" * len(codes))
        for e in await self._db.execute_fetchall(
                f"SELECT * FROM entries WHERE code IN ({marks}) ORDER BY code, arrival", codes):
            entries[e["code"]].append(_entry_of(e))
        return [self._dossier_of(r, entries[r["code"]]) for r in rows]

    async def pending_rating(self, code: str) -> Rating | None:
        rows = await self._db.execute_fetchall("SELECT rating FROM pending_ratings WHERE code = ?", (code,))
        return _rating_of(next(iter(rows))["rating"]) if rows else None

    async def finished_with_phone(self, before_ts: float) -> list[str]:
        """Codes of dossiers finished before this moment that still hold a phone."""
        rows = await self._db.execute_fetchall(
            "SELECT code FROM dossiers WHERE phone IS NOT NULL AND finished_ts IS NOT NULL AND finished_ts < ?",
            (before_ts,))
        return [r["code"] for r in rows]

    # ------------------------------------------------------------ writing

    async def create(self, d: Dossier) -> None:
        """A new dossier with its entries; a rating held for its code goes with it."""
        await self._write([
            (_INSERT_DOSSIER, _dossier_row(d)),
            *((_INSERT_ENTRY, _entry_row(d.code, e)) for e in d.entries),
            ("DELETE FROM pending_ratings WHERE code = ?", (d.code,)),
        ])

    async def add_past(self, dossiers: list[Dossier]) -> int:
        """Dossiers of past days written at once (scripts/gen_history.py), in one transaction;
        one whose code is here already is left as it is, entries and all. How many were added."""
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            here: set[str] = set()
            codes = [d.code for d in dossiers]
            for i in range(0, len(codes), 500):  # SQLite's bound on parameters
                chunk = codes[i:i + 500]
                rows = await self._db.execute_fetchall(
                    f"SELECT code FROM dossiers WHERE code IN ({', '.join('?' * len(chunk))})", chunk)
                here.update(r[0] for r in rows)
            new = [d for d in dossiers if d.code not in here]
            await self._db.executemany(_INSERT_DOSSIER, [_dossier_row(d) for d in new])
            await self._db.executemany(_INSERT_ENTRY, [_entry_row(d.code, e) for d in new for e in d.entries])
            await self._db.execute("COMMIT")
        except BaseException:
            await self._db.execute("ROLLBACK")
            raise
        return len(new)

    async def add_entry(self, d: Dossier, e: Entry) -> None:
        """The entry, and the dossier's new version (and finished time)."""
        await self._write([(_INSERT_ENTRY, _entry_row(d.code, e)), self._update(d)])

    async def update(self, d: Dossier) -> None:
        """The dossier's own columns (its rating, its phone), not its entries."""
        await self._write([self._update(d)])

    @staticmethod
    def _update(d: Dossier) -> tuple[str, tuple[Any, ...]]:
        finished = d.finished_at
        return ("UPDATE dossiers SET phone = ?, rating = ?, version = ?, finished_ts = ?, updated_ts = ? "
                "WHERE code = ?",
                (d.phone, _rating_json(d.rating), d.version, finished.timestamp() if finished else None,
                 d.updated_ts, d.code))

    async def hold_rating(self, code: str, rating: Rating, now: datetime) -> None:
        await self._write([("INSERT OR REPLACE INTO pending_ratings (code, rating, held_ts) VALUES (?, ?, ?)",
                            (code, _rating_json(rating), now.timestamp()))])

    async def forget_pending_ratings(self, before_ts: float) -> int:
        cur = await self._db.execute("DELETE FROM pending_ratings WHERE held_ts < ?", (before_ts,))
        return cur.rowcount
