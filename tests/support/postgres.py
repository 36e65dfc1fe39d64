"""A real PostgreSQL for the tests: initdb and pg_ctl in a temporary directory, on a free port.

`initdb` refuses to run as root, and this machine (and a CI container) runs the tests as root, so
as root the server runs as the unprivileged `nobody` through `runuser`: the data and socket
directories are made with `tempfile.mkdtemp` directly under the system temp directory (pytest's
own tmp dirs are 0700 root, which nobody cannot enter) and handed to nobody. As any other user the
server simply runs as that user. Connections use trust authentication on 127.0.0.1 only.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from qms_common.devbroker import free_port

SUPERUSER = "qms"


def pg_bin(name: str) -> str:
    """The newest installed server binary (Debian keeps them out of PATH)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise RuntimeError(f"{name} không có: cài gói postgresql (make system-deps)")


@dataclass
class Postgres:
    root: Path
    port: int
    as_user: list[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def sockets(self) -> Path:
        return self.root / "sockets"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)

    def ready(self) -> bool:
        return self.run(pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER,
                        "-d", "postgres", timeout=10).returncode == 0

    def create_database(self, name: str) -> str:
        r = self.run(pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name)
        if r.returncode != 0:
            raise RuntimeError(f"createdb {name}: {r.stderr}")
        return self.dsn(name)

    def stop(self) -> None:
        self.run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")


def start_postgres(timeout: float = 30.0) -> Postgres:
    root = Path(tempfile.mkdtemp(prefix="qms-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "nobody", "--"]
    (root / "sockets").mkdir()
    if as_user:
        for p in (root, root / "sockets"):
            os.chown(p, *_nobody_ids())
    pg = Postgres(root, free_port(), as_user)
    r = pg.run(pg_bin("initdb"), "-D", str(pg.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
               "--locale=C.UTF-8", "--no-sync")
    if r.returncode != 0:
        raise RuntimeError(f"initdb thất bại: {r.stdout}{r.stderr}")
    # -w waits for the server to accept connections (pg_ctl polls it); fsync off: a test database
    opts = (f"-p {pg.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={pg.sockets} "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off")
    r = pg.run(pg_bin("pg_ctl"), "-D", str(pg.data), "-l", str(root / "server.log"), "-o", opts,
               "-w", "-t", str(int(timeout)), "start", timeout=timeout + 10)
    if r.returncode != 0:
        log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
        raise RuntimeError(f"pg_ctl start thất bại: {r.stdout}{r.stderr}{log}")
    deadline = time.monotonic() + timeout
    while not pg.ready():  # pg_ctl -w already waited; this confirms TCP on our address
        if time.monotonic() > deadline:
            pg.stop()
            raise RuntimeError("PostgreSQL không nhận kết nối")
    return pg


def _nobody_ids() -> tuple[int, int]:
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL server for the session; each test makes its own database in it."""
    pg = start_postgres()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)


@pytest.fixture
def pg_dsn(postgres: Postgres) -> str:
    """An empty database of the test's own."""
    return postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
