"""A backup archive: consistent copies of an office's databases, its configuration files and a
manifest (what each file is, its size and SHA-256, each database's schema version and row counts),
in one tar.gz written owner-only.

Layout: manifest.json first, then databases/<role>.sqlite3 (a province's server:
databases/province.pgdump, pg_dump's custom format), then config/<name>/<path>.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import socket
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath

import aiosqlite

from qms_admin.databases import Database

FORMAT = 1
MANIFEST = "manifest.json"
ARCHIVE_MODE = 0o600
COMPRESS_LEVEL = 6  # gzip's 9 costs twice the time for a few percent on SQLite pages
_CHUNK = 1 << 20


class ArchiveError(Exception):
    """The archive cannot be trusted; the message says why, in Vietnamese."""


@dataclass(frozen=True)
class Member:
    name: str           # inside the archive
    size: int
    sha256: str
    role: str = ""      # databases: core, dossiers…
    source: str = ""    # where it was read from
    schema_version: int | None = None
    rows: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    site: str
    site_name: str
    created_at: str
    software_version: str
    host: str
    databases: list[Member]
    files: list[Member]
    format: int = FORMAT

    def text(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        try:
            obj = json.loads(data)
            if obj.get("format") != FORMAT:
                raise ArchiveError(f"bản kê khai có định dạng {obj.get('format')!r}, "
                                   f"phần mềm này đọc định dạng {FORMAT}")
            return cls(site=str(obj["site"]), site_name=str(obj["site_name"]), created_at=str(obj["created_at"]),
                       software_version=str(obj["software_version"]), host=str(obj["host"]),
                       databases=[Member(**m) for m in obj["databases"]], files=[Member(**m) for m in obj["files"]])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ArchiveError(f"bản kê khai {MANIFEST} hỏng ({exc})") from None


def software_version() -> str:
    try:
        return metadata.version("qms-motcua")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def private_file(path: Path) -> int:
    """A new file only its owner reads: archives and copies hold citizens' phone numbers."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, ARCHIVE_MODE)


def fsync_path(path: Path) -> None:
    """A file's content, or a directory's entries (a new or renamed file in it), on the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def describe(path: Path) -> tuple[int | None, dict[str, int]]:
    """A database copy's schema version (None: no schema_version table) and its tables' row counts."""
    async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [r[0] for r in await db.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        rows = {}
        for t in tables:
            counted = await db.execute_fetchall(f'SELECT COUNT(*) FROM "{t}"')
            rows[t] = int(next(iter(counted))[0])
        version = None
        if "schema_version" in tables:
            v = await db.execute_fetchall("SELECT version FROM schema_version")
            version = int(next(iter(v))[0]) if v else 0
    return version, rows


async def integrity(path: Path) -> str:
    """"ok", or what SQLite found wrong."""
    try:
        async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = await db.execute_fetchall("PRAGMA integrity_check")
    except aiosqlite.Error as exc:
        return str(exc)
    found = [str(r[0]) for r in rows]
    return "ok" if found == ["ok"] else "; ".join(found[:3])


async def snapshot(db: Database, dest: Path) -> Member:
    """A consistent copy of a live database into dest, as one self-contained file.

    The online backup API copies every page inside ONE read transaction of a read-only connection:
    in WAL mode that never blocks the service's writes (they go on into the WAL meanwhile), and the
    copy holds exactly the transactions committed before it began."""
    async with aiosqlite.connect(f"file:{db.path}?mode=ro", uri=True, timeout=30) as src:
        async with aiosqlite.connect(str(dest), isolation_level=None) as dst:
            await src.backup(dst)
            # the copy inherits WAL from the header: make it one file that opens anywhere
            await dst.execute("PRAGMA journal_mode = DELETE")
    os.chmod(dest, ARCHIVE_MODE)
    problem = await integrity(dest)
    if problem != "ok":
        raise ArchiveError(f"bản sao của {db.path} không toàn vẹn: {problem}")
    version, rows = await describe(dest)
    size, digest = await asyncio.to_thread(lambda: (os.stat(dest).st_size, sha256_file(dest)))
    return Member(name=f"databases/{db.role}.sqlite3", size=size, sha256=digest,
                  role=db.role, source=str(db.path), schema_version=version, rows=rows)


def config_files(roots: list[Path], skip: list[Path]) -> Iterator[tuple[str, Path]]:
    """(name in the archive, path) of every regular file under roots, except skipped paths and
    anything under a skipped directory (the databases, the backups themselves)."""
    skipped = [p.resolve() for p in skip]

    def excluded(p: Path) -> bool:
        r = p.resolve()
        # a database set aside by a restore is a database, not configuration
        return ".before-restore-" in r.name or any(r == s or s in r.parents for s in skipped)

    for root in roots:
        root = root.resolve()
        if root.is_file():
            if not excluded(root):
                yield f"config/{root.name}", root
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                if p.is_file() and not p.is_symlink() and not excluded(p):
                    yield f"config/{root.name}/{p.relative_to(root)}", p


def write_archive(target: Path, manifest: Manifest, db_files: dict[str, Path],
                  config: dict[str, bytes]) -> None:
    """manifest, then the database copies, then the configuration files' bytes (read once: the
    hash in the manifest is of exactly what is stored), into target (a new 0600 file), on disk
    before this returns."""
    fd = private_file(target)
    with os.fdopen(fd, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=COMPRESS_LEVEL) as tar:
            _add_bytes(tar, MANIFEST, manifest.text().encode())
            for name, path in db_files.items():
                info = tar.gettarinfo(str(path), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with path.open("rb") as f:
                    tar.addfile(info, f)
            for name, data in config.items():
                _add_bytes(tar, name, data)
        raw.flush()
        os.fsync(raw.fileno())


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


def read_manifest(archive: Path) -> Manifest:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            f = tar.extractfile(MANIFEST)
            if f is None:
                raise KeyError(MANIFEST)
            return Manifest.parse(f.read())
    except KeyError:
        raise ArchiveError(f"không có bản kê khai {MANIFEST}: đây không phải bản sao lưu của qms-admin") from None
    except _READ_ERRORS as exc:
        raise ArchiveError(f"không đọc được tệp nén ({exc})") from None


def extract_verified(archive: Path, manifest: Manifest, staging: Path) -> tuple[dict[str, Path], dict[str, bytes]]:
    """Every member checked against the manifest (size, SHA-256): the databases written into
    staging (by role), the configuration files returned as bytes. Nothing outside staging is
    touched; a member the manifest does not list, or one it lists that is missing, is refused."""
    expected = {m.name: m for m in [*manifest.databases, *manifest.files]}
    dbs: dict[str, Path] = {}
    config: dict[str, bytes] = {}
    seen: set[str] = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for info in tar:
                if info.name == MANIFEST:
                    continue
                m = expected.get(info.name)
                if m is None or not info.isfile():
                    raise ArchiveError(f"tệp nén có {info.name!r}, bản kê khai không ghi tệp này")
                f = tar.extractfile(info)
                assert f is not None  # a regular file
                h = hashlib.sha256()
                size = 0
                with contextlib.ExitStack() as stack:
                    out = None
                    if m.role:
                        dest = staging / PurePosixPath(m.name).name
                        out = stack.enter_context(os.fdopen(private_file(dest), "wb"))
                    buf = bytearray()
                    while chunk := f.read(_CHUNK):
                        h.update(chunk)
                        size += len(chunk)
                        if out is not None:
                            out.write(chunk)
                        else:
                            buf += chunk
                    if out is not None:
                        out.flush()
                        os.fsync(out.fileno())
                if size != m.size or h.hexdigest() != m.sha256:
                    raise ArchiveError(f"{info.name} không khớp bản kê khai (cỡ hoặc SHA-256 khác): tệp hỏng")
                if m.role:
                    dbs[m.role] = staging / PurePosixPath(m.name).name
                else:
                    config[m.name] = bytes(buf)
                seen.add(m.name)
    except _READ_ERRORS as exc:
        raise ArchiveError(f"không đọc hết được tệp nén, có thể bị cắt cụt ({exc})") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise ArchiveError(f"thiếu {', '.join(missing)} so với bản kê khai")
    return dbs, config


def now_utc() -> datetime:
    return datetime.now(UTC)


def host_name() -> str:
    return socket.gethostname()


def manifest_of(site_id: str, site_name: str, at: datetime, databases: list[Member],
                files: list[Member]) -> Manifest:
    return Manifest(site=site_id, site_name=site_name, created_at=at.isoformat(timespec="seconds"),
                    software_version=software_version(), host=host_name(), databases=databases, files=files)


def member_of_bytes(name: str, data: bytes, source: Path) -> Member:
    return Member(name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest(), source=str(source))

