"""qms-admin backup and restore on real cores over a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import sqlite3
import stat
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from display_server.catalogue.store import SCHEMA as CATALOGUE_SCHEMA
from notifier.outbox import Outbox
from qms_admin.cli import main
from qms_admin.databases import site_databases
from qms_admin.restore import take
from qms_common.config import load_site_config
from qms_common.devbroker import Broker
from qms_common.protocol import Topics
from queue_core.store import Store
from tests.support.core import CoreProcess
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site


def admin(*argv: str | Path) -> int:
    return main([str(a) for a in argv])


async def aadmin(*argv: str | Path) -> int:
    """In a thread: the command runs its own event loop, as it does from a shell."""
    return await asyncio.to_thread(admin, *argv)


def tickets(db: Path) -> dict[str, str]:
    """id -> number"""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return dict(conn.execute("SELECT id, number FROM tickets"))


def matching(directory: Path, pattern: str = "*") -> list[Path]:
    return sorted(directory.glob(pattern))


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def wait_online(probe: Probe, topics: Topics, start: int) -> None:
    await probe.wait_for(lambda m: m.topic == topics.status_core and m.text == "online", start=start, timeout=20)


async def test_a_backup_in_a_burst_restored_on_a_fresh_install_holds_every_answered_ticket(
        broker: Broker, tmp_path: Path) -> None:
    office = tmp_path / "office"
    office.mkdir()
    path, site_id = write_site(office, broker.url, db=office / "data" / "core.sqlite3")
    topics = Topics(site_id)
    archive = tmp_path / "backup.tar.gz"
    core = CoreProcess(path, tmp_path / "core.log", env={"QMS_MQTT_URL": broker.url})
    async with Probe(broker.url) as probe:
        await probe.subscribe(topics.status_all)
        core.start()
        try:
            await wait_online(probe, topics, 0)
            n = 800
            answered: dict[str, dict[str, Any]] = {}

            async def send(field: str) -> None:
                reply = await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": field}, timeout=30)
                assert reply["ok"], reply
                answered[reply["ticket"]["id"]] = reply

            fields = ["dat-dai", "ho-tich"]
            tasks = [asyncio.create_task(send(fields[i % 2])) for i in range(n)]
            async with asyncio.timeout(30):
                while len(answered) < 100:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED, timeout=1)
            before = set(answered)
            started = time.monotonic()
            code = await aadmin("backup", "--config", path, "--to", archive)
            took = time.monotonic() - started
            during = len(answered) - len(before)
            await asyncio.gather(*tasks)
        finally:
            core.stop()
    assert code == 0
    assert len(before) < n, "the backup must begin in the middle of the burst"
    print(f"backup of a core under load: {took:.2f} s; {during} tickets answered while it ran")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600

    # a fresh install: the same site, an empty data directory
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    path2, _ = write_site(fresh, broker.url, site_id=site_id, db=fresh / "data" / "core.sqlite3")
    assert await aadmin("restore", "--config", path2, archive) == 0
    db2 = fresh / "data" / "core.sqlite3"
    restored = tickets(db2)
    missing = before - set(restored)
    assert not missing, f"{len(missing)} tickets answered before the backup are not in it"
    assert stat.S_IMODE(db2.stat().st_mode) == 0o600
    assert not list((fresh / "data").glob("*.before-restore-*")), "nothing was there to keep aside"

    # the restored core starts and goes on numbering without a duplicate
    core2 = CoreProcess(path2, tmp_path / "core2.log", env={"QMS_MQTT_URL": broker.url})
    async with Probe(broker.url) as probe:
        await probe.subscribe(topics.status_all)
        mark = probe.mark()
        core2.start()
        try:
            await wait_online(probe, topics, mark)
            new = [await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": f}, timeout=10)
                   for f in ("dat-dai", "ho-tich", "dat-dai")]
        finally:
            core2.stop()
    assert all(r["ok"] for r in new)
    numbers = list(restored.values()) + [r["ticket"]["number"] for r in new]
    assert len(numbers) == len(set(numbers)), "a number was issued twice after the restore"
    last_dat_dai = max(int(v) for v in restored.values() if 1001 <= int(v) <= 1999)
    assert int(new[0]["ticket"]["number"]) == last_dat_dai + 1


async def test_restore_is_refused_while_the_core_runs_and_a_core_started_during_a_restore_is_refused(
        broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url)
    topics = Topics(site_id)
    db = tmp_path / f"{site_id}.sqlite3"
    archive = tmp_path / "b.tar.gz"
    core = CoreProcess(path, tmp_path / "core.log", env={"QMS_MQTT_URL": broker.url})
    async with Probe(broker.url) as probe:
        await probe.subscribe(topics.status_all)
        core.start()
        try:
            await wait_online(probe, topics, 0)
            await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            assert await aadmin("backup", "--config", path, "--to", archive) == 0
            await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            code = await aadmin("restore", "--config", path, archive)
            assert code == 1
            assert len(tickets(db)) == 2, "the running core's database is untouched"
            assert not matching(tmp_path, "*.before-restore-*")
            later = await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            assert later["ok"], "the core goes on as if nothing happened"
        finally:
            core.stop()

    # a core that starts while a restore holds the files is refused, and the file stays whole
    site = load_site_config(path)
    held = await take([d for d in site_databases(site) if d.role == "core"])
    try:
        late = CoreProcess(path, tmp_path / "late.log", env={"QMS_MQTT_URL": broker.url}).start()
        assert late.proc is not None
        code = await asyncio.to_thread(late.proc.wait, 20)
        assert code != 0
    finally:
        for h in held:
            await h.conn.close()
    assert len(tickets(db)) == 3
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def make_core_db(db: Path, n: int) -> None:
    store = await Store.open(db)
    await store.close()
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO tickets (id, day, number, value, origin_field, field, priority, status, issued_at, ord, "
            "calls) VALUES (?, '2026-11-28', ?, ?, 'dat-dai', 'dat-dai', 0, 'waiting', '2026-11-28T08:00:00+07:00', "
            "?, 0)", [(f"t{i}", str(1000 + i), 1000 + i, i) for i in range(1, n + 1)])
    conn.close()


@pytest.mark.parametrize("damage", ["truncated", "flipped", "member"])
async def test_a_damaged_archive_is_refused_and_changes_nothing(tmp_path: Path, damage: str) -> None:
    path, site_id = write_site(tmp_path, "mqtt://127.0.0.1:1")
    db = tmp_path / f"{site_id}.sqlite3"
    await make_core_db(db, 50)
    archive = tmp_path / "good.tar.gz"
    assert await aadmin("backup", "--config", path, "--to", archive) == 0
    bad = tmp_path / "bad.tar.gz"
    data = archive.read_bytes()
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        bad.write_bytes(data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:])
    else:
        # a well-formed archive whose database is not the one the manifest describes
        with tarfile.open(archive) as src, tarfile.open(bad, "w:gz") as out:
            for info in src:
                f = src.extractfile(info)
                body = f.read() if f else b""
                if info.name == "databases/core.sqlite3":
                    body = body[:-1] + bytes([body[-1] ^ 1])
                out.addfile(info, io.BytesIO(body))
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM tickets WHERE value > 1010")  # differs from the archive
    conn.close()
    before = file_sha(db)
    assert await aadmin("restore", "--config", path, bad) == 1
    assert file_sha(db) == before
    assert [p.name for p in matching(tmp_path)] == sorted(
        [f"{site_id}.sqlite3", f"{site_id}.toml", "good.tar.gz", "bad.tar.gz"])
    # the good one puts the 50 tickets back and keeps the replaced file aside
    assert await aadmin("restore", "--config", path, archive) == 0
    assert len(tickets(db)) == 50
    aside = matching(tmp_path, f"{site_id}.sqlite3.before-restore-*")
    assert len(aside) == 1 and len(tickets(aside[0])) == 10
    assert stat.S_IMODE(aside[0].stat().st_mode) == 0o600


async def test_another_sites_archive_is_refused_unless_forced(tmp_path: Path) -> None:
    a, a_id = write_site(tmp_path, "mqtt://127.0.0.1:1")
    await make_core_db(tmp_path / f"{a_id}.sqlite3", 3)
    archive = tmp_path / "a.tar.gz"
    assert await aadmin("backup", "--config", a, "--to", archive) == 0
    b, b_id = write_site(tmp_path, "mqtt://127.0.0.1:1")
    assert await aadmin("restore", "--config", b, archive) == 1
    assert not (tmp_path / f"{b_id}.sqlite3").exists()
    assert await aadmin("restore", "--config", b, archive, "--force") == 0
    assert len(tickets(tmp_path / f"{b_id}.sqlite3")) == 3


async def test_rotation_copy_to_manifest_and_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "broker").mkdir()
    (conf / "broker" / "credentials.toml").write_text("[users]\n")
    path, site_id = write_site(conf, "mqtt://127.0.0.1:1", db=tmp_path / "data" / "core.sqlite3", extra=f"""
[backup]
dir = "{tmp_path / 'backups'}"
keep = 2
copy_to = "{tmp_path / 'usb'}"
""")
    await make_core_db(tmp_path / "data" / "core.sqlite3", 7)
    for _ in range(3):
        assert await aadmin("backup", "--config", path) == 0
    local = sorted((tmp_path / "backups").iterdir())
    usb = sorted((tmp_path / "usb").iterdir())
    assert len(local) == 2 and [p.name for p in usb] == [p.name for p in local]
    for p in [*local, *usb]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700
    with tarfile.open(local[-1]) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert names[0] == "manifest.json"
    assert f"config/etc/{site_id}.toml" in names and "config/etc/broker/credentials.toml" in names
    core = manifest["databases"][0]
    assert core["role"] == "core" and core["rows"]["tickets"] == 7 and core["schema_version"] == 4
    assert len(core["sha256"]) == 64 and manifest["site"] == site_id and manifest["software_version"]
    out = capsys.readouterr().out
    assert "Đã xóa bản cũ" in out and "Đã chép sang đĩa thứ hai" in out

    # the second disk is gone: a clear warning, a non-zero exit, the local archive stays
    (tmp_path / "usb").rename(tmp_path / "usb-gone")
    (tmp_path / "usb").write_text("not a directory")
    assert await aadmin("backup", "--config", path) == 1
    err = capsys.readouterr().err
    assert "không chép được bản sao lưu sang" in err
    assert len(list((tmp_path / "backups").iterdir())) == 2
    assert sorted((tmp_path / "backups").iterdir())[-1] not in local


@pytest.mark.parametrize(("extra", "expected"), [
    ("[backup]\nkeep = 0\n", "backup.keep: phải lớn hơn hoặc bằng 1"),
    ("[backup]\ndir = \"/x\"\ncopy_to = \"/x\"\n", "backup.copy_to: trùng với [backup] dir"),
    ("[backup]\nkepp = 3\n", "backup.kepp: khóa không được hỗ trợ"),
])
def test_backup_settings_errors_are_vietnamese(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str,
                                               expected: str) -> None:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra=extra)
    assert admin("backup", "--config", path, "--to", tmp_path / "x.tar.gz") == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "x.tar.gz").exists()


async def test_damaged_databases_are_reported_not_copied_or_overwritten_blindly(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, site_id = write_site(tmp_path, "mqtt://127.0.0.1:1")
    db = tmp_path / f"{site_id}.sqlite3"
    await make_core_db(db, 5)
    archive = tmp_path / "a.tar.gz"
    assert await aadmin("backup", "--config", path, "--to", archive) == 0
    capsys.readouterr()
    db.write_bytes(b"\x00 khong phai co so du lieu " * 200)
    # a backup of a damaged file fails clearly and leaves no archive behind
    assert await aadmin("backup", "--config", path, "--to", tmp_path / "b.tar.gz") == 1
    assert "Sao lưu thất bại" in capsys.readouterr().err
    assert [p.name for p in matching(tmp_path, "*.tar.gz")] == ["a.tar.gz"]
    assert not matching(tmp_path, ".*")
    # restore will not guess whether a service has a file SQLite cannot lock: it says what to do
    damaged = file_sha(db)
    assert await aadmin("restore", "--config", path, archive) == 1
    assert "đổi tên tệp đó" in capsys.readouterr().err
    assert file_sha(db) == damaged
    db.rename(tmp_path / "core.hong")
    assert await aadmin("restore", "--config", path, archive) == 0
    assert len(tickets(db)) == 5


async def test_every_database_of_the_site_goes_and_comes_back_in_its_journal_mode(tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, "mqtt://127.0.0.1:1")
    await make_core_db(tmp_path / f"{site_id}.sqlite3", 2)
    site = load_site_config(path)
    dbs = {d.role: d for d in site_databases(site)}
    box = await Outbox.open(dbs["notify"].path)
    await box.close()
    catalogue = dbs["catalogue"].path
    with contextlib.closing(sqlite3.connect(catalogue, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.executescript(CATALOGUE_SCHEMA)
        conn.execute("INSERT INTO procedures VALUES ('1.1', 'Khai sinh', 'ho-tich', 'xa', 1, '1 ngày', '', '[]', "
                     "'', '', 1)")
    archive = tmp_path / "all.tar.gz"
    assert await aadmin("backup", "--config", path, "--to", archive) == 0
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert {"databases/core.sqlite3", "databases/notify.sqlite3", "databases/catalogue.sqlite3"} <= set(names)
    # the site file's directory holds the databases here: they are not taken as configuration
    assert [n for n in names if n.startswith("config/")] == [f"config/{tmp_path.name}/{site_id}.toml"]
    with contextlib.closing(sqlite3.connect(catalogue, isolation_level=None)) as conn:
        conn.execute("DELETE FROM procedures")
    assert await aadmin("restore", "--config", path, archive) == 0
    with contextlib.closing(sqlite3.connect(catalogue)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert conn.execute("SELECT name FROM procedures").fetchall() == [("Khai sinh",)]
    with contextlib.closing(sqlite3.connect(dbs["notify"].path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
