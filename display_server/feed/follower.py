"""The web server's one MQTT session: it follows the site's state, events and presence, sends the
commands of the pages (Requester), and publishes the presence of the server and of its TV pages.

Every page of the server reads `follower.state` and subscribes to `follower.hub`; nothing else
in the web server talks to the broker.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import aiomqtt

from display_server.feed.hub import Hub
from display_server.feed.state import Change, SiteState
from display_server.tv.view import shown_on_tv
from qms_common.config import SiteConfig
from qms_common.mqtt import MqttSession, Presence, Requester, message_topic
from qms_common.protocol import OFFLINE, ONLINE, Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkChange:
    """The server's own broker connection came or went."""

    connected: bool


# TVs not listed in [display] ids announce themselves only while connected, and at most this many
# at once: anyone can open /display/ws?id=…, and must not leave state behind in the broker.
MAX_UNLISTED_DISPLAYS = 20
CLEARED = b""  # an empty retained message removes the retained one


class StateFollower:
    def __init__(self, site: SiteConfig, server_id: str, *, displays: Iterable[str] = ()) -> None:
        self.site = site
        # the site's own TVs: their presence stays (offline) when they go, so a dead TV shows
        self.listed_displays = frozenset(displays)
        self.topics = Topics(site.id)
        self.server_id = server_id
        self.state = SiteState()
        self.hub = Hub()
        self.session = MqttSession(
            site.mqtt,
            # unique per process: two servers (or a restart overlapping the old one) never kick each other off
            # (a production broker uses the user name instead: one connection per user, docs/security.md)
            identifier=f"qms-web-{site.id}-{server_id}-{uuid.uuid4().hex[:6]}",
            name="display_server",
            subscriptions=[self.topics.state_all, self.topics.event_all, self.topics.status_all,
                           self.topics.health_all, self.topics.notify_stats],
            presence=Presence(self.topics.status_web(server_id)),
            on_message=self._on_message, on_connect=self._on_connect, on_disconnect=self._on_disconnect,
        )
        # replies under qms/{site}/reply/web/: the broker's ACLs let the `web` user read there
        self.requester = Requester(self.session, self.topics, f"web/{server_id}")
        # bumped at every change of what pages can show: views are cached per version
        self.version = 0
        # bumped only at changes a TV shows (display_view.shown_on_tv): its views are the costly ones
        self.tv_version = 0
        self._displays: Counter[str] = Counter()

    @property
    def connected(self) -> bool:
        return self.session.is_connected

    async def run(self) -> None:
        await self.session.run()

    async def stop(self) -> None:
        """A clean stop: the TVs this server served and the server itself are offline now."""
        for display in list(self._displays):
            self.session.publish_soon(self.topics.status_display(display), self._gone(display), retain=True)
        self._displays.clear()
        await self.session.drain()
        await self.session.say_offline()

    # ------------------------------------------------------------ TV presence

    def display_connected(self, display: str) -> bool:
        """A TV page with this id opened: online. False when it gets no presence at all (not a
        listed TV, and too many unlisted ones are here already); the page works all the same."""
        if display not in self._displays and display not in self.listed_displays \
                and sum(1 for d in self._displays if d not in self.listed_displays) >= MAX_UNLISTED_DISPLAYS:
            log.info("Màn hình %s không có trong [display] ids: không ghi nhận trạng thái", display)
            return False
        self._displays[display] += 1
        if self._displays[display] == 1:
            self.session.publish_soon(self.topics.status_display(display), ONLINE, retain=True)
        return True

    def display_disconnected(self, display: str) -> None:
        if display not in self._displays:  # stop() has said offline already
            return
        self._displays[display] -= 1
        if self._displays[display] <= 0:
            del self._displays[display]
            self.session.publish_soon(self.topics.status_display(display), self._gone(display), retain=True)

    def _gone(self, display: str) -> bytes:
        """What a TV's presence becomes when it goes: offline for a listed TV, nothing otherwise."""
        return OFFLINE if display in self.listed_displays else CLEARED

    def displays(self) -> list[str]:
        return sorted(self._displays)

    # ------------------------------------------------------------ MQTT

    async def _on_connect(self) -> None:
        # the broker may have restarted empty: say again which TVs are here
        for display in self._displays:
            self.session.publish_soon(self.topics.status_display(display), ONLINE, retain=True)
        self.version += 1
        self.tv_version += 1
        self.hub.publish(LinkChange(True))

    async def _on_disconnect(self) -> None:
        self.version += 1
        self.tv_version += 1
        self.hub.publish(LinkChange(False))

    async def _on_message(self, message: aiomqtt.Message) -> None:
        parts = self.topics.split(message_topic(message))
        payload = message.payload if isinstance(message.payload, (bytes, bytearray)) else b""
        change = self.state.apply(parts, bytes(payload), retained=bool(message.retain))
        if change is None:
            return
        self._sweep_display(change)
        self.version += 1
        if shown_on_tv(change):
            self.tv_version += 1
        self.hub.publish(change)

    def _sweep_display(self, change: Change) -> None:
        """A retained "online" of a TV that is not connected here was left by a server that died
        (its Last Will covers only its own presence): that TV is offline until it comes back. A
        retained presence of a TV that is not listed (left by an older server, or anyone's
        /display/ws?id=…) is removed."""
        if change.kind == "status" and change.retained and change.data is not None \
                and change.key.startswith("display/"):
            display = change.key.removeprefix("display/")
            if display in self._displays:
                return
            if display not in self.listed_displays:
                log.info("Xoá trạng thái của màn hình %s (không có trong [display] ids)", display)
                self.session.publish_soon(self.topics.status_display(display), CLEARED, retain=True)
            elif change.data == "online":
                log.info("Màn hình %s không còn kết nối; ghi nhận offline", display)
                self.session.publish_soon(self.topics.status_display(display), OFFLINE, retain=True)
