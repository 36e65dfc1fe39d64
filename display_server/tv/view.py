"""What one TV shows, computed from the site state: pure, so every rule of the page is tested
without a browser. The page script only draws what it gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from display_server.feed.state import Call, Change, SiteState
from display_server.settings import DisplaySettings, is_slug
from display_server.speech.vietnamese import nfc
from display_server.texts import Texts
from qms_common.config import SiteConfig
from qms_common.protocol import CounterStatus


class FilterError(ValueError):
    pass


@dataclass(frozen=True)
class DisplayFilter:
    """A TV that serves one area: `?fields=dat-dai,ho-tich` or `?counters=1,2`; `?id=` names the TV
    (its presence topic)."""

    fields: frozenset[str] | None = None
    counters: frozenset[str] | None = None
    display_id: str | None = None

    @classmethod
    def parse(cls, query: dict[str, str], site: SiteConfig, t: Texts) -> DisplayFilter:
        fields = _id_list(query.get("fields"), {f.id for f in site.fields}, t.unknown_fields, t)
        counters = _id_list(query.get("counters"), {c.id for c in site.counters}, t.unknown_counters, t)
        display_id = query.get("id") or None
        if display_id is not None and not is_slug(display_id):
            raise FilterError(t.bad_display_id)
        return cls(fields, counters, display_id)

    def query(self) -> str:
        """The same filter as a query string (for the page's WebSocket URL)."""
        parts = []
        if self.fields is not None:
            parts.append("fields=" + ",".join(sorted(self.fields)))
        if self.counters is not None:
            parts.append("counters=" + ",".join(sorted(self.counters)))
        if self.display_id:
            parts.append(f"id={self.display_id}")
        return "&".join(parts)

    @property
    def area(self) -> tuple[frozenset[str] | None, frozenset[str] | None]:
        """What decides what the TV shows (its id does not)."""
        return self.fields, self.counters

    def shows_counter(self, counter_id: str, counter_fields: list[str]) -> bool:
        if self.counters is not None and counter_id not in self.counters:
            return False
        return self.fields is None or bool(self.fields.intersection(counter_fields))

    def shows_call(self, call: Call, counter_fields: list[str]) -> bool:
        if self.counters is not None and call.counter not in self.counters:
            return False
        if self.fields is not None:
            # the ticket's own field says which area's waiting room the citizen sits in
            return call.field in self.fields if call.field else bool(self.fields.intersection(counter_fields))
        return True


def _id_list(raw: str | None, known: set[str], unknown_label: str, t: Texts) -> frozenset[str] | None:
    if raw is None:
        return None
    ids = [x.strip() for x in raw.split(",") if x.strip()]
    if not ids:
        raise FilterError(f"{t.bad_filter}: {raw!r}")
    bad = [x for x in ids if x not in known]
    if bad:
        raise FilterError(f"{unknown_label}: {', '.join(bad)}. {t.valid_values}: {', '.join(sorted(known))}.")
    return frozenset(ids)


def call_view(call: Call, names: dict[str, str]) -> dict[str, Any]:
    return {"seq": call.seq, "number": call.number, "counter": call.counter,
            "counter_name": names.get(call.counter, call.counter), "recall": call.recall, "at": call.at,
            "ticket_id": call.ticket.get("id"), "appointment": call.ticket.get("via") == "appointment"}


def shown_on_tv(item: Any) -> bool:
    """Whether a hub item can change a TV's view or announcements (build_view reads counters,
    queues, calls, the site and the core's presence; the link's state comes as LinkChange)."""
    if isinstance(item, Change):
        if item.kind in ("counter", "queue", "site"):
            return True
        if item.kind == "event":
            return item.key == "called"
        return item.kind == "status" and item.key == "core"
    return True  # announcements, the link, resynchronisation


@dataclass(frozen=True)
class Layout:
    """What the views take from the site's description: it changes only with state/site, so it
    is worked out once, not at every change of a counter (with 200 counters it was most of a
    view's cost)."""

    counters: tuple[tuple[str, str, tuple[str, ...]], ...]  # id, NFC name, fields; in the site's order
    names: dict[str, str]
    fields_by_counter: dict[str, list[str]]
    fields: tuple[tuple[str, str], ...]  # id, NFC name


_layouts: dict[int, tuple[Any, SiteConfig, Layout]] = {}


def layout(state: SiteState, site: SiteConfig) -> Layout:
    key = id(state.site)
    hit = _layouts.get(key)
    if hit is not None and hit[0] is state.site and hit[1] is site:
        return hit[2]
    counters = state.counter_list(site)
    # NFC: a site file saved in decomposed form must not reach a TV that draws tone marks apart
    entries = tuple((str(c["id"]), nfc(str(c.get("name", c["id"]))), tuple(c.get("fields", []))) for c in counters)
    made = Layout(counters=entries, names={cid: name for cid, name, _ in entries},
                  fields_by_counter={cid: list(fields) for cid, _, fields in entries},
                  fields=tuple((str(f["id"]), nfc(str(f.get("name", f["id"])))) for f in state.field_list(site)))
    if len(_layouts) > 16:
        _layouts.clear()
    _layouts[key] = (state.site, site, made)
    return made


def build_view(state: SiteState, site: SiteConfig, settings: DisplaySettings, flt: DisplayFilter,
               *, link_up: bool) -> dict[str, Any]:
    lay = layout(state, site)
    names, fields_by_counter = lay.names, lay.fields_by_counter

    shown_counters = []
    for cid, name, fields in lay.counters:
        if not flt.shows_counter(cid, list(fields)):
            continue
        live = state.counters.get(cid, {})
        status = live.get("status", CounterStatus.CLOSED)
        if status == CounterStatus.CLOSED and settings.closed_counters == "hide":
            continue
        ticket = live.get("ticket") if isinstance(live.get("ticket"), dict) else None
        shown_counters.append({
            "id": cid, "name": name, "status": status,
            "number": ticket.get("number") if ticket and status in (CounterStatus.SERVING, CounterStatus.PAUSED)
            else None,
        })

    area_fields: set[str] | None = None
    if flt.fields is not None:
        area_fields = set(flt.fields)
    elif flt.counters is not None:
        area_fields = {f for cid in flt.counters for f in fields_by_counter.get(cid, [])}
    queues = []
    for fid, fname in lay.fields:
        if area_fields is not None and fid not in area_fields:
            continue
        q = state.queues.get(fid, {})
        queues.append({"field": fid, "name": fname, "waiting": _count(q.get("waiting"))})

    def shows(call: Call) -> bool:
        return flt.shows_call(call, fields_by_counter.get(call.counter, []))

    # the latest of all calls (not of the recent list, which keeps one line per ticket); after a
    # restart of this server, the newest of the tickets being served
    newest = next((c for c in reversed(state.calls) if shows(c)), None) \
        or next((c for c in state.recent_calls() if shows(c)), None)
    # the big box holds a call only while its ticket is at the counter: finished, skipped or
    # transferred, it leaves (and stays in the recent calls)
    current = newest if newest is not None and at_counter(state, newest) else None
    recent: list[dict[str, Any]] = []
    for c in state.recent_calls():  # newest first; only as many views as the TV shows
        if len(recent) >= settings.recent_calls:
            break
        if shows(c) and (current is None or ticket_key(c) != ticket_key(current)):
            recent.append(call_view(c, names))
    return {
        "office": nfc(str((state.site or {}).get("name") or site.name)),
        "counters": shown_counters,
        "closed": settings.closed_counters,
        "latest": call_view(current, names) if current is not None else None,
        "recent": recent,
        "queues": queues,
        "online": link_up and state.core_online,
    }


def ticket_key(call: Call) -> str:
    return str(call.ticket.get("id") or call.number)


def at_counter(state: SiteState, call: Call) -> bool:
    """Whether the called ticket is still at its counter. The core publishes a command's events
    before the state they change (one `seq` for both), so a counter state older than the call
    does not know of it yet, and says nothing against it."""
    live = state.counters.get(call.counter)
    if not isinstance(live, dict):
        return True
    seq = live.get("seq")
    if call.seq >= 0 and isinstance(seq, int) and not isinstance(seq, bool) and seq < call.seq:
        return True
    ticket = live.get("ticket")
    return live.get("status") in (CounterStatus.SERVING, CounterStatus.PAUSED) and isinstance(ticket, dict) \
        and str(ticket.get("id") or ticket.get("number")) == ticket_key(call)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
