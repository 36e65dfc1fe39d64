"""qms-admin backup --config province.toml: a province's central server into the office's archive
format (qms_admin/archive.py): its PostgreSQL as one pg_dump of the custom format, province.toml
and the central broker's files beside it, a manifest.

The dump is one snapshot: a REPEATABLE READ transaction exports it (pg_export_snapshot), counts the
rows and reads the schema version in it, and pg_dump --snapshot reads exactly the same. Everything
committed before the backup began is in it; nothing committed after is; the aggregator writes on
meanwhile (a dump takes no lock that blocks inserts).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

import asyncpg

from province.cli import safe_dsn
from province.settings import ProvinceSettings, load_province
from qms_admin import pgtools
from qms_admin.archive import ArchiveError, Member, manifest_of, now_utc, sha256_file
from qms_admin.backup import deliver, partial_of, read_config, say, write_target

ROLE = "province"
MEMBER = f"databases/{ROLE}.pgdump"
APPLICATION_NAME = "qms-admin"


async def _tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    return [r["tablename"] for r in rows]


async def dump_database(settings: ProvinceSettings, dest: Path) -> Member:
    target = pgtools.split_dsn(settings.postgres_dsn)
    try:
        conn = await asyncpg.connect(settings.postgres_dsn, server_settings={"application_name": APPLICATION_NAME})
    except (OSError, asyncpg.PostgresError) as exc:
        raise ArchiveError(f"không kết nối được PostgreSQL {safe_dsn(settings.postgres_dsn)} ({exc})") from None
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            tables = await _tables(conn)
            if "schema_migrations" not in tables:
                raise ArchiveError(f"cơ sở dữ liệu {target.database} chưa có lược đồ của tỉnh "
                                   "(qms-province chưa chạy lần nào trên nó?)")
            version = int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))
            rows = {t: int(await conn.fetchval(f'SELECT count(*) FROM "{t}"')) for t in tables}
            # the transaction stays open while pg_dump imports its snapshot and reads
            await pgtools.dump(target, dest, snapshot)
    except pgtools.ToolError as exc:
        raise ArchiveError(str(exc)) from None
    except asyncpg.PostgresError as exc:
        raise ArchiveError(f"PostgreSQL: {exc}") from None
    finally:
        await conn.close()
    try:
        await pgtools.listing(dest)  # what restore checks first: a dump it would refuse is no backup
    except pgtools.ToolError as exc:
        raise ArchiveError(f"bản dump vừa tạo không đọc lại được: {exc}") from None
    size, digest = await asyncio.to_thread(lambda: (os.stat(dest).st_size, sha256_file(dest)))
    return Member(name=MEMBER, size=size, sha256=digest, role=ROLE,
                  source=safe_dsn(settings.postgres_dsn), schema_version=version, rows=rows)


async def make_province_backup(settings: ProvinceSettings, target: Path) -> list[Path]:
    at = now_utc()
    b = settings.backup
    skip = [b.dir, *([b.copy_to] if b.copy_to else []), target, partial_of(target)]
    # staging beside the target: no copy of the province's data lands in /tmp
    with tempfile.TemporaryDirectory(prefix=".qms-backup-", dir=target.parent) as tmp:
        staging = Path(tmp)
        dest = staging / f"{ROLE}.pgdump"
        say(f"Đang sao cơ sở dữ liệu của tỉnh ({safe_dsn(settings.postgres_dsn)}) bằng pg_dump…")
        member = await dump_database(settings, dest)
        rows = ", ".join(f"{t} {n}" for t, n in member.rows.items() if t != "schema_migrations")
        say(f"  xong: {member.size} byte, lược đồ phiên bản {member.schema_version}, {rows}")
        config = read_config(b, [*skip, staging])
        manifest = manifest_of(settings.id, settings.name, at, [member], config.members)
        write_target(target, manifest, {MEMBER: dest}, config.data)
    return config.unreadable


def run_province_backup(args: argparse.Namespace) -> int:
    settings = load_province(args.config)
    return deliver(args, f"máy chủ tỉnh {settings.id} ({settings.name})", settings.id, settings.backup,
                   lambda target: make_province_backup(settings, target))
