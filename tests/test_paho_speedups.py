"""FastProperties behaves as paho's own Properties: same wire bytes, same attributes, same errors."""

from __future__ import annotations

import paho.mqtt._packet as paho_packet
import paho.mqtt.client as paho_client
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import MQTTException, Properties
from paho.mqtt.reasoncodes import ReasonCode

import qms_common.mqtt  # noqa: F401  (installs the speed-up, as every process does)
from qms_common.paho_speedups import FastProperties, FastReasonCode

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
