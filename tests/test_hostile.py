"""Hostile clients against the production broker configuration (the one qms-broker writes, on
free ports), with a real core, a real web server and a real counter agent on simulated keypads.

An insider attacks with the credentials of `readonly`, of a counter agent (`tang-2`) and of the
web server (`web`). No attack may change what it is not allowed to, nor stop service for the
others: after each one the kiosk still gets its tickets, the other agent's keys still call them,
the core and the agent never lost their connection, and the retained state shows no attacker's
message."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from broker_config.tool import main as qms_broker
from counter_agent.agent import Agent
from counter_agent.simulator.bus import SimulatedBus
from qms_common.devbroker import Broker, free_port
from qms_common.protocol import ONLINE, Topics
from tests.support.agent import running_agent, sim_bus, write_agent_config
from tests.support.core import InProcessCore, running_core
from tests.support.mqtt import Probe, new_id, response_topic
from tests.support.site import write_site
from tests.support.web import WebServer, running_web, web_extra
from tests.test_broker_security import AGENTS as USERS

EVIL = b"attacker-was-here"


@dataclass
class Office:
    topics: Topics
    broker: Broker
    passwords: dict[str, str]
    core: InProcessCore
    web: WebServer
    agent: Agent           # tang-1, the honest agent: counters 1 and 2
    bus: SimulatedBus      # its keypads and panels: counter 1 at 01, counter 2 at 02
    watch: Probe           # an integration's view (user bang-tin): state, events, presence
    core_sent: list[tuple[str, bytes]] = field(default_factory=list)  # every publish of the core

    def url(self, user: str) -> str:
        return f"mqtt://{user}:{self.passwords[user]}@127.0.0.1:{self.broker.port}"

    def attacker(self, user: str, *, identifier: str | None = None,
                 protocol: aiomqtt.ProtocolVersion = aiomqtt.ProtocolVersion.V5) -> Probe:
        return Probe(self.url(user), identifier=identifier, protocol=protocol)

    async def kiosk(self, field: str = "dat-dai", request_id: str | None = None) -> dict[str, Any]:
        """A ticket as the kiosk page takes it: through the web server's own broker session."""
        payload: dict[str, Any] = {"field": field}
        if request_id is not None:
            payload["request_id"] = request_id
        return await self.web.follower.requester.request(self.topics.cmd_ticket, payload)

    async def served(self, tickets: int = 3) -> None:
        """The honest office works: the kiosk gets every ticket it asks for, and counter 1's key
        calls each of them (after those waiting before) onto its panel."""
        numbers = set()
        for _ in range(tickets):
            reply = await self.kiosk()
            assert reply["ok"], reply
            numbers.add(reply["ticket"]["number"])
        for _ in range(self.core.service.book.waiting("dat-dai")):
            mark = self.bus.mark()
            self.bus.press(1, "N")
            shown = await self.bus.wait_for(lambda s: s.address == 1 and s.kind == "show" and s.flash, start=mark)
            numbers.discard(shown.text)
        assert not numbers, f"never called: {numbers}"

    def assert_nobody_was_dropped(self) -> None:
        assert self.core.link.session.connects == 1
        assert self.agent.session.connects == 1 and self.agent.core_online
        assert [m.text for m in self.watch.received if m.topic == self.topics.status_core] == ["online"]

    def assert_no_evil(self, since: int = 0) -> None:
        assert [m.topic for m in self.watch.received[since:] if m.payload == EVIL] == []

    def core_sent_with(self, marker: str) -> list[str]:
        """The topics the core published something on that carries this marker (a request id)."""
        return [topic for topic, payload in self.core_sent if marker.encode() in payload]


def secure_configs(tmp_path: Path) -> tuple[Path, Path, dict[str, str], int]:
    """The site's broker written by qms-broker; the core's and the web server's site files (the
    same site, each with its own broker user)."""
    port, tls_port = free_port(), free_port()
    core_config, _ = write_site(tmp_path, f"mqtt://127.0.0.1:{port}",
                                      extra=USERS + web_extra(tmp_path, free_port()))
    out = tmp_path / "broker"
    assert qms_broker(["--config", str(core_config), "--out", str(out), "--port", str(port),
                       "--tls-port", str(tls_port), "--run-as", "root"]) == 0
    creds = tomllib.loads((out / "credentials.toml").read_text(encoding="utf-8"))
    passwords = {name: entry["password"] for name, entry in creds["users"].items()}
    text = core_config.read_text(encoding="utf-8")
    plain = f'url = "mqtt://127.0.0.1:{port}"'
    core_config.write_text(text.replace(plain, f'url = "{creds["users"]["core"]["url"]}"'), encoding="utf-8")
    web_config = tmp_path / "web.toml"
    web_config.write_text(text.replace(plain, f'url = "{creds["users"]["web"]["url"]}"'), encoding="utf-8")
    return core_config, web_config, passwords, port


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Office]:
    core_config, web_config, passwords, port = secure_configs(tmp_path)
    topics = Topics(core_config.stem)
    out = tmp_path / "broker"
    broker = Broker(port=port, conf=out / "mosquitto.conf", workdir=out, log_path=tmp_path / "mosquitto.log")
    broker.start()
    bus = sim_bus(tmp_path, "bus-a", "qms-serial", {1: "1", 2: "2"})
    agent_config = write_agent_config(
        tmp_path, f"mqtt://tang-1:{passwords['tang-1']}@127.0.0.1:{port}", topics.site,
        [{"id": "1", "port": "bus-a", "driver": "qms-serial", "address": 1},
         {"id": "2", "port": "bus-a", "driver": "qms-serial", "address": 2}], agent_id="tang-1")
    try:
        async with running_core(core_config) as core, running_web(web_config) as web, \
                running_agent(agent_config) as agent, \
                Probe(f"mqtt://bang-tin:{passwords['bang-tin']}@127.0.0.1:{port}") as watch:
            await watch.subscribe(topics.state_all, topics.event_all, topics.status_all)
            # retained messages follow the SUBACK: the core's presence must be in before any test
            # takes its mark, or it would count as published during the attack
            await watch.wait_for(lambda m: m.topic == topics.status_core)
            office = Office(topics, broker, passwords, core, web, agent, bus, watch)
            send = core.link.session.publish_soon

            def recorded(topic: str, payload: bytes | str, **kw: Any) -> bool:
                office.core_sent.append((topic, payload if isinstance(payload, bytes) else payload.encode()))
                return send(topic, payload, **kw)

            core.link.session.publish_soon = recorded  # type: ignore[method-assign]
            # the agent has the core's state (counter 1 closed; it would show OFF without the core)
            await bus.wait_shown(1, "")
            with web.follower.hub.subscribe() as changes:
                async with asyncio.timeout(10):
                    while not web.follower.state.core_online:
                        await changes.get()
            assert agent.online
            yield office
            office.assert_nobody_was_dropped()
    finally:
        bus.close()
        broker.stop()


def hijack_targets(t: Topics) -> list[str]:
    """Where an attacker would like the core's reply to land."""
    return [t.status_core, t.state_site, t.state_counter("1"), t.state_queue("dat-dai"), t.event("called"),
            t.status_agent("tang-1"), t.cmd_counter("1"), f"qms/{t.site}-other/reply/tang-2",
            f"{t.root}/reply", f"{t.root}/reply/", f"{t.root}/reply//tang-2", f"{t.root}/reply/Tang-2",
            "", "tang-2"]


# ---------------------------------------------------------------- client ids


async def test_no_user_takes_another_services_client_id(office: Office) -> None:
    """The broker names every connection by its user: asking for the core's or an agent's id gets
    the asker's own, and the holder of that id is not dropped."""
    t = office.topics
    victims = [f"qms-core-{t.site}", f"qms-agent-{t.site}-tang-1", "core", "tang-1", "web"]
    for user in ("readonly", "tang-2"):
        for identifier in victims:
            async with office.attacker(user, identifier=identifier):
                await office.served(1)
    office.assert_nobody_was_dropped()
    assert office.web.follower.session.connects == 1


async def test_the_web_users_password_replaces_only_the_web_server(office: Office) -> None:
    """One connection per user: whoever holds the web server's password can push the web server
    off (it comes back by itself), but not the core nor an agent, whatever id it asks for."""
    t = office.topics
    async with office.attacker("web", identifier=f"qms-core-{t.site}"):
        async with asyncio.timeout(10):
            await office.web.follower.session.wait_connects(2)  # it reconnects, pushing the intruder off
    await office.served(2)
    office.assert_nobody_was_dropped()


# ---------------------------------------------------------------- where replies go


async def attack_replies(office: Office, send: Callable[[str, str], Any], quiet: Callable[[], Any]) -> list[str]:
    """For each hijack target: one command asking its reply there; then `quiet` (a request of the
    attacker's own, so the core has decided every attack before). Returns the request ids."""
    rids = []
    for target in hijack_targets(office.topics):
        rid = f"hijack-{new_id()}"
        rids.append(rid)
        await send(target, rid)
    await quiet()
    return rids


async def test_an_agent_cannot_aim_the_cores_reply_at_anything(office: Office) -> None:
    t = office.topics
    mark = office.watch.mark()

    async with office.attacker("tang-2") as mqtt5:
        async def by_response_topic(target: str, rid: str) -> None:
            await mqtt5.publish(t.cmd_counter("3"), {"request_id": rid, "action": "open"},
                                properties=response_topic(target))

        async def own_request() -> None:
            reply = await mqtt5.request(t.cmd_counter("3"), {"request_id": new_id(), "action": "resume"})
            assert reply["error"]["code"] == "counter_closed"  # answered in its own namespace

        rids = await attack_replies(office, by_response_topic, own_request)
    async with office.attacker("tang-2", protocol=aiomqtt.ProtocolVersion.V311) as mqtt311:
        async def by_reply_to(target: str, rid: str) -> None:
            await mqtt311.publish(t.cmd_counter("3"), {"request_id": rid, "action": "open", "reply_to": target})

        async def own_request_311() -> None:
            mine = f"{t.reply('tang-2')}/old-client"
            await mqtt311.subscribe(mine)
            at = mqtt311.mark()
            await mqtt311.publish(t.cmd_counter("3"), {"request_id": new_id(), "action": "resume", "reply_to": mine})
            await mqtt311.wait_topic(mine, start=at)

        rids += await attack_replies(office, by_reply_to, own_request_311)
    # refused: never executed, never answered anywhere
    assert [office.core_sent_with(rid) for rid in rids] == [[] for _ in rids]
    assert office.core.service.book.counters["3"].status == "closed"
    await office.served()
    assert [m.topic for m in office.watch.since(mark) if m.topic == t.status_core] == []
    office.assert_no_evil(mark)


async def test_the_web_user_cannot_aim_the_cores_reply_at_anything(office: Office) -> None:
    """As a web server taken over: its own broker session sends what an attacker wants."""
    t = office.topics
    session = office.web.follower.session
    mark = office.watch.mark()

    async def by_response_topic(target: str, rid: str) -> None:
        await session.publish(t.cmd_counter("1"), f'{{"request_id":"{rid}","action":"open"}}',
                              properties=response_topic(target))

    async def by_reply_to(target: str, rid: str) -> None:
        await session.publish(t.cmd_ticket, f'{{"request_id":"{rid}","field":"dat-dai","reply_to":"{target}"}}')

    async def own_request() -> None:
        assert (await office.kiosk("ho-tich"))["ok"]

    rids = await attack_replies(office, by_response_topic, own_request)
    rids += await attack_replies(office, by_reply_to, own_request)
    assert [office.core_sent_with(rid) for rid in rids] == [[] for _ in rids]
    assert office.core.service.book.counters["1"].status == "closed"
    assert office.core.service.book.waiting("dat-dai") == 0  # no ticket of an attack was issued
    await office.served()
    assert [m.topic for m in office.watch.since(mark) if m.topic == t.status_core] == []


async def test_a_reply_aimed_at_another_users_namespace_tells_the_attacker_nothing(office: Office) -> None:
    """A namespace names whose request it is: the core answers a request that says it is tang-1's
    in tang-1's namespace, which only tang-1 reads (and ignores: no request of its own waits for
    it). The attacker sees nothing of it, and tang-1's keys go on working."""
    t = office.topics
    async with office.attacker("tang-2") as evil:
        await evil.subscribe("#", f"{t.root}/reply/#")
        rid = f"claims-tang-1-{new_id()}"
        await evil.publish(t.cmd_counter("3"), {"request_id": rid, "action": "pause"},
                           properties=response_topic(f"{t.reply('tang-1')}/x"))
        await evil.request(t.cmd_counter("3"), {"request_id": new_id(), "action": "resume"})
        assert office.core_sent_with(rid) == [f"{t.reply('tang-1')}/x"]
        await office.served()
        # the attacker's own reply is all it got of any namespace
        assert {m.topic for m in evil.received if "/reply/" in m.topic} == {evil.reply_topic}


# ---------------------------------------------------------------- request ids


async def test_request_ids_are_per_sender(office: Office) -> None:
    t = office.topics
    async with office.attacker("tang-2") as evil:
        await evil.subscribe(f"{t.root}/reply/#")
        # the kiosk's request id, reused by another user, is a new request of that user: it does
        # not replay the kiosk's ticket to it
        kiosk_rid = f"kiosk-{new_id()}"
        ticket = await office.kiosk(request_id=kiosk_rid)
        assert ticket["ok"]
        reply = await evil.request(t.cmd_counter("3"), {"request_id": kiosk_rid, "action": "open"})
        assert reply["ok"] and reply["ticket"] is None and reply["counter"]["counter"] == "3"
        # a request id another user used first does not make the kiosk's request a duplicate
        taken = f"taken-{new_id()}"
        await evil.request(t.cmd_counter("3"), {"request_id": taken, "action": "pause"})
        fresh = await office.kiosk(request_id=taken)
        assert fresh["ok"] and fresh["ticket"]["number"] == "1002"
        # replaying the kiosk's id as the kiosk (into web's namespace) changes nothing, tells the
        # attacker nothing, and the kiosk's own retry still gets its one ticket
        mark = evil.mark()
        await evil.publish(t.cmd_ticket, {"request_id": kiosk_rid, "field": "dat-dai"},
                           properties=response_topic(f"{t.reply('web')}/web-test"))  # refused by the ACL
        await evil.publish(t.cmd_counter("3"), {"request_id": kiosk_rid, "action": "open"},
                           properties=response_topic(f"{t.reply('web')}/web-test"))
        await evil.request(t.cmd_counter("3"), {"request_id": new_id(), "action": "resume"})
        assert (await office.kiosk(request_id=kiosk_rid)) == ticket
        assert [m.topic for m in evil.received[mark:] if m.topic != evil.reply_topic] == []
    assert office.core.service.book.waiting("dat-dai") == 2
    await office.served()


# ---------------------------------------------------------------- reading and publishing


async def test_nobody_reads_another_users_replies_or_requests(office: Office) -> None:
    """Nor anyone's requests: their request ids stay between the sender and the core."""
    t = office.topics
    async with office.attacker("tang-2") as agent, office.attacker("readonly") as ro:
        for spy in (agent, ro):
            await spy.subscribe("#", f"{t.root}/reply/#", f"{t.root}/reply/+", f"{t.root}/reply/web/#",
                                f"{t.root}/reply/tang-1/#", f"{t.root}/cmd/#")
        await office.served(2)
        # the state of counter 1 is published after the requests and replies that led to it
        for spy in (agent, ro):
            await spy.wait_topic(t.state_counter("1"), lambda s: s["ticket"] and s["ticket"]["number"] == "1002")
            assert [m.topic for m in spy.received if "/reply/" in m.topic or "/cmd/" in m.topic] == []


async def test_nobody_publishes_where_it_may_not(office: Office) -> None:
    t = office.topics
    before = {m.topic: m.payload for m in office.watch.received if m.retain}
    forbidden = [t.state_site, t.state_counter("1"), t.state_queue("dat-dai"), t.status_core, t.event("called"),
                 t.status_agent("tang-1"), t.health_agent("tang-1"), t.cmd_counter("1"), t.reply("tang-1"),
                 f"{t.root}/anything"]
    for user in ("readonly", "tang-2", "bang-tin"):
        async with office.attacker(user) as evil:
            for topic in [*forbidden, t.cmd_ticket, t.cmd_rating, t.cmd_query]:
                await evil.publish(topic, EVIL, retain=True)
    session = office.web.follower.session  # the web server's own connection, taken over
    for topic in forbidden[:-3]:
        await session.publish(topic, EVIL, retain=True)
    await office.served()
    office.assert_no_evil()
    # a newcomer sees the same retained state, and nothing of the attackers
    async with office.attacker("readonly") as late:
        await late.subscribe(t.state_all, t.status_all, t.health_all)
        await late.wait_topic(t.state_counter("1"), lambda s: s["status"] == "serving")
        await late.wait_for(lambda m: m.topic == t.status_core)
        assert [m.topic for m in late.received if m.payload == EVIL] == []
        retained = {m.topic: m.payload for m in late.received if m.retain}
    assert retained[t.status_core] == ONLINE
    assert retained[t.state_site] == before[t.state_site]
