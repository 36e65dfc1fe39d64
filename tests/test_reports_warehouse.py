"""The report warehouse over a real broker, core and dossier service: history (the hand-computed
month of tests/support/report_fixture.py, written into the core's database) is rolled up once and
agrees with the fixture; today's report agrees with the live dashboard's statistics; a restart
keeps the warehouse and rolls nothing again; a rollup killed half-way leaves no partial day."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openpyxl import load_workbook

from display_server.base import RECORDS
from display_server.reports import REPORTS, Reports
from display_server.reports import figures as fig
from display_server.reports.figures import Dimension, Figures, Measures
from display_server.reports.layout import SHEET_NAMES, Kind, columns
from display_server.reports.periods import period_of
from display_server.reports.service import is_dossier_view
from display_server.reports.stats import compute, service_s, wait_s
from display_server.reports.warehouse import Settings, Warehouse
from display_server.reports.xlsx import HEADER_ROW
from dossiers.model import Rating
from qms_common.config import load_site_config
from qms_common.devbroker import Broker, free_port
from qms_common.protocol import Topics
from queue_core.clock import ManualClock
from queue_core.store import Store
from tests.support import report_fixture as fx
from tests.support.core import running_core
from tests.support.dossiers import DossierClient, running_dossiers
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site
from tests.support.web import WebServer, accounts_extra, login, running_web, web_extra

ROOT = Path(__file__).resolve().parents[1]

FIELDS = """
[[fields]]
id = "ht"
name = "Hộ tịch"
first = 1
last = 999
prefix = "H"

[[fields]]
id = "dd"
name = "Đất đai"
first = 1
last = 999
prefix = "D"
"""

COUNTERS = """
[[counters]]
id = "1"
name = "Quầy 1"
fields = ["ht", "dd"]

[[counters]]
id = "2"
name = "Quầy 2"
fields = ["ht", "dd"]

[[counters]]
id = "3"
name = "Quầy 3"
fields = ["ht", "dd"]
"""


@dataclass
class Office:
    config: Path
    topics: Topics
    probe: Probe


def _write_history(db: Path) -> None:
    """The fixture's tickets as the core stores them, before the core starts."""
    conn = sqlite3.connect(db)
    for i, r in enumerate(fx.RECORDS, start=1):
        conn.execute(
            "INSERT INTO tickets (id, day, number, value, origin_field, field, priority, status, issued_at, ord, "
            "called_at, finished_at, counter, officer, calls, source, rating, rated_at, dossier) "
            "VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, 'kiosk', ?, ?, ?)",
            (r["id"], r["day"], r["number"], i, r["origin_field"], r["field"], r["status"], r["issued_at"], i,
             r["called_at"], r["finished_at"], r["counter"], r["officer"], r["calls"], r["rating"], r["rated_at"],
             r["dossier"]))
    conn.commit()
    conn.close()


async def _write_dossiers(office: Office, service: Any) -> None:
    """The fixture's dossiers through the dossier service's own commands (and its store for the
    rating, which the core's event/rated would bring)."""
    web = DossierClient(office.probe, office.topics)
    for v in fx.DOSSIERS:
        created = await web.create(v["code"], procedure=v["procedure"], field=v["field"], received_at=v["received_at"],
                                   due_at=v["due_at"], ticket=v["ticket"], officer=v["officer"], counter=v["counter"])
        assert created["ok"], created
        if v["status"] != "received":
            at = v["done_at"] or "2026-03-01T08:00:00+07:00"
            assert (await web.event(v["code"], "e1", v["status"], at))["ok"]
        if v["rating"]:
            d = await service.store.get(v["code"])
            rating = Rating(v["rating"]["score"], v["rating"]["level"], v["ticket"],
                            datetime.fromisoformat(v["received_at"]))
            await service.store.update(replace(d, rating=rating, version=d.version + 1,
                                               updated_ts=datetime.now().timestamp()))


@pytest.fixture
async def office(broker: Broker, tmp_path: Path) -> AsyncIterator[Office]:
    more = "[reports]\ntarget_wait_min = 10\n" + accounts_extra()
    config, site_id = write_site(tmp_path, broker.url, fields=FIELDS, counters=COUNTERS,
                                 extra=web_extra(tmp_path, free_port(), more=more))
    site = load_site_config(config)
    store = await Store.open(site.storage_path)
    await store.close()
    _write_history(site.storage_path)
    topics = Topics(site_id)
    async with Probe(broker.url) as probe:
        await probe.subscribe(topics.event_all)
        yield Office(config, topics, probe)


async def _wait(reports: Reports, predicate: Callable[[], bool], timeout: float = 30) -> None:
    """Until a feeding pass leaves the warehouse so."""
    async with asyncio.timeout(timeout):
        async with reports.updated:
            await reports.updated.wait_for(predicate)


def _check(figures: Figures | None, expected: dict[str, Any]) -> None:
    assert figures is not None
    for name, value in expected.items():
        got = getattr(figures, name)
        assert got == (pytest.approx(value) if isinstance(value, float) else value), name


def _yesterday(web: WebServer) -> str:
    today = date.fromisoformat(web.follower.state.site["day"])
    return date.fromordinal(today.toordinal() - 1).isoformat()


async def test_history_is_rolled_up_once_and_agrees_with_the_fixture(office: Office) -> None:
    async with running_dossiers(office.config) as dossiers:
        await _write_dossiers(office, dossiers)
        async with running_core(office.config), running_web(office.config) as web:
            reports = web.app[REPORTS]
            await _wait(reports, lambda: reports.passes >= 1 and reports.pending_days == 0)
            assert reports.rolled_to == _yesterday(web) and reports.status()["error"] is None
            counts = await reports._store().counts()
            days = date.fromisoformat(_yesterday(web)).toordinal() - date(2026, 3, 2).toordinal() + 1
            assert counts["days"] == days == reports.rolled_days
            assert (counts["tickets"], counts["dossiers"]) == (8, 4)

            march = period_of("month", date(2026, 3, 1))
            report = await reports.report(march, Dimension.OFFICER)
            _check(report.total.figures, fx.MARCH_TOTAL)
            rows = {r.key: r for r in report.rows}
            assert set(rows) == set(fx.MARCH_BY_OFFICER)
            for key, expected in fx.MARCH_BY_OFFICER.items():
                _check(rows[key].figures, expected)
            _check(rows["Bình"].previous, fx.FEBRUARY_BY_OFFICER["Bình"])
            _check(report.total.previous, fx.FEBRUARY_TOTAL)
            assert report.pending_days == 0 and any("mỗi vé một lượt" in n for n in report.notes)
            assert [d.isoformat() for d, f in report.trend if f.issued] == ["2026-03-02", "2026-03-20", "2026-03-31"]
            for dimension, expected_rows in ((Dimension.COUNTER, fx.MARCH_BY_COUNTER),
                                             (Dimension.FIELD, fx.MARCH_BY_FIELD),
                                             (Dimension.PROCEDURE, fx.MARCH_BY_PROCEDURE),
                                             (Dimension.HOUR, fx.MARCH_BY_HOUR),
                                             (Dimension.WEEKDAY, fx.MARCH_BY_WEEKDAY)):
                got = {r.key: r for r in (await reports.report(march, dimension)).rows}
                for key, expected in expected_rows.items():
                    _check(got[key].figures, expected)
            procedures = {r.key: r.label for r in (await reports.report(march, Dimension.PROCEDURE)).rows}
            assert procedures["P2"] == "Chuyển nhượng quyền sử dụng đất"
            april = await reports.report(period_of("month", date(2026, 4, 1)), Dimension.FIELD)
            assert april.total.figures.issued == fx.APRIL_TOTAL["issued"]

            # the console's own figures: An's alone
            own = await reports.report(march, Dimension.OFFICER, officer="An")
            assert [r.key for r in own.rows] == ["An"]
            _check(own.total.figures, fx.MARCH_BY_OFFICER["An"])

            # drill-down: the tickets (or dossiers) behind a figure
            drilled = await reports.drill(march, Dimension.FIELD, "dd", "issued")
            assert [t["id"] for t in drilled] == ["T5", "T6", "T7"]
            assert [t["id"] for t in await reports.drill(march, Dimension.OFFICER, "An", "within_target")] == [
                "T1", "T4"]
            assert [t["id"] for t in await reports.drill(march, Dimension.FIELD, "*", "served")] == [
                "T1", "T2", "T4", "T5", "T6"]
            assert [d["code"] for d in await reports.drill(march, Dimension.HOUR, "*", "dossiers_received")] == [
                "HS-1", "HS-2", "HS-4"]
            overdue = await reports.drill(march, Dimension.OFFICER, "Bình", "dossiers_overdue")
            assert [d["code"] for d in overdue] == ["HS-3"]
            with pytest.raises(ValueError, match="Chỉ số không có"):
                await reports.drill(march, Dimension.FIELD, "dd", "bogus")

            # the same dossier heard live (event/dossier) updates its fact
            heard = reports.dossier_events
            await DossierClient(office.probe, office.topics).event("HS-4", "e9", "done", "2026-04-08T09:00:00+07:00")
            await _wait(reports, lambda: reports.dossier_events > heard)
            april = await reports.report(period_of("month", date(2026, 4, 1)), Dimension.FIELD)
            assert (april.total.figures.dossiers_on_time, april.total.figures.dossiers_overdue) == (1, 0)


def _from_drill(reports: Reports, drilled: Callable[[str], list[dict[str, Any]]], figure: str) -> Any:
    """A figure worked out again from nothing but the drill-downs (each a list of records)."""
    if figure.startswith("wait_") or figure.startswith("service_"):
        of = wait_s if figure.startswith("wait_") else service_s
        seconds = [s for r in drilled(figure) if (s := of(r)) is not None]
        m = Measures(reports.levels, waits=seconds, services=seconds).figures()
        return getattr(m, figure) / 60 if getattr(m, figure) is not None else None
    if figure == "within_target":
        waited = len(drilled("wait_mean_s"))
        return len(drilled("within_target")) / waited * 100 if waited else None
    if figure == "satisfaction_pct":
        units = len(drilled("units"))
        return (units - len(drilled("dissatisfied"))) / units * 100 if units else None
    return len(drilled(figure))


async def test_every_figure_drills_down_to_what_it_counts(office: Office) -> None:
    """Every number of every row of every dimension of the month, worked out again from its
    drill-down alone: the counts are the rows' counts, the waits and the satisfaction come out of
    the tickets and dossiers shown."""
    async with running_dossiers(office.config) as dossiers:
        await _write_dossiers(office, dossiers)
        async with running_core(office.config), running_web(office.config) as web:
            reports = web.app[REPORTS]
            await _wait(reports, lambda: reports.passes >= 1 and reports.pending_days == 0)
            march = period_of("month", date(2026, 3, 1))
            cols = columns(fx.LEVELS, 10)
            checked = 0
            for dimension in Dimension:
                report = await reports.report(march, dimension)
                for row in [*report.rows, report.total]:
                    key = fig.ALL_KEY if row is report.total else row.key
                    cache = {f: await reports.drill(march, dimension, key, f) for f in {c.figure for c in cols}}
                    for c in cols:
                        want = c.value(row.figures)
                        got = _from_drill(reports, cache.__getitem__, c.figure)
                        where = (str(dimension), row.label, c.figure)
                        if want is None:
                            assert got in (None, 0), where
                        else:
                            assert got == (want if c.kind is Kind.COUNT else pytest.approx(want)), where
                        checked += 1
            assert checked > 300
            # the 766 figures show both kinds of unit: the served tickets without a dossier, the dossiers
            units = await reports.drill(march, Dimension.OFFICER, fig.ALL_KEY, "units")
            assert sorted(r["code"] for r in units if is_dossier_view(r)) == ["HS-1", "HS-2", "HS-4"]
            assert sorted(r["id"] for r in units if not is_dossier_view(r)) == ["T1", "T4", "T5", "T6"]
            unhappy = await reports.drill(march, Dimension.OFFICER, fig.ALL_KEY, "dissatisfied")
            assert [r.get("id") or r.get("code") for r in unhappy] == ["T6", "HS-1"]
            # a rating level is chosen before the limit, not after
            assert [r["id"] for r in await reports.drill(march, Dimension.OFFICER, fig.ALL_KEY, "ratings.2",
                                                         limit=1)] == ["T5"]
            for bad in ("ratings.0", "ratings.4", "ratings.x"):
                with pytest.raises(ValueError, match="Chỉ số không có"):
                    await reports.drill(march, Dimension.OFFICER, fig.ALL_KEY, bad)

            # the page: both tables, the row named as the report names it
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                assert (await login(http, web.url, "lanhdao")).status == 303
                base = f"{web.url}/reports/drill?period=month&date=2026-03-01"
                async with http.get(base + "&by=officer&key=*&figure=dissatisfied") as resp:
                    page = await resp.text()
                assert resp.status == 200, page
                assert "1 lượt, 1 hồ sơ." in page and ">T6<" in page and ">HS-1<" in page
                async with http.get(base + "&by=hour&key=8&figure=served") as resp:
                    page = await resp.text()
                assert resp.status == 200 and "Giờ trong ngày: 08:00–09:00" in page and "2 lượt." in page
                async with http.get(base + "&by=hour&key=x&figure=served") as resp:
                    assert resp.status == 200 and "0 lượt." in await resp.text()


def _sheet_rows(ws: Any) -> dict[str, dict[str, Any]]:
    header = [c.value for c in ws[HEADER_ROW]]
    return {str(r[0]): dict(zip(header, r, strict=False))
            for r in ws.iter_rows(min_row=HEADER_ROW + 1, values_only=True) if r[0] is not None}


async def test_the_xlsx_of_the_hand_computed_month(office: Office) -> None:
    """GET /reports/export.xlsx of March as a script fetches it, opened with openpyxl: every cell of
    every row of the fixture's expectations, on the sheet of its dimension."""
    async with running_dossiers(office.config) as dossiers:
        await _write_dossiers(office, dossiers)
        async with running_core(office.config), running_web(office.config) as web:
            reports = web.app[REPORTS]
            await _wait(reports, lambda: reports.passes >= 1 and reports.pending_days == 0)
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                assert (await login(http, web.url, "giamsat")).status == 303
                async with http.get(f"{web.url}/reports/export.xlsx?from=2026-03-01&to=2026-03-31&by=officer") as resp:
                    assert resp.status == 200, await resp.text()
                    data = await resp.read()
            names = {d: await reports.names(d) for d in Dimension}
    wb = load_workbook(io.BytesIO(data))
    by_officer = _sheet_rows(wb.worksheets[0])
    # the contract's columns, by hand: An served 4, waited 804 s on average, 1 of 5 units dissatisfied
    an = by_officer["An"]
    assert (an["Đã phục vụ"], an["Chờ trung bình (phút)"], an["Rất hài lòng"], an["Hài lòng"],
            an["Không hài lòng"], an["Tỷ lệ hài lòng (%)"]) == (4, 13.4, 1, 1, 1, 80.0)
    assert by_officer["Tổng cộng"]["Tỷ lệ hài lòng (%)"] == 71.4   # (7 − 2) ÷ 7
    assert by_officer["Tổng cộng"]["Chờ trung bình (phút)"] == 11.8  # 710 s
    cols = columns(fx.LEVELS, 10)
    expected = {Dimension.OFFICER: {**fx.MARCH_BY_OFFICER, fig.ALL_KEY: fx.MARCH_TOTAL},
                Dimension.COUNTER: fx.MARCH_BY_COUNTER, Dimension.FIELD: fx.MARCH_BY_FIELD,
                Dimension.PROCEDURE: fx.MARCH_BY_PROCEDURE, Dimension.HOUR: fx.MARCH_BY_HOUR,
                Dimension.WEEKDAY: fx.MARCH_BY_WEEKDAY}
    checked = 0
    for dimension, rows in expected.items():
        sheet = _sheet_rows(wb[SHEET_NAMES[str(dimension)]])
        for key, want in rows.items():
            label = "Tổng cộng" if key == fig.ALL_KEY else fig.label(dimension, key, names[dimension])
            got = sheet[label]
            for c in cols:
                name = c.figure.split(".")[0]
                if name not in want:
                    continue
                value = want[name]
                if c.figure.startswith("ratings."):
                    value = value[int(c.figure.split(".")[1]) - 1]
                elif value is not None and c.kind is Kind.MINUTES:
                    value = round(value / 60, 1)
                elif value is not None and c.figure == "within_target":
                    value = round(value * 100, 1)
                elif value is not None and c.kind is Kind.PERCENT:
                    value = round(value, 1)
                assert got[c.header] == value, (str(dimension), label, c.header)
                checked += 1
    assert checked > 150


async def test_a_restart_keeps_the_warehouse_and_rolls_nothing_again(office: Office) -> None:
    async with running_dossiers(office.config), running_core(office.config):
        async with running_web(office.config) as web:
            reports = web.app[REPORTS]
            await _wait(reports, lambda: reports.passes >= 1 and reports.pending_days == 0)
            first = reports.rolled_days
            assert first > 200
            database = reports.settings.database
        assert database.exists()
        async with running_web(office.config) as web:
            reports = web.app[REPORTS]
            await _wait(reports, lambda: reports.passes >= 1)
            assert reports.rolled_days == 0 and reports.pending_days == 0
            assert (await reports._store().counts())["days"] == first
            report = await reports.report(period_of("month", date(2026, 3, 1)), Dimension.FIELD)
            assert report.total.figures.issued == fx.MARCH_TOTAL["issued"]


async def test_a_report_over_today_agrees_with_the_live_dashboard(office: Office) -> None:
    async with running_dossiers(office.config), running_core(office.config), running_web(office.config) as web:
        reports = web.app[REPORTS]
        await _wait(reports, lambda: reports.passes >= 1)
        t, probe = office.topics, office.probe

        async def act(counter: str, action: str, **kw: Any) -> dict[str, Any]:
            reply = await probe.request(t.cmd_counter(counter), {"request_id": new_id(), "action": action, **kw})
            assert reply["ok"], reply
            return reply

        for field in ("ht", "ht", "dd", "dd", "ht"):
            assert (await probe.request(t.cmd_ticket, {"request_id": new_id(), "field": field}))["ok"]
        await act("1", "open", officer="An")
        await act("2", "open", officer="Bình")
        await act("1", "call_next")
        await act("1", "finish")
        assert (await probe.request(t.cmd_rating, {"request_id": new_id(), "counter": "1", "score": 3}))["ok"]
        await act("2", "call_next")
        await act("2", "skip")
        await act("2", "call_next")
        await act("2", "finish")
        assert (await probe.request(t.cmd_rating, {"request_id": new_id(), "counter": "2", "score": 1}))["ok"]

        today = date.fromisoformat(web.follower.state.site["day"])
        records = web.app[RECORDS]
        with records.watch():
            async with asyncio.timeout(10):
                with web.follower.hub.subscribe() as sub:
                    while not (records.day == today.isoformat()
                               and sum(1 for r in records.records if r.get("rating")) == 2):
                        await sub.get()
            site = load_site_config(office.config)
            live = compute(records.records, levels=3, tz=site.tz)
            report = await reports.report(period_of("day", today), Dimension.OFFICER)
        total = report.total.figures
        assert (total.issued, total.served, total.no_show) == (5, 2, 1)
        assert (total.issued, total.served, total.no_show) == (live["total"]["issued"], live["total"]["served"],
                                                             live["total"]["no_show"])
        assert list(total.ratings) == live["total"]["ratings"]
        assert round(total.wait_mean_s or 0) == live["total"]["avg_wait_s"]
        assert round(total.service_mean_s or 0) == live["total"]["avg_service_s"]
        officers = {o["officer"]: o for o in live["officers"]}
        for row in report.rows:
            if row.key:
                assert row.figures.served == officers[row.key]["served"]
                assert list(row.figures.ratings) == officers[row.key]["ratings"]
                assert round(row.figures.wait_mean_s or 0) == officers[row.key]["avg_wait_s"]
        by_field = {r.key: r.figures for r in (await reports.report(period_of("day", today), Dimension.FIELD)).rows}
        for field, stats in live["fields"].items():
            assert (by_field[field].issued, by_field[field].served) == (stats["issued"], stats["served"])
        assert report.pending_days == 0


KILLER = """
import asyncio, json, sys, time
from datetime import datetime
from pathlib import Path
from display_server.reports import figures as fig
from display_server.reports.warehouse import Settings, Warehouse

async def main() -> None:
    w = await Warehouse.open(Path(sys.argv[1]), Settings(600, 3))
    def trace(sql: str) -> None:
        if sql.startswith("INSERT INTO daily"):
            print("half-way", flush=True)
            time.sleep(3600)  # killed here, inside the day's transaction
    await w._raw(lambda conn: conn.set_trace_callback(trace))  # on the connection's own thread
    records = json.loads(Path(sys.argv[2]).read_text())
    facts = [fig.ticket_fact(r, tz=fig_tz(), target_s=600, levels=3) for r in records]
    await w.roll_day("2026-03-02", facts, {r["id"]: r for r in records}, datetime.now().astimezone())

def fig_tz():
    from zoneinfo import ZoneInfo
    return ZoneInfo("Asia/Ho_Chi_Minh")

asyncio.run(main())
"""


async def test_a_rollup_killed_half_way_leaves_no_partial_day(tmp_path: Path) -> None:
    db = tmp_path / "reports.sqlite3"
    day = [r for r in fx.RECORDS if r["day"] == "2026-03-02"]
    (tmp_path / "day.json").write_text(json.dumps(day))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", KILLER, str(db), str(tmp_path / "day.json"),
                                                stdout=subprocess.PIPE, cwd=ROOT,
                                                env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.strip() == b"half-way"  # the tickets are written, the day's transaction is open
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    w = await Warehouse.open(db, Settings(600, 3))
    try:
        assert await w.counts() == {"days": 0, "tickets": 0, "daily": 0, "dossiers": 0}
        facts = [fig.ticket_fact(r, tz=fx.TZ, target_s=600, levels=3) for r in day]
        now = datetime.now().astimezone()
        assert await w.roll_day("2026-03-02", facts, {r["id"]: r for r in day}, now)
        assert not await w.roll_day("2026-03-02", facts, {r["id"]: r for r in day}, now)  # once
        # T1 and T2 share a key (An, counter 1, ht, 8 h), T3 has its own (9 h)
        assert await w.counts() == {"days": 1, "tickets": 3, "daily": 2, "dossiers": 0}
        groups, _ = await w.ticket_groups("2026-03-02", "2026-03-02", Dimension.OFFICER)
        assert groups["An"].figures().issued == 3 and groups["An"].figures().ratings == (1, 0, 1)
    finally:
        await w.close()


async def test_the_day_the_core_leaves_is_rolled_up_at_its_rollover(office: Office) -> None:
    """The core's clock on yesterday afternoon: yesterday is today's live figures; when its clock
    reaches this morning it rolls over, and the warehouse rolls yesterday up, once."""
    tz = fx.TZ
    now = datetime.now(tz)
    yesterday = (now.date() - timedelta(days=1))
    clock = ManualClock(datetime(yesterday.year, yesterday.month, yesterday.day, 15, 0, tzinfo=tz))
    async with running_dossiers(office.config), running_core(office.config, clock), \
            running_web(office.config) as web:
        reports = web.app[REPORTS]
        await _wait(reports, lambda: reports.passes >= 1 and reports.pending_days == 0)
        assert web.follower.state.site["day"] == yesterday.isoformat()
        assert reports.rolled_to == (yesterday - timedelta(days=1)).isoformat()
        t, probe = office.topics, office.probe
        for field in ("ht", "dd"):
            assert (await probe.request(t.cmd_ticket, {"request_id": new_id(), "field": field}))["ok"]
        live = await reports.report(period_of("day", yesterday), Dimension.FIELD)
        assert live.total.figures.issued == 2  # from the live records: the day is not over

        rolled = reports.rolled_days
        clock.set(datetime(now.year, now.month, now.day, 0, 30, tzinfo=tz))
        await _wait(reports, lambda: reports.rolled_to == yesterday.isoformat())
        assert reports.rolled_days == rolled + 1
        report = await reports.report(period_of("day", yesterday), Dimension.FIELD)
        assert report.total.figures.issued == 2 and {r.key: r.figures.issued for r in report.rows} == {
            "ht": 1, "dd": 1}
        assert [r["status"] for r in await reports.drill(period_of("day", yesterday), Dimension.FIELD, "*",
                                                         "issued")] == ["expired", "expired"]
