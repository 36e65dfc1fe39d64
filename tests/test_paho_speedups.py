"""FastProperties behaves as paho's own Properties: same wire bytes, same attributes, same errors;
fast_socket_io reads and writes a burst in few system calls, every message whole."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import aiomqtt
import paho.mqtt._packet as paho_packet
import paho.mqtt.client as paho_client
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import MQTTException, Properties
from paho.mqtt.reasoncodes import ReasonCode

import qms_common.mqtt  # noqa: F401  (installs the speed-up, as every process does)
from qms_common.config import MqttSettings
from qms_common.devbroker import Broker
from qms_common.mqtt import MqttSession
from qms_common.paho_speedups import BufferedSocket, FastProperties, FastReasonCode

EXAMPLES: list[tuple[int, dict[str, object]]] = [
    (PacketTypes.PUBLISH, {"ResponseTopic": "qms/demo/reply/web", "CorrelationData": b"\x00\x01\xff",
                           "PayloadFormatIndicator": 1, "MessageExpiryInterval": 60, "ContentType": "application/json",
                           "TopicAlias": 7, "UserProperty": [("a", "Đất đai"), ("b", "2")]}),
    (PacketTypes.PUBLISH, {"SubscriptionIdentifier": [1, 300000]}),
    (PacketTypes.PUBACK, {"ReasonString": "Không được phép"}),
    (PacketTypes.PUBACK, {}),
    (PacketTypes.CONNECT, {"SessionExpiryInterval": 3600, "ReceiveMaximum": 20, "MaximumPacketSize": 262144,
                           "TopicAliasMaximum": 10, "RequestResponseInformation": 1, "RequestProblemInformation": 0,
                           "AuthenticationMethod": "SCRAM", "AuthenticationData": b"xyz"}),
    (PacketTypes.CONNACK, {"AssignedClientIdentifier": "auto-1", "ServerKeepAlive": 30, "MaximumQoS": 1,
                           "RetainAvailable": 1, "WildcardSubscriptionAvailable": 1, "ResponseInformation": "r/",
                           "ServerReference": "other", "SharedSubscriptionAvailable": 0}),
    (PacketTypes.WILLMESSAGE, {"WillDelayInterval": 5, "ResponseTopic": "x"}),
]


def build(cls: type[Properties], packet: int, values: dict[str, object]) -> Properties:
    p = cls(packet)
    for name, value in values.items():
        if isinstance(value, list):
            for v in value:  # added one at a time, as applications do
                setattr(p, name, v)
        else:
            setattr(p, name, value)
    return p


@pytest.mark.parametrize(("packet", "values"), EXAMPLES)
def test_same_bytes_same_attributes_same_text(packet: int, values: dict[str, object]) -> None:
    slow, fast = build(Properties, packet, values), build(FastProperties, packet, values)
    assert fast.pack() == slow.pack()
    assert fast.json() == slow.json()
    assert str(fast) == str(slow)
    assert fast.isEmpty() == slow.isEmpty()
    wire = slow.pack()
    decoded, length = FastProperties(packet).unpack(wire)
    reference, ref_length = Properties(packet).unpack(wire)
    assert length == ref_length == len(wire)
    assert decoded.json() == reference.json()
    decoded.clear()
    assert decoded.isEmpty() and decoded.pack() == Properties(packet).pack()


@pytest.mark.parametrize(("packet", "name", "value"), [
    (PacketTypes.PUBLISH, "NoSuchProperty", 1),
    (PacketTypes.PUBACK, "ResponseTopic", "x"),        # not a PUBACK property
    (PacketTypes.CONNECT, "ReceiveMaximum", 0),
    (PacketTypes.PUBLISH, "TopicAlias", 70000),
    (PacketTypes.CONNECT, "RequestProblemInformation", 2),
    (PacketTypes.PUBLISH, "PayloadFormatIndicator", 5),
])
def test_same_refusals(packet: int, name: str, value: object) -> None:
    with pytest.raises(MQTTException):
        setattr(Properties(packet), name, value)
    with pytest.raises(MQTTException):
        setattr(FastProperties(packet), name, value)


def test_a_duplicate_single_property_on_the_wire_is_refused() -> None:
    p = Properties(PacketTypes.PUBLISH)
    p.ContentType = "a"
    wire = p.pack()
    doubled = bytes([wire[0] * 2]) + wire[1:] + wire[1:]
    with pytest.raises(MQTTException):
        FastProperties(PacketTypes.PUBLISH).unpack(doubled)


@pytest.mark.parametrize(("packet", "kwargs"), [
    (PacketTypes.PUBACK, {}), (PacketTypes.PUBACK, {"identifier": 0}), (PacketTypes.PUBACK, {"identifier": 16}),
    (PacketTypes.PUBACK, {"identifier": 0x87}), (PacketTypes.DISCONNECT, {}),
    (PacketTypes.CONNACK, {"aName": "Not authorized"}), (PacketTypes.SUBACK, {"identifier": 1}),
])
def test_reason_codes_as_paho_makes_them(packet: int, kwargs: dict[str, object]) -> None:
    try:
        slow = ReasonCode(packet, **kwargs)  # type: ignore[arg-type]
    except (KeyError, ValueError) as exc:
        with pytest.raises(type(exc)):
            FastReasonCode(packet, **kwargs)  # type: ignore[arg-type]
        return
    fast = FastReasonCode(packet, **kwargs)  # type: ignore[arg-type]
    assert (fast.value, str(fast), repr(fast), fast.is_failure, fast.pack()) == (
        slow.value, str(slow), repr(slow), slow.is_failure, slow.pack())
    assert fast == slow and fast == slow.value and isinstance(fast, ReasonCode)
    decoded = FastReasonCode(packet, identifier=0)
    decoded.unpack(slow.pack())
    assert decoded == slow


def test_unknown_reason_codes_are_refused_alike() -> None:
    with pytest.raises(KeyError):
        ReasonCode(PacketTypes.PUBACK, identifier=99)
    with pytest.raises(KeyError):
        FastReasonCode(PacketTypes.PUBACK, identifier=99)
    with pytest.raises(KeyError):
        FastReasonCode(PacketTypes.PUBACK, aName="No such reason")


def test_paho_builds_the_fast_classes_for_what_it_receives() -> None:
    assert paho_client.Properties is FastProperties and paho_packet.Properties is FastProperties
    assert paho_client.ReasonCode is FastReasonCode and paho_packet.ReasonCode is FastReasonCode


# ---------------------------------------------------------------- socket I/O (fast_socket_io)


class CountingSocket:
    """The connection's socket, counting the system calls made on it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.recvs = self.sends = 0

    def recv(self, bufsize: int) -> bytes:
        self.recvs += 1
        return self.sock.recv(bufsize)

    def send(self, data: bytes) -> int:
        self.sends += 1
        return self.sock.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def count_socket_calls(session: MqttSession) -> CountingSocket:
    assert session._client is not None
    paho = session._client._client
    if isinstance(paho._sock, BufferedSocket):
        counting = paho._sock._sock = CountingSocket(paho._sock._sock)  # type: ignore[assignment]
    else:
        counting = paho._sock = CountingSocket(paho._sock)  # type: ignore[assignment]
    return counting


async def test_a_burst_is_read_and_written_in_few_system_calls_and_arrives_whole(broker: Broker) -> None:
    """500 QoS 1 messages to ourselves, a 300 KB one among them: each arrives whole and in order,
    and the 1000 packets each way (500 PUBLISH, 500 PUBACK) take far fewer system calls than
    packets (paho alone: a send per packet, three recv per packet at least)."""
    topic = "qms/speedups/burst"
    n = 500
    payloads = [f"tin {i} — Đất đai".encode() * (1 + i % 7) for i in range(n)]
    payloads[250] = b"x" * 300_000  # longer than one read: its packet is read in pieces
    got: list[bytes] = []
    done = asyncio.Event()

    async def on_message(message: aiomqtt.Message) -> None:
        got.append(bytes(message.payload))  # type: ignore[arg-type]
        if len(got) == n:
            done.set()

    session = MqttSession(MqttSettings.from_url(broker.url), identifier="speedups-burst", name="burst",
                          subscriptions=[topic], on_message=on_message)
    task = asyncio.create_task(session.run())
    try:
        await asyncio.wait_for(session.wait_connects(1), 10)
        calls = count_socket_calls(session)
        for p in payloads:
            assert session.publish_soon(topic, p)
        await asyncio.wait_for(done.wait(), 20)
        await session.drain()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert got == payloads
    assert calls.sends < n // 5
    assert calls.recvs < n // 2
