"""The counter agent end to end: simulated panels and keypads on real ptys, the real broker and the
real core. Every wait is on the frame or message expected, with a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from counter_agent.agent import Agent
from counter_agent.drivers import modbus_led as mb
from counter_agent.drivers import qms_serial as qs
from counter_agent.simulator.bus import SimulatedBus
from counter_agent.simulator.devices import Panel, QmsSerialDevices, Shown
from qms_common.devbroker import Broker
from qms_common.protocol import Topics
from tests.support.agent import running_agent, sim_bus, write_agent_config
from tests.support.core import InProcessCore, running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site


@dataclass
class Rig:
    agent: Agent
    probe: Probe
    topics: Topics
    bus_a: SimulatedBus   # qms-serial: counter 1 at 01, counter 2 at 02 (one RS-485 bus)
    bus_b: SimulatedBus   # qms-serial: counter 3 at 01
    bus_m: SimulatedBus   # modbus-led: counter 1's wall display at 05
    config: Path
    url: str
    core: InProcessCore

    async def ticket(self, field: str) -> dict[str, Any]:
        reply = await self.probe.request(self.topics.cmd_ticket, {"request_id": new_id(), "field": field})
        assert reply["ok"], reply
        return reply["ticket"]

    async def counter(self, counter: str, action: str, **kw: Any) -> dict[str, Any]:
        return await self.probe.request(self.topics.cmd_counter(counter),
                                        {"request_id": new_id(), "action": action, **kw})

    async def health(self, predicate: Any, timeout: float = 15.0) -> dict[str, Any]:
        return await self.probe.wait_topic(self.topics.health_agent("agent-1"), predicate, timeout=timeout)


def device_health(health: dict[str, Any], counter: str, port_name: str) -> dict[str, Any]:
    return next(d for d in health["counters"] if d["counter"] == counter and d["port"].endswith(port_name))


def port_health(health: dict[str, Any], port_name: str) -> dict[str, Any]:
    return next(p for p in health["ports"] if p["port"].endswith(port_name))


DEVICES = [
    {"id": "1", "port": "bus-a", "driver": "qms-serial", "address": 1},
    {"id": "2", "port": "bus-a", "driver": "qms-serial", "address": 2},
    {"id": "3", "port": "bus-b", "driver": "qms-serial", "address": 1},
    {"id": "1", "port": "bus-m", "driver": "modbus-led", "address": 5, "digits": 4},
]


async def start_rig(broker_url: str, tmp_path: Path, **agent_kw: Any) -> AsyncIterator[Rig]:
    site_path, site_id = write_site(tmp_path, broker_url)
    topics = Topics(site_id)
    bus_a = sim_bus(tmp_path, "bus-a", "qms-serial", {1: "1", 2: "2"})
    bus_b = sim_bus(tmp_path, "bus-b", "qms-serial", {1: "3"})
    bus_m = sim_bus(tmp_path, "bus-m", "modbus-led", {5: "1"})
    config = write_agent_config(tmp_path, broker_url, site_id, DEVICES, **agent_kw)
    try:
        async with running_core(site_path) as core, Probe(broker_url) as probe, running_agent(config) as agent:
            await probe.subscribe(topics.state_all, topics.status_all, topics.event_all, topics.health_all)
            rig = Rig(agent, probe, topics, bus_a, bus_b, bus_m, config, broker_url, core)
            # every panel shows its closed counter (blank): the agent is connected and has the state
            for bus, address in ((bus_a, 1), (bus_a, 2), (bus_b, 1), (bus_m, 5)):
                await bus.wait_shown(address, "")
            yield rig
    finally:
        for bus in (bus_a, bus_b, bus_m):
            bus.close()


@pytest.fixture
async def rig(broker: Broker, tmp_path: Path) -> AsyncIterator[Rig]:
    async for r in start_rig(broker.url, tmp_path):
        yield r


async def test_key_next_round_trip_flashes_the_number(rig: Rig) -> None:
    await rig.ticket("dat-dai")
    mark = rig.bus_a.mark()
    rig.bus_a.press(1, "N")
    shown = await rig.bus_a.wait_shown(1, "1001", flash=True, start=mark)
    assert shown.raw == b"\x0201F100147\x03"  # F "1001"; the XOR of "01F1001" is 0x47
    state = await rig.probe.wait_topic(rig.topics.state_counter("1"),
                                       lambda s: s["status"] == "serving" and s["ticket"]["number"] == "1001")
    assert state["ticket"]["calls"] == 1
    # the same call reaches counter 1's Modbus wall display, as segment bytes
    m = await rig.bus_m.wait_shown(5, "1001", start=0)
    assert m.raw == bytes.fromhex("05 10 00 80 00 02 04 06 3f 3f 06") + m.raw[-2:]
    assert mb.crc_ok(m.raw)
    # the other counter on the same bus was not touched
    assert not [s for s in rig.bus_a.shown[mark:] if s.address == 2 and s.kind != "ping"]


async def test_call_from_another_client_reaches_the_panel(rig: Rig) -> None:
    await rig.ticket("ho-tich")
    mark = rig.bus_b.mark()
    reply = await rig.counter("3", "call_next")
    assert reply["ok"] and reply["ticket"]["number"] == "2001"
    await rig.bus_b.wait_shown(1, "2001", flash=True, start=mark)
    # a recall blinks again; finishing empties the panel
    mark = rig.bus_b.mark()
    await rig.counter("3", "recall")
    await rig.bus_b.wait_shown(1, "2001", flash=True, start=mark)
    await rig.counter("3", "finish")
    await rig.bus_b.wait_shown(1, "----", start=mark)


async def test_every_key(rig: Rig) -> None:
    t, bus = rig.topics, rig.bus_a
    await rig.ticket("dat-dai")
    await rig.ticket("dat-dai")
    await rig.ticket("ho-tich")

    mark = bus.mark()
    bus.press(2, "N")  # counter 2 serves dat-dai and ho-tich: 1001 first
    await bus.wait_shown(2, "1001", flash=True, start=mark)

    mark = bus.mark()
    bus.press(2, "R")
    await bus.wait_shown(2, "1001", flash=True, start=mark)
    await rig.probe.wait_topic(t.state_counter("2"), lambda s: s["ticket"] and s["ticket"]["calls"] == 2)

    mark = bus.mark()
    bus.press(2, "P")  # pause
    await bus.wait_shown(2, "PAUS", start=mark)
    mark = bus.mark()
    bus.press(2, "P")  # and resume: the toggle follows the counter's state
    await bus.wait_shown(2, "1001", start=mark)

    mark = bus.mark()
    bus.press(2, "T3")  # transfer to the third field of state/site: chung-thuc
    await bus.wait_shown(2, "----", start=mark)
    await rig.probe.wait_topic(t.state_queue("chung-thuc"), lambda q: q["waiting"] == 1)

    mark = bus.mark()
    bus.press(2, "N")
    await bus.wait_shown(2, "1002", flash=True, start=mark)
    mark = bus.mark()
    bus.press(2, "S")  # the citizen did not come
    await bus.wait_shown(2, "----", start=mark)
    await rig.probe.wait_for(lambda m: m.topic == t.event("skipped") and m.json["ticket"]["number"] == "1002")


async def test_refusals_show_short_codes(rig: Rig) -> None:
    bus = rig.bus_a
    mark = bus.mark()
    bus.press(1, "R")  # closed counter: nothing to recall
    await bus.wait_shown(1, "E-02", flash=True, start=mark)
    mark = bus.mark()
    bus.press(1, "N")  # nobody waiting: the counter opens and says so
    await bus.wait_shown(1, "----", flash=True, start=mark)
    mark = bus.mark()
    bus.press(1, "S")  # open, no ticket
    await bus.wait_shown(1, "E-01", flash=True, start=mark)
    mark = bus.mark()
    bus.press(1, "T7")  # the site has three fields: refused by the agent, nothing sent
    await bus.wait_shown(1, "E-03", flash=True, start=mark)
    # the notice goes away by itself: the panel shows the state again
    await bus.wait_shown(1, "----", flash=False, start=mark)


async def test_rating_key(rig: Rig) -> None:
    await rig.ticket("dat-dai")
    await rig.counter("1", "call_next")
    await rig.counter("1", "finish")
    mark = rig.bus_a.mark()
    probe_mark = rig.probe.mark()
    rig.bus_a.press(1, "3")
    await rig.bus_a.wait_shown(1, "r-3", flash=True, start=mark)
    rated = await rig.probe.wait_for(lambda m: m.topic == rig.topics.event("rated"), start=probe_mark)
    assert rated.json["ticket"]["number"] == "1001" and rated.json["ticket"]["rating"] == 3
    mark = rig.bus_a.mark()
    rig.bus_a.press(1, "2")  # rated already
    await rig.bus_a.wait_shown(1, "E-01", flash=True, start=mark)


async def test_presence_online_and_offline(rig: Rig) -> None:
    status = rig.topics.status_agent("agent-1")
    await rig.probe.wait_for(lambda m: m.topic == status and m.text == "online")
    async with Probe(rig.url) as late:  # a dashboard that connects later sees it too
        await late.subscribe(status)
        m = await late.wait_for(lambda m: m.topic == status)
        assert m.text == "online" and m.retain
    mark = rig.bus_a.mark()
    await rig.agent.stop()  # a clean stop says offline itself and shows OFF on the panels
    await rig.probe.wait_for(lambda m: m.topic == status and m.text == "offline")
    await rig.bus_a.wait_shown(1, "OFF", start=mark)


async def test_broker_down_shows_off_and_refuses_keys(own_broker: Broker, tmp_path: Path) -> None:
    async for rig in start_rig(own_broker.url, tmp_path):
        bus = rig.bus_a
        await rig.ticket("dat-dai")
        mark = bus.mark()
        own_broker.stop()
        await bus.wait_shown(1, "OFF", flash=False, start=mark)
        await rig.bus_m.wait_shown(5, "0FF")  # the wall display too (O and 0 look the same)
        mark = bus.mark()
        bus.press(1, "N")
        await bus.wait_shown(1, "OFF", flash=True, start=mark)  # refused, visibly
        own_broker.start()
        # back: the panel is painted again from the retained state (closed counter: blank)
        await bus.wait_shown(1, "", start=mark)
        await rig.bus_b.wait_shown(1, "", start=0)
        async with Probe(own_broker.url) as probe:  # the rig's probe went down with the broker
            await probe.subscribe(rig.topics.state_all)
            # the key pressed while the broker was down never fired
            state = await probe.wait_topic(rig.topics.state_counter("1"))
            assert state["status"] == "closed" and state["ticket"] is None
            queue = await probe.wait_topic(rig.topics.state_queue("dat-dai"))
            assert queue["waiting"] == 1
            # and keys work again
            mark = bus.mark()
            bus.press(1, "N")
            await bus.wait_shown(1, "1001", flash=True, start=mark)
            await probe.wait_topic(rig.topics.state_queue("dat-dai"), lambda q: q["waiting"] == 0)


async def test_core_offline_shows_off(rig: Rig) -> None:
    mark = rig.bus_b.mark()
    # what the broker publishes as the core's Last Will when the core dies
    await rig.probe.publish(rig.topics.status_core, "offline", retain=True)
    await rig.bus_b.wait_shown(1, "OFF", start=mark)
    mark = rig.bus_b.mark()
    rig.bus_b.press(1, "N")
    await rig.bus_b.wait_shown(1, "OFF", flash=True, start=mark)
    mark = rig.bus_b.mark()
    await rig.probe.publish(rig.topics.status_core, "online", retain=True)
    await rig.bus_b.wait_shown(1, "", start=mark)
    state = await rig.probe.wait_topic(rig.topics.state_counter("3"))
    assert state["status"] == "closed"


async def test_serial_port_pulled_and_back(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="counter_agent")
    await rig.ticket("dat-dai")
    await rig.ticket("ho-tich")
    rig.bus_a.unplug()
    health = await rig.health(lambda h: not port_health(h, "bus-a")["open"])
    assert device_health(health, "1", "bus-a")["port_open"] is False
    assert port_health(health, "bus-b")["open"]
    # the other port keeps working while this one is gone
    mark = rig.bus_b.mark()
    rig.bus_b.press(1, "N")
    await rig.bus_b.wait_shown(1, "2001", flash=True, start=mark)
    # a call made while the cable is out shows once it is back
    reply = await rig.counter("1", "call_next")
    assert reply["ticket"]["number"] == "1001"
    await rig.bus_m.wait_shown(5, "1001")
    rig.bus_a.replug()
    mark = 0  # a new pty: everything it saw is new
    await rig.bus_a.wait_shown(1, "1001", start=mark)
    await rig.bus_a.wait_shown(2, "", start=mark)
    health = await rig.health(lambda h: port_health(h, "bus-a")["open"]
                              and device_health(h, "1", "bus-a")["shown"] == "1001")
    assert port_health(health, "bus-a")["opens"] == 2
    lost = [r for r in caplog.records if "Mất cổng" in r.getMessage()]
    assert len(lost) == 1 and "bus-a" in lost[0].getMessage()
    # and its keys work again
    mark = rig.bus_a.mark()
    rig.bus_a.press(2, "N")
    await rig.bus_a.wait_shown(2, "----", flash=True, start=mark)


async def test_garbage_and_bad_frames_are_dropped_and_counted(rig: Rig) -> None:
    bus = rig.bus_a
    good = qs.encode_frame(1, "K", "N")
    bus.send(b"\x00\xffnoise\r\n")                                 # 9 bytes of garbage
    bus.send(good[:-3] + b"00" + good[-1:])                          # a bad checksum
    bus.send(qs.encode_frame(0x33, "K", "N"))                        # nobody at 33 on this bus
    bus.send(qs.encode_frame(2, "K", "X"))                           # no such key
    bus.send(qs.encode_frame(2, "K", "9"))                           # nor this one
    bus.send(b"\x0202KN")                                            # cut short by the next frame
    await rig.ticket("dat-dai")
    mark = bus.mark()
    bus.send(good)                                                   # and still: N works
    await bus.wait_shown(1, "1001", flash=True, start=mark)
    health = await rig.health(lambda h: port_health(h, "bus-a")["dropped"]["bad_frame"] == 1
                              and device_health(h, "2", "bus-a")["dropped"]["unknown_key"] == 2)
    assert port_health(health, "bus-a")["dropped"] == {
        "bad_checksum": 1, "bad_frame": 1, "garbage": 9, "unexpected": 0, "wrong_address": 1}
    assert device_health(health, "1", "bus-a")["keys"] == 1
    # nothing reached the core but the one good key
    state = await rig.probe.wait_topic(rig.topics.state_counter("2"))
    assert state["status"] == "closed"


async def test_unresponsive_device_is_retried_then_offline(rig: Rig) -> None:
    bus = rig.bus_a
    bus.mute(2)
    mark = bus.mark()
    health = await rig.health(lambda h: device_health(h, "2", "bus-a")["device"] == "offline")
    dev = device_health(health, "2", "bus-a")
    assert dev["retries"] >= 2
    assert device_health(health, "1", "bus-a")["device"] == "online"
    # the retries were the same frame, sent again
    pings = [s for s in bus.shown[mark:] if s.address == 2]
    assert len(pings) >= 3 and len({s.raw for s in pings[:3]}) == 1
    # the other device on the bus keeps working meanwhile
    await rig.ticket("dat-dai")
    m1 = bus.mark()
    await rig.counter("1", "call_next")
    await bus.wait_shown(1, "1001", flash=True, start=m1)
    # a call for the silent device's counter, then it answers again: it is painted at once, and
    # the call made while it was away still blinks
    await rig.ticket("dat-dai")
    await rig.counter("2", "call_next")
    m2 = bus.mark()
    bus.mute(2, False)
    await bus.wait_shown(2, "1002", flash=True, start=m2)
    await rig.health(lambda h: device_health(h, "2", "bus-a")["device"] == "online")


async def test_a_call_over_before_its_panel_showed_it_does_not_blink(rig: Rig) -> None:
    """docs/hardware.md: a blinking `----` says nobody is waiting. A call that was made and
    finished while the panel was away must not make the `----` after it blink."""
    bus = rig.bus_a
    bus.mute(2)
    await rig.health(lambda h: device_health(h, "2", "bus-a")["device"] == "offline")
    await rig.ticket("dat-dai")
    await rig.ticket("dat-dai")
    assert (await rig.counter("2", "call_next"))["ok"]
    assert (await rig.counter("2", "finish"))["ok"]
    await rig.probe.wait_topic(rig.topics.state_counter("2"), lambda s: s["status"] == "open")
    mark = bus.mark()
    bus.mute(2, False)
    shown = await bus.wait_shown(2, "----", start=mark)
    assert not shown.flash  # one citizen is still waiting
    await rig.health(lambda h: device_health(h, "2", "bus-a")["device"] == "online")


async def test_a_key_from_a_device_thought_offline_is_answered_at_once(broker: Broker, tmp_path: Path) -> None:
    # Pings far apart: only the key itself can tell the agent the device is back.
    async for rig in start_rig(broker.url, tmp_path, serial={"ping_s": 60.0}):
        bus = rig.bus_a
        bus.mute(2)
        await rig.ticket("dat-dai")
        await rig.counter("2", "open", officer="cb02")  # a paint the silent device never acknowledges
        await rig.health(lambda h: device_health(h, "2", "bus-a")["device"] == "offline")
        bus.mute(2, False)
        mark = bus.mark()
        bus.press(2, "N")
        await bus.wait_shown(2, "1001", flash=True, start=mark, timeout=5.0)
        await rig.health(lambda h: device_health(h, "2", "bus-a")["device"] == "online")


async def test_modbus_panel_frames(rig: Rig) -> None:
    await rig.ticket("dat-dai")
    mark = rig.bus_m.mark()
    await rig.counter("1", "call_next")
    shown = await rig.bus_m.wait_shown(5, "1001", start=mark)
    assert shown.raw == mb.write_multiple(5, 0x80, bytes.fromhex("06 3F 3F 06"))
    await rig.counter("1", "pause")
    shown = await rig.bus_m.wait_shown(5, "PAU5", start=mark)  # S and 5 look the same
    assert shown.raw[7:11] == bytes.fromhex("73 77 3E 6D")
    health = await rig.health(lambda h: device_health(h, "1", "bus-m")["shown"] == "PAUS")
    assert device_health(health, "1", "bus-m")["device"] == "online"


async def test_a_double_press_calls_once(rig: Rig) -> None:
    await rig.ticket("dat-dai")
    await rig.ticket("dat-dai")
    mark = rig.bus_a.mark()
    rig.bus_a.send(qs.encode_frame(1, "K", "N") * 2)  # a bouncing key: the second comes before the reply
    await rig.bus_a.wait_shown(1, "1001", flash=True, start=mark)
    health = await rig.health(lambda h: device_health(h, "1", "bus-a")["dropped"]["busy"] == 1)
    assert device_health(health, "1", "bus-a")["keys"] == 2
    await rig.probe.wait_topic(rig.topics.state_queue("dat-dai"), lambda q: q["next"] == ["1002"])
    # a request that changes nothing: its reply comes after whatever the core published before
    assert (await rig.counter("no-such-counter", "resume"))["error"]["code"] == "unknown_counter"
    queues = [m.json for m in rig.probe.received if m.topic == rig.topics.state_queue("dat-dai")]
    assert queues[-1]["waiting"] == 1


async def test_a_device_that_restarted_is_painted_again(rig: Rig) -> None:
    await rig.ticket("ho-tich")
    await rig.counter("3", "call_next")
    await rig.bus_b.wait_shown(1, "2001", flash=True)
    mark = rig.bus_b.mark()
    rig.bus_b.send(qs.encode_frame(1, "E", "BOOT"))  # what firmware says after power-up
    shown = await rig.bus_b.wait_shown(1, "2001", start=mark)
    assert shown.raw == qs.encode_frame(1, "D", "2001")
    health = await rig.health(lambda h: device_health(h, "3", "bus-b")["errors"] == 1)
    assert device_health(health, "3", "bus-b")["device"] == "online"


async def test_a_serial_to_ethernet_converter_port(broker: Broker, tmp_path: Path) -> None:
    """port = "socket://host:port" (ser2net, a Moxa box): the same protocol over TCP."""
    devices = QmsSerialDevices({1: Panel(1, "1")})
    shown: list[Shown] = []
    changed = asyncio.Event()

    async def converter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            answer, new = devices.feed(data, 0.0)
            writer.write(answer)
            shown.extend(new)
            changed.set()

    server = await asyncio.start_server(converter, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    site_path, site_id = write_site(tmp_path, broker.url)
    config = write_agent_config(tmp_path, broker.url, site_id, [
        {"id": "1", "port": f"socket://127.0.0.1:{port}", "driver": "qms-serial", "address": 1}])
    topics = Topics(site_id)

    async def wait_shown(text: str, flash: bool) -> None:
        async with asyncio.timeout(10):
            while not any(s.text == text and s.flash == flash and s.kind == "show" for s in shown):
                changed.clear()
                await changed.wait()

    try:
        async with running_core(site_path), Probe(broker.url) as probe, running_agent(config):
            await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            await probe.request(topics.cmd_counter("1"), {"request_id": new_id(), "action": "call_next"})
            await wait_shown("1001", True)
    finally:
        server.close()


async def test_a_core_that_does_not_answer_shows_e08(broker: Broker, tmp_path: Path) -> None:
    async for rig in start_rig(broker.url, tmp_path, request_timeout_s=1.0):
        # the core stops reading without its Last Will (a hung process): status/core still says online
        rig.core.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rig.core.task
        mark = rig.bus_a.mark()
        rig.bus_a.press(1, "N")
        await rig.bus_a.wait_shown(1, "E-08", flash=True, start=mark)
        await rig.bus_a.wait_shown(1, "", start=mark)  # then the last state known again


async def test_a_bug_in_a_driver_restarts_its_port_only(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    bus = next(b for b in rig.agent.buses if b.port.endswith("bus-b"))
    real_show = bus.driver.show
    calls = 0

    def show_failing_once(*args: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a driver bug")
        return real_show(*args, **kw)

    bus.driver.show = show_failing_once  # type: ignore[method-assign]
    await rig.ticket("ho-tich")
    await rig.counter("3", "call_next")
    await rig.bus_b.wait_shown(1, "2001")  # painted after the port was opened afresh
    health = await rig.health(lambda h: port_health(h, "bus-b")["opens"] == 2)
    assert port_health(health, "bus-a")["opens"] == 1  # the other ports never noticed
    assert any("Lỗi khi ghi ra cổng" in r.getMessage() for r in caplog.records)
