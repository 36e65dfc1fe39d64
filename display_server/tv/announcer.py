"""Turns calls into announcements (clips to play) and renders phrases before they are needed.

It follows the same hub as the pages: `event/called` becomes an Announcement published back on
the hub, in the order of the calls. Ahead of need, in the background: the template's intro and the
counter phrases at start and when the site changes; a ticket's number when it is issued (or seen
in a queue's `next`); and, when nothing else waits, the next LOOKAHEAD numbers of each field
beyond the last one issued (from the first number at the start of a day). Clips are kept across
days, so from the second day on an office's numbers are all on disk already.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from display_server.feed.follower import StateFollower
from display_server.feed.hub import Resync
from display_server.feed.state import Call, Change
from display_server.speech import chime
from display_server.speech.render import Clip, Speech
from display_server.speech.settings import SpeechSettings
from qms_common.config import FieldConfig, SiteConfig
from qms_common.protocol import EventKind

log = logging.getLogger(__name__)

CHIME_URL = "/audio/chime.wav"
# Numbers per field rendered ahead of the last one issued, when the machine is idle.
LOOKAHEAD = 50
_DIGITS_RE = re.compile(r"(\d+)$")


def audio_url(clip: Clip) -> str:
    return f"/audio/{clip.filename}"


@dataclass(frozen=True)
class Announcement:
    """One call to announce. `clips` is the full announcement in order (the chime, then the
    intro, number and counter phrases `repeat` times); its first `must` clips are said even when
    other calls wait (the rest are repeats). `short` is how the call is said when calls come
    quickly (number and counter phrase, no chime); `seconds` how long each clip plays. Without
    clips of the phrases, only the chime, and the text on screen. The TV page's planner
    (static/announce_plan.js) decides which form plays."""

    seq: int
    number: str
    counter: str
    counter_name: str
    field: str | None
    recall: bool
    text: str
    clips: list[str]
    must: int
    short: list[str]
    seconds: dict[str, float]

    def message(self) -> dict[str, Any]:
        return {"type": "announce", **asdict(self)}

    @cached_property
    def serialized(self) -> str:
        """The message serialised once, for every TV that announces it."""
        return json.dumps(self.message(), ensure_ascii=False, separators=(",", ":"))

    def for_call(self) -> Call:  # what a page filter needs to decide whether it shows this call
        return Call(self.seq, {"number": self.number, "field": self.field}, self.counter, self.recall, None)


class Announcer:
    def __init__(self, site: SiteConfig, follower: StateFollower, speech: Speech, settings: SpeechSettings) -> None:
        self.site = site
        self.follower = follower
        self.speech = speech
        self.settings = settings
        self.phrasing = settings.phrasing
        self._ahead: dict[str, int] = {}  # per field: the last number value asked for ahead
        self._day: object = None

    def counter_phrases(self) -> list[str]:
        return [self._counter_phrase(c) for c in self.follower.state.counter_list(self.site)]

    def _counter_phrase(self, c: dict[str, Any]) -> str:
        spoken = c.get("spoken") if isinstance(c.get("spoken"), str) else None
        return self.phrasing.counter_phrase(str(c["id"]), str(c.get("name", c["id"])), spoken)

    def number_phrase(self, number: str) -> str | None:
        try:
            return self.phrasing.number_phrase(number)
        except ValueError:
            log.warning("Số vé %r không đọc được thành lời", number)
            return None

    async def run(self) -> None:
        self._prerender_site()
        with self.follower.hub.subscribe(maxsize=4096) as sub:
            while True:
                item = await sub.get()
                if isinstance(item, Change):
                    try:
                        await self.on_change(item)
                    except Exception:  # one odd message must not silence every TV
                        log.exception("Lỗi khi xử lý %s/%s", item.kind, item.key)
                elif isinstance(item, Resync):
                    log.warning("Bộ đọc bị quá tải; có thể đã bỏ lỡ một số lần gọi")

    async def on_change(self, change: Change) -> None:
        """One change of the site: a call announced, phrases asked for ahead of need."""
        if change.kind == "event" and change.key == EventKind.CALLED:
            announcement = await self.announce(change.data)
            if announcement is not None:
                self.follower.hub.publish(announcement)
        elif change.kind == "event" and change.key == EventKind.ISSUED:
            ticket = change.data.get("ticket") if isinstance(change.data, dict) else None
            if isinstance(ticket, dict) and isinstance(ticket.get("number"), str):
                self._prerender_numbers([ticket["number"]])
                if isinstance(ticket.get("field"), str):
                    self._look_ahead(ticket["field"], ticket["number"])
        elif change.kind == "queue" and isinstance(change.data.get("next"), list):
            # tickets issued while this server was away: their phrases before their calls
            self._prerender_numbers([n for n in change.data["next"] if isinstance(n, str)])
        elif change.kind == "site":
            self._prerender_site()

    def _prerender_site(self) -> None:
        """The phrases every call uses, then (a new day: numbers start again) each field's first
        numbers."""
        self.speech.prerender_soon([self.phrasing.intro, *self.counter_phrases()])
        day = (self.follower.state.site or {}).get("day")
        if day != self._day or not self._ahead:
            self._day = day
            self._ahead.clear()
            for f in self._fields().values():
                self._look_ahead(f.id, None)

    def _prerender_numbers(self, numbers: list[str]) -> None:
        self.speech.prerender_soon(p for p in map(self.number_phrase, numbers) if p)

    def _fields(self) -> dict[str, FieldConfig]:
        """Each field's number range, as the core says (state/site) or else the site file."""
        fields = {f.id: f for f in self.site.fields}
        for f in self.follower.state.field_list(self.site):
            first, last, prefix = f.get("first"), f.get("last"), f.get("prefix") or ""
            if isinstance(first, int) and isinstance(last, int) and isinstance(prefix, str) and first <= last:
                fields[str(f["id"])] = FieldConfig(id=str(f["id"]), name=str(f.get("name", "")), first=first,
                                                   last=last, prefix=prefix)
        return fields

    def _look_ahead(self, field_id: str, issued: str | None) -> None:
        """Ask for the numbers after `issued` (or from the field's first) to be rendered when the
        machine is idle, each once."""
        f = self._fields().get(field_id)
        if f is None:
            return
        value = f.first - 1
        if issued is not None:
            m = _DIGITS_RE.search(issued)
            if m is None:
                return
            value = int(m.group(1))
        start = max(self._ahead.get(field_id, f.first - 1), value) + 1
        end = min(f.last, value + LOOKAHEAD)
        if start > end:
            return
        self._ahead[field_id] = end
        self.speech.prerender_later(p for p in (self.number_phrase(f.format_number(v)) for v in range(start, end + 1))
                                    if p)

    async def announce(self, call: Call) -> Announcement | None:
        counters = {str(c["id"]): c for c in self.follower.state.counter_list(self.site)}
        c = counters.get(call.counter, {"id": call.counter, "name": call.counter})
        number_phrase = self.number_phrase(call.number)
        counter_phrase = self._counter_phrase(c)
        spoken_number = self.phrasing.ticket_phrase(call.number) if number_phrase is not None else call.number
        text = f"{spoken_number} {counter_phrase}"
        said: list[Clip] = []  # one round: intro, number, counter phrase
        if number_phrase is not None:
            try:
                intro = await self.speech.clip(self.phrasing.intro) if self.phrasing.intro else None
                number = await self.speech.clip(number_phrase)
                counter = await self.speech.clip(counter_phrase)
            except Exception:
                log.exception("Lỗi khi chuẩn bị câu đọc cho số %s", call.number)
                intro = number = counter = None
            if number is not None and counter is not None and (intro is not None or not self.phrasing.intro):
                said = [x for x in (intro, number, counter) if x is not None]
        seconds = {CHIME_URL: chime.SECONDS}
        for clip in said:
            if (s := self.speech.seconds(clip)) is not None:
                seconds[audio_url(clip)] = s
        one_round = [audio_url(x) for x in said]
        # neither chime nor voice: a chime still, so nobody misses a call
        ring = [CHIME_URL] if self.settings.chime or not said else []
        return Announcement(seq=call.seq, number=call.number, counter=call.counter,
                            counter_name=str(c.get("name", call.counter)), field=call.field,
                            recall=call.recall, text=text, clips=ring + one_round * self.settings.repeat,
                            must=len(ring) + len(one_round), short=one_round[-2:] if said else [CHIME_URL],
                            seconds=seconds)
