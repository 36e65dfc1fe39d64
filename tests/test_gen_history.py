"""scripts/gen_history.py: the simulated days themselves (pure), and the history loaded by a real
core process from the database it wrote, queried like the web's warehouse does; idempotent; never
written under a running core or dossier service."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dossiers.settings import load_dossier_settings
from dossiers.store import DossierStore
from qms_common.config import load_site_config
from qms_common.devbroker import Broker
from qms_common.protocol import TicketStatus, Topics
from scripts.gen_history import (
    Refused,
    Summary,
    generate,
    office_of,
    open_days,
    roster,
    simulate_day,
)
from tests.support.core import CoreProcess
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gen_history.py"
LEVELS = ["Rất không hài lòng", "Không hài lòng", "Hài lòng", "Rất hài lòng"]
HOLIDAY = date(2026, 3, 10)   # a Tuesday
END = date(2026, 3, 13)       # a Friday
NOW = datetime(2026, 3, 20, 3, 0, tzinfo=UTC)
EXTRA = f"""
[rating]
levels = {LEVELS!r}

[dossiers]
closed_weekdays = ["sat", "sun"]
holidays = ["{HOLIDAY}"]

[[accounts]]
username = "hoa"
name = "Nguyễn Thị Hoa"
role = "officer"
counters = ["2", "3"]
password_hash = "not-used-here"
"""


def site_file(tmp: Path, url: str) -> Path:
    path, _ = write_site(tmp, url, extra=EXTRA)
    return path


def days_of(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# ---------------------------------------------------------------- the simulation (pure)

def test_the_days_are_the_open_ones(tmp_path: Path) -> None:
    site = load_site_config(site_file(tmp_path, "mqtt://127.0.0.1:1"))
    cal = load_dossier_settings(site).calendar
    days = open_days(cal, END, 8)
    assert days == [date(2026, 3, 3), date(2026, 3, 4), date(2026, 3, 5), date(2026, 3, 6), date(2026, 3, 9),
                    date(2026, 3, 11), date(2026, 3, 12), date(2026, 3, 13)]


def test_a_day_as_the_core_would_have_left_it(tmp_path: Path) -> None:
    site = load_site_config(site_file(tmp_path, "mqtt://127.0.0.1:1"))
    office = office_of(site, load_dossier_settings(site).calendar, ROOT / "examples" / "procedures.json")
    day = simulate_day(office, date(2026, 3, 9), 400, 7, 1000, NOW)
    again = simulate_day(office, date(2026, 3, 9), 400, 7, 1000, NOW)
    assert day == again  # deterministic for (seed, day): a rerun writes the same day
    tickets = day.tickets
    assert 250 < len(tickets) < 600
    assert [t.order for t in tickets] == list(range(1000, 1000 + len(tickets)))
    # numbering per field from its first number, in issue order; C001…C003 caps chung-thuc
    for fid in {t.origin_field for t in tickets}:
        f = site.fields_by_id[fid]
        mine = [t for t in tickets if t.origin_field == fid]
        assert [t.value for t in mine] == list(range(f.first, f.first + len(mine)))
        assert all(t.id == f"20260309-{fid}-{f.format_number(t.value).lower()}" for t in mine)
    assert sum(t.origin_field == "chung-thuc" for t in tickets) == 3
    tz = site.tz
    for t in tickets:
        assert t.status in (TicketStatus.DONE, TicketStatus.EXPIRED) and t.day == "2026-03-09"
        local = t.issued_at.astimezone(tz)
        assert local.date() == date(2026, 3, 9) and 7 <= local.hour < 17
        if t.status is TicketStatus.DONE:
            assert t.called_at and t.finished_at and t.issued_at <= t.called_at < t.finished_at
            assert t.finished_at.astimezone(tz).hour < 17 and t.counter and t.officer
            assert t.field in site.counter(t.counter).fields  # type: ignore[union-attr]
        else:
            assert t.finished_at is None and t.rating is None and t.dossier is None
        if t.rating is not None:
            assert t.status is TicketStatus.DONE and 1 <= t.rating <= len(LEVELS)
            assert t.rated_at and 0 < (t.rated_at - t.finished_at).total_seconds() <= site.rating_window_s
    # a morning peak: more numbers taken 8:00-10:00 than 14:00-16:00
    hours = Counter(t.issued_at.astimezone(tz).hour for t in tickets)
    assert hours[8] + hours[9] > hours[14] + hours[15] > 0
    done = [t for t in tickets if t.status is TicketStatus.DONE]
    no_show = [t for t in tickets if t.status is TicketStatus.EXPIRED and t.called_at is not None]
    assert 0.01 < len(no_show) / len(tickets) < 0.12
    assert any(t.origin_field != t.field for t in done)  # transferred, served in the other field
    assert any(t.priority for t in tickets)
    rated = Counter(t.rating for t in done if t.rating is not None)
    assert rated[4] > rated[3] > rated[1] > 0 and rated[4] + rated[3] > 0.8 * sum(rated.values())
    # dossiers: ~60% of the served, each on its ticket, its rating the ticket's
    by_code = {d.code: d for d in day.dossiers}
    assert 0.45 < len(by_code) / len(done) < 0.75
    for t in done:
        if t.dossier is not None:
            d = by_code.pop(t.dossier)
            assert (d.ticket, d.officer, d.counter, d.field) == (t.id, t.officer, t.counter, t.field)
            assert t.called_at < d.received_at < t.finished_at  # type: ignore[operator]
            assert d.procedure_code is not None and d.due_at >= date(2026, 3, 9)
            rating = (d.rating.score, d.rating.level) if d.rating else None
            assert rating == ((t.rating, LEVELS[t.rating - 1]) if t.rating else None)
            assert all(e.at <= NOW for e in d.entries)
    assert by_code == {}


def test_officers_keep_to_their_counters_and_some_move_mid_month(tmp_path: Path) -> None:
    site = load_site_config(site_file(tmp_path, "mqtt://127.0.0.1:1"))
    office = office_of(site, load_dossier_settings(site).calendar, None)
    assert office.base["2"].name == "Nguyễn Thị Hoa"  # the account, on the first counter it may use
    moved = 0
    for month in range(1, 13):
        early, late = roster(office, date(2026, month, 5), 3), roster(office, date(2026, month, 20), 3)
        for day_roster in (early, late):
            assert all(o.may_use(c) for c, o in day_roster.items())
        moved += any(early[c] != late[c] for c in early if office.spare not in (early[c], late[c]))
    assert moved >= 3
    # no catalogue: each field still has a procedure, named after it
    assert office.procedures["dat-dai"][0].name == "Thủ tục lĩnh vực Đất đai"


# ---------------------------------------------------------------- in the real core

async def all_records(probe: Probe, topics: Topics, **query: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = None
    while True:
        body: dict[str, Any] = {"request_id": new_id(), "query": "tickets", "limit": 1000, **query}
        if after is not None:
            body["after"] = after
        reply = await probe.request(topics.cmd_query, body, timeout=10)
        assert reply["ok"], reply
        out += reply["tickets"]
        after = reply["next"]
        if after is None:
            return out


def run_script(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--config", str(config), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, check=False)


async def test_the_history_loads_in_the_core_and_is_written_once(broker: Broker, tmp_path: Path) -> None:
    config = site_file(tmp_path, broker.url)
    site = load_site_config(config)
    topics = Topics(site.id)
    summary = await generate(config, days=10, per_day=60, seed=5, end=END, now=NOW)
    assert isinstance(summary, Summary) and summary.skipped == []
    written = sorted(summary.tickets_per_day)
    assert written[0] == "2026-02-27" and written[-1] == END.isoformat() and len(written) == 10
    assert summary.tickets == sum(summary.tickets_per_day.values()) > 300 and summary.dossiers > 120

    core = CoreProcess(config, tmp_path / "core.log").start()
    try:
        async with Probe(broker.url) as probe:
            await probe.subscribe(topics.status_core)
            await probe.wait_for(lambda m: m.topic == topics.status_core and m.text == "online", timeout=20)
            records = await all_records(probe, topics, **{"from": "2026-02-01", "to": "2026-03-31"})
            one_day = await all_records(probe, topics, **{"from": "2026-03-11", "to": "2026-03-11"})
            # under the running core: refused by its presence on the broker, and by the database lock
            refused = run_script(config, "--days", "12", "--per-day", "60", "--end", END.isoformat())
            assert refused.returncode == 2 and "đang chạy" in refused.stderr, refused.stderr
            with pytest.raises(Refused, match="đang được mở"):
                await generate(config, days=12, per_day=60, end=END, now=NOW, check_broker=False)
            assert len(await all_records(probe, topics, **{"from": "2026-02-01"})) == len(records)
    finally:
        assert core.stop() == 0, core.log()

    per_day = Counter(r["day"] for r in records)
    assert dict(per_day) == summary.tickets_per_day
    assert [r["day"] for r in one_day] == ["2026-03-11"] * summary.tickets_per_day["2026-03-11"]
    closed = {d.isoformat() for d in days_of(date(2026, 2, 1), date(2026, 3, 31))
              if d.weekday() >= 5 or d == HOLIDAY}
    assert not closed & set(per_day) and HOLIDAY.isoformat() not in per_day
    assert all(r["status"] == "done" for r in records if r["rating"] is not None)
    assert {r["status"] for r in records} == {"done", "expired"}
    tagged = {r["dossier"]: r for r in records if r["dossier"]}
    assert len(tagged) == summary.dossiers
    dstore = await DossierStore.open(load_dossier_settings(site).database)
    try:
        for code, r in tagged.items():
            d = await dstore.get(code)
            assert d is not None and d.ticket == r["id"] and d.officer == r["officer"]
            assert (d.rating.score if d.rating else None) == r["rating"]
    finally:
        await dstore.close()

    # again: every day is there already; two days more back: not before the newest day (the issue
    # order follows the days); two days more forward: only those are added
    again = run_script(config, "--days", "10", "--per-day", "60", "--seed", "5", "--end", END.isoformat())
    assert again.returncode == 0 and "Đã tạo 0 ngày" in again.stdout and "bỏ qua 10 ngày" in again.stdout
    back = run_script(config, "--days", "12", "--per-day", "60", "--seed", "5", "--end", END.isoformat())
    assert back.returncode == 0 and "Đã tạo 0 ngày" in back.stdout
    assert f"Không tạo 2 ngày trước {END}" in back.stdout, back.stdout
    more = await generate(config, days=12, per_day=60, seed=5, end=date(2026, 3, 17), now=NOW, check_broker=False)
    assert sorted(more.tickets_per_day) == ["2026-03-16", "2026-03-17"] and len(more.skipped) == 10
    assert more.older == []
    with sqlite3.connect(site.storage_path) as db:
        assert db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == summary.tickets + more.tickets
        assert db.execute("SELECT COUNT(DISTINCT ord) FROM tickets").fetchone()[0] == summary.tickets + more.tickets
        # the issue order follows the days
        days = [r[0] for r in db.execute("SELECT day FROM tickets ORDER BY ord")]
        assert days == sorted(days)


async def test_refused_while_the_dossier_service_has_its_database(tmp_path: Path) -> None:
    config = site_file(tmp_path, "mqtt://127.0.0.1:1")
    site = load_site_config(config)
    held = sqlite3.connect(load_dossier_settings(site).database)
    try:
        held.execute("PRAGMA journal_mode = WAL")
        held.execute("CREATE TABLE IF NOT EXISTS x (y)")
        with pytest.raises(Refused, match="dịch vụ hồ sơ"):
            await generate(config, days=3, per_day=20, end=END, now=NOW)
    finally:
        held.close()
    with sqlite3.connect(site.storage_path) as db:
        assert db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 0


def test_bad_input_is_refused_with_a_reason(tmp_path: Path) -> None:
    config = site_file(tmp_path, "mqtt://127.0.0.1:1")
    future = run_script(config, "--days", "3", "--end", (date.today() + timedelta(days=3)).isoformat())
    assert future.returncode == 2 and "chỉ tạo được những ngày đã qua" in future.stderr
    bad_day = run_script(config, "--days", "3", "--end", "13/03/2026")
    assert bad_day.returncode == 2 and "không phải ngày dạng YYYY-MM-DD" in bad_day.stderr
    zero = run_script(config, "--days", "0")
    assert zero.returncode == 2 and "số nguyên dương" in zero.stderr
