"""The province service: every office's events, presence and state from the central broker into PostgreSQL.

One MQTT session with a persistent session on the central broker, acknowledging each QoS 1 message
only once PostgreSQL has it: killed at any moment, the service gets again from the broker whatever
it had not written, and the store's (site, seq) key drops whatever it had.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import aiomqtt

from province.settings import ProvinceSettings
from province.store import Message, ProvinceStore
from qms_common.mqtt import MqttSession, message_topic
from qms_common.protocol import SLUG_RE, ProtocolError, loads_object

log = logging.getLogger("province")

SUBSCRIPTIONS = ("qms/+/event/#", "qms/+/status/#", "qms/+/state/#")
# the broker keeps our subscriptions and unacknowledged messages this long while we are away
SESSION_EXPIRY_S = 7 * 24 * 3600


def parse_message(topic: str, payload: bytes | bytearray | str | None) -> Message | None:
    """An office message from its topic and payload; None for what is not ours to store."""
    parts = topic.split("/", 2)
    if len(parts) < 3 or parts[0] != "qms" or not SLUG_RE.match(parts[1]):
        return None
    site, rest = parts[1], parts[2]
    if rest.startswith("status/"):
        text = bytes(payload or b"").decode("utf-8", errors="replace") if not isinstance(payload, str) else payload
        return Message(site, rest, text) if text in ("online", "offline") else None
    if not payload:
        return None  # a retained message removed
    body = loads_object(payload)  # ProtocolError for anything but a JSON object
    return Message(site, rest, body)


@dataclass
class ProvinceService:
    settings: ProvinceSettings
    store: ProvinceStore
    written: int = 0  # messages newly stored by this process (a repeat is not counted)
    # presence has no seq to order it by: its writes are applied one at a time, in arrival order
    # (asyncio.Lock is first come, first served), so an online right after an offline stays online
    _presence: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.session = MqttSession(
            self.settings.mqtt, identifier=f"qms-province-{self.settings.id}", name="province",
            subscriptions=SUBSCRIPTIONS, on_message=self._on_message, session_expiry_s=SESSION_EXPIRY_S,
            manual_ack=True)

    async def run(self) -> None:
        await self.store.ensure_sites([(s.id, s.name, s.district) for s in self.settings.sites])
        await self.session.run()

    async def _on_message(self, message: aiomqtt.Message) -> asyncio.Future[None] | None:
        topic = message_topic(message)
        try:
            m = parse_message(topic, message.payload)  # type: ignore[arg-type]
        except ProtocolError as exc:
            log.warning("Bỏ tin trên %s: %s", topic, exc.message)
            return None
        if m is None:
            return None
        return asyncio.ensure_future(self._write(m))

    async def _write(self, m: Message) -> None:
        # an exception leaves the message unacknowledged: the broker sends it again on reconnect
        if m.topic.startswith("status/"):
            async with self._presence:
                await self.store.write(m)
            return
        if await self.store.write(m):
            self.written += 1

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.store.close()
