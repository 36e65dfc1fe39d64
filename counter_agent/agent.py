"""The counter agent: keys from the serial buses become protocol v1 requests, and the retained
state of each counter (plus the replies) is painted on its panels.

One MQTT session (qms_common.mqtt) for the agent, one Bus per serial port. Nothing is queued
while the broker or the core is away: a key pressed then blinks OFF and is forgotten.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import aiomqtt

from counter_agent.bus import BUSY, UNKNOWN_KEY, Bus, Device
from counter_agent.config import AgentConfig
from counter_agent.keys import KeyCommand, NoSuchField, command_for
from counter_agent.panel import E_TIMEOUT, E_UNKNOWN_FIELD, CounterView, error_text, rating_text
from qms_common.mqtt import (
    MqttSession,
    NotConnected,
    Presence,
    Requester,
    RequestTimeout,
    message_topic,
    new_request_id,
)
from qms_common.protocol import ONLINE, Action, ProtocolError, Topics, dumps, loads_object

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.topics = t = Topics(config.site)
        self.views = {c: CounterView(c) for c in config.counters}
        self.session = MqttSession(
            config.mqtt, identifier=f"qms-agent-{config.site}-{config.id}", name=f"counter_agent {config.id}",
            subscriptions=[t.status_core, t.state_site, *(t.state_counter(c) for c in self.views)],
            presence=Presence(t.status_agent(config.id)),
            on_message=self._on_message, on_connect=self._on_connect, on_disconnect=self._on_disconnect)
        self.requester = Requester(self.session, t, config.id)
        self.buses = [Bus(port, devices, config.serial, on_key=self._on_key, on_change=self._health_changed)
                      for port, devices in config.ports().items()]
        self.devices: dict[str, list[tuple[Bus, Device]]] = {c: [] for c in self.views}
        for bus in self.buses:
            for d in bus.devices:
                self.devices[d.counter].append((bus, d))
        self.core_online = False
        self.fields: list[str] = []  # the site's fields in order: T<digit> is a position here
        self.stopping = False
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._health_dirty = asyncio.Event()
        self._health_sent: dict[str, Any] | None = None

    @property
    def online(self) -> bool:
        return self.session.is_connected and self.core_online and not self.stopping

    # ---------------------------------------------------------------- life

    async def run(self) -> None:
        self.repaint_all()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.session.run())
            tg.create_task(self._health_forever())
            for bus in self.buses:
                tg.create_task(bus.run())

    async def stop(self) -> None:
        """A clean stop: panels show OFF (rather than a number nobody updates) and presence
        says offline."""
        self.stopping = True
        self.repaint_all()
        await asyncio.gather(*(bus.settle(1.0) for bus in self.buses))
        await self.session.say_offline()

    # ---------------------------------------------------------------- painting

    def repaint(self, counter: str) -> None:
        view = self.views[counter]
        display = view.display(online=self.online, now=asyncio.get_running_loop().time())
        for bus, device in self.devices[counter]:
            bus.update(device, display)

    def repaint_all(self) -> None:
        for counter in self.views:
            self.repaint(counter)

    def _notice(self, counter: str, text: str) -> None:
        loop = asyncio.get_running_loop()
        self.views[counter].show_notice(text, loop.time() + self.config.notice_s)
        # a little after it ends, so the view sees it expired
        loop.call_later(self.config.notice_s + 0.01, self.repaint, counter)

    # ---------------------------------------------------------------- MQTT

    async def _on_connect(self) -> None:
        self._health_sent = None
        self._health_changed()
        # the retained state and status/core follow at once; until then the panels say OFF

    async def _on_disconnect(self) -> None:
        self.core_online = False
        self.repaint_all()
        self._health_changed()

    async def _on_message(self, message: aiomqtt.Message) -> None:
        topic = message_topic(message)
        payload = message.payload if isinstance(message.payload, (bytes, bytearray)) else b""
        try:
            match self.topics.split(topic):
                case ("status", "core"):
                    self._core_status(bytes(payload) == ONLINE)
                case ("state", "site"):
                    self._site_state(loads_object(payload))
                case ("state", "counter", counter) if counter in self.views:
                    if self.views[counter].apply_state(loads_object(payload), retained=message.retain):
                        self.repaint(counter)
        except (ProtocolError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("Bỏ qua tin không đọc được trên %s: %s", topic, exc)
        except Exception:
            # a bug here must not take the broker session (and every panel) down with it
            log.exception("Lỗi khi xử lý tin trên %s", topic)

    def _core_status(self, online: bool) -> None:
        if online != self.core_online:
            log.info("Lõi hàng đợi %s", "trực tuyến" if online else "ngoại tuyến: bảng hiện OFF")
        self.core_online = online
        if not online:
            for view in self.views.values():
                view.forget_seq()
        self.repaint_all()

    def _site_state(self, site: dict[str, Any]) -> None:
        self.fields = [f["id"] for f in site.get("fields", []) if isinstance(f, dict) and isinstance(f.get("id"), str)]
        known = {c.get("id") for c in site.get("counters", []) if isinstance(c, dict)}
        for counter, view in self.views.items():
            if view.unknown != (counter not in known):
                view.unknown = counter not in known
                if view.unknown:
                    log.warning("Lõi hàng đợi không có quầy %r: kiểm tra [[counters]] id trong %s",
                                counter, self.config.path)
        self.repaint_all()

    # ---------------------------------------------------------------- keys

    def _on_key(self, device: Device, key: str) -> None:
        counter = device.counter
        view = self.views[counter]
        status = view.state.get("status") if view.state else None
        cmd = command_for(key, status=status, fields=self.fields)
        if cmd is None:
            device.drops[UNKNOWN_KEY] += 1
            log.info("Quầy %s: bỏ qua phím không biết %r", counter, key)
            return
        if counter in self._in_flight:
            # the previous key is still being answered: a bounce, or a double press that would
            # call two citizens
            device.drops[BUSY] += 1
            log.info("Quầy %s: bỏ qua phím %s (phím trước chưa xong)", counter, key)
            return
        if not self.online:
            log.info("Quầy %s: phím %s bị từ chối: không kết nối được lõi hàng đợi", counter, key)
            view.refuse()
            self.repaint(counter)
            return
        if isinstance(cmd, NoSuchField):
            log.info("Quầy %s: phím %s: không có lĩnh vực thứ %d", counter, key, cmd.position)
            self._notice(counter, E_UNKNOWN_FIELD)
            self.repaint(counter)
            return
        self._in_flight.add(counter)
        task = asyncio.create_task(self._send(counter, key, cmd))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, counter: str, key: str, cmd: KeyCommand) -> None:
        view = self.views[counter]
        rid = new_request_id()
        try:
            reply = await self.requester.request(cmd.topic(self.topics, counter), cmd.payload(rid, counter),
                                                 timeout=self.config.request_timeout_s)
        except NotConnected:
            log.info("Quầy %s: phím %s không gửi được: mất kết nối broker", counter, key)
            view.refuse()
        except RequestTimeout:
            log.warning("Quầy %s: lõi hàng đợi không trả lời phím %s (%s)", counter, key, rid)
            self._notice(counter, E_TIMEOUT)
        else:
            self._apply_reply(counter, key, cmd, reply)
        finally:
            self._in_flight.discard(counter)
        self.repaint(counter)

    def _apply_reply(self, counter: str, key: str, cmd: KeyCommand, reply: dict[str, Any]) -> None:
        view = self.views[counter]
        if reply.get("ok") is True:
            ticket = reply.get("ticket")
            log.info("Quầy %s: phím %s: %s", counter, key,
                     f"vé {ticket.get('number')}" if isinstance(ticket, dict) else "xong")
            if cmd.score is not None:
                self._notice(counter, rating_text(cmd.score))
            elif cmd.action in (Action.CALL_NEXT, Action.RECALL) and isinstance(ticket, dict):
                view.apply_call(ticket)
            return
        error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
        code = error.get("code")
        log.info("Quầy %s: phím %s bị từ chối: %s (%s)", counter, key, error.get("message"), code)
        self._notice(counter, error_text(code))

    # ---------------------------------------------------------------- health

    def _health_changed(self) -> None:
        self._health_dirty.set()

    def health(self) -> dict[str, Any]:
        return {
            "agent": self.config.id,
            "ports": [bus.health() for bus in self.buses],
            "counters": [d.health(bus.is_open) for bus in self.buses for d in bus.devices],
        }

    async def _health_forever(self) -> None:
        topic = self.topics.health_agent(self.config.id)
        while True:
            await self._health_dirty.wait()
            self._health_dirty.clear()
            body = self.health()
            if body != self._health_sent:
                at = datetime.now().astimezone().isoformat(timespec="seconds")
                if self.session.publish_soon(topic, dumps({**body, "at": at}), retain=True):
                    self._health_sent = body
            # at most one message per health_s, whatever the bus does
            await asyncio.sleep(self.config.health_s)
