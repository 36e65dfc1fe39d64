"""qms-admin restore --config site.toml FILE: put an archive of qms-admin backup back.

Everything is checked before anything is touched: the manifest's SHA-256 of every member, each
database's integrity_check, the site, the schema versions. Then every database of the archive is
taken alone (SQLite's exclusive lock, qms_common.sqlite.hold_alone): that is refused while a
service has the file open, so a running core is never overwritten, and a service that starts
meanwhile is refused in turn (it exits and systemd starts it again later, on the restored file).

Each database is written through SQLite's own transaction (the online backup API into the locked
file), not by renaming a new file over it: a core opening the old file just before a rename would
write on into the file set aside, and its -wal would be paired with the wrong file. The copy is one
transaction, so a power cut leaves the old or the new content, never a mix; the file is fsynced
before the next one. The content replaced is first kept aside as <name>.before-restore-<time>.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from qms_admin.archive import (
    ArchiveError,
    Manifest,
    extract_verified,
    fsync_path,
    integrity,
    now_utc,
    read_manifest,
)
from qms_admin.backup import is_province_config, say, warn
from qms_admin.databases import Database, site_databases
from qms_common.config import SiteConfig, load_site_config
from qms_common.sqlite import DB_FILE_MODE, hold_alone, make_private

STOP_HINT = "Dừng các dịch vụ trước: systemctl stop qms-core qms-web qms-notify qms-dossiers"


class RestoreRefused(Exception):
    """Nothing was changed; the message says why, in Vietnamese."""


class RestoreFailed(Exception):
    """Stopped midway: for an office, the message says which databases were restored; for the
    province, pg_restore's transaction rolled back."""


def known_migrations() -> dict[str, Sequence[str]]:
    from display_server.reports.warehouse import MIGRATIONS as REPORTS
    from dossiers.store import MIGRATIONS as DOSSIERS
    from notifier.outbox import MIGRATIONS as NOTIFY
    from queue_core.store import MIGRATIONS as CORE
    return {"core": CORE, "dossiers": DOSSIERS, "reports": REPORTS, "notify": NOTIFY}


@dataclass
class Held:
    db: Database
    conn: aiosqlite.Connection
    existed: bool
    was_wal: bool  # taking it alone switches it to WAL: a file left as it was is switched back


def is_wal(path: Path) -> bool:
    """The database header's write version: 2 is WAL (sqlite.org/fileformat.html)."""
    try:
        with path.open("rb") as f:
            header = f.read(20)
    except FileNotFoundError:
        return False
    return len(header) == 20 and header[18] == 2


async def check(site: SiteConfig, archive: Path, staging: Path, *, force: bool) -> tuple[Manifest, dict[str, Path]]:
    manifest = read_manifest(archive)
    if manifest.site != site.id and not force:
        raise RestoreRefused(
            f"bản sao lưu là của điểm {manifest.site!r} ({manifest.site_name}), không phải điểm {site.id!r} "
            f"của {site.path}. Thêm --force nếu thật sự muốn khôi phục nó vào điểm này")
    roles = {d.role for d in site_databases(site)}
    unknown = [m.role for m in manifest.databases if m.role not in roles]
    if unknown:
        raise RestoreRefused(f"bản sao lưu có cơ sở dữ liệu {unknown[0]!r} mà phần mềm này không biết")
    if "core" not in {m.role for m in manifest.databases}:
        raise RestoreRefused("bản sao lưu không có cơ sở dữ liệu của lõi hàng đợi")
    migrations = known_migrations()
    for m in manifest.databases:
        known = migrations.get(m.role)
        if known is not None and m.schema_version is not None and m.schema_version > len(known):
            raise RestoreRefused(
                f"cơ sở dữ liệu {m.role} trong bản sao lưu có lược đồ phiên bản {m.schema_version}, mới hơn "
                f"phần mềm này ({len(known)}; bản sao lưu từ phần mềm {manifest.software_version}). "
                "Hãy cập nhật phần mềm trước")
    try:
        files, _config = extract_verified(archive, manifest, staging)
    except ArchiveError as exc:
        raise RestoreRefused(str(exc)) from None
    for role, path in files.items():
        problem = await integrity(path)
        if problem != "ok":
            raise RestoreRefused(f"cơ sở dữ liệu {role} trong bản sao lưu không toàn vẹn: {problem}")
    return manifest, files


async def take(databases: list[Database]) -> list[Held]:
    """Every database alone, or none: a refusal releases what was taken and removes the empty
    files this made."""
    held: list[Held] = []
    try:
        for d in databases:
            existed = d.path.exists()
            was_wal = is_wal(d.path)
            make_private(d.path)
            conn = await aiosqlite.connect(str(d.path), isolation_level=None, check_same_thread=False)
            try:
                await hold_alone(conn)
            except sqlite3.DatabaseError as exc:
                if not existed:
                    d.path.unlink(missing_ok=True)
                if not isinstance(exc, sqlite3.OperationalError):
                    # no SQLite lock can be taken on it, so nothing tells whether a service has
                    # it open: the operator, having stopped the services, moves it aside
                    raise RestoreRefused(
                        f"tệp {d.path} ({d.label}) không đọc được như một cơ sở dữ liệu ({exc}). "
                        f"{STOP_HINT}, đổi tên tệp đó (ví dụ thêm đuôi .hong) rồi chạy lại lệnh này") from None
                raise RestoreRefused(
                    f"cơ sở dữ liệu {d.label} ({d.path}) đang được một dịch vụ mở "
                    f"({'lõi hàng đợi đang chạy' if d.role == 'core' else 'dịch vụ đó đang chạy'}); "
                    f"không ghi đè. {STOP_HINT}") from None
            held.append(Held(d, conn, existed, was_wal))
    except BaseException:
        await release(held, remove_new=True)
        raise
    return held


async def release(held: list[Held], *, remove_new: bool = False) -> None:
    for h in held:
        if h.existed and not h.was_wal:
            await h.conn.execute("PRAGMA journal_mode = DELETE")
        await h.conn.close()
        if remove_new and not h.existed:
            h.db.path.unlink(missing_ok=True)


async def keep_aside(h: Held, stamp: str) -> Path:
    aside = h.db.path.with_name(f"{h.db.path.name}.before-restore-{stamp}")
    os.close(os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE))
    async with aiosqlite.connect(str(aside), isolation_level=None, check_same_thread=False) as out:
        await h.conn.backup(out)
        await out.execute("PRAGMA journal_mode = DELETE")
    fsync_path(aside)
    return aside


async def put_back(h: Held, source: Path) -> None:
    async with aiosqlite.connect(f"file:{source}?mode=ro", uri=True) as src:
        await src.backup(h.conn)
    # the journal mode its service expects (the archive's copies are all rollback-journal files)
    await h.conn.execute(f"PRAGMA journal_mode = {'WAL' if h.db.wal else 'DELETE'}")
    await h.conn.close()  # checkpoints the WAL into the file and removes it: one file on disk
    fsync_path(h.db.path)
    fsync_path(h.db.path.parent)
    if not h.existed and os.geteuid() == 0:
        # a fresh install's data directory belongs to the services' user: so does the database
        st = h.db.path.parent.stat()
        os.chown(h.db.path, st.st_uid, st.st_gid)


async def restore(site: SiteConfig, archive: Path, *, force: bool) -> int:
    targets = {d.role: d for d in site_databases(site)}
    core_dir = targets["core"].path.parent
    core_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    say(f"Kiểm tra bản sao lưu {archive}…")
    with tempfile.TemporaryDirectory(prefix=".qms-restore-", dir=core_dir) as tmp:
        manifest, files = await check(site, archive, Path(tmp), force=force)
        say(f"  hợp lệ: điểm {manifest.site}, lúc {manifest.created_at}, phần mềm {manifest.software_version}, "
            f"{len(files)} cơ sở dữ liệu, {len(manifest.files)} tệp cấu hình.")
        order = [m.role for m in manifest.databases]
        held = await take([targets[r] for r in order])
        stamp = now_utc().strftime("%Y%m%d-%H%M%SZ")
        done: list[str] = []
        try:
            for h in list(held):
                m = next(x for x in manifest.databases if x.role == h.db.role)
                if h.existed:
                    aside = await keep_aside(h, stamp)
                    say(f"Đã để riêng {h.db.label} hiện có: {aside}")
                await put_back(h, files[h.db.role])
                held.remove(h)
                done.append(h.db.role)
                rows = ", ".join(f"{t} {n}" for t, n in m.rows.items() if t != "schema_version")
                say(f"Đã khôi phục {h.db.label}: {h.db.path} ({rows}).")
        except (OSError, sqlite3.Error) as exc:
            left = [h.db.role for h in held]
            raise RestoreFailed(
                f"khôi phục dừng giữa chừng ({exc}). Đã khôi phục: {', '.join(done) or 'không có'}; "
                f"chưa: {', '.join(left)} (vẫn như trước). Bản cũ được để riêng với đuôi "
                f".before-restore-{stamp}") from exc
        finally:
            await release(held)
    say_config_files(manifest, archive)
    say("Khôi phục xong. Khởi động lại các dịch vụ: systemctl start qms-core qms-web qms-notify qms-dossiers")
    return 0


def say_config_files(manifest: Manifest, archive: Path) -> None:
    """A restore never overwrites configuration: it says how to take it out of the archive."""
    if manifest.files:
        say(f"Các tệp cấu hình trong bản sao lưu ({len(manifest.files)} tệp) không được ghi đè; "
            f"lấy ra khi cần bằng: tar -xzf {archive} config/")


def run_job(archive: Path, job: Callable[[Path], Coroutine[Any, Any, int]], *, failed_note: str = "",
            refused_too: tuple[type[Exception], ...] = ()) -> int:
    """Run one restore of `archive`: each refusal or failure one Vietnamese line, exit 1.
    `refused_too`: more errors that can only come before anything was changed."""
    if not archive.is_file():
        warn(f"không có tệp {archive}.")
        return 1
    try:
        return asyncio.run(job(archive.resolve()))
    except (RestoreRefused, ArchiveError, *refused_too) as exc:
        warn(f"Không khôi phục: {exc}. Chưa thay đổi gì.")
        return 1
    except RestoreFailed as exc:
        warn(f"Khôi phục thất bại: {exc}.{failed_note}")
        return 1


def run_restore(args: argparse.Namespace) -> int:
    if is_province_config(args.config):
        from qms_admin.province_restore import run_province_restore
        return run_province_restore(args)
    site = load_site_config(args.config)
    return run_job(args.file, lambda archive: restore(site, archive, force=args.force))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("restore", help="khôi phục một bản sao lưu (các dịch vụ phải dừng trước)")
    p.add_argument("--config", required=True, type=Path, help="site.toml của điểm, hoặc province.toml của máy chủ tỉnh")
    p.add_argument("file", type=Path, metavar="FILE", help="bản sao lưu .tar.gz của qms-admin backup")
    p.add_argument("--force", action="store_true", help="khôi phục cả bản sao lưu của một điểm khác")
    p.set_defaults(run=run_restore)
