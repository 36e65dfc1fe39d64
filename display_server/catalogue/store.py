"""The catalogue's SQLite file, owned by the web server (not the core: it is reference data the
queue never reads), and the Catalogue the pages search.

`qms-web import-procedures` writes it in one transaction (upsert by code: importing again updates,
never duplicates); the running server notices the file changed (its size, time or inode) on the
next look-up and rebuilds its in-memory index, so the import needs no restart. The file keeps a
rollback journal (not WAL) so that a commit changes the main file itself, which is what is watched.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from display_server.catalogue.model import Procedure
from display_server.catalogue.search import FieldMap, SearchIndex

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS procedures (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    field TEXT NOT NULL,            -- the file's field (an id or a name), mapped when read
    level TEXT NOT NULL,
    processing_days INTEGER,
    processing_text TEXT NOT NULL,
    fees TEXT NOT NULL,
    documents TEXT NOT NULL,        -- JSON array of strings
    legal_basis TEXT NOT NULL,
    submit_at TEXT NOT NULL,
    position INTEGER NOT NULL       -- browsing order: the order of the last file that named it
);
"""
_COLUMNS = ("code", "name", "field", "level", "processing_days", "processing_text", "fees", "documents",
            "legal_basis", "submit_at")
PROGRESS_EVERY = 500


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int
    unchanged: int
    removed: int


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    db.execute("PRAGMA journal_mode=DELETE")
    return db


def _row(p: Procedure, position: int) -> tuple[object, ...]:
    return (p.code, p.name, p.field_name, p.level, p.processing_days, p.processing_text, p.fees,
            json.dumps(list(p.documents), ensure_ascii=False), p.legal_basis, p.submit_at, position)


def write_procedures(path: Path, procedures: Sequence[Procedure], *, replace: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Add or update every procedure (by code) in one transaction: all of them, or none on error.
    With replace, the procedures the file does not name are removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = _connect(path)
    try:
        db.executescript(SCHEMA)
        db.execute("BEGIN IMMEDIATE")
        try:
            existing = {r[0]: r[1:] for r in db.execute(f"SELECT {', '.join(_COLUMNS)}, position FROM procedures")}
            added = updated = unchanged = 0
            for n, p in enumerate(procedures):
                row = _row(p, n)
                old = existing.get(p.code)
                if old is None:
                    added += 1
                elif old[:-1] == row[1:-1]:
                    unchanged += 1
                    if old[-1] != n:
                        db.execute("UPDATE procedures SET position = ? WHERE code = ?", (n, p.code))
                    continue
                else:
                    updated += 1
                db.execute(f"INSERT INTO procedures ({', '.join(_COLUMNS)}, position) VALUES "
                           f"({', '.join('?' * (len(_COLUMNS) + 1))}) ON CONFLICT(code) DO UPDATE SET "
                           + ", ".join(f"{c} = excluded.{c}" for c in (*_COLUMNS[1:], "position")), row)
                if progress and (n + 1) % PROGRESS_EVERY == 0:
                    progress(n + 1, len(procedures))
            removed = 0
            if replace:
                named = {p.code for p in procedures}
                gone = [c for c in existing if c not in named]
                db.executemany("DELETE FROM procedures WHERE code = ?", [(c,) for c in gone])
                removed = len(gone)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.close()
    return ImportResult(added, updated, unchanged, removed)


def read_procedures(path: Path) -> list[Procedure]:
    """Every procedure of the file, in browsing order, fields as the file named them."""
    # a short wait: this runs on the server's event loop, and a busy file (an import committing) is
    # simply read again on the next look-up
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
    try:
        rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM procedures ORDER BY position, code").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        db.close()
    return [Procedure(code=r[0], name=r[1], field=None, field_name=r[2], level=r[3], processing_days=r[4],
                      processing_text=r[5], fees=r[6], documents=tuple(json.loads(r[7])), legal_basis=r[8],
                      submit_at=r[9]) for r in rows]


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class Catalogue:
    """The site's procedures, searched in memory, reloaded when the file changes."""

    def __init__(self, path: Path, fields: Iterable[tuple[str, str]]) -> None:
        self.path = path
        self.field_map = FieldMap(fields)
        self._index = SearchIndex([])
        self._signature: tuple[int, int, int] | None = None

    @classmethod
    def of(cls, procedures: Sequence[Procedure], fields: Iterable[tuple[str, str]]) -> Catalogue:
        """A catalogue of these procedures, without a file (tests, benchmarks)."""
        c = cls(Path("/nonexistent"), fields)
        c._index = SearchIndex([c.field_map.apply(p) for p in procedures])
        return c

    @property
    def index(self) -> SearchIndex:
        sig = _signature(self.path)
        if sig != self._signature:
            self._reload(sig)
        return self._index

    def _reload(self, sig: tuple[int, int, int] | None) -> None:
        try:
            procedures = read_procedures(self.path) if sig is not None else []
        except (sqlite3.Error, ValueError) as exc:
            # busy or broken: keep what we have and look again on the next request
            log.warning("Không đọc được danh mục thủ tục %s: %s", self.path, exc)
            return
        self._index = SearchIndex([self.field_map.apply(p) for p in procedures])
        self._signature = sig
        if sig is not None:
            log.info("Danh mục thủ tục: %d thủ tục từ %s", len(procedures), self.path)

    def __len__(self) -> int:
        return len(self.index)

    def get(self, code: str) -> Procedure | None:
        return self.index.get(code)

    def search(self, text: str, field: str | None = None, limit: int = 20) -> list[Procedure]:
        return self.index.search(text, field, limit)

    def fields(self) -> list[tuple[str, str, int]]:
        """(field id, or the name for a field the site does not have; name; count)."""
        return self.index.fields()

    def by_field(self, field: str) -> list[Procedure]:
        return self.index.by_field(field)
