"""Durable Zalo OA tokens: the single-use refresh token, the access token and its expiry.

Zalo spends a refresh token when it answers a refresh with a new one. If the new one were lost
(crash, power cut) the OA would have to be re-authorised by hand, so every new pair is committed
to SQLite (WAL, synchronous=FULL: the commit is on disk when it returns) before its access token
is handed to anyone. One refresh runs at a time; concurrent senders wait for it and then use its
result instead of spending the refresh token a second time.

The table `zalo_tokens` shares its file with the outbox, so this module creates only that table.
The first refresh token comes from the settings (`seed`); the row remembers which seed it grew
from, so an operator who re-authorises the OA and puts a new token in the settings is obeyed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS zalo_tokens (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seed TEXT NOT NULL,
    refresh_token TEXT NOT NULL,
    access_token TEXT,
    expires_at REAL,
    updated_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class TokenState:
    seed: str  # the settings' refresh token this chain of tokens started from
    refresh_token: str
    access_token: str | None
    expires_at: float | None  # wall-clock seconds: the file outlives the process


@dataclass(frozen=True)
class Refreshed:
    access_token: str
    refresh_token: str
    expires_in: float


class RefreshError(Exception):
    """The refresh did not give a new pair. `spent`: Zalo refused the refresh token itself (the
    OA must be re-authorised), as opposed to a network or server trouble worth retrying."""

    def __init__(self, message: str, *, spent: bool = False) -> None:
        super().__init__(message)
        self.spent = spent


Refresher = Callable[[str], Awaitable[Refreshed]]


class ZaloTokens:
    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time, margin_s: float = 120.0) -> None:
        self._path = Path(path)
        self._clock = clock
        self._margin_s = margin_s  # refresh a little early: a token expiring in flight costs a round trip
        self._db: aiosqlite.Connection | None = None
        self._open_lock = asyncio.Lock()
        self._refresh_lock = asyncio.Lock()
        self._unsaved: TokenState | None = None  # a new pair whose commit failed: never lose it

    async def _conn(self) -> aiosqlite.Connection:
        async with self._open_lock:
            if self._db is None:
                db = await aiosqlite.connect(self._path)
                try:
                    await db.execute("PRAGMA journal_mode = WAL")
                    await db.execute("PRAGMA synchronous = FULL")
                    await db.execute("PRAGMA busy_timeout = 5000")
                    await db.execute(SCHEMA)
                    await db.commit()
                except BaseException:
                    await db.close()
                    raise
                self._db = db
            return self._db

    async def close(self) -> None:
        async with self._open_lock:
            if self._db is not None:
                await self._db.close()
                self._db = None

    async def load(self) -> TokenState | None:
        db = await self._conn()
        async with db.execute(
                "SELECT seed, refresh_token, access_token, expires_at FROM zalo_tokens WHERE id = 1") as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return TokenState(seed=row[0], refresh_token=row[1], access_token=row[2], expires_at=row[3])

    async def save(self, state: TokenState) -> None:
        """Commit `state`; when this returns, it is on disk."""
        db = await self._conn()
        await db.execute(
            "INSERT INTO zalo_tokens (id, seed, refresh_token, access_token, expires_at, updated_at) "
            "VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET seed = excluded.seed, "
            "refresh_token = excluded.refresh_token, access_token = excluded.access_token, "
            "expires_at = excluded.expires_at, updated_at = excluded.updated_at",
            (state.seed, state.refresh_token, state.access_token, state.expires_at, self._clock()))
        await db.commit()

    def _usable(self, state: TokenState | None, seed: str, stale: str | None) -> str | None:
        if state is None or state.seed != seed or not state.access_token or state.access_token == stale:
            return None
        if state.expires_at is None or state.expires_at - self._margin_s <= self._clock():
            return None
        return state.access_token

    async def access_token(self, refresher: Refresher, *, seed: str, stale: str | None = None) -> str:
        """A valid access token, refreshing first when there is none, it expires soon, or it is
        `stale` (the provider just refused it). Raises RefreshError, or an sqlite error when the
        new pair could not be committed (then the access token is not used)."""
        async with self._refresh_lock:
            if self._unsaved is not None:
                await self.save(self._unsaved)  # raises again while the disk still refuses
                self._unsaved = None
            # Read under the lock: a sender that waited here finds the pair the previous holder made.
            state = await self.load()
            token = self._usable(state, seed, stale)
            if token is not None:
                return token
            refresh_token = state.refresh_token if state is not None and state.seed == seed else seed
            got = await refresher(refresh_token)
            new = TokenState(seed=seed, refresh_token=got.refresh_token, access_token=got.access_token,
                             expires_at=self._clock() + got.expires_in)
            try:
                await self.save(new)
            except Exception:
                # The old refresh token is spent now: keep the new one in memory and commit it
                # before anything else; its access token waits until then.
                self._unsaved = new
                log.exception("Zalo: could not store the new refresh token; retrying the commit before any use")
                raise
            return got.access_token
