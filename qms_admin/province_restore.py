"""qms-admin restore --config province.toml FILE: a province's database put back from an archive of
qms-admin backup (qms_admin/province_backup.py).

Everything is checked before the database is touched: the manifest's SHA-256 of every member, the
dump's table of contents (pg_restore --list), the province, the schema version, and that no
aggregator (a session named qms-province in pg_stat_activity) is connected to the database. Then
one pg_restore --clean --single-transaction: a failure anywhere (a damaged dump, a missing role, a
lock not granted) rolls everything back, and the database is exactly as it was. What the database
held is first dumped beside the backups (<province>-before-restore-<time>.pgdump), as an office's
restore keeps its files aside.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import asyncpg

from province.cli import safe_dsn
from province.settings import ProvinceSettings, load_province
from province.store import APPLICATION_NAME as AGGREGATOR
from province.store import MIGRATIONS
from qms_admin import pgtools
from qms_admin.archive import ArchiveError, Manifest, extract_verified, now_utc, read_manifest
from qms_admin.backup import say, warn
from qms_admin.province_backup import APPLICATION_NAME, MEMBER, ROLE
from qms_admin.restore import RestoreFailed, RestoreRefused, run_job, say_config_files

STOP_HINT = "Dừng dịch vụ tỉnh trước: systemctl stop qms-province"
# a session holding a lock on a table (a report left open in psql) makes the restore give up, not hang
LOCK_TIMEOUT_S = 30


def check_manifest(settings: ProvinceSettings, manifest: Manifest, *, force: bool) -> None:
    roles = [m.role for m in manifest.databases]
    if roles != [ROLE] or manifest.databases[0].name != MEMBER:
        raise RestoreRefused(f"đây không phải bản sao lưu của máy chủ tỉnh (nó chứa {', '.join(roles) or 'không gì'}; "
                             "bản sao lưu của một điểm khôi phục bằng --config site.toml)")
    if manifest.site != settings.id and not force:
        raise RestoreRefused(
            f"bản sao lưu là của tỉnh {manifest.site!r} ({manifest.site_name}), không phải tỉnh {settings.id!r} "
            f"của {settings.path}. Thêm --force nếu thật sự muốn khôi phục nó vào đây")
    version = manifest.databases[0].schema_version
    if version is not None and version > len(MIGRATIONS):
        raise RestoreRefused(
            f"cơ sở dữ liệu trong bản sao lưu có lược đồ phiên bản {version}, mới hơn phần mềm này "
            f"({len(MIGRATIONS)}; bản sao lưu từ phần mềm {manifest.software_version}). Hãy cập nhật phần mềm trước")


async def check_target(settings: ProvinceSettings, dump_tables: set[str]) -> dict[str, int]:
    """Refuses while an aggregator is connected, or when the database has tables the dump does not
    know (a newer schema: --clean would leave them, and the next migration would trip on them).
    Returns the rows of its tables now, to say what is replaced."""
    try:
        conn = await asyncpg.connect(settings.postgres_dsn, server_settings={"application_name": APPLICATION_NAME})
    except (OSError, asyncpg.PostgresError) as exc:
        raise RestoreRefused(f"không kết nối được PostgreSQL {safe_dsn(settings.postgres_dsn)} ({exc})") from None
    try:
        sessions = await conn.fetch(
            "SELECT pid, application_name, client_addr, backend_start FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1", AGGREGATOR)
        if sessions:
            where = ", ".join(sorted({str(s["client_addr"] or "socket cục bộ") for s in sessions}))
            raise RestoreRefused(
                f"dịch vụ tỉnh (qms-province) đang kết nối tới cơ sở dữ liệu này ({len(sessions)} phiên, từ {where}); "
                f"không ghi đè. {STOP_HINT}")
        tables = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        extra = [t for t in tables if t not in dump_tables]
        if extra:
            raise RestoreRefused(
                f"cơ sở dữ liệu đích có bảng không có trong bản sao lưu ({', '.join(extra)}): có lẽ lược đồ mới hơn "
                "bản sao lưu. Khôi phục vào một cơ sở dữ liệu trống (createdb) rồi đổi [postgres] dsn")
        return {t: int(await conn.fetchval(f'SELECT count(*) FROM "{t}"')) for t in tables}
    finally:
        await conn.close()


async def count_rows(settings: ProvinceSettings, tables: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(settings.postgres_dsn, server_settings={"application_name": APPLICATION_NAME})
    try:
        return {t: int(await conn.fetchval(f'SELECT count(*) FROM "{t}"')) for t in tables}
    finally:
        await conn.close()


def rows_text(rows: dict[str, int]) -> str:
    return ", ".join(f"{t} {n}" for t, n in rows.items() if t != "schema_migrations") or "không có bảng nào"


async def restore_province(settings: ProvinceSettings, archive: Path, *, force: bool) -> int:
    say(f"Kiểm tra bản sao lưu {archive}…")
    manifest = read_manifest(archive)
    check_manifest(settings, manifest, force=force)
    member = manifest.databases[0]
    staging_dir = settings.backup.dir
    staging_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # staging in the backup directory: private, on this machine, not /tmp
    with tempfile.TemporaryDirectory(prefix=".qms-restore-", dir=staging_dir) as tmp:
        try:
            files, _config = extract_verified(archive, manifest, Path(tmp))
        except ArchiveError as exc:
            raise RestoreRefused(str(exc)) from None
        dump = files[ROLE]
        try:
            entries = await pgtools.listing(dump)
        except pgtools.ToolError as exc:
            raise RestoreRefused(f"bản dump trong bản sao lưu không đọc được: {exc}") from None
        dump_tables = pgtools.tables_of(entries)
        if "schema_migrations" not in dump_tables:
            raise RestoreRefused("bản dump không có bảng schema_migrations: không phải cơ sở dữ liệu của tỉnh")
        say(f"  hợp lệ: tỉnh {manifest.site}, lúc {manifest.created_at}, phần mềm {manifest.software_version}, "
            f"lược đồ phiên bản {member.schema_version}, {len(entries)} mục trong bản dump, "
            f"{len(manifest.files)} tệp cấu hình.")
        target = pgtools.split_dsn(settings.postgres_dsn)
        before = await check_target(settings, dump_tables)
        say(f"Cơ sở dữ liệu {target.database} hiện có: {rows_text(before)}.")
        if before:
            aside = staging_dir / f"{settings.id}-before-restore-{now_utc().strftime('%Y%m%d-%H%M%SZ')}.pgdump"
            try:
                await pgtools.dump(target, aside)
            except pgtools.ToolError as exc:
                aside.unlink(missing_ok=True)
                raise RestoreRefused(f"không để riêng được nội dung hiện có ({exc})") from None
            say(f"Đã để riêng nội dung hiện có: {aside} (khôi phục lại nó: pg_restore --clean --if-exists "
                f"--single-transaction --no-owner -d TÊN_CSDL {aside})")
        say("Đang khôi phục (một giao dịch)…")
        try:
            await pgtools.restore(target, dump, LOCK_TIMEOUT_S)
        except pgtools.ToolError as exc:
            raise RestoreFailed(str(exc)) from None
    after = await count_rows(settings, sorted(member.rows))
    say(f"Đã khôi phục cơ sở dữ liệu {target.database} ({safe_dsn(settings.postgres_dsn)}): {rows_text(after)}.")
    differ = [t for t in member.rows if after.get(t) != member.rows[t]]
    if differ:
        warn(f"số dòng khác bản kê khai ở bảng {', '.join(differ)} (bản kê khai: "
             f"{rows_text({t: member.rows[t] for t in differ})}). Có dịch vụ nào vừa ghi vào không?")
        return 1
    say_config_files(manifest, archive)
    say("Khôi phục xong. Khởi động lại dịch vụ tỉnh: systemctl start qms-province")
    return 0


def run_province_restore(args: argparse.Namespace) -> int:
    settings = load_province(args.config)
    # pg_restore's single transaction: a failure leaves the database as it was; an OSError
    # (reading the archive, writing the set-aside dump) comes before the database is touched
    return run_job(args.file, lambda archive: restore_province(settings, archive, force=args.force),
                   failed_note=" Giao dịch đã hủy: cơ sở dữ liệu vẫn như trước.", refused_too=(OSError,))
