"""The notifier's durable outbox (SQLite): every message to a citizen or an integrator, from the
moment it is decided until it is sent, delivered, failed or dropped, with the reason.

Exactly once: a message has one row, found by its key (day, ticket, kind; or subscriber and event
seq), so the core repeating itself adds nothing; its provider idempotency key is derived from the
row key, so a send repeated after a crash is one the provider drops. Writes from all the
workers are gathered into one transaction at a time (group commit): one fsync for many messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from qms_common.phones import mask_phone
from qms_common.sqlite import open_database

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    day TEXT NOT NULL,
    ticket TEXT NOT NULL,
    kind TEXT NOT NULL,
    route TEXT NOT NULL,              -- the channel it goes by now: zalo, sms, webhook:{name}
    fallback TEXT NOT NULL,           -- JSON list: the channels after this one
    phone TEXT,                       -- citizens' messages only; erased after [notify] phone_days
    body TEXT NOT NULL,               -- JSON: the template values, or the webhook's body
    state TEXT NOT NULL,              -- pending, sending, sent, delivered, failed, dropped
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    sent_at REAL,
    delivered_at REAL,
    sent_via TEXT,
    provider_id TEXT,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (state, route, next_at);
CREATE INDEX IF NOT EXISTS messages_ticket ON messages (ticket);
CREATE INDEX IF NOT EXISTS messages_provider ON messages (provider_id);
CREATE INDEX IF NOT EXISTS messages_day ON messages (day);
"""

# qms_common.sqlite.migrate: the first version is the schema the outbox had before it counted
# versions (IF NOT EXISTS: an outbox of then takes version 1 as it is).
MIGRATIONS: tuple[str, ...] = (SCHEMA,)

PENDING, SENDING, SENT, DELIVERED, FAILED, DROPPED = "pending", "sending", "sent", "delivered", "failed", "dropped"
FINAL = (SENT, DELIVERED, FAILED, DROPPED)


def idempotency_key(site: str, key: str) -> str:
    """The key a provider sees (ZNS tracking_id, eSMS RequestId, X-QMS-Delivery): the same for
    every attempt of a message, ≤ 48 characters of letters and digits, and says nothing of the
    citizen."""
    return "q" + hashlib.sha256(f"{site}\x00{key}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class NewMessage:
    key: str
    day: str
    ticket: str
    kind: str
    routes: list[str]                  # the first is tried first
    body: dict[str, Any]
    phone: str | None = None
    state: str = PENDING
    reason: str | None = None
    not_before: float | None = None    # a reminder waits for its time


@dataclass
class Row:
    id: int
    key: str
    day: str
    ticket: str
    kind: str
    route: str
    fallback: list[str]
    phone: str | None
    body: dict[str, Any]
    state: str
    attempts: int
    next_at: float
    created_at: float

    @classmethod
    def of(cls, r: sqlite3.Row) -> Row:
        return cls(r["id"], r["key"], r["day"], r["ticket"], r["kind"], r["route"], json.loads(r["fallback"]),
                   r["phone"], json.loads(r["body"]), r["state"], r["attempts"], r["next_at"], r["created_at"])


@dataclass
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    done: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Outbox:
    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._ops: list[_Op] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: Path) -> Outbox:
        # owner-only, like the core's database: it holds phone numbers
        db = await open_database(path, MIGRATIONS, foreign_keys=False)
        box = cls(db, path)
        box._writer = asyncio.create_task(box._write_loop())
        return box

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self._flush()
        await self._db.close()

    # ------------------------------------------------------------ group commit

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn inside the next transaction; return once that transaction is on disk."""
        op = _Op(fn)
        self._ops.append(op)
        self._wake.set()
        return await op.done  # type: ignore[no-any-return]

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        ops, self._ops = self._ops, []
        if not ops:
            return

        def run(conn: sqlite3.Connection) -> list[tuple[bool, Any]]:
            results: list[tuple[bool, Any]] = []
            conn.execute("BEGIN IMMEDIATE")
            try:
                for op in ops:
                    conn.execute("SAVEPOINT op")
                    try:
                        results.append((True, op.fn(conn)))
                        conn.execute("RELEASE op")
                    except sqlite3.Error as exc:  # one bad write fails alone
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                        results.append((False, exc))
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            return results

        try:
            results = await self._in_thread(run)
        except Exception as exc:
            log.error("Không ghi được hộp thư đi (%s)", exc)
            for op in ops:
                if not op.done.done():
                    op.done.set_exception(exc)
            return
        for op, (ok, value) in zip(ops, results, strict=True):
            if op.done.done():
                continue
            if ok:
                op.done.set_result(value)
            else:
                op.done.set_exception(value)

    async def _in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        # aiosqlite's own connection thread, one hop per transaction (as queue_core.store does)
        db = self._db
        return await db._execute(lambda: fn(db._conn))  # type: ignore[no-any-return]

    async def _read(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return list(await self._db.execute_fetchall(sql, tuple(args)))

    # ------------------------------------------------------------ writes

    async def add(self, messages: list[NewMessage], now: float | None = None) -> list[int]:
        """Add messages whose key is new; the ids of those added (a known key adds nothing)."""
        at = time.time() if now is None else now

        def insert(conn: sqlite3.Connection) -> list[int]:
            ids = []
            for m in messages:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO messages (key, day, ticket, kind, route, fallback, phone, body, state,"
                    " next_at, created_at, updated_at, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (m.key, m.day, m.ticket, m.kind, m.routes[0] if m.routes else "", json.dumps(m.routes[1:]),
                     m.phone, json.dumps(m.body, ensure_ascii=False), m.state,
                     m.not_before if m.not_before is not None else at, at, at, m.reason))
                if cur.rowcount:
                    ids.append(int(cur.lastrowid or 0))
            return ids
        return await self._write(insert)

    async def mark_sending(self, row_id: int) -> None:
        """Before a send that the provider would not deduplicate: a crash after this line leaves
        a row that is never sent blindly again."""
        await self._update(row_id, state=SENDING)

    async def sent(self, row_id: int, *, via: str, provider_id: str | None, attempts: int) -> None:
        now = time.time()
        # the reason stays: why an earlier attempt failed (or why it went by another channel)
        await self._update(row_id, state=SENT, sent_via=via, provider_id=provider_id, sent_at=now,
                           attempts=attempts)

    async def retry(self, row_id: int, *, next_at: float, attempts: int, reason: str) -> None:
        await self._update(row_id, state=PENDING, next_at=next_at, attempts=attempts, reason=reason)

    async def fall_back(self, row_id: int, *, route: str, rest: list[str], attempts: int, reason: str) -> None:
        await self._update(row_id, state=PENDING, route=route, fallback=json.dumps(rest), next_at=time.time(),
                           attempts=attempts, reason=reason)

    async def fail(self, row_id: int, *, reason: str, attempts: int | None = None) -> None:
        await self._update(row_id, state=FAILED, reason=reason,
                           **({"attempts": attempts} if attempts is not None else {}))

    async def drop(self, row_id: int, reason: str) -> None:
        await self._update(row_id, state=DROPPED, reason=reason)

    async def _update(self, row_id: int, **values: Any) -> None:
        values["updated_at"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in values)
        args = [*values.values(), row_id]
        await self._write(lambda conn: conn.execute(f"UPDATE messages SET {cols} WHERE id = ?", args))

    async def delivered(self, provider_id: str, at: float | None = None) -> bool:
        """A delivery receipt: True if it named one of our sent messages."""
        when = time.time() if at is None else at

        def mark(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("UPDATE messages SET state = ?, delivered_at = ?, updated_at = ? "
                               "WHERE provider_id = ? AND state IN (?, ?)",
                               (DELIVERED, when, time.time(), provider_id, SENT, DELIVERED))
            return bool(cur.rowcount)
        return await self._write(mark)

    async def recover(self, deduplicating: set[str]) -> tuple[int, int]:
        """At start, rows a crash left `sending`: sent again where the provider drops repeats,
        failed (never repeated) where it would not. Returns (resumed, failed)."""
        reason = "bộ gửi tin dừng đột ngột khi đang gửi; nhà cung cấp này không chống gửi trùng nên không gửi lại"

        def fix(conn: sqlite3.Connection) -> tuple[int, int]:
            rows = conn.execute("SELECT id, route FROM messages WHERE state = ?", (SENDING,)).fetchall()
            resumed = [r[0] for r in rows if r[1] in deduplicating]
            failed = [r[0] for r in rows if r[1] not in deduplicating]
            now = time.time()
            conn.executemany("UPDATE messages SET state = ?, updated_at = ? WHERE id = ?",
                             [(PENDING, now, i) for i in resumed])
            conn.executemany("UPDATE messages SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                             [(FAILED, reason, now, i) for i in failed])
            return len(resumed), len(failed)
        return await self._write(fix)

    async def forget_phones(self, before_day: str) -> int:
        return await self._write(lambda conn: conn.execute(
            "UPDATE messages SET phone = NULL WHERE day < ? AND phone IS NOT NULL", (before_day,)).rowcount)

    # ------------------------------------------------------------ reads

    async def kinds_of(self, ticket: str, prefix: str = "c:") -> set[str]:
        """The kinds of citizens' messages already decided for a ticket or a booking's place
        (sent, waiting or dropped); `prefix` is the start of their keys."""
        return {r[0] for r in await self._read("SELECT kind FROM messages WHERE ticket = ? AND key LIKE ?",
                                               (ticket, prefix + "%"))}

    async def keys_of(self, ticket: str, prefix: str) -> set[str]:
        """The keys of the messages already decided for a ticket or a dossier (a dossier may have
        several of one kind: one per request for documents)."""
        return {r[0] for r in await self._read("SELECT key FROM messages WHERE ticket = ? AND key LIKE ?",
                                               (ticket, prefix + "%"))}

    async def due(self, route: str, now: float, limit: int, exclude: Iterable[int] = ()) -> list[Row]:
        skip = list(exclude)
        sql = "SELECT * FROM messages WHERE state = ? AND route = ? AND next_at <= ?"
        if skip:
            sql += f" AND id NOT IN ({','.join('?' * len(skip))})"
        sql += " ORDER BY next_at, id LIMIT ?"
        return [Row.of(r) for r in await self._read(sql, [PENDING, route, now, *skip, limit])]

    async def next_due(self, route: str) -> float | None:
        rows = await self._read("SELECT MIN(next_at) FROM messages WHERE state = ? AND route = ?", (PENDING, route))
        return rows[0][0] if rows and rows[0][0] is not None else None

    async def get(self, row_id: int) -> Row | None:
        rows = await self._read("SELECT * FROM messages WHERE id = ?", (row_id,))
        return Row.of(rows[0]) if rows else None

    async def counts(self, since: float) -> dict[str, dict[str, int]]:
        """Per channel (the one a message went by, or is trying): messages in each state."""
        out: dict[str, dict[str, int]] = {}
        for r in await self._read("SELECT COALESCE(sent_via, route), state, COUNT(*) FROM messages "
                                  "WHERE created_at >= ? GROUP BY 1, 2", (since,)):
            out.setdefault(r[0], {})[r[1]] = r[2]
        return out

    async def last_failures(self, since: float, limit: int = 10) -> list[dict[str, Any]]:
        rows = await self._read("SELECT updated_at, route, kind, phone, reason, state FROM messages "
                                "WHERE updated_at >= ? AND (state = ? OR (state = ? AND reason IS NOT NULL)) "
                                "ORDER BY updated_at DESC LIMIT ?", (since, FAILED, PENDING, limit))
        return [{"at": r[0], "channel": r[1], "kind": r[2], "phone": mask_phone(r[3]) if r[3] else None,
                 "reason": r[4], "state": r[5]} for r in rows]

    async def all_rows(self) -> list[Row]:
        return [Row.of(r) for r in await self._read("SELECT * FROM messages ORDER BY id")]
