"""Faults under load: a serial cable pulled and put back 20 times, the broker restarted while keys
are pressed. Everything comes back by itself; nothing is applied twice."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from qms_common.devbroker import Broker
from qms_common.protocol import Topics
from tests.support.agent import running_agent, sim_bus, write_agent_config
from tests.support.core import running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site


async def test_a_serial_cable_pulled_and_put_back_twenty_times(broker: Broker, tmp_path: Path) -> None:
    site_path, site_id = write_site(tmp_path, broker.url)
    topics = Topics(site_id)
    bus = sim_bus(tmp_path, "bus", "qms-serial", {1: "1", 2: "2"})
    config = write_agent_config(tmp_path, broker.url, site_id,
                                [{"id": "1", "port": "bus", "driver": "qms-serial", "address": 1},
                                 {"id": "2", "port": "bus", "driver": "qms-serial", "address": 2}])
    try:
        async with running_core(site_path) as core, Probe(broker.url) as probe, running_agent(config):
            await bus.wait_shown(1, "")
            for _ in range(45):
                await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            shown_on_2 = ""
            for _ in range(20):
                bus.unplug()
                # while the cable is out, another client calls: the panel must show it once back
                reply = await probe.request(topics.cmd_counter("1"), {"request_id": new_id(), "action": "call_next"})
                number = reply["ticket"]["number"]
                mark = bus.mark()
                bus.replug()
                await bus.wait_shown(1, number, start=mark)
                # and the counter's own keys work again at once (a blink cut off by the cable may
                # be repainted blinking: the new call is the next number)
                mark = bus.mark()
                bus.press(2, "N")
                shown = await bus.wait_for(lambda s, was=shown_on_2: s.address == 2 and s.flash and s.text != was,
                                           start=mark)
                assert shown.text.isdigit()
                shown_on_2 = shown.text
            # every call made was one ticket each: nobody called twice, nothing lost
            called = [t for t in core.service.book.tickets.values() if t.calls]
            assert len(called) == 40 and all(t.calls == 1 for t in called)
    finally:
        bus.close()


async def test_the_broker_restarted_under_load(own_broker: Broker, tmp_path: Path) -> None:
    """Keys pressed while the broker is down are refused visibly (OFF) and never applied later;
    core and agent reconnect by themselves and the panels show the truth again."""
    site_path, site_id = write_site(tmp_path, own_broker.url)
    topics = Topics(site_id)
    bus = sim_bus(tmp_path, "bus", "qms-serial", {1: "1", 2: "2", 3: "3"})
    config = write_agent_config(tmp_path, own_broker.url, site_id,
                                [{"id": c, "port": "bus", "driver": "qms-serial", "address": int(c)}
                                 for c in ("1", "2", "3")])
    rng = random.Random()
    try:
        async with running_core(site_path) as core, running_agent(config) as agent:
            async with Probe(own_broker.url) as probe:
                for _ in range(60):
                    await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": rng.choice(
                        ["dat-dai", "ho-tich"])})
            for address in (1, 2, 3):
                await bus.wait_shown(address, "")

            async def press_keys(stop: asyncio.Event) -> int:
                presses = 0
                while not stop.is_set():
                    mark = bus.mark()
                    address = rng.choice([2, 3])  # counter 1 is pressed by hand below
                    bus.press(address, "N")
                    presses += 1
                    # each press ends in something shown on that panel: a number, ---- or OFF (a
                    # press refused at the instant the core came back is answered by the repaint)
                    await bus.wait_for(lambda s, a=address: s.address == a, start=mark, timeout=15)
                return presses

            stop = asyncio.Event()
            presser = asyncio.create_task(press_keys(stop))
            await bus.wait_for(lambda s: s.flash and s.text.isdigit())  # load is running
            core_connects, agent_connects = core.link.session.connects, agent.session.connects
            own_broker.stop()
            await bus.wait_for(lambda s: s.text == "OFF")  # the panels say so
            # a key pressed now is refused visibly
            mark = bus.mark()
            bus.press(1, "N")
            await bus.wait_for(lambda s: s.address == 1 and s.text == "OFF", start=mark)
            calls_before = sum(t.calls for t in core.service.book.tickets.values())
            own_broker.start()
            async with asyncio.timeout(30):
                await core.link.session.wait_connects(core_connects + 1)
                await agent.session.wait_connects(agent_connects + 1)
            stop.set()
            presses = await presser
            assert presses > 3
            # nothing pressed during the outage was applied afterwards
            async with Probe(own_broker.url) as probe:
                await probe.subscribe(topics.state_all)
                for c in ("1", "2", "3"):
                    state = await probe.wait_topic(topics.state_counter(c))
                    expected = state["ticket"]["number"] if state["ticket"] else "----"
                    if state["status"] == "closed":
                        expected = ""
                    await bus.wait_for(lambda s, a=int(c), e=expected: s.address == a and s.text == e)
            calls_after_outage = sum(t.calls for t in core.service.book.tickets.values())
            # presses after the broker came back may have called more, but each ticket once
            assert calls_after_outage >= calls_before
            assert all(t.calls <= 1 for t in core.service.book.tickets.values())
    finally:
        bus.close()
