"""Turns calls into announcements (a playlist of clips) and renders phrases before they are needed.

It follows the same hub as the pages: `event/called` becomes an Announcement published back on
the hub, in the order of the calls; `event/issued` and the queues' `next` numbers have their ticket
phrases rendered ahead; counter phrases are rendered at start and when the site changes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from display_server.follower import StateFollower
from display_server.hub import Resync
from display_server.settings import SpeechSettings
from display_server.speech import Clip, Speech
from display_server.state import Call, Change
from qms_common.config import SiteConfig
from qms_common.protocol import EventKind

log = logging.getLogger(__name__)

CHIME_URL = "/audio/chime.wav"


def audio_url(clip: Clip) -> str:
    return f"/audio/{clip.filename}"


@dataclass(frozen=True)
class Announcement:
    """One call to announce. `clips` is the playlist in order (chime, then ticket and counter
    phrases `repeat` times); without clips of the phrases, only the chime, and the text on screen."""

    seq: int
    number: str
    counter: str
    counter_name: str
    field: str | None
    recall: bool
    text: str
    clips: list[str]

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

    def counter_phrases(self) -> list[str]:
        return [self._counter_phrase(c) for c in self.follower.state.counter_list(self.site)]

    def _counter_phrase(self, c: dict[str, Any]) -> str:
        spoken = c.get("spoken") if isinstance(c.get("spoken"), str) else None
        return self.phrasing.counter_phrase(str(c["id"]), str(c.get("name", c["id"])), spoken)

    def ticket_phrase(self, number: str) -> str | None:
        try:
            return self.phrasing.ticket_phrase(number)
        except ValueError:
            log.warning("Số vé %r không đọc được thành lời", number)
            return None

    async def run(self) -> None:
        self.speech.prerender_soon(self.counter_phrases())
        with self.follower.hub.subscribe(maxsize=4096) as sub:
            while True:
                item = await sub.get()
                if isinstance(item, Change):
                    try:
                        await self._on_change(item)
                    except Exception:  # one odd message must not silence every TV
                        log.exception("Lỗi khi xử lý %s/%s", item.kind, item.key)
                elif isinstance(item, Resync):
                    log.warning("Bộ đọc bị quá tải; có thể đã bỏ lỡ một số lần gọi")

    async def _on_change(self, change: Change) -> None:
        if change.kind == "event" and change.key == EventKind.CALLED:
            announcement = await self.announce(change.data)
            if announcement is not None:
                self.follower.hub.publish(announcement)
        elif change.kind == "event" and change.key == EventKind.ISSUED:
            ticket = change.data.get("ticket") if isinstance(change.data, dict) else None
            if isinstance(ticket, dict) and isinstance(ticket.get("number"), str):
                self._prerender_numbers([ticket["number"]])
        elif change.kind == "queue" and isinstance(change.data.get("next"), list):
            # tickets issued while this server was away: their phrases before their calls
            self._prerender_numbers([n for n in change.data["next"] if isinstance(n, str)])
        elif change.kind == "site":
            self.speech.prerender_soon(self.counter_phrases())

    def _prerender_numbers(self, numbers: list[str]) -> None:
        self.speech.prerender_soon(p for p in map(self.ticket_phrase, numbers) if p)

    async def announce(self, call: Call) -> Announcement | None:
        counters = {str(c["id"]): c for c in self.follower.state.counter_list(self.site)}
        c = counters.get(call.counter, {"id": call.counter, "name": call.counter})
        ticket_phrase = self.ticket_phrase(call.number)
        counter_phrase = self._counter_phrase(c)
        text = f"{ticket_phrase or call.number} {counter_phrase}"
        clips = [CHIME_URL] if self.settings.chime else []
        if ticket_phrase is not None:
            try:
                ticket_clip = await self.speech.clip(ticket_phrase)
                counter_clip = await self.speech.clip(counter_phrase)
            except Exception:
                log.exception("Lỗi khi chuẩn bị câu đọc cho số %s", call.number)
                ticket_clip = counter_clip = None
            if ticket_clip is not None and counter_clip is not None:
                clips += [audio_url(ticket_clip), audio_url(counter_clip)] * self.settings.repeat
        if not clips:  # neither chime nor voice: a chime still, so nobody misses a call
            clips = [CHIME_URL]
        return Announcement(seq=call.seq, number=call.number, counter=call.counter,
                            counter_name=str(c.get("name", call.counter)), field=call.field,
                            recall=call.recall, text=text, clips=clips)
