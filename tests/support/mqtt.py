"""A test's view of the broker: send requests like any client, and wait for what should arrive."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from qms_common.config import MqttSettings
from qms_common.mqtt import NODELAY


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    properties: Any

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")

    @property
    def json(self) -> Any:
        return json.loads(self.payload)


class Probe:
    """An MQTT client that records everything it receives, for tests to wait on."""

    def __init__(self, url: str, *, protocol: aiomqtt.ProtocolVersion = aiomqtt.ProtocolVersion.V5,
                 identifier: str | None = None) -> None:
        s = MqttSettings.from_url(url)
        self.client = aiomqtt.Client(s.host, s.port, username=s.username, password=s.password,
                                     protocol=protocol, identifier=identifier or f"probe-{uuid.uuid4().hex[:8]}",
                                     socket_options=NODELAY, max_inflight_messages=1000)
        self.client.pending_calls_threshold = 100_000
        self.received: list[Received] = []
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        # the core answers only in a reply namespace qms/{site}/reply/{user}/..., of the site of
        # the command (known at the first request)
        self.user = s.username or "probe"
        self._reply_leaf = f"probe-{uuid.uuid4().hex}"
        self._reply_topics: set[str] = set()
        self.reply_topic = ""  # the one of the last request

    async def __aenter__(self) -> Probe:
        await self.client.__aenter__()
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._reader
        with contextlib.suppress(aiomqtt.MqttError):
            await self.client.__aexit__(None, None, None)

    async def _read(self) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for m in self.client.messages:
                payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                async with self._changed:
                    self.received.append(Received(m.topic.value, payload, m.retain, m.properties))
                    self._changed.notify_all()

    async def subscribe(self, *topics: str) -> None:
        for t in topics:
            await self.client.subscribe(t, qos=1)

    async def publish(self, topic: str, payload: bytes | str | dict[str, Any], *, retain: bool = False,
                      properties: Properties | None = None) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload, ensure_ascii=False).encode()
        await self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)

    async def wait_for(self, predicate: Callable[[Received], bool], *, timeout: float = 5.0,
                       start: int = 0) -> Received:
        """The first message (from index `start`) that satisfies predicate, waiting for it."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                while True:
                    for m in self.received[start:]:
                        if predicate(m):
                            return m
                    await self._changed.wait()

    async def wait_topic(self, topic: str, predicate: Callable[[Any], bool] = lambda _: True, *,
                         timeout: float = 5.0, start: int = 0) -> Any:
        m = await self.wait_for(lambda m: m.topic == topic and predicate(m.json), timeout=timeout, start=start)
        return m.json

    async def reply_topic_for(self, command_topic: str, topic: str | None = None) -> str:
        """This probe's reply topic in the site of a command topic (or `topic`), subscribed."""
        root = "/".join(command_topic.split("/")[:2])
        topic = topic or f"{root}/reply/{self.user}/{self._reply_leaf}"
        if topic not in self._reply_topics:
            await self.client.subscribe(topic, qos=1)
            self._reply_topics.add(topic)
        return topic

    def mark(self) -> int:
        return len(self.received)

    def since(self, mark: int, prefix: str = "") -> list[Received]:
        return [m for m in self.received[mark:] if m.topic.startswith(prefix)]

    async def request(self, topic: str, payload: bytes | str | dict[str, Any], *, timeout: float = 5.0,
                      correlation: bytes | None = None, reply_topic: str | None = None) -> dict[str, Any]:
        """An MQTT 5 request: the reply comes on our Response Topic (this probe's own, or
        `reply_topic`) with our Correlation Data."""
        corr = correlation or uuid.uuid4().bytes
        self.reply_topic = answer = await self.reply_topic_for(topic, reply_topic)
        mark = self.mark()
        await self.publish(topic, payload, properties=response_topic(answer, corr))
        m = await self.wait_for(
            lambda m: m.topic == answer and getattr(m.properties, "CorrelationData", None) == corr,
            timeout=timeout, start=mark)
        return m.json


def response_topic(topic: str, correlation: bytes | None = None) -> Properties:
    """A request's MQTT 5 properties: where the reply goes, and its Correlation Data."""
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = topic
    props.CorrelationData = correlation or uuid.uuid4().bytes
    return props


def new_id() -> str:
    return uuid.uuid4().hex
