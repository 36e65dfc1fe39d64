"""pg_dump and pg_restore of a province's database, run without a password on their command line.

The DSN of province.toml may carry the password: the tools get the DSN without it (in argv, which
`ps` shows to everyone) and the password in PGPASSWORD, in their environment only (readable by the
same user and root).
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit


class ToolError(Exception):
    """A PostgreSQL tool failed or is missing; the message says why, in Vietnamese."""


@dataclass(frozen=True)
class Connection:
    dsn: str                 # without the password
    password: str | None
    database: str

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password  # else libpq's own: PGPASSWORD, ~/.pgpass, PGPASSFILE
        return {**env, **extra}


def split_dsn(dsn: str) -> Connection:
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    password = unquote(parts.password) if parts.password is not None else None
    password = next((v for k, v in query if k == "password"), password)
    netloc = parts.netloc.rsplit("@", 1)
    if len(netloc) == 2:
        user = netloc[0].split(":", 1)[0]
        netloc_text = f"{user}@{netloc[1]}"
    else:
        netloc_text = netloc[0]
    clean = urlunsplit(parts._replace(netloc=netloc_text,
                                      query=urlencode([(k, v) for k, v in query if k != "password"])))
    database = unquote(parts.path.lstrip("/")) or next((v for k, v in query if k == "dbname"), "")
    return Connection(clean, password, database)


def tool(name: str) -> str:
    """On PATH (Debian's wrapper picks the newest client), else the newest under /usr/lib/postgresql."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                      key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    if versions:
        return versions[-1]
    raise ToolError(f"không tìm thấy {name}: cài gói postgresql-client (apt-get install postgresql-client)")


async def run_tool(name: str, args: list[str], env: dict[str, str]) -> str:
    """Its standard output; its last lines of error output in the exception when it fails."""
    proc = await asyncio.create_subprocess_exec(tool(name), *args, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise ToolError(f"{name} thất bại (mã {proc.returncode}): {' | '.join(lines[-3:]) or 'không rõ lý do'}")
    return out.decode(errors="replace")


async def dump(conn: Connection, dest: Path, snapshot: str | None = None) -> None:
    """The database as it was in `snapshot` (pg_export_snapshot of a transaction still open), or
    in pg_dump's own. dest is made first, owner-only: pg_dump writes into it and keeps its mode."""
    os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    await run_tool("pg_dump", ["--format=custom", *([f"--snapshot={snapshot}"] if snapshot else []),
                               f"--file={dest}", f"--dbname={conn.dsn}"], conn.env())


async def listing(path: Path) -> list[str]:
    """pg_restore --list: the table of contents of a dump; fails on a damaged one."""
    out = await run_tool("pg_restore", ["--list", str(path)], dict(os.environ))
    return [line for line in out.splitlines() if line and not line.startswith(";")]


def tables_of(entries: list[str]) -> set[str]:
    """The tables a dump creates: TOC lines `id; oid oid TABLE schema name owner`."""
    found = set()
    for line in entries:
        words = line.split()
        if len(words) >= 6 and words[3] == "TABLE" and words[4] == "public":
            found.add(words[5])
    return found


async def restore(conn: Connection, path: Path, lock_timeout_s: int) -> None:
    """Everything in one transaction: a failure anywhere leaves the database as it was. A session
    holding a lock on a table would make it wait for ever: it gives up after lock_timeout_s."""
    await run_tool("pg_restore", ["--clean", "--if-exists", "--single-transaction", "--no-owner",
                                  f"--dbname={conn.dsn}", str(path)],
                   conn.env(PGOPTIONS=f"-c lock_timeout={lock_timeout_s * 1000}"))
