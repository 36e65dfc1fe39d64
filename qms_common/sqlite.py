"""What every SQLite database of the system does the same way: a private file, and forward
schema migrations recorded in a schema_version table (the core's store, the dossier service's, the
report warehouse, the notifier's outbox)."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)

# Owner-only: the databases hold citizens' phone numbers.
DB_FILE_MODE = 0o600
DB_DIR_MODE = 0o700
# SQLite creates these next to the database with the database file's mode.
_COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")


def make_private(path: Path) -> None:
    """Create the database's missing directories (0700) and the file itself (0600); tighten the
    mode of a database (and its companions) that an older version left readable by others."""
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=DB_DIR_MODE)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, DB_FILE_MODE))
    for p in [path, *(path.with_name(path.name + s) for s in _COMPANION_SUFFIXES)]:
        try:
            if p.stat().st_mode & 0o777 != DB_FILE_MODE:
                p.chmod(DB_FILE_MODE)
        except FileNotFoundError:
            pass
        except PermissionError:
            log.warning("Không đổi được quyền của %s thành chỉ chủ sở hữu đọc/ghi (0600)", p)


async def hold_alone(db: aiosqlite.Connection) -> None:
    """Keep every other connection out of the file while `db` is open (scripts/gen_history.py
    writes history alone); "database is locked" while anyone else has it open (db is then
    closed). Called before WAL is first used: the connection then takes the file lock itself,
    which every other connection's shared lock refuses, instead of sharing memory with them."""
    await db.execute("PRAGMA busy_timeout = 500")
    try:
        await db.execute("PRAGMA locking_mode = EXCLUSIVE")
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("BEGIN EXCLUSIVE")
        await db.execute("COMMIT")
    except BaseException:
        await db.close()
        raise


def statements(script: str) -> list[str]:
    """The script's statements, one by one (a semicolon inside a comment or a string does not end
    one: SQLite says when a statement is complete)."""
    out: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if _has_code(pending):
                out.append(pending.strip().removesuffix(";").strip())
            pending = ""
    if _has_code(pending.removesuffix(";")):
        out.append(pending.strip().removesuffix(";").strip())
    return out


def _has_code(text: str) -> bool:
    return any(line.split("--", 1)[0].strip(" \t;") for line in text.splitlines())


class MigrationError(RuntimeError):
    """A database this software cannot bring to its schema; the message says why, in Vietnamese."""


async def schema_version(db: aiosqlite.Connection) -> int:
    async with db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'") as cur:
        if await cur.fetchone() is None:
            return 0
    async with db.execute("SELECT version FROM schema_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(db: aiosqlite.Connection, path: Path, migrations: Sequence[str]) -> None:
    """Run the migrations this database has not had yet, all in ONE transaction: an upgrade that
    fails half-way (a bad row, a full disk) leaves the file exactly as the old version left it, so
    the old software still runs on it. Refuse a database written by a newer version (its schema is
    not one this code knows). The connection must be in autocommit mode (isolation_level=None)."""
    await db.execute("BEGIN IMMEDIATE")
    version = 0
    step = 0
    try:
        version = await schema_version(db)
        if version > len(migrations):
            raise MigrationError(
                f"Cơ sở dữ liệu {path} có phiên bản lược đồ {version}, mới hơn phần mềm này "
                f"({len(migrations)}). Hãy cập nhật phần mềm.")
        if version < len(migrations):
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            for step in range(version + 1, len(migrations) + 1):
                for stmt in statements(migrations[step - 1]):
                    await db.execute(stmt)
            await db.execute("DELETE FROM schema_version")
            await db.execute("INSERT INTO schema_version (version) VALUES (?)", (len(migrations),))
        await db.execute("COMMIT")
    except BaseException as exc:
        if db.in_transaction:
            await db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error) and step:
            raise MigrationError(
                f"Không nâng được lược đồ cơ sở dữ liệu {path} lên phiên bản {step}: {exc}. "
                f"Tệp được giữ nguyên như trước (phiên bản {version}); phần mềm cũ vẫn chạy được trên nó.") from exc
        raise
    if version < len(migrations):
        log.info("%s: đã nâng lược đồ cơ sở dữ liệu từ phiên bản %d lên %d", path.name, version, len(migrations))


async def open_database(path: Path, migrations: Sequence[str], *, exclusive: bool = False,
                        foreign_keys: bool = True, row_factory: Any = sqlite3.Row) -> aiosqlite.Connection:
    """A service's database as every service opens it: owner-only, WAL, durable commits
    (synchronous FULL), BEGIN/COMMIT left to the caller (isolation_level None), migrated.
    `exclusive`: alone with the file (hold_alone). Closed again if any of it fails: the
    connection's thread would keep a refused service alive (a restore holds the file, a newer
    schema), and systemd could not start it again."""
    make_private(path)
    db = await aiosqlite.connect(str(path), isolation_level=None)
    db.row_factory = row_factory
    try:
        if exclusive:
            await hold_alone(db)
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = FULL")
        if foreign_keys:
            await db.execute("PRAGMA foreign_keys = ON")
        await db.execute("PRAGMA busy_timeout = 5000")
        await migrate(db, path, migrations)
    except BaseException:
        await db.close()
        raise
    return db
