"""Fuzzing with hypothesis: generated payloads on every cmd topic, random bytes on the serial line.
No crash, and no state change from invalid input."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from counter_agent.drivers import DRIVERS
from counter_agent.drivers import qms_serial as qs
from counter_agent.drivers.base import Ack, DeviceError, KeyPress, Unexpected
from qms_common.config import load_site_config
from qms_common.devbroker import Broker
from qms_common.protocol import Topics
from queue_core.clock import SystemClock
from queue_core.service import QueueService
from queue_core.store import Store
from tests.support.agent import running_agent, sim_bus, write_agent_config
from tests.support.core import running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site

SITE_ID = "fz"
TOPICS = [f"qms/{SITE_ID}/cmd/{s}" for s in
          ("ticket", "counter/1", "counter/2", "counter/3", "counter/99", "counter/Quầy", "rating", "query",
           "nonsense", "counter", "ticket/extra")]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
plausible = st.sampled_from(["dat-dai", "ho-tich", "chung-thuc", "thue", "1", "2", "3", "99", "1001", "C1", "",
                             "Đất đai", "call_next", "call", "recall", "skip", "finish", "transfer", "pause",
                             "resume", "open", "close", "dossier", "ticket", "tickets", 3, 1, 0, -1, True, None])
keys = st.sampled_from(["request_id", "field", "priority", "source", "phone", "action", "ticket", "to_field",
                        "to_counter", "officer", "dossier", "score", "counter", "query", "limit", "after", "from",
                        "to", "reply_to"])
requests = st.dictionaries(keys, plausible | json_values, max_size=7)
payloads = st.one_of(
    st.binary(max_size=200),
    requests.map(lambda d: json.dumps(d).encode()),
    requests.map(lambda d: json.dumps({**d, "request_id": new_id()}, ensure_ascii=False).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
)


def snapshot(service: QueueService) -> tuple[Any, ...]:
    book = service.book
    return (service.seq, dict(book.tickets), dict(book.counters), dict(book.last_number), book.day)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[QueueService]:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", site_id=SITE_ID)
    site = load_site_config(path)
    store = await Store.open(site.storage_path)
    svc = QueueService(site, store, SystemClock())
    await svc.load()
    yield svc
    await store.close()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(topic=st.sampled_from(TOPICS), payload=payloads)
async def test_generated_payloads_on_every_cmd_topic(service: QueueService, topic: str, payload: bytes) -> None:
    """The state evolves across examples through the valid ones; an invalid one changes nothing."""
    before = snapshot(service)
    result = await service.handle(topic, payload)
    reply = result.reply
    if reply is None:  # its reply_to is outside every reply namespace: refused, answered nowhere
        assert b"reply_to" in payload and result.reply_to is None
        assert snapshot(service) == before and result.messages == []
        return
    assert isinstance(reply, dict) and isinstance(reply["ok"], bool)
    json.dumps(reply)  # always serialisable
    if not reply["ok"]:
        assert reply["error"]["code"] in {"bad_request", "unknown_field", "unknown_counter", "unknown_ticket",
                                          "queue_empty", "invalid_state", "range_exhausted", "counter_closed"}
        assert reply["error"]["message"]
        if reply["error"]["code"] != "queue_empty":  # call_next finishes the current ticket first
            assert snapshot(service) == before, reply
            assert result.messages == []
    assert service.flush_state() is not None  # the state can always be rendered


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=80), max_size=12))
def test_random_bytes_never_break_a_decoder(chunks: list[bytes]) -> None:
    for name, driver_class in DRIVERS.items():
        decoder = driver_class().decoder()
        now = 0.0
        for chunk in chunks:
            now += 0.001
            for event in decoder.feed(chunk, now):
                assert isinstance(event, (Ack, KeyPress, DeviceError, Unexpected)), name
        assert all(v >= 0 for v in decoder.drops.values())


def garbage(rng: random.Random, size: int) -> bytes:
    """Random bytes that hold no valid qms-serial frame (else it would be a real key press)."""
    while True:
        data = bytes(rng.randrange(256) for _ in range(size))
        if not any(isinstance(e, KeyPress) for e in qs.QmsSerialDriver().decoder().feed(data, 0.0)):
            return data


async def test_random_bytes_on_the_serial_line(broker: Broker, tmp_path: Path) -> None:
    site_path, site_id = write_site(tmp_path, broker.url)
    topics = Topics(site_id)
    bus = sim_bus(tmp_path, "bus", "qms-serial", {1: "1"})
    config = write_agent_config(tmp_path, broker.url, site_id,
                                [{"id": "1", "port": "bus", "driver": "qms-serial", "address": 1}])
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    try:
        async with running_core(site_path) as core, Probe(broker.url) as probe, running_agent(config) as agent:
            await bus.wait_shown(1, "")
            await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            seq = core.service.seq
            for _ in range(200):
                await bus.send_all(garbage(rng, rng.randrange(1, 300)))
            # then a real key press: the agent still reads its bus, and only this reaches the core
            mark = bus.mark()
            bus.send(qs.encode_frame(1, "K", "N"))
            await bus.wait_shown(1, "1001", flash=True, start=mark)
            assert agent.session.is_connected
            calls = [t for t in core.service.book.tickets.values() if t.calls]
            assert len(calls) == 1, f"seed {seed}"
            assert core.service.seq > seq
    finally:
        bus.close()


async def test_invalid_payloads_over_the_broker_publish_nothing(broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url)
    topics = Topics(site_id)
    rng = random.Random()
    async with running_core(path) as core, Probe(broker.url) as probe:
        await probe.subscribe(topics.state_all, topics.event_all)
        await probe.wait_topic(topics.state_site)
        await probe.request(topics.cmd_counter("99"), {"request_id": new_id(), "action": "open"})
        mark, seq = probe.mark(), core.service.seq
        suffixes = ["ticket", "counter/1", "counter/2", "rating", "query", "what/ever"]
        for _ in range(300):
            kind = rng.randrange(3)
            if kind == 0:
                payload = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
            elif kind == 1:
                payload = json.dumps({"request_id": new_id(), "field": rng.choice(["thue", 7, None]),
                                      "action": rng.choice(["dance", 3, None]), "score": "x"}).encode()
            else:
                payload = b'{"field": "dat-dai", "action": "call_next"}'  # no request_id
            await probe.publish(f"{topics.root}/cmd/{rng.choice(suffixes)}", payload)
        reply = await probe.request(topics.cmd_counter("99"), {"request_id": new_id(), "action": "open"})
        assert reply["error"]["code"] == "unknown_counter"
        assert probe.since(mark, topics.root) == [m for m in probe.since(mark, topics.root)
                                                  if m.topic.startswith(f"{topics.root}/reply")]
        assert core.service.seq == seq and core.service.book.tickets == {}
