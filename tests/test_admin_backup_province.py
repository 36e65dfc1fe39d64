"""qms-admin backup and restore of a province's central server, on a real PostgreSQL with the
aggregator's own store (ProvinceStore, its pool named qms-province) writing."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import shutil
import stat
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from province.settings import ConfigError, parse_province
from province.store import MIGRATIONS, Message, ProvinceStore
from qms_admin.cli import main
from qms_admin.pgtools import split_dsn
from tests.support.postgres import Postgres, pg_bin
from tests.support.province import province_text

REPO = Path(__file__).resolve().parents[1]
AT = "2026-11-21T09:12:00+07:00"
TABLES = ("dossier_entries", "dossiers", "events", "ratings", "schema_migrations", "sites", "state", "tickets")


async def aadmin(*argv: str | Path) -> int:
    """In a thread: the command runs its own event loop, as it does from a shell."""
    return await asyncio.to_thread(main, [str(a) for a in argv])


def write_province(root: Path, dsn: str, *, province_id: str = "tinh-thu", backup: str = "") -> Path:
    """province.toml and, beside it, the central broker's files (a backup takes them along). Its
    backups (and a restore's staging) in root/backups unless `backup` says otherwise."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / "province.toml"
    backup = backup or f'dir = "{root / "backups"}"'
    config.write_text(province_text(province_id, "mqtt://province:x@127.0.0.1:1883", dsn, ["xa-moi", "xa-cu"],
                                    web_port=8090) + f"\n[backup]\n{backup}\n", encoding="utf-8")
    (root / "central-broker").mkdir(exist_ok=True)
    (root / "central-broker" / "passwd").write_text("province:$7$hash\n", encoding="utf-8")
    return config


def issued(seq: int, site: str = "xa-moi") -> Message:
    ticket = {"id": f"20261121-dat-dai-{seq}", "number": str(1000 + seq), "field": "dat-dai", "priority": False,
              "status": "waiting", "issued_at": AT, "called_at": None, "finished_at": None, "counter": None,
              "calls": 0, "rating": None, "via": "kiosk"}
    return Message(site, "event/issued", {"kind": "issued", "ticket": ticket, "seq": seq, "at": AT})


async def fill(store: ProvinceStore, n: int) -> None:
    """n events of an office at once, so a dump takes long enough for writes to land during it."""
    await store.pool.execute(
        "INSERT INTO events (site, seq, topic, kind, body, at) SELECT 'xa-cu', g, 'event/issued', 'issued', "
        "jsonb_build_object('seq', g, 'pad', repeat('x', 300)), now() FROM generate_series(1, $1) g", n)


async def counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        tables = [r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return {t: int(await conn.fetchval(f'SELECT count(*) FROM "{t}"')) for t in sorted(tables)}
    finally:
        await conn.close()


def read_member(archive: Path, name: str) -> bytes:
    with tarfile.open(archive, "r:gz") as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def manifest(archive: Path) -> dict[str, Any]:
    return json.loads(read_member(archive, "manifest.json"))


def repack(archive: Path, dest: Path, *, dump: bytes | None = None, **changes: Any) -> Path:
    """The archive with its dump replaced and the manifest changed (its hashes kept right): what
    only pg_restore itself, or the restore's own checks, can refuse."""
    m = manifest(archive)
    db = m["databases"][0]
    if dump is not None:
        db["size"], db["sha256"] = len(dump), hashlib.sha256(dump).hexdigest()
    for key, value in changes.items():
        (db if key in db else m)[key] = value
    with tarfile.open(archive, "r:gz") as src, tarfile.open(dest, "w:gz") as out:
        for info in src:
            data = src.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == "manifest.json":
                data = json.dumps(m).encode()
            elif info.name == db["name"] and dump is not None:
                data = dump
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return dest


async def test_a_backup_under_writes_is_one_snapshot_and_restores_into_an_empty_database(
        postgres: Postgres, pg_dsn: str, tmp_path: Path) -> None:
    store = await ProvinceStore.open(pg_dsn)
    config = write_province(tmp_path / "etc", pg_dsn)
    archive = tmp_path / "tinh.tar.gz"
    committed: list[int] = []   # seqs, in the order their transactions committed
    stop, going = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            assert await store.write(issued(seq))
            committed.append(seq)
            if seq == 50:
                going.set()

    try:
        await fill(store, 100_000)
        task = asyncio.create_task(writer())
        await asyncio.wait_for(going.wait(), 20)
        before = len(committed)
        started = time.monotonic()
        code = await aadmin("backup", "--config", config, "--to", archive)
        took = time.monotonic() - started
        during = len(committed) - before
        stop.set()
        await task
        source_tickets = await store.pool.fetch("SELECT * FROM tickets ORDER BY site, id")
    finally:
        await store.close()
    assert code == 0
    assert during > 0, "the aggregator must have written while the dump ran"
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    m = manifest(archive)
    db = m["databases"][0]
    assert m["site"] == "tinh-thu" and db["role"] == "province" and db["name"] == "databases/province.pgdump"
    assert db["schema_version"] == len(MIGRATIONS)
    assert set(db["rows"]) == set(TABLES)
    dump = read_member(archive, db["name"])
    assert len(dump) == db["size"] and hashlib.sha256(dump).hexdigest() == db["sha256"]
    # the configuration beside province.toml, not the backups there
    assert {f["name"] for f in m["files"]} == {"config/etc/province.toml", "config/etc/central-broker/passwd"}
    in_dump = db["rows"]["tickets"]
    print(f"backup of a province under writes: {took:.2f} s; {during} tickets written while it ran, "
          f"{in_dump - before} of them before its snapshot")
    # one snapshot: a prefix of the writer's commits, at least everything committed before it began,
    # and not the writes that went on while it was taken
    assert before <= in_dump < before + during
    assert db["rows"]["events"] == 100_000 + in_dump

    fresh = postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
    config2 = write_province(tmp_path / "fresh", fresh)
    assert await aadmin("restore", "--config", config2, archive) == 0
    assert await counts(fresh) == db["rows"]
    restored = await ProvinceStore.open(fresh)
    try:
        seqs = await restored.seqs("xa-moi")
        assert seqs == list(range(1, in_dump + 1)), "the tickets of a snapshot: no hole, nothing after it"
        rows = await restored.pool.fetch("SELECT * FROM tickets ORDER BY site, id")
        assert [dict(r) for r in rows] == [dict(r) for r in source_tickets if r["seq"] <= in_dump]
        assert await restored.last_seq("xa-cu") == 100_000
        # the aggregator goes on in the restored database
        assert await restored.write(issued(in_dump + 1))
    finally:
        await restored.close()


async def test_restore_is_refused_while_the_aggregator_is_connected(
        postgres: Postgres, pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_province(tmp_path / "etc", pg_dsn)
    backups = tmp_path / "etc" / "backups"
    archive = tmp_path / "b.tar.gz"
    store = await ProvinceStore.open(pg_dsn)
    try:
        for seq in (1, 2, 3):
            await store.write(issued(seq))
        assert await aadmin("backup", "--config", config, "--to", archive) == 0
        for seq in (4, 5):
            await store.write(issued(seq))
        capsys.readouterr()
        assert await aadmin("restore", "--config", config, archive) == 1
        err = capsys.readouterr().err
        assert "qms-province" in err and "systemctl stop qms-province" in err and "Chưa thay đổi gì" in err
        assert await store.seqs("xa-moi") == [1, 2, 3, 4, 5], "the aggregator's database is untouched"
        assert await store.write(issued(6)), "the aggregator goes on as if nothing happened"
    finally:
        await store.close()
    assert await aadmin("restore", "--config", config, archive) == 0
    out = capsys.readouterr().out
    assert "Đã khôi phục cơ sở dữ liệu" in out and "tickets 3" in out
    assert (await counts(pg_dsn))["events"] == 3
    # what it replaced is kept aside, owner-only, as a dump pg_restore reads (6 tickets)
    [aside] = backups.glob("tinh-thu-before-restore-*.pgdump")
    assert stat.S_IMODE(aside.stat().st_mode) == 0o600
    fresh = postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
    await asyncio.to_thread(subprocess.run, [pg_bin("pg_restore"), "--no-owner", "-d", fresh, str(aside)], check=True)
    assert (await counts(fresh))["tickets"] == 6


async def test_a_damaged_archive_is_refused_and_changes_nothing(
        pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_province(tmp_path / "etc", pg_dsn)
    archive = tmp_path / "b.tar.gz"
    store = await ProvinceStore.open(pg_dsn)
    try:
        await fill(store, 20_000)
        await store.write(issued(1))
    finally:
        await store.close()
    assert await aadmin("backup", "--config", config, "--to", archive) == 0
    # what the restores below must not change: the database moved on after the backup
    store = await ProvinceStore.open(pg_dsn)
    try:
        await store.write(issued(2))
    finally:
        await store.close()
    expected = await counts(pg_dsn)
    db = manifest(archive)["databases"][0]
    dump = read_member(archive, db["name"])

    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    # a dump whose table of contents is cut (its manifest hashes right): pg_restore --list refuses it
    no_toc = repack(archive, tmp_path / "toc.tar.gz", dump=dump[:200])
    # a dump whose data is damaged: readable until pg_restore reaches the damage, after it dropped
    # the tables: its one transaction is rolled back
    middle = len(dump) * 2 // 3
    bad_data = repack(archive, tmp_path / "data.tar.gz", dump=dump[:middle] + bytes(4096) + dump[middle + 4096:])
    # a member changed after the backup: its SHA-256 differs from the manifest's
    tampered = repack(archive, tmp_path / "sha.tar.gz", dump=dump[:-1] + bytes([dump[-1] ^ 0xFF]),
                      sha256=db["sha256"])
    for bad, says in ((truncated, "Không khôi phục"), (no_toc, "pg_restore"), (tampered, "SHA-256"),
                      (bad_data, "Giao dịch đã hủy")):
        capsys.readouterr()
        assert await aadmin("restore", "--config", config, bad) == 1, bad.name
        err = capsys.readouterr().err
        assert says in err, (bad.name, err)
        assert await counts(pg_dsn) == expected, f"{bad.name} changed the database"
    store = await ProvinceStore.open(pg_dsn)
    try:
        assert await store.seqs("xa-moi") == [1, 2]
    finally:
        await store.close()
    assert not list((tmp_path / "etc").rglob(".qms-restore-*")), "no staging left behind"


async def test_restore_refuses_another_province_and_a_newer_schema(
        postgres: Postgres, pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_province(tmp_path / "etc", pg_dsn)
    archive = tmp_path / "b.tar.gz"
    store = await ProvinceStore.open(pg_dsn)
    try:
        await store.write(issued(1))
    finally:
        await store.close()
    assert await aadmin("backup", "--config", config, "--to", archive) == 0
    fresh = postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
    other = write_province(tmp_path / "other", fresh, province_id="tinh-khac")
    capsys.readouterr()
    assert await aadmin("restore", "--config", other, archive) == 1
    err = capsys.readouterr().err
    assert "'tinh-thu'" in err and "--force" in err
    assert await counts(fresh) == {}
    newer = repack(archive, tmp_path / "newer.tar.gz", schema_version=len(MIGRATIONS) + 1)
    assert await aadmin("restore", "--config", other, newer, "--force") == 1
    assert "cập nhật phần mềm" in capsys.readouterr().err
    assert await counts(fresh) == {}
    office = repack(archive, tmp_path / "office.tar.gz", role="core")
    assert await aadmin("restore", "--config", other, office, "--force") == 1
    assert "không phải bản sao lưu của máy chủ tỉnh" in capsys.readouterr().err
    # a table the archive does not know (a newer schema): --clean would leave it behind
    conn = await asyncpg.connect(fresh)
    try:
        await conn.execute("CREATE TABLE later (id integer)")
    finally:
        await conn.close()
    assert await aadmin("restore", "--config", other, archive, "--force") == 1
    assert "later" in capsys.readouterr().err
    assert await counts(fresh) == {"later": 0}
    conn = await asyncpg.connect(fresh)
    try:
        await conn.execute("DROP TABLE later")
    finally:
        await conn.close()
    assert await aadmin("restore", "--config", other, archive, "--force") == 0
    assert (await counts(fresh))["tickets"] == 1


def test_the_tools_get_the_dsn_without_its_password() -> None:
    c = split_dsn("postgresql://qms:s%40cret@db.tinh:5432/qms_province?sslmode=require")
    assert c.dsn == "postgresql://qms@db.tinh:5432/qms_province?sslmode=require"
    assert c.password == "s@cret" and c.database == "qms_province"
    assert c.env()["PGPASSWORD"] == "s@cret"
    c = split_dsn("postgresql://qms@127.0.0.1/p?password=x&application_name=a")
    assert c.dsn == "postgresql://qms@127.0.0.1/p?application_name=a" and c.password == "x"


async def test_nightly_backups_rotate_and_go_to_the_second_disk(pg_dsn: str, tmp_path: Path) -> None:
    store = await ProvinceStore.open(pg_dsn)
    await store.close()
    backups, usb = tmp_path / "backups", tmp_path / "usb"
    config = write_province(tmp_path / "etc", pg_dsn, backup=f'dir = "{backups}"\nkeep = 2\ncopy_to = "{usb}"')
    for _ in range(3):
        assert await aadmin("backup", "--config", config) == 0
    kept = sorted(p.name for p in backups.iterdir())
    assert len(kept) == 2 and all(n.startswith("tinh-thu-") and n.endswith(".tar.gz") for n in kept)
    assert sorted(p.name for p in usb.iterdir()) == kept
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in [*backups.iterdir(), *usb.iterdir()])


@pytest.mark.parametrize(("backup", "key"), [("keep = 0", "backup.keep"),
                                             ('dir = "/srv/b"\ncopy_to = "/srv/b"', "backup.copy_to"),
                                             ("ngay = 1", "backup.ngay")])
def test_a_bad_backup_table_is_a_vietnamese_config_error(tmp_path: Path, backup: str, key: str) -> None:
    import tomllib
    text = province_text("tinh-thu", "mqtt://p:x@127.0.0.1:1883", "postgresql://qms@127.0.0.1/p", ["xa-moi"],
                         web_port=8090) + f"\n[backup]\n{backup}\n"
    with pytest.raises(ConfigError) as e:
        parse_province(tmp_path / "province.toml", tomllib.loads(text))
    assert key in str(e.value)


def test_the_province_install_has_the_nightly_backup(tmp_path: Path) -> None:
    config = tmp_path / "province.toml"
    shutil.copy(REPO / "examples" / "province.toml", config)
    out = tmp_path / "out"
    assert main(["install", "--config", str(config), "--dry-run", "--out", str(out)]) == 0
    unit_dir = out / "etc/systemd/system"
    service = (unit_dir / "qms-backup.service").read_text(encoding="utf-8")
    assert f"ExecStart={sys.prefix}/bin/qms-admin backup --config /etc/qms/province.toml\n" in service
    assert "Type=oneshot" in service and "ReadWritePaths=/var/lib/qms\n" in service
    timer = (unit_dir / "qms-backup.timer").read_text(encoding="utf-8")
    assert "OnCalendar=*-*-* 02:30:00" in timer and "Unit=qms-backup.service" in timer
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    assert "qms-backup.timer" in plan["commands"][-1]
    assert (out / "var/lib/qms/backups").is_dir()
