"""The dashboard's and the reports' reads of the province database (asyncpg). No formatting here.

The dashboard reads every office in two queries whatever their number: one for the offices with
their latest state (queues, counters) and today's tickets, one for the oldest waiting ticket of
each field. The dossiers table is read when it is there (its migration belongs to the aggregator);
an office with no dossier row at all is reported on its served tickets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

import asyncpg

from province.web.figures import (
    Basis,
    FieldQueue,
    Handled,
    Report,
    ReportRow,
    SiteSummary,
    day_bounds,
    id_bounds,
    ranked,
    report_total,
)

# a number of a state body, or NULL when an office sent something else (never an error)
_NUM = "CASE WHEN jsonb_typeof({0}) = 'number' THEN ({0})::text::numeric END"

_DASHBOARD = f"""
WITH q AS (
    SELECT site, jsonb_agg(jsonb_build_object(
               'field', coalesce(body->>'field', substr(topic, 13)), 'name', coalesce(body->>'name', ''),
               'waiting', coalesce({_NUM.format("body->'waiting'")}, 0)) ORDER BY topic) AS queues
    FROM state WHERE topic LIKE 'state/queue/%' AND site = ANY($1::text[]) GROUP BY site
), c AS (
    SELECT site, count(*) AS counters,
           count(*) FILTER (WHERE body->>'status' IN ('open', 'serving', 'paused')) AS open
    FROM state WHERE topic LIKE 'state/counter/%' AND site = ANY($1::text[]) GROUP BY site
), t AS (
    SELECT site, count(*) AS issued,
           count(*) FILTER (WHERE status = 'done') AS served,
           count(*) FILTER (WHERE status = 'done' AND rating = 1) AS served_unhappy,
           count(*) FILTER (WHERE rating = 1 AND coalesce(record->>'dossier', '') <> '') AS dossier_unhappy
    FROM tickets
    WHERE site = ANY($1::text[]) AND id >= $2 AND id < $3 AND issued_at >= $4 AND issued_at < $5
    GROUP BY site
){{dossier_cte}}
SELECT s.site, s.name, s.district, s.online, s.status_at, coalesce(q.queues, '[]'::jsonb) AS queues,
       coalesce(c.counters, 0) AS counters, coalesce(c.open, 0) AS counters_open,
       coalesce(t.issued, 0) AS issued, coalesce(t.served, 0) AS served,
       coalesce(t.served_unhappy, 0) AS served_unhappy, coalesce(t.dossier_unhappy, 0) AS dossier_unhappy,
       {{dossier_cols}}
FROM sites s LEFT JOIN q USING (site) LEFT JOIN c USING (site) LEFT JOIN t USING (site){{dossier_join}}
WHERE s.site = ANY($1::text[])
"""

# per office, so that each count is a range of an index on (site, received_at) or (site, done_at)
# where the database has one, and never a scan of every dossier of every office
_DOSSIER_CTE = """, d AS (
    SELECT o.site, EXISTS (SELECT 1 FROM dossiers x WHERE x.site = o.site) AS has_dossiers,
           (SELECT count(*) FROM dossiers x
            WHERE x.site = o.site AND x.received_at >= $4 AND x.received_at < $5) AS received
    FROM unnest($1::text[]) AS o(site)
)"""
_DOSSIER_COLS = "coalesce(d.has_dossiers, false) AS has_dossiers, coalesce(d.received, 0) AS dossiers_received"
_NO_DOSSIER_COLS = "false AS has_dossiers, 0 AS dossiers_received"

# the callable tickets' oldest issue per field (a remote ticket awaiting check-in is not callable)
_OLDEST = """
SELECT site, field, min(issued_at) AS oldest FROM tickets
WHERE site = ANY($1::text[]) AND id >= $2 AND id < $3 AND issued_at >= $4 AND issued_at < $5
  AND status IN ('waiting', 'transferred') AND coalesce(record->>'awaiting_checkin', 'false') <> 'true'
GROUP BY site, field
"""

_REPORT_TICKETS = """
SELECT site, count(*) AS issued, count(*) FILTER (WHERE status = 'done') AS served,
       count(*) FILTER (WHERE status = 'done' AND rating = 1) AS served_unhappy,
       count(*) FILTER (WHERE rating = 1 AND coalesce(record->>'dossier', '') <> '') AS dossier_unhappy,
       coalesce(sum(extract(epoch FROM called_at - issued_at))
                FILTER (WHERE called_at IS NOT NULL AND called_at >= issued_at), 0) AS wait_sum,
       count(*) FILTER (WHERE called_at IS NOT NULL AND called_at >= issued_at) AS waits
FROM tickets
WHERE site = ANY($1::text[]) AND id >= $2 AND id < $3 AND issued_at >= $4 AND issued_at < $5
GROUP BY site
"""

_REPORT_DOSSIERS = """
SELECT o.site, EXISTS (SELECT 1 FROM dossiers x WHERE x.site = o.site) AS has_dossiers,
       (SELECT count(*) FROM dossiers x
        WHERE x.site = o.site AND x.received_at >= $2 AND x.received_at < $3) AS received,
       coalesce(f.done, 0) AS done, coalesce(f.on_time, 0) AS on_time
FROM unnest($1::text[]) AS o(site)
LEFT JOIN LATERAL (
    SELECT count(*) AS done, count(*) FILTER (WHERE x.done_at <= x.due_at) AS on_time FROM dossiers x
    WHERE x.site = o.site AND x.done_at >= $2 AND x.done_at < $3 AND x.due_at IS NOT NULL
) f ON true
"""


@dataclass(frozen=True)
class SiteName:
    id: str
    name: str
    district: str


@dataclass
class Queries:
    pool: asyncpg.Pool
    _dossiers: bool = field(default=False)

    async def has_dossiers_table(self) -> bool:
        # the aggregator's migration adds it; once seen it stays
        if not self._dossiers:
            self._dossiers = bool(await self.pool.fetchval("SELECT to_regclass('dossiers') IS NOT NULL"))
        return self._dossiers

    async def dashboard(self, sites: list[SiteName], today: date, tz: tzinfo, now: datetime) -> list[SiteSummary]:
        """Every office of `sites`, in their order, as the dashboard shows it now."""
        ids = [s.id for s in sites]
        lo, hi = id_bounds(today, today)
        start, end = day_bounds(today, today, tz)
        with_dossiers = await self.has_dossiers_table()
        sql = _DASHBOARD.format(dossier_cte=_DOSSIER_CTE if with_dossiers else "",
                                dossier_cols=_DOSSIER_COLS if with_dossiers else _NO_DOSSIER_COLS,
                                dossier_join=" LEFT JOIN d USING (site)" if with_dossiers else "")
        async with self.pool.acquire() as conn:
            rows = {r["site"]: r for r in await conn.fetch(sql, ids, lo, hi, start, end)}
            oldest: dict[tuple[str, str], datetime] = {
                (r["site"], r["field"]): r["oldest"] for r in await conn.fetch(_OLDEST, ids, lo, hi, start, end)}
        out = []
        for s in sites:
            r = rows.get(s.id)
            if r is None:  # listed in province.toml, not yet in the database (the aggregator adds it)
                out.append(SiteSummary(s.id, s.name, s.district, False, None, (), 0, 0, 0, 0,
                                       Handled(Basis.TICKETS, 0, 0)))
                continue
            queues = []
            for q in json.loads(r["queues"]) if isinstance(r["queues"], str) else r["queues"]:
                since = oldest.get((s.id, q["field"]))
                waiting = int(q["waiting"])
                # the state says how many wait; the tickets since when (a wait only while someone does)
                wait = max(0, int((now - since).total_seconds())) if since is not None and waiting else None
                queues.append(FieldQueue(q["field"], q["name"] or q["field"], waiting, wait))
            out.append(SiteSummary(
                s.id, s.name, s.district, r["online"], r["status_at"], tuple(queues), r["counters_open"],
                r["counters"], r["issued"], r["served"], _handled(r, r["dossiers_received"])))
        return out

    async def site_state(self, site: str) -> list[tuple[str, dict[str, Any]]]:
        """The office's latest state bodies (site, queues, counters), by topic."""
        rows = await self.pool.fetch("SELECT topic, body FROM state WHERE site = $1 ORDER BY topic", site)
        return [(r["topic"], _json(r["body"])) for r in rows]

    async def report(self, sites: list[SiteName], first: date, last: date, tz: tzinfo) -> Report:
        ids = [s.id for s in sites]
        lo, hi = id_bounds(first, last)
        start, end = day_bounds(first, last, tz)
        async with self.pool.acquire() as conn:
            tickets = {r["site"]: r for r in await conn.fetch(_REPORT_TICKETS, ids, lo, hi, start, end)}
            dossiers = ({r["site"]: r for r in await conn.fetch(_REPORT_DOSSIERS, ids, start, end)
                         if r["has_dossiers"]} if await self.has_dossiers_table() else {})
        rows = []
        for s in sites:
            t, d = tickets.get(s.id), dossiers.get(s.id)
            handled = (Handled(Basis.DOSSIERS, d["received"], t["dossier_unhappy"] if t else 0) if d is not None
                       else Handled(Basis.TICKETS, t["served"] if t else 0, t["served_unhappy"] if t else 0))
            rows.append(ReportRow(
                s.id, s.name, s.district, t["issued"] if t else 0, t["served"] if t else 0,
                float(t["wait_sum"]) if t else 0.0, t["waits"] if t else 0, handled,
                d["done"] if d else 0, d["on_time"] if d else 0))
        return Report(first, last, tuple(ranked(rows)), report_total(rows))


def _handled(r: asyncpg.Record, dossiers_received: int) -> Handled:
    if r["has_dossiers"]:
        return Handled(Basis.DOSSIERS, dossiers_received, r["dossier_unhappy"])
    return Handled(Basis.TICKETS, r["served"], r["served_unhappy"])


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
