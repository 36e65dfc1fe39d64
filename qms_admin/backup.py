"""qms-admin backup: every database of the office copied while it runs, with the site file and the
broker's files, into one archive; restore is qms_admin/restore.py. With province.toml: the
central server's PostgreSQL instead (qms_admin/province_backup.py), delivered the same way.

Without --to the archive goes into [backup] dir, the oldest beyond [backup] keep are removed, and
a copy goes to [backup] copy_to (a second disk) when set. Only a failure exits non-zero; a failed
second copy leaves the local archive in place and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from qms_admin.archive import (
    ARCHIVE_MODE,
    ArchiveError,
    Manifest,
    Member,
    config_files,
    fsync_path,
    manifest_of,
    member_of_bytes,
    now_utc,
    private_file,
    snapshot,
    write_archive,
)
from qms_admin.databases import site_databases
from qms_common.backup_settings import BackupSettings, parse_backup
from qms_common.config import SiteConfig, load_site_config
from qms_common.tomlconf import read_toml

SUFFIX = ".tar.gz"
# configuration is read whole (its hash is of what is stored): a big file there is not configuration
CONFIG_MAX_BYTES = 8 * 2**20


def load_backup_settings(site: SiteConfig) -> BackupSettings:
    return parse_backup(site.section("backup"), site.path)


def say(text: str) -> None:
    print(text, flush=True)


def warn(text: str) -> None:
    print(f"CẢNH BÁO: {text}", file=sys.stderr, flush=True)


def archive_name(site_id: str, at_text: str) -> str:
    return f"{site_id}-{at_text}{SUFFIX}"


def new_archive(directory: Path, site_id: str, at_text: str) -> Path:
    """A name after every archive of the same second: two backups in one second get -2, -3…
    (rotation orders them by that number; reusing a rotated-away name would sort it first)."""
    pattern = _archive_re(site_id)
    taken = [int(m.group(2) or 1) for p in directory.iterdir()
             if (m := pattern.match(p.name)) and m.group(1) == at_text]
    if not taken:
        return directory / archive_name(site_id, at_text)
    return directory / archive_name(site_id, f"{at_text}-{max(taken) + 1}")


def _archive_re(site_id: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(site_id)}-(\d{{8}}-\d{{6}}Z)(?:-(\d+))?{re.escape(SUFFIX)}$")


def rotate(directory: Path, site_id: str, keep: int) -> list[Path]:
    """Remove this site's archives beyond the `keep` newest (by the time in their names); returns
    them. Other files in the directory are not ours and stay."""
    pattern = _archive_re(site_id)
    found = [(m, p) for p in directory.iterdir() if (m := pattern.match(p.name)) and p.is_file()]
    ours = [p for m, p in sorted(found, key=lambda mp: (mp[0].group(1), int(mp[0].group(2) or 1)))]
    gone = ours[:-keep] if len(ours) > keep else []
    for p in gone:
        p.unlink()
    return gone


@dataclass
class ConfigRead:
    data: dict[str, bytes]
    members: list[Member]
    unreadable: list[Path]  # a secret only root reads, the backup running as another user


def read_config(settings: BackupSettings, skip: list[Path]) -> ConfigRead:
    """Every configuration file of [backup] include, except the skipped paths."""
    read = ConfigRead({}, [], [])
    too_big: list[Path] = []
    for name, path in config_files(list(settings.include), skip):
        try:
            if path.stat().st_size > CONFIG_MAX_BYTES:
                too_big.append(path)
                continue
            data = path.read_bytes()
        except PermissionError:
            # the databases matter more than one key file: the archive is made and the exit says it
            read.unreadable.append(path)
            continue
        read.data[name] = data
        read.members.append(member_of_bytes(name, data, path))
    say(f"Đã lấy {len(read.data)} tệp cấu hình ({', '.join(str(p) for p in settings.include)}).")
    for p in too_big:
        say(f"  bỏ qua {p}: lớn hơn {CONFIG_MAX_BYTES // 2**20} MB, không phải tệp cấu hình")
    return read


def partial_of(target: Path) -> Path:
    return target.with_name(f".{target.name}.partial")


def write_target(target: Path, manifest: Manifest, files: dict[str, Path], config: dict[str, bytes]) -> None:
    """The archive written aside, on disk, then renamed to target: a reader never sees half of one."""
    partial = partial_of(target)
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    say("Đang nén…")
    try:
        write_archive(partial, manifest, files, config)
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise
    fsync_path(target.parent)


async def make_backup(site: SiteConfig, settings: BackupSettings, target: Path) -> list[Path]:
    """Write the archive to target (which must not exist); returns the configuration files it
    could not read (the archive is written without them)."""
    at = now_utc()
    databases = [d for d in site_databases(site) if d.required or d.path.exists()]
    missing = [d for d in databases if d.required and not d.path.exists()]
    if missing:
        raise ArchiveError(f"không có cơ sở dữ liệu {missing[0].label}: {missing[0].path}")
    skip = [settings.dir, *([settings.copy_to] if settings.copy_to else []), target]
    for d in site_databases(site):
        skip += [d.path.with_name(d.path.name + s) for s in ("", "-wal", "-shm", "-journal")]
    # staging beside the target: the same disk, so no copy of citizens' data lands in /tmp
    with tempfile.TemporaryDirectory(prefix=".qms-backup-", dir=target.parent) as tmp:
        staging = Path(tmp)
        members: list[Member] = []
        files: dict[str, Path] = {}
        for d in databases:
            say(f"Đang sao {d.label} ({d.path})…")
            dest = staging / f"{d.role}.sqlite3"
            member = await snapshot(d, dest)
            members.append(member)
            files[member.name] = dest
            rows = ", ".join(f"{t} {n}" for t, n in member.rows.items() if t != "schema_version")
            say(f"  xong: {member.size} byte, lược đồ phiên bản {member.schema_version}, {rows}")
        config = read_config(settings, [*skip, staging, partial_of(target)])
        manifest = manifest_of(site.id, site.name, at, members, config.members)
        write_target(target, manifest, files, config.data)
    return config.unreadable


def copy_private(src: Path, directory: Path) -> Path:
    """src into directory under the same name: written aside, on disk, then renamed."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    dest = directory / src.name
    partial = directory / f".{src.name}.partial"
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    try:
        with src.open("rb") as f, os.fdopen(private_file(partial), "wb") as out:
            shutil.copyfileobj(f, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    fsync_path(directory)
    return dest


# what one backup writes: the archive at the given path (new), returning the unreadable config files
Maker = Callable[[Path], Awaitable[list[Path]]]


def deliver(args: argparse.Namespace, what: str, ident: str, settings: BackupSettings, make: Maker) -> int:
    """--to FILE, or into [backup] dir with rotation and the second copy: the same for an office
    and a province's server."""
    at_text = now_utc().strftime("%Y%m%d-%H%M%SZ")
    if args.to is not None:
        target: Path = args.to.resolve()
        if target.exists():
            warn(f"{target} đã có; không ghi đè. Chọn tên khác.")
            return 1
        if not target.parent.is_dir():
            warn(f"không có thư mục {target.parent}.")
            return 1
    else:
        try:
            settings.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            warn(f"không tạo được thư mục sao lưu {settings.dir} ({exc.strerror}). Kiểm tra [backup] dir.")
            return 1
        target = new_archive(settings.dir, ident, at_text)
    say(f"Sao lưu {what} vào {target}")
    try:
        unreadable = asyncio.run(make(target))
    except ArchiveError as exc:
        warn(f"Sao lưu thất bại: {exc}.")
        return 1
    except (OSError, sqlite3.Error) as exc:
        # a database another tool holds alone (scripts/gen_history.py), a damaged file, a full disk
        warn(f"Sao lưu thất bại: {exc}.")
        return 1
    say(f"Đã sao lưu: {target} ({target.stat().st_size} byte, quyền {ARCHIVE_MODE:o}).")
    failed = 0
    if unreadable:
        warn(f"không đọc được {len(unreadable)} tệp cấu hình nên bản sao lưu thiếu chúng: "
             f"{', '.join(str(p) for p in unreadable)}. Chạy lệnh sao lưu với quyền root.")
        failed = 1
    if args.to is not None:
        return failed
    for p in rotate(settings.dir, ident, settings.keep):
        say(f"Đã xóa bản cũ {p.name} (giữ {settings.keep} bản mới nhất).")
    if settings.copy_to is None:
        return failed
    try:
        dest = copy_private(target, settings.copy_to)
        for p in rotate(settings.copy_to, ident, settings.keep):
            say(f"Đã xóa bản cũ {p} (giữ {settings.keep} bản mới nhất).")
    except OSError as exc:
        warn(f"không chép được bản sao lưu sang {settings.copy_to} ({exc}). Bản sao lưu tại máy vẫn còn: "
             f"{target}. Kiểm tra đĩa thứ hai ([backup] copy_to).")
        return 1
    say(f"Đã chép sang đĩa thứ hai: {dest}")
    return failed


def is_province_config(path: Path) -> bool:
    """province.toml (a [province] table): the central server's PostgreSQL, not an office's files."""
    return "province" in read_toml(path)


def run_backup(args: argparse.Namespace) -> int:
    if is_province_config(args.config):
        from qms_admin.province_backup import run_province_backup
        return run_province_backup(args)
    site = load_site_config(args.config)
    settings = load_backup_settings(site)
    return deliver(args, f"điểm {site.id} ({site.name})", site.id, settings,
                   lambda target: make_backup(site, settings, target))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds backup and restore."""
    from qms_admin import restore

    p = sub.add_parser("backup", help="sao lưu các cơ sở dữ liệu và cấu hình của điểm (chạy được khi đang hoạt động)")
    p.add_argument("--config", required=True, type=Path, help="site.toml của điểm, hoặc province.toml của máy chủ tỉnh")
    p.add_argument("--to", type=Path, help="ghi đúng tệp này (.tar.gz); mặc định vào [backup] dir, có xoay vòng")
    p.set_defaults(run=run_backup)
    restore.register(sub)
