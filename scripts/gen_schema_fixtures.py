"""Write tests/fixtures/schemas/<store>/v<N>.sql: a database of each earlier schema version of each
store, with rows of the kinds that version wrote, as an SQL text dump (reviewable in a diff, unlike
a binary .sqlite file). tests/test_migrations.py migrates each one to the current version.

How a version's database is made: the store's migration list up to N (migrations are append-only:
a released migration is never edited, so the first N of them are exactly what version N ran), then
sample rows, each written with the columns that exist at version N (a column a later migration
adds is left out, as the old code left it out). This was chosen over running the old code itself
(`git show <commit>:queue_core/store.py`) because the old stores' write paths need the old
services around them (the core's book, the dossier service's calendar); the rows here are the
values those write paths store (ISO times with the offset, JSON in the text columns).

Existing files are never rewritten: once written, a fixture is the record of what that version
made, and must still migrate when the migration list grows. Run it after adding a migration: it
adds the fixture of the version that just became "earlier".

    python scripts/gen_schema_fixtures.py            # adds the missing fixtures
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from display_server.reports.warehouse import MIGRATIONS as REPORTS
from dossiers.store import MIGRATIONS as DOSSIERS
from notifier.outbox import MIGRATIONS as NOTIFY
from notifier.providers.tokens import SCHEMA as ZALO_TOKENS
from qms_common.sqlite import statements
from queue_core.store import MIGRATIONS as CORE

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "schemas"
DAY = "2026-11-27"

CORE_ROWS: dict[str, list[dict[str, Any]]] = {
    "meta": [{"key": "day", "value": DAY}, {"key": "seq", "value": "42"}],
    "numbers": [{"day": DAY, "field": "dat-dai", "last": 1003}, {"day": DAY, "field": "ho-tich", "last": 2001}],
    "tickets": [
        {"id": f"{DAY}-dat-dai-1001", "day": DAY, "number": "1001", "value": 1001, "origin_field": "dat-dai",
         "field": "dat-dai", "priority": 0, "status": "done", "issued_at": f"{DAY}T08:01:00+07:00", "ord": 1,
         "called_at": f"{DAY}T08:05:00+07:00", "finished_at": f"{DAY}T08:12:00+07:00", "counter": "1",
         "officer": "Nguyễn Thị Hoa", "calls": 1, "source": "kiosk-1", "phone": None, "rating": 3,
         "rated_at": f"{DAY}T08:13:00+07:00", "dossier": "HS-0001", "via": "kiosk"},
        {"id": f"{DAY}-dat-dai-1002", "day": DAY, "number": "1002", "value": 1002, "origin_field": "dat-dai",
         "field": "dat-dai", "priority": 1, "status": "serving", "issued_at": f"{DAY}T08:02:00+07:00", "ord": 2,
         "called_at": f"{DAY}T08:13:00+07:00", "counter": "2", "officer": "Trần Văn Minh", "calls": 2,
         "source": "kiosk-2", "phone": "0912345678", "via": "kiosk"},
        {"id": f"{DAY}-dat-dai-1003", "day": DAY, "number": "1003", "value": 1003, "origin_field": "dat-dai",
         "field": "dat-dai", "priority": 0, "status": "waiting", "issued_at": f"{DAY}T08:03:00+07:00", "ord": 3,
         "calls": 0, "source": "remote", "phone": "0987654321", "via": "remote", "awaiting_checkin": 1,
         "code": "K7Q2"},
        {"id": f"{DAY}-ho-tich-2001", "day": DAY, "number": "2001", "value": 2001, "origin_field": "ho-tich",
         "field": "ho-tich", "priority": 0, "status": "waiting", "issued_at": f"{DAY}T08:04:00+07:00", "ord": 4,
         "calls": 0, "source": "kiosk-1", "via": "appointment", "appointment": "LH-3F9A",
         "slot_at": f"{DAY}T08:30:00+07:00"},
    ],
    "counters": [
        {"id": "1", "status": "open", "ticket": None, "officer": "Nguyễn Thị Hoa", "last_served": "1001",
         "since": f"{DAY}T07:30:00+07:00"},
        {"id": "2", "status": "serving", "ticket": f"{DAY}-dat-dai-1002", "officer": "Trần Văn Minh",
         "last_served": None, "since": f"{DAY}T08:13:00+07:00"},
    ],
    "requests": [{"sender": "web", "request_id": "r-1", "at": f"{DAY}T01:02:00+00:00",
                  "reply": json.dumps({"ok": True, "request_id": "r-1", "ticket": {"number": "1001"}})}],
    "bookings": [{"code": "LH-3F9A", "field": "ho-tich", "day": DAY, "slot": "08:30", "phone": "0901234567",
                  "status": "checked_in", "created_at": "2026-11-20T09:00:00+07:00",
                  "updated_at": f"{DAY}T08:04:00+07:00", "ticket": f"{DAY}-ho-tich-2001"}],
}

DOSSIER_ROWS: dict[str, list[dict[str, Any]]] = {
    "dossiers": [
        {"code": "HS-0001", "procedure_code": "1.001", "procedure_name": "Cấp giấy chứng nhận quyền sử dụng đất",
         "field": "dat-dai", "received_at": f"{DAY}T08:10:00+07:00", "due_at": "2026-12-11",
         "source": "counter", "created_by": "canbo1", "created_at": f"{DAY}T08:10:00+07:00",
         "documents": json.dumps(["Đơn đăng ký", "Giấy tờ tùy thân"], ensure_ascii=False),
         "ticket": f"{DAY}-dat-dai-1001", "officer": "Nguyễn Thị Hoa", "counter": "1", "phone": "0912345678",
         "rating": json.dumps({"score": 3, "level": "Rất hài lòng", "ticket": f"{DAY}-dat-dai-1001",
                               "at": f"{DAY}T08:13:00+07:00"}, ensure_ascii=False),
         "version": 2, "finished_ts": None, "updated_ts": 1795750380.0},
        {"code": "HS-0002", "procedure_code": None, "procedure_name": "Đăng ký khai sinh", "field": "ho-tich",
         "received_at": "2026-11-20T09:00:00+07:00", "due_at": "2026-11-21", "source": "api",
         "created_by": "motcua", "created_at": "2026-11-20T09:00:00+07:00", "documents": "[]", "version": 3,
         "finished_ts": 1795600000.0, "updated_ts": 1795600000.0},
    ],
    "entries": [
        {"code": "HS-0001", "id": "e1", "status": "received", "at": f"{DAY}T08:10:00+07:00", "note": None,
         "department": None, "created_by": "canbo1", "applied_at": f"{DAY}T08:10:00+07:00",
         "applied_ts": 1795743000.0, "arrival": 1},
        {"code": "HS-0002", "id": "e1", "status": "received", "at": "2026-11-20T09:00:00+07:00",
         "created_by": "motcua", "applied_at": "2026-11-20T09:00:01+07:00", "applied_ts": 1795600001.0, "arrival": 1},
        {"code": "HS-0002", "id": "e2", "status": "returned", "at": "2026-11-21T10:00:00+07:00",
         "note": "Đã trả kết quả", "department": "Tư pháp", "created_by": "canbo2",
         "applied_at": "2026-11-21T10:00:00+07:00", "applied_ts": 1795600000.0, "arrival": 2},
    ],
    "pending_ratings": [{"code": "HS-0009", "held_ts": 1795743000.0,
                         "rating": json.dumps({"score": 1, "level": "Không hài lòng", "ticket": "x",
                                               "at": f"{DAY}T09:00:00+07:00"}, ensure_ascii=False)}],
}

NOTIFY_ROWS: dict[str, list[dict[str, Any]]] = {
    "messages": [
        {"id": 1, "key": f"c:{DAY}-dat-dai-1002:called", "day": DAY, "ticket": f"{DAY}-dat-dai-1002",
         "kind": "called", "route": "zalo", "fallback": json.dumps(["sms"]), "phone": "0912345678",
         "body": json.dumps({"number": "1002", "counter": "Quầy 2"}, ensure_ascii=False), "state": "delivered",
         "attempts": 1, "next_at": 1795743180.0, "created_at": 1795743180.0, "updated_at": 1795743190.0,
         "sent_at": 1795743181.0, "delivered_at": 1795743190.0, "sent_via": "zalo", "provider_id": "zns-77"},
        {"id": 2, "key": f"w:{DAY}-dat-dai-1001:finished:cong", "day": DAY, "ticket": f"{DAY}-dat-dai-1001",
         "kind": "finished", "route": "webhook:cong", "fallback": "[]", "phone": None,
         "body": json.dumps({"event": "finished"}), "state": "pending", "attempts": 2, "next_at": 1795743300.0,
         "created_at": 1795743120.0, "updated_at": 1795743200.0, "reason": "HTTP 503"},
    ],
    "zalo_tokens": [{"id": 1, "seed": "abc", "refresh_token": "rt-2", "access_token": "at-2",
                     "expires_at": 1795790000.0, "updated_at": 1795743000.0}],
}

# the report warehouse (a derived cache, but a file an office keeps): one rolled day, its facts,
# aggregates and a dossier; waits and services packed as unsigned 32-bit seconds (little-endian)
REPORT_ROWS: dict[str, list[dict[str, Any]]] = {
    "meta": [{"key": "settings", "value": json.dumps({"target_s": 600, "levels": 3})},
             {"key": "dossier_since", "value": f"{DAY}T17:00:00+07:00"}],
    "days": [{"day": DAY, "tickets": 2, "rolled_at": "2026-11-28T00:05:00+07:00"}],
    "tickets": [
        {"id": f"{DAY}-dat-dai-1001", "day": DAY, "number": "1001", "field": "dat-dai", "origin_field": "dat-dai",
         "counter": "1", "officer": "Nguyễn Thị Hoa", "hour": 8, "status": "done", "wait_s": 240, "service_s": 420,
         "within": 1, "rating": 3, "dossier": "HS-0001", "transferred": 0,
         "record": json.dumps({"id": f"{DAY}-dat-dai-1001", "number": "1001"})},
        {"id": f"{DAY}-dat-dai-1002", "day": DAY, "number": "1002", "field": "dat-dai", "origin_field": "dat-dai",
         "counter": "1", "officer": "Nguyễn Thị Hoa", "hour": 8, "status": "no_show", "wait_s": 900,
         "service_s": None, "within": 0, "rating": None, "dossier": None, "transferred": 0,
         "record": json.dumps({"id": f"{DAY}-dat-dai-1002", "number": "1002"})},
    ],
    "daily": [{"day": DAY, "officer": "Nguyễn Thị Hoa", "counter": "1", "field": "dat-dai", "hour": 8, "issued": 2,
               "served": 1, "no_show": 1, "transferred": 0, "within": 1, "ticket_units": 0,
               "ticket_dissatisfied": 0, "waits": (240).to_bytes(4, "little") + (900).to_bytes(4, "little"),
               "services": (420).to_bytes(4, "little")}],
    "daily_ratings": [{"day": DAY, "officer": "Nguyễn Thị Hoa", "counter": "1", "field": "dat-dai", "hour": 8,
                       "level": 3, "n": 1}],
    "dossiers": [{"code": "HS-0001", "procedure": "1.001", "procedure_name": "Cấp giấy chứng nhận quyền sử dụng đất",
                  "field": "dat-dai", "officer": "Nguyễn Thị Hoa", "counter": "1", "ticket": f"{DAY}-dat-dai-1001",
                  "received_day": DAY, "received_hour": 8, "due": "2026-12-04", "done_day": None,
                  "status": "received", "rating": 3, "version": 2, "view": json.dumps({"code": "HS-0001"})}],
}

# store -> (migration list, rows, statements a file of that store also holds outside the list)
STORES: dict[str, tuple[Sequence[str], dict[str, list[dict[str, Any]]], tuple[str, ...]]] = {
    "core": (CORE, CORE_ROWS, ()),
    "dossiers": (DOSSIERS, DOSSIER_ROWS, ()),
    # version 0: the outbox before it counted versions (the schema, no schema_version table)
    "notify": (NOTIFY, NOTIFY_ROWS, (ZALO_TOKENS,)),
    "reports": (REPORTS, REPORT_ROWS, ()),
}
UNVERSIONED = {"notify"}  # stores whose first versions had no schema_version table


def build(migrations: Sequence[str], version: int, rows: dict[str, list[dict[str, Any]]],
          extra: tuple[str, ...], *, versioned: bool) -> str:
    # an unversioned store's version 0 is its first schema without the schema_version table
    ran = migrations[:version] if versioned else migrations[:1]
    with contextlib.closing(sqlite3.connect(":memory:", isolation_level=None)) as db:
        for sql in ran:
            for stmt in statements(sql):
                db.execute(stmt)
        for sql in extra:
            db.execute(sql)
        if versioned:
            db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        for table, items in rows.items():
            columns = {r[1] for r in db.execute(f'PRAGMA table_info("{table}")')}
            if not columns:
                continue  # not there yet at this version
            for item in items:
                present = [c for c in item if c in columns]
                db.execute(f'INSERT INTO "{table}" ({", ".join(present)}) VALUES ({", ".join("?" * len(present))})',
                           [item[c] for c in present])
        return "\n".join(db.iterdump()) + "\n"


# The province's PostgreSQL (province/store.py): its version 1 as SQL text, loaded by the test into
# a real PostgreSQL (there is no server here to dump from; the rows are what version 1 wrote).
PROVINCE_V1_ROWS: dict[str, list[dict[str, Any]]] = {
    "sites": [{"site": "xa-hoa-binh", "name": "Bộ phận Một cửa UBND xã Hòa Bình", "district": "Huyện Thanh Hà",
               "online": True, "status_at": f"{DAY}T08:00:00+07:00", "last_seq": 3}],
    "events": [{"site": "xa-hoa-binh", "seq": 3, "topic": "event/issued", "kind": "issued",
                "body": {"kind": "issued", "seq": 3, "ticket": {"id": "t1", "number": "1001"}},
                "at": f"{DAY}T08:01:00+07:00", "received_at": f"{DAY}T08:01:01+07:00"}],
    "tickets": [{"site": "xa-hoa-binh", "id": "t1", "number": "1001", "field": "dat-dai", "status": "waiting",
                 "priority": False, "via": "kiosk", "calls": 0, "issued_at": f"{DAY}T08:01:00+07:00",
                 "record": {"id": "t1", "number": "1001"}, "seq": 3}],
    "ratings": [{"site": "xa-hoa-binh", "ticket": "t0", "rating": 2, "field": "dat-dai", "counter": "1",
                 "at": f"{DAY}T07:50:00+07:00", "seq": 2}],
    "state": [{"site": "xa-hoa-binh", "topic": "state/queue/dat-dai", "body": {"waiting": 1}, "seq": 3}],
}


def _pg_literal(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, dict | list):
        return "'" + json.dumps(v, ensure_ascii=False).replace("'", "''") + "'::jsonb"
    return "'" + str(v).replace("'", "''") + "'"


def build_province_v1() -> str:
    from province.store import MIGRATIONS as PROVINCE
    out = [PROVINCE[0].strip(),
           "CREATE TABLE schema_migrations (version integer PRIMARY KEY, "
           "applied_at timestamptz NOT NULL DEFAULT now());",
           "INSERT INTO schema_migrations (version) VALUES (1);"]
    for table, items in PROVINCE_V1_ROWS.items():
        for item in items:
            values = ", ".join(map(_pg_literal, item.values()))
            out.append(f"INSERT INTO {table} ({', '.join(item)}) VALUES ({values});")
    return "\n".join(out) + "\n"


def earlier_versions(store: str, migrations: Sequence[str]) -> range:
    return range(0 if store in UNVERSIONED else 1, len(migrations))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--out", type=Path, default=ROOT)
    args = p.parse_args(argv)
    for store, (migrations, rows, extra) in STORES.items():
        for version in earlier_versions(store, migrations):
            target = args.out / store / f"v{version}.sql"
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(build(migrations, version, rows, extra, versioned=version > 0), encoding="utf-8")
            print(f"đã viết {target}")
    target = args.out / "province" / "v1.sql"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(build_province_v1(), encoding="utf-8")
        print(f"đã viết {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
