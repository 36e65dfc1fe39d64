"""The core's MQTT adapter: commands in, replies and state out, presence, and the day ticker."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiomqtt

from qms_common.mqtt import MqttSession, Presence, message_topic, response_properties
from qms_common.protocol import (
    ErrorCode,
    ProtocolError,
    bad_request,
    dumps,
    error_reply,
    loads_object,
    reply_to_of,
    request_id_of,
)
from queue_core.health import CoreHealth, HealthSettings
from queue_core.service import Outgoing, Pending, QueueService

log = logging.getLogger(__name__)

# Under a burst, retained state is sent once per this many commands at least (and whenever no
# command is waiting); events and replies are never held back.
FLUSH_EVERY = 32


class CoreLink:
    def __init__(self, service: QueueService, health: HealthSettings | None = None) -> None:
        self.service = service
        topics = service.topics
        self.session = MqttSession(
            service.site.mqtt, identifier=f"qms-core-{service.site.id}", name="queue_core",
            subscriptions=[topics.cmd_all], presence=Presence(topics.status_core),
            on_message=self._on_message, on_connect=self._on_connect, retain_as_published=True)
        # the core's own health (queue_core.health): it times the store's commits
        self.health = CoreHealth(health or HealthSettings.of(service.site), service.site.storage_path, tz=service.tz)
        service.store.commit_probe = self.health.commits
        # set once the state of the first connection is published (tests and tools wait on it)
        self.ready = asyncio.Event()
        self._since_flush = 0
        self._flusher: asyncio.Task[None] | None = None
        self._finishing: set[asyncio.Future[None]] = set()

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._tick_forever()), asyncio.create_task(self.health.run(self._publish_health))]
        try:
            await self.session.run()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def stop(self) -> None:
        await self._settle()
        if self._flusher is not None:
            await self._flusher
        await self.session.drain()
        await self.session.say_offline()

    async def _on_connect(self) -> None:
        # The broker may have restarted empty: everything retained is sent again.
        await self._settle()
        try:
            self._send(await self.service.full_state())
        except Exception:
            # Never a reason to stay away from the broker: commands still get answers, and the
            # state goes out with the next flush once the core has reloaded from its database.
            log.exception("Không phát được trạng thái sau khi kết nối")
        try:
            self.health.check()
            self.health.publish(self._publish_health, force=True)
        except Exception:
            log.exception("Không phát được sức khoẻ của lõi")
        await self.session.drain()
        self.ready.set()

    async def _on_message(self, message: aiomqtt.Message) -> None:
        """Decide each command in order; its commit, reply and events finish in a task of their
        own, so the next command is decided while the disk writes this one."""
        topic = message_topic(message)
        if topic == self.service.topics.cmd_dossier:
            return  # the dossier service's commands (dossiers/): not ours to answer, nor to clear
        props = message.properties
        response_topic = getattr(props, "ResponseTopic", None) if props else None
        correlation = getattr(props, "CorrelationData", None) if props else None
        payload = message.payload if isinstance(message.payload, (bytes, bytearray)) else None
        if message.retain:
            if payload:  # an empty one is the clearing of a retained command (ours, just sent)
                self._refuse_retained(topic, bytes(payload), response_topic, correlation)
            return
        try:
            pending = await self.service.accept(topic, bytes(payload) if payload is not None else None,
                                                response_topic)
        except Exception:
            log.exception("Lỗi không mong đợi khi xử lý lệnh trên %s", topic)
            self._reply(response_topic, correlation, error_reply(
                None, ErrorCode.INTERNAL, "Lỗi hệ thống, vui lòng thử lại."))
            return
        task = asyncio.ensure_future(self._finish(pending, response_topic, correlation))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        self._since_flush += 1
        if self._since_flush >= FLUSH_EVERY:
            await self._flush()
        elif self.session.queued_messages() == 0 and (self._flusher is None or self._flusher.done()):
            # Nothing waiting: the state goes out once the commands taken so far are written, but
            # a command arriving meanwhile is decided at once, not after the others' disk writes.
            self._flusher = asyncio.ensure_future(self._flush_quietly())

    async def _finish(self, pending: Pending, response_topic: str | None, correlation: bytes | None) -> None:
        try:
            result = await self.service.complete(pending)
        except Exception:
            log.exception("Lỗi không mong đợi khi hoàn tất lệnh")
            self._reply(response_topic, correlation, error_reply(
                None, ErrorCode.INTERNAL, "Lỗi hệ thống, vui lòng thử lại."))
            return
        self._send(result.messages)
        if result.reply is not None:
            self._reply(result.reply_to, correlation, result.reply)

    def _refuse_retained(self, topic: str, payload: bytes, response_topic: str | None,
                         correlation: bytes | None) -> None:
        """A retained command would run again for every new subscriber and at every reconnect:
        it is never executed. The core sees the flag because it subscribes with "retain as
        published"; it clears the retained copy so nobody gets it again, and says why."""
        log.warning("Từ chối lệnh được giữ lại (retained) trên %s và xoá nó khỏi broker", topic)
        self.session.publish_soon(topic, b"", retain=True)
        try:
            obj = loads_object(payload)
        except ProtocolError:
            obj = {}
        exc = bad_request("lệnh được giữ lại (retained) không bao giờ được thực hiện; hãy gửi lại không có cờ retain.")
        rid = request_id_of(obj)
        self._reply(response_topic or reply_to_of(obj), correlation, error_reply(rid, exc.code, exc.message))

    def _reply(self, topic: str | None, correlation: bytes | None, reply: dict[str, object]) -> None:
        # Never outside a reply namespace, whatever the request said (the service refuses those
        # already; this holds for every path, an unexpected error's too).
        if topic and self.service.topics.reply_owner(topic) is not None:
            self.session.publish_soon(topic, dumps(reply), properties=response_properties(correlation))

    async def _settle(self) -> None:
        """Until every command taken so far is written, answered and its events sent."""
        while self._finishing:
            await asyncio.wait(set(self._finishing))

    async def _flush_quietly(self) -> None:
        try:
            await self._flush()
        except Exception:
            log.exception("Không phát được trạng thái")

    async def _flush(self) -> None:
        # Retained state is computed from the book: only once every command in it is written.
        await self._settle()
        self._since_flush = 0
        self._send(self.service.flush_state())

    def _publish_health(self, body: bytes) -> bool:
        return self.session.publish_soon(self.service.topics.health_core, body, retain=True)

    def _send(self, messages: list[Outgoing]) -> None:
        for m in messages:
            self.session.publish_soon(m.topic, m.payload, retain=m.retain)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.service.site.queue.tick_s)
            try:
                await self._settle()
                self._send(await self.service.tick())
                await self._flush()
            except Exception:
                log.exception("Lỗi khi chuyển ngày làm việc")
