"""One MQTT session that never gives up, and MQTT 5 request/response on top of it.

aiomqtt does not reconnect by itself; every long-running part of the system runs its broker
connection through MqttSession, which reconnects with backoff, subscribes again, announces
presence and lets the owner repaint its state after each connect.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from qms_common import paho_speedups
from qms_common.codes import MQTT_LOST, MQTT_RESTORED, log_code
from qms_common.config import MqttSettings
from qms_common.protocol import (
    DEADLINE_KEY,
    MAX_REPLY_BYTES,
    OFFLINE,
    ONLINE,
    ErrorCode,
    ProtocolError,
    Topics,
    command_deadline,
    dumps,
    loads_object,
)

log = logging.getLogger(__name__)

# Every process of the system talks MQTT 5 through this module; paho's own Properties class
# was the largest cost per message (see qms_common.paho_speedups).
paho_speedups.install()


class NotConnected(ProtocolError):
    """The broker is unreachable now: the request was not sent, and will not be sent later."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.INTERNAL, "Mất kết nối tới máy chủ tin nhắn (broker).")


class RequestTimeout(ProtocolError):
    def __init__(self) -> None:
        super().__init__(ErrorCode.INTERNAL, "Máy chủ hàng đợi không trả lời. Vui lòng thử lại.")


class Backoff:
    """Exponential backoff with jitter, so a room of agents does not reconnect in lockstep."""

    def __init__(self, initial: float = 0.2, maximum: float = 10.0, factor: float = 2.0) -> None:
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._next = self.initial


def _tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    if not settings.tls:
        return None
    ctx = ssl.create_default_context(cafile=settings.ca_file)
    return ctx


# Without it, Nagle's algorithm meets delayed ACKs and every request waits ~40 ms twice.
NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


def make_client(settings: MqttSettings, *, identifier: str, will: aiomqtt.Will | None = None,
                keepalive: int = 10, session_expiry_s: int = 0) -> aiomqtt.Client:
    """`session_expiry_s` > 0: a persistent session: the broker keeps the subscriptions and
    queues QoS 1 messages while the client is away, that long."""
    properties = None
    if session_expiry_s:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = session_expiry_s
    client = aiomqtt.Client(
        settings.host, settings.port, username=settings.username, password=settings.password,
        identifier=identifier, protocol=aiomqtt.ProtocolVersion.V5, will=will, properties=properties,
        clean_start=not session_expiry_s, keepalive=keepalive, timeout=10, tls_context=_tls_context(settings),
        # 0 = no limit: with a limit paho rescans every queued message at each PUBACK
        max_inflight_messages=0, socket_options=NODELAY,
    )
    # Many QoS 1 publishes in flight is our normal load, not a warning sign.
    client.pending_calls_threshold = 100_000
    paho_speedups.fast_socket_io(client, NODELAY)
    return client


@dataclass(frozen=True)
class Presence:
    """A retained online/offline topic: `offline` is the Last Will, `online` is sent on connect."""

    topic: str

    @property
    def will(self) -> aiomqtt.Will:
        return aiomqtt.Will(self.topic, OFFLINE, qos=1, retain=True)


# A handler may return an awaitable: with manual_ack, the message is acknowledged when it is done
# (a durable write, say), so a crash before that leaves it with the broker.
MessageHandler = Callable[[aiomqtt.Message], Awaitable[Awaitable[Any] | None]]
ConnectHandler = Callable[[], Awaitable[None]]


class MqttSession:
    """Keeps one client connected for the life of the process."""

    def __init__(self, settings: MqttSettings, *, identifier: str, name: str,
                 subscriptions: Iterable[str] = (), presence: Presence | None = None,
                 on_message: MessageHandler | None = None,
                 on_connect: ConnectHandler | None = None,
                 on_disconnect: ConnectHandler | None = None,
                 keepalive: int = 10, retain_as_published: bool = False, session_expiry_s: int = 0,
                 manual_ack: bool = False) -> None:
        self.settings = settings
        self.identifier = identifier
        self.name = name
        self.subscriptions = list(subscriptions)
        self.presence = presence
        self.on_message = on_message
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.keepalive = keepalive
        # MQTT 5: deliver the retain flag as the publisher set it, also on live messages (by
        # default a broker clears it on everything but the retained copies sent at subscribe)
        self.retain_as_published = retain_as_published
        self.session_expiry_s = session_expiry_s
        # acknowledge a QoS 1 message only once its handler is done with it (paho's own option;
        # aiomqtt does not pass it through)
        self.manual_ack = manual_ack
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._unacked: list[Any] = []
        self._requesters: list[Requester] = []
        self.connects = 0  # completed connects (after on_connect)
        self._connect_cond = asyncio.Condition()

    def queued_messages(self) -> int:
        """Received messages not yet handed to on_message."""
        client = self._client
        return len(client.messages) if client is not None else 0

    @property
    def is_connected(self) -> bool:
        return self._client is not None

    async def run(self) -> None:
        backoff = Backoff()
        lost_logged = False
        while True:
            client = make_client(self.settings, identifier=self.identifier,
                                 will=self.presence.will if self.presence else None,
                                 keepalive=self.keepalive, session_expiry_s=self.session_expiry_s)
            try:
                if self.manual_ack:
                    client._client._manual_ack = True
                async with client:
                    options = SubscribeOptions(qos=1, retainAsPublished=self.retain_as_published)
                    for topic in self.subscriptions:
                        await client.subscribe(topic, options=options)
                    self._client = client
                    log_code(log, MQTT_RESTORED, name=self.name, url=self.settings.url())
                    lost_logged = False
                    backoff.reset()
                    self.connected.set()
                    if self.on_connect:
                        await self.on_connect()
                    # online only once the owner has repainted its state: "online" means ready
                    if self.presence:
                        await client.publish(self.presence.topic, ONLINE, qos=1, retain=True)
                    async with self._connect_cond:
                        self.connects += 1
                        self._connect_cond.notify_all()
                    async for message in client.messages:
                        if any(r.handle(message) for r in self._requesters):
                            self._ack(client, message)
                            continue
                        later = await self.on_message(message) if self.on_message else None
                        if later is None:
                            self._ack(client, message)
                        else:
                            fut = asyncio.ensure_future(later)
                            fut.add_done_callback(lambda f, c=client, m=message: self._acked_when_done(c, m, f))
                # the iterator ends only when the connection does
                raise aiomqtt.MqttError("connection closed")
            except (aiomqtt.MqttError, NotConnected) as exc:
                delay = backoff.next()
                if not lost_logged:
                    log_code(log, MQTT_LOST, name=self.name, url=self.settings.url(), reason=exc)
                    lost_logged = True
                await self._lost()
                await asyncio.sleep(delay)
            except BaseException:
                await self._lost()
                raise

    def _ack(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        if self.manual_ack and message.qos > 0 and self._client is client:
            client._client.ack(message.mid, message.qos)

    def _acked_when_done(self, client: aiomqtt.Client, message: aiomqtt.Message, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            # not acknowledged: the broker sends it again after a reconnect
            log.warning("%s: chưa xử lý xong tin trên %s; chờ broker gửi lại", self.name, message.topic)
            return
        self._ack(client, message)

    async def wait_connects(self, count: int) -> None:
        """Wait until `count` connections have been made (and their on_connect has run)."""
        async with self._connect_cond:
            await self._connect_cond.wait_for(lambda: self.connects >= count)

    async def _lost(self) -> None:
        was = self._client is not None
        self._client = None
        self._unacked = []  # a new client starts afresh; nothing of the old one will be acked
        self.connected.clear()
        for r in self._requesters:
            r.fail_all()  # no reply is coming to anything in flight: say so now, not at its timeout
        if was and self.on_disconnect:
            await self.on_disconnect()

    async def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False,
                      properties: Properties | None = None) -> None:
        """Publish now and wait for the broker's acknowledgement; NotConnected when it is away."""
        client = self._client
        if client is None:
            raise NotConnected()
        try:
            await client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        except aiomqtt.MqttError:
            raise NotConnected() from None

    def publish_soon(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False,
                     properties: Properties | None = None) -> bool:
        """Queue a publish without waiting for its acknowledgement (kept in order by the client).

        False when not connected: the caller decides what that means (retained state is sent
        again on the next connect anyway)."""
        client = self._client
        if client is None:
            return False
        # Straight to paho: aiomqtt's publish() costs a task, an event and an O(n) scan of the
        # calls in flight per message, ten times the cost of the publish itself under load.
        # paho keeps the order and handles the PUBACKs; drain() waits for them.
        info = client._client.publish(topic, payload, qos, retain, properties)
        if info.rc != 0:
            log.debug("%s: gửi tin không thành công (mã %s)", self.name, info.rc)
            return False
        self._unacked.append(info)
        if len(self._unacked) > 1024:
            self._unacked = [i for i in self._unacked if not i.is_published()]
        return True

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until the broker has acknowledged what publish_soon queued (or timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._client is not None and loop.time() < deadline:
            self._unacked = [i for i in self._unacked if not i.is_published()]
            if not self._unacked:
                return
            await asyncio.sleep(0.005)

    async def say_offline(self) -> None:
        """A clean stop sends no Last Will, so say it ourselves."""
        if self.presence and self._client is not None:
            try:
                await self.publish(self.presence.topic, OFFLINE, retain=True)
            except NotConnected:
                pass


def response_properties(correlation: bytes | None) -> Properties | None:
    if correlation is None:
        return None
    props = paho_speedups.FastProperties(PacketTypes.PUBLISH)
    props.CorrelationData = correlation
    return props


def request_properties(response_topic: str, correlation: bytes, expiry_s: int | None = None) -> Properties:
    props = paho_speedups.FastProperties(PacketTypes.PUBLISH)
    props.ResponseTopic = response_topic
    props.CorrelationData = correlation
    if expiry_s is not None:
        props.MessageExpiryInterval = expiry_s
    return props


def message_topic(message: aiomqtt.Message) -> str:
    return message.topic.value


def new_request_id() -> str:
    return uuid.uuid4().hex


class Requester:
    """MQTT 5 request/response over an MqttSession: publish with a Response Topic and
    Correlation Data, wait for the core's reply on this client's own reply topic."""

    def __init__(self, session: MqttSession, topics: Topics, client_id: str) -> None:
        self.session = session
        self.reply_topic = topics.reply(client_id)
        self._waiting: dict[bytes, asyncio.Future[dict[str, Any]]] = {}
        # told of each request's round trip (topic, seconds, outcome "ok"/"error"/"timeout"/
        # "not_connected"): the web server's /metrics histogram
        self.observers: list[Callable[[str, float, str], None]] = []
        if self.reply_topic not in session.subscriptions:
            session.subscriptions.append(self.reply_topic)
        # the session hands it its replies and tells it when the connection is lost
        session._requesters.append(self)

    def handle(self, message: aiomqtt.Message) -> bool:
        """A received message for the requester? (The session calls this before on_message.)"""
        if message_topic(message) != self.reply_topic:
            return False
        corr = getattr(message.properties, "CorrelationData", None) if message.properties else None
        fut = self._waiting.pop(bytes(corr), None) if corr is not None else None
        if fut is not None and not fut.done():
            try:
                fut.set_result(loads_object(message.payload, max_bytes=MAX_REPLY_BYTES))  # type: ignore[arg-type]
            except ProtocolError as exc:
                fut.set_exception(exc)
        return True

    async def request(self, topic: str, payload: dict[str, Any], *, timeout: float = 5.0) -> dict[str, Any]:
        """Send one request and return the reply. Raises NotConnected at once when the broker is
        away (a key press must never be queued to fire later), RequestTimeout when no reply.

        The request carries its deadline (in the payload, checked by the core, and as the MQTT
        Message Expiry Interval, so the broker drops it unsent): after RequestTimeout it never
        takes effect. Only a reply lost on its way back leaves the outcome unknown; resend the
        same request_id to learn it."""
        if "request_id" not in payload:
            payload = {**payload, "request_id": new_request_id()}
        sent = time.time()
        deadline = command_deadline(sent, timeout)
        payload = {**payload, DEADLINE_KEY: round(deadline, 3)}
        expiry_s = max(1, math.ceil(deadline - sent))
        corr = uuid.uuid4().bytes
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[corr] = fut
        started = time.perf_counter()
        outcome = "not_connected"
        try:
            # Not waiting for the broker's PUBACK: the reply is the acknowledgement that counts,
            # and a PUBACK that never comes (the broker just died) would hold a key press for
            # the client's 10 s timeout instead of refusing it at once.
            if not self.session.publish_soon(topic, dumps(payload),
                                             properties=request_properties(self.reply_topic, corr, expiry_s)):
                raise NotConnected()
            reply = await asyncio.wait_for(fut, timeout)
            outcome = "ok" if reply.get("ok") is not False else "error"
            return reply
        except TimeoutError:
            outcome = "timeout"
            raise RequestTimeout() from None
        finally:
            for observe in self.observers:
                observe(topic, time.perf_counter() - started, outcome)
            self._waiting.pop(corr, None)
            if fut.done() and not fut.cancelled():
                fut.exception()  # failed by fail_all while the publish itself failed: seen, not lost

    def fail_all(self) -> None:
        """The connection is gone: no reply is coming to anything in flight."""
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(NotConnected())
        self._waiting.clear()
