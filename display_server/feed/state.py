"""The present of one site as the web server knows it, from the core's retained state, events and
presence topics. Pure: messages in, changes out; the MQTT side lives in follower.py.

`seq` orders everything the core publishes. A state message whose `seq` is not above the one
already held for its topic is an old or repeated one (a retained copy after a reconnect, a QoS 1
duplicate) and changes nothing; an event seen before is not announced twice.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from qms_common.config import SiteConfig
from qms_common.protocol import CounterStatus, EventKind

log = logging.getLogger(__name__)

# How many calls the server remembers (for "the last calls" of every page).
CALL_HISTORY = 50
# Event seqs remembered to drop duplicates.
SEEN_EVENTS = 1024


@dataclass(frozen=True)
class Call:
    """One call (or recall) of a ticket to a counter, from event/called."""

    seq: int
    ticket: dict[str, Any]
    counter: str
    recall: bool
    at: str | None

    @property
    def number(self) -> str:
        return str(self.ticket.get("number", ""))

    @property
    def field(self) -> str | None:
        return self.ticket.get("field")


@dataclass(frozen=True)
class Change:
    """What one message changed. kind: site, queue, counter, appointments, status, health, core_health, notify,
    event.
    key: the field, counter, presence name ("core", "agent/a1", "display/hall"), agent (health), or the event kind."""

    kind: str
    key: str
    data: Any
    retained: bool = False


@dataclass
class SiteState:
    site: dict[str, Any] | None = None
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    counters: dict[str, dict[str, Any]] = field(default_factory=dict)
    presence: dict[str, str] = field(default_factory=dict)
    # retained health/agent/{agent} (serial ports and devices), for the supervisor
    health: dict[str, dict[str, Any]] = field(default_factory=dict)
    # retained state/appointments/{field}: free places per slot of today and the bookable days
    appointments: dict[str, dict[str, Any]] = field(default_factory=dict)
    # per counter, the ticket it finished last as the events told it (a rating by counter goes
    # there); unknown for tickets finished before this server started
    last_served: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the notifier's retained notify/stats (today's messages to citizens), for the supervisor
    notify_stats: dict[str, Any] | None = None
    # the core's retained health/core (queue_core.health: warnings, commit time, free disk), for /metrics
    core_health: dict[str, Any] | None = None
    calls: deque[Call] = field(default_factory=lambda: deque(maxlen=CALL_HISTORY))
    _seq: dict[str, int] = field(default_factory=dict)
    _events: OrderedDict[tuple[int, str, str, str], None] = field(default_factory=OrderedDict)

    @property
    def core_online(self) -> bool:
        return self.presence.get("core") == "online"

    def apply(self, parts: tuple[str, ...], payload: bytes, *, retained: bool = False) -> Change | None:
        """Take one message (topic parts after qms/{site}/); the change it makes, or None."""
        if not parts:
            return None
        head = parts[0]
        if head == "status" and len(parts) >= 2:
            return self._status("/".join(parts[1:]), payload, retained)
        if head == "health" and len(parts) == 3 and parts[1] == "agent":
            return self._health(parts[2], payload, retained)
        if parts == ("health", "core"):
            self.core_health = _json_object(payload, parts)
            return Change("core_health", "", self.core_health, retained)
        if parts == ("notify", "stats"):
            return self._notify_stats(payload, retained)
        if head not in ("state", "event") or len(parts) < 2:
            return None
        obj = _json_object(payload, parts)
        if obj is None:
            return None
        if head == "event":
            return self._event(parts[1], obj)
        topic = "/".join(parts)
        if not self._fresh(topic, obj, retained):
            return None
        kind = parts[1]
        if kind == "site" and len(parts) == 2:
            if self.site is not None and self.site.get("day") != obj.get("day"):
                self.last_served.clear()  # a new business day: nothing of yesterday is rated now
            self.site = obj
            return Change("site", "", obj, retained)
        if kind == "queue" and len(parts) == 3:
            self.queues[parts[2]] = obj
            return Change("queue", parts[2], obj, retained)
        if kind == "appointments" and len(parts) == 3:
            self.appointments[parts[2]] = obj
            return Change("appointments", parts[2], obj, retained)
        if kind == "counter" and len(parts) == 3:
            self.counters[parts[2]] = obj
            return Change("counter", parts[2], obj, retained)
        return None

    def _fresh(self, topic: str, obj: dict[str, Any], retained: bool) -> bool:
        seq = obj.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int):
            return True  # nothing to order by: take it as it comes
        held = self._seq.get(topic, -1)
        if seq == held or (seq < held and retained):
            return False  # a duplicate, or an old retained copy replayed after a reconnect
        if seq < held:
            # Live messages of a topic arrive in order: one going backwards means the core's
            # counter started again (a new database), not an old message.
            log.warning("seq của %s lùi từ %d về %d: lõi đã bắt đầu lại với dữ liệu mới?", topic, held, seq)
        self._seq[topic] = seq
        return True

    def _status(self, key: str, payload: bytes, retained: bool) -> Change | None:
        if not payload:  # a cleared retained presence: the device is gone for good
            if self.presence.pop(key, None) is None:
                return None
            return Change("status", key, None, retained)
        try:
            value = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            return None
        if value not in ("online", "offline"):
            log.debug("Bỏ qua trạng thái không hợp lệ trên status/%s", key)
            return None
        if self.presence.get(key) == value and not retained:
            return None
        self.presence[key] = value
        return Change("status", key, value, retained)

    def _health(self, agent: str, payload: bytes, retained: bool) -> Change | None:
        if not payload:
            self.health.pop(agent, None)  # a cleared retained topic: the agent was retired
            return Change("health", agent, None, retained)
        obj = _json_object(payload, ("health", "agent", agent))
        if obj is None:
            return None
        self.health[agent] = obj
        return Change("health", agent, obj, retained)

    def _notify_stats(self, payload: bytes, retained: bool) -> Change | None:
        # no seq here: the notifier publishes the whole day each time, the latest wins
        obj = _json_object(payload, ("notify", "stats")) if payload else None
        if payload and obj is None:
            return None
        self.notify_stats = obj
        return Change("notify", "stats", obj, retained)

    def _event(self, kind: str, obj: dict[str, Any]) -> Change | None:
        seq = obj.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            # seq and what it says: a core that starts again from seq 1 is not a duplicate
            ticket = obj.get("ticket") if isinstance(obj.get("ticket"), dict) else {}
            key = (seq, kind, str(ticket.get("id")), str(obj.get("at")))
            if key in self._events:
                return None
            self._events[key] = None
            while len(self._events) > SEEN_EVENTS:
                self._events.popitem(last=False)
        if kind == EventKind.CALLED:
            call = call_of(obj)
            if call is None:
                return None
            self.calls.append(call)
            # the counter serves someone else now: the one before is no longer asked to rate
            self.last_served.pop(call.counter, None)
            return Change("event", kind, call)
        self._served(kind, obj)
        return Change("event", kind, obj)

    def _served(self, kind: str, obj: dict[str, Any]) -> None:
        ticket, counter = obj.get("ticket"), obj.get("counter")
        if not isinstance(ticket, dict) or not isinstance(counter, str):
            return
        if kind == EventKind.FINISHED:
            self.last_served[counter] = ticket
        elif kind == EventKind.RATED:
            held = self.last_served.get(counter)
            if held is not None and held.get("id") == ticket.get("id"):
                self.last_served[counter] = ticket

    # ------------------------------------------------------------ reading

    def counter_list(self, site: SiteConfig) -> list[dict[str, Any]]:
        """The counters in the site's order (id, name, fields, spoken): from the core's
        state/site, or from the site file until the core has spoken."""
        if self.site and isinstance(self.site.get("counters"), list):
            return [c for c in self.site["counters"] if isinstance(c, dict) and "id" in c]
        return [{"id": c.id, "name": c.name, "fields": list(c.fields), "spoken": c.spoken} for c in site.counters]

    def field_list(self, site: SiteConfig) -> list[dict[str, Any]]:
        if self.site and isinstance(self.site.get("fields"), list):
            return [f for f in self.site["fields"] if isinstance(f, dict) and "id" in f]
        return [{"id": f.id, "name": f.name, "prefix": f.prefix or None} for f in site.fields]

    def recent_calls(self) -> Iterator[Call]:
        """The calls newest first, one per ticket (a recall moves it up), and the tickets being
        served that no remembered event covers (after a restart of this server) by call time.
        Lazily: a TV showing five calls never looks at every counter."""
        seen: set[str] = set()
        for call in reversed(self.calls):
            tid = str(call.ticket.get("id") or call.number)
            if tid not in seen:
                seen.add(tid)
                yield call
        # everything from events is newer than what the counters say without one
        serving = []
        for cid, c in self.counters.items():
            t = c.get("ticket")
            if c.get("status") == CounterStatus.SERVING and isinstance(t, dict):
                tid = str(t.get("id") or t.get("number"))
                if tid not in seen:
                    serving.append(Call(seq=-1, ticket=t, counter=cid, recall=False, at=t.get("called_at")))
        serving.sort(key=lambda c: c.at or "", reverse=True)
        yield from serving


def call_of(obj: dict[str, Any]) -> Call | None:
    ticket = obj.get("ticket")
    counter = obj.get("counter")
    seq = obj.get("seq")
    if not isinstance(ticket, dict) or not isinstance(ticket.get("number"), str) or not isinstance(counter, str):
        log.warning("Bỏ qua sự kiện gọi số thiếu vé hoặc quầy: %s", obj)
        return None
    return Call(seq=seq if isinstance(seq, int) else -1, ticket=ticket, counter=counter,
                recall=obj.get("recall") is True, at=obj.get("at") if isinstance(obj.get("at"), str) else None)


def _json_object(payload: bytes, parts: tuple[str, ...]) -> dict[str, Any] | None:
    if not payload:
        return None  # a cleared retained topic
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        log.warning("Bỏ qua tin không phải JSON trên %s", "/".join(parts))
        return None
    if not isinstance(obj, dict):
        log.warning("Bỏ qua tin không phải đối tượng JSON trên %s", "/".join(parts))
        return None
    return obj
