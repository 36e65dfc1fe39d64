"""The production broker configuration written by qms-broker, against a real Mosquitto: who may
connect, publish and read what."""

from __future__ import annotations

import asyncio
import ssl
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiomqtt
import pytest

from broker_config.tool import main as qms_broker
from qms_common.config import MqttSettings, load_site_config
from qms_common.devbroker import Broker, free_port
from qms_common.mqtt import MqttSession, Requester, RequestTimeout
from qms_common.protocol import Topics
from tests.support.core import running_core
from tests.support.dossiers import running_dossiers
from tests.support.mqtt import Probe
from tests.support.site import write_site

AGENTS = """
[[agents]]
id = "tang-1"
counters = ["1", "2"]

[[agents]]
id = "tang-2"
counters = ["3"]

[[integrations]]
id = "bang-tin"

[notify]
ahead = 3
"""


@dataclass
class SecureSite:
    config: Path
    topics: Topics
    broker: Broker
    out: Path
    passwords: dict[str, str]

    def url(self, user: str, password: str | None = None) -> str:
        return f"mqtt://{user}:{password or self.passwords[user]}@127.0.0.1:{self.broker.port}"

    def tls_url(self, user: str) -> str:
        return f"mqtts://{user}:{self.passwords[user]}@localhost:{self.tls_port}"

    @property
    def tls_port(self) -> int:
        return int(next(line.split()[1] for line in (self.out / "mosquitto.conf").read_text().splitlines()
                        if line.startswith("listener") and "127.0.0.1" not in line))


def generate(config: Path, out: Path, port: int, tls_port: int, *extra: str) -> dict[str, str]:
    assert qms_broker(["--config", str(config), "--out", str(out), "--port", str(port), "--tls-port",
                       str(tls_port), "--run-as", "root", *extra]) == 0
    creds = tomllib.loads((out / "credentials.toml").read_text(encoding="utf-8"))
    return {name: entry["password"] for name, entry in creds["users"].items()}


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[SecureSite]:
    port, tls_port = free_port(), free_port()
    config, site_id = write_site(tmp_path, f"mqtt://127.0.0.1:{port}", extra=AGENTS)
    out = tmp_path / "broker"
    passwords = generate(config, out, port, tls_port)
    broker = Broker(port=port, conf=out / "mosquitto.conf", workdir=out, log_path=tmp_path / "mosquitto.log")
    broker.start()
    try:
        yield SecureSite(config, Topics(site_id), broker, out, passwords)
    finally:
        broker.stop()


async def connect_fails(url: str) -> str:
    s = MqttSettings.from_url(url)
    with pytest.raises(aiomqtt.MqttError) as info:
        async with aiomqtt.Client(s.host, s.port, username=s.username, password=s.password,
                                  protocol=aiomqtt.ProtocolVersion.V5):
            pass
    return str(info.value)


async def test_anonymous_and_wrong_passwords_are_refused(secure: SecureSite) -> None:
    assert "authori" in (await connect_fails(f"mqtt://127.0.0.1:{secure.broker.port}")).lower()
    await connect_fails(secure.url("web", "not-the-password"))
    await connect_fails(secure.url("nobody", "whatever"))
    async with Probe(secure.url("readonly")):
        pass  # the right password works


async def delivered(secure: SecureSite, user: str, attempts: list[str]) -> list[str]:
    """Publish to each topic of `attempts` as `user`, then a marker as the core; return the topics
    of `attempts` that the core's subscription received before the marker (each attempt is
    acknowledged before the marker is sent)."""
    attempt, marker = f"attempt-{uuid.uuid4().hex}".encode(), f"marker-{uuid.uuid4().hex}".encode()
    # one connection per user: the core's observer sends the marker itself
    async with Probe(secure.url("core")) as core, Probe(secure.url(user)) as who:
        await core.subscribe(f"{secure.topics.root}/#")
        mark = core.mark()
        for topic in attempts:
            await who.publish(topic, attempt)
        await core.publish(secure.topics.cmd_query, marker)
        await core.wait_for(lambda m: m.payload == marker, start=mark)
        return [m.topic for m in core.received[mark:] if m.payload == attempt]


async def test_an_agent_commands_only_its_own_counters(secure: SecureSite) -> None:
    t = secure.topics
    got = await delivered(secure, "tang-1", [t.cmd_counter("3"), t.cmd_counter("1"), t.cmd_counter("2")])
    assert got == [t.cmd_counter("1"), t.cmd_counter("2")]
    got = await delivered(secure, "tang-2", [t.cmd_counter("1"), t.status_agent("tang-1"), t.status_agent("tang-2"),
                                             t.state_counter("3")])
    assert got == [t.status_agent("tang-2")]


async def test_the_web_server_cannot_publish_state_as_the_core(secure: SecureSite) -> None:
    t = secure.topics
    attempts = [t.state_counter("1"), t.state_queue("dat-dai"), t.event("called"), t.status_core, t.cmd_ticket,
                 t.status_agent("tang-1"), t.status_web("srv"), t.status_display("hall"),
                 t.state_appointments("dat-dai"), t.private_contact, t.private_booking]
    assert await delivered(secure, "web", attempts) == [t.cmd_ticket, t.status_web("srv"), t.status_display("hall")]


async def test_only_the_web_server_books_checks_in_and_asks_for_one_time_codes(secure: SecureSite) -> None:
    t = secure.topics
    attempts = [t.cmd_appointment, t.cmd_checkin, t.private_otp]
    assert await delivered(secure, "web", attempts) == attempts
    for user in ("tang-1", "tang-2", "readonly", "bang-tin", "notify"):
        assert await delivered(secure, user, attempts) == [], user
    # the web server writes the one-time code for the notifier but cannot read it back
    async with Probe(secure.url("web")) as web, Probe(secure.url("notify")) as notify, \
            Probe(secure.url("core")) as core:
        await web.subscribe(t.private_all, t.state_site)
        await notify.subscribe(t.private_all)
        await web.publish(t.private_otp, {"phone": "84912345678", "code": "123456", "purpose": "booking",
                                          "request_id": "o1"})
        assert (await notify.wait_topic(t.private_otp))["code"] == "123456"
        # sent after the code reached the notifier: once the web server has it, it would have the code
        await core.publish(t.state_site, b'{"site":"after"}')
        await web.wait_topic(t.state_site)
        assert not any(m.topic.startswith(f"{t.root}/private/") for m in web.received)


async def test_the_readonly_user_reads_but_cannot_publish_at_all(secure: SecureSite) -> None:
    t = secure.topics
    attempts = [t.cmd_ticket, t.cmd_counter("1"), t.state_site, t.status_agent("tang-1"), f"{t.root}/anything"]
    assert await delivered(secure, "readonly", attempts) == []
    async with Probe(secure.url("core")) as core:
        await core.publish(t.state_site, b'{"site":"x"}', retain=True)
    async with Probe(secure.url("readonly")) as ro:
        await ro.subscribe(t.state_all)
        assert (await ro.wait_topic(t.state_site))["site"] == "x"


async def test_the_admin_user_reads_presence_and_health_and_nothing_else(secure: SecureSite) -> None:
    """qms-admin status's own user: it never takes the readonly integration's connection."""
    t = secure.topics
    assert await delivered(secure, "admin", [t.cmd_ticket, t.status_core, t.health_core, t.state_site]) == []
    async with Probe(secure.url("readonly")) as ro, Probe(secure.url("admin")) as admin:
        await admin.subscribe(f"{t.root}/#")
        async with Probe(secure.url("core")) as core:
            for topic in (t.state_site, t.event("issued"), t.private_contact, t.status_core, t.health_core):
                await core.publish(topic, b'{"x":1}')
        await admin.wait_topic(t.health_core)
        assert {m.topic for m in admin.received} == {t.status_core, t.health_core}
        await ro.subscribe(t.state_all)  # still connected beside it


async def test_the_whole_flow_works_under_the_acls_also_over_tls(secure: SecureSite, tmp_path: Path) -> None:
    t = secure.topics
    core_config = tmp_path / "core.toml"
    core_config.write_text(secure.config.read_text(encoding="utf-8").replace(
        f'url = "mqtt://127.0.0.1:{secure.broker.port}"', f'url = "{secure.url("core")}"'), encoding="utf-8")
    async with running_core(core_config):
        # the web server asks on its own reply topic
        web = MqttSession(MqttSettings.from_url(secure.url("web")), identifier="web-test", name="web")
        web_req = Requester(web, t, "web/tv-server")  # as display_server's follower asks
        # an agent on another machine comes over TLS, checking the broker's certificate
        agent_settings = MqttSettings.from_url(secure.tls_url("tang-1"))
        agent_settings = replace(agent_settings, ca_file=str(secure.out / "tls" / "ca.crt"))
        agent = MqttSession(agent_settings, identifier="tang-1", name="tang-1")
        agent_req = Requester(agent, t, "tang-1")
        tasks = [asyncio.create_task(s.run()) for s in (web, agent)]
        try:
            async with asyncio.timeout(15):
                await web.wait_connects(1)
                await agent.wait_connects(1)
            issued = await web_req.request(t.cmd_ticket, {"field": "dat-dai"})
            assert issued["ok"] and issued["ticket"]["number"] == "1001"
            called = await agent_req.request(t.cmd_counter("1"), {"action": "call_next"})
            assert called["ok"] and called["ticket"]["number"] == "1001"
            # another agent's counter: the broker drops the command, so no reply ever comes
            with pytest.raises(RequestTimeout):
                await agent_req.request(t.cmd_counter("3"), {"action": "call_next"}, timeout=1)
        finally:
            for task in tasks:
                task.cancel()


def test_running_again_keeps_passwords_and_rotates_on_request(secure: SecureSite) -> None:
    port, tls = secure.broker.port, secure.tls_port
    again = generate(secure.config, secure.out, port, tls)
    assert again == secure.passwords
    rotated = generate(secure.config, secure.out, port, tls, "--rotate", "tang-2")
    assert rotated["tang-2"] != secure.passwords["tang-2"]
    assert {k: v for k, v in rotated.items() if k != "tang-2"} == {
        k: v for k, v in secure.passwords.items() if k != "tang-2"}
    acl = (secure.out / "acl").read_text(encoding="utf-8")
    assert f"user tang-2\ntopic write {secure.topics.cmd_counter('3')}\n" in acl
    passwd = (secure.out / "passwd").read_text(encoding="utf-8")
    assert all(line.split(":", 1)[1].startswith("$7$101$") for line in passwd.splitlines())


def test_an_agent_id_must_not_take_a_reserved_name(tmp_path: Path) -> None:
    config, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra='[[agents]]\nid = "web"\ncounters = ["1"]\n')
    assert load_site_config(config).agents[0].id == "web"
    assert qms_broker(["--config", str(config), "--out", str(tmp_path / "o")]) == 2


async def test_integrations_get_read_only_users_of_their_own(secure: SecureSite) -> None:
    t = secure.topics
    assert await delivered(secure, "bang-tin", [t.cmd_ticket, t.state_site, t.status_core, t.reply("bang-tin")]) == []
    # one connection per user: the integration and the readonly user both stay connected
    async with Probe(secure.url("core")) as core, Probe(secure.url("bang-tin")) as board, \
            Probe(secure.url("readonly")) as ro:
        for reader in (board, ro):
            await reader.subscribe(t.state_all)
        await core.publish(t.state_site, b'{"site":"x"}', retain=True)
        for reader in (board, ro):
            assert (await reader.wait_topic(t.state_site))["site"] == "x"


def test_an_integration_must_not_take_another_users_name(tmp_path: Path) -> None:
    for name in ("tang-1", "readonly", "core"):
        config, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra=AGENTS + f'[[integrations]]\nid = "{name}"\n')
        assert qms_broker(["--config", str(config), "--out", str(tmp_path / "o")]) == 2


async def test_the_websockets_listener_speaks_only_tls(tmp_path: Path) -> None:
    """Mosquitto 2.0 binds a WebSockets listener to every interface, whatever address it is given:
    qms-broker makes it TLS (wss://) with the broker's certificate, and a plain client gets nothing."""
    port, tls_port, ws_port = free_port(), free_port(), free_port()
    config, site_id = write_site(tmp_path, f"mqtt://127.0.0.1:{port}", extra=AGENTS)
    out = tmp_path / "broker"
    passwords = generate(config, out, port, tls_port, "--websockets", str(ws_port))
    conf = (out / "mosquitto.conf").read_text(encoding="utf-8")
    listener = conf[conf.index(f"listener {ws_port}"):].split("\n\n")[0].splitlines()
    assert listener[1:] == ["protocol websockets", "use_username_as_clientid true", f"cafile {out}/tls/ca.crt",
                            f"certfile {out}/tls/server.crt", f"keyfile {out}/tls/server.key", "tls_version tlsv1.2"]
    broker = Broker(port=port, conf=out / "mosquitto.conf", workdir=out, log_path=tmp_path / "mosquitto.log").start()
    try:
        t = Topics(site_id)
        async with Probe(f"mqtt://core:{passwords['core']}@127.0.0.1:{port}") as core:
            await core.publish(t.state_site, b'{"site":"wss"}', retain=True)
        tls = ssl.create_default_context(cafile=str(out / "tls" / "ca.crt"))
        async with aiomqtt.Client("localhost", ws_port, username="readonly", password=passwords["readonly"],
                                  transport="websockets", tls_context=tls,
                                  protocol=aiomqtt.ProtocolVersion.V5) as browser:
            await browser.subscribe(t.state_site)
            async with asyncio.timeout(5):
                message = await anext(aiter(browser.messages))
            assert message.payload == b'{"site":"wss"}'
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", ws_port, username="readonly", password=passwords["readonly"],
                                      transport="websockets", protocol=aiomqtt.ProtocolVersion.V5, timeout=3):
                pass
    finally:
        broker.stop()


async def test_only_the_notifier_reads_phone_numbers(secure: SecureSite, tmp_path: Path) -> None:
    """Every other user subscribes to the whole site, and the web server asks the core for the
    contacts: the phone number reaches the notifier alone."""
    t = secure.topics
    core_config = tmp_path / "core.toml"
    core_config.write_text(secure.config.read_text(encoding="utf-8").replace(
        f'url = "mqtt://127.0.0.1:{secure.broker.port}"', f'url = "{secure.url("core")}"'), encoding="utf-8")
    phone = "84987654321"
    async with running_core(core_config), Probe(secure.url("notify")) as notify, \
            Probe(secure.url("web")) as web, Probe(secure.url("readonly")) as ro, \
            Probe(secure.url("bang-tin")) as board, Probe(secure.url("tang-1")) as agent:
        spies = [web, ro, board, agent]
        for spy in spies:
            await spy.subscribe(f"{t.root}/#", "#")
        await notify.subscribe(t.private_all)
        issued = await web.request(t.cmd_ticket, {"request_id": "n1", "field": "dat-dai", "phone": phone})
        assert issued["ok"]
        contact = await notify.wait_topic(t.private_contact)
        assert contact["phone"] == phone and contact["ticket"]["id"] == issued["ticket"]["id"]
        # the queue's state follows the private message: once a spy has it, it would have the other
        for spy in spies:
            await spy.wait_topic(t.state_queue("dat-dai"), lambda q: q["waiting"] == 1)
        # of the others, only the web server may ask the core at all
        answer = await web.request(t.cmd_query, {"request_id": "c1", "query": "contacts"})
        assert answer["error"]["code"] == "forbidden"
        answer = await notify.request(t.cmd_query, {"request_id": "c1", "query": "contacts"})
        assert [c["phone"] for c in answer["contacts"]] == [phone]
        for spy in spies:
            assert not any(phone.encode() in m.payload for m in spy.received), spy.user


async def test_only_the_web_server_and_the_notifier_send_dossier_commands(secure: SecureSite) -> None:
    t = secure.topics
    assert await delivered(secure, "web", [t.cmd_dossier]) == [t.cmd_dossier]
    assert await delivered(secure, "notify", [t.cmd_dossier]) == [t.cmd_dossier]
    for user in ("tang-1", "readonly", "bang-tin", "dossiers"):
        assert await delivered(secure, user, [t.cmd_dossier]) == [], user
    # the dossier service publishes its own topics and answers in reply namespaces, nothing else
    attempts = [t.event("dossier"), t.private_dossier, t.status_dossiers, f"{t.reply('web')}/x",
                t.event("called"), t.event("rated"), t.state_site, t.status_core, t.private_contact, t.cmd_ticket]
    assert await delivered(secure, "dossiers", attempts) == attempts[:4]
    for user in ("web", "readonly", "bang-tin", "tang-1", "notify"):
        assert await delivered(secure, user, [t.event("dossier"), t.private_dossier, t.status_dossiers]) == [], user


def test_the_dossier_user_must_not_take_another_users_name(tmp_path: Path) -> None:
    for extra in ('[dossiers]\nuser = "web"\n', '[dossiers]\nuser = "tang-1"\n', '[dossiers]\nuser = "notify"\n',
                  '[[integrations]]\nid = "dossiers"\n'):
        config, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra=AGENTS + extra)
        assert qms_broker(["--config", str(config), "--out", str(tmp_path / "o")]) == 2, extra


async def test_only_the_web_server_creates_dossiers_and_only_the_notifier_reads_their_phones(
        secure: SecureSite, tmp_path: Path) -> None:
    """The dossier service under the production ACLs: the web server creates a dossier with a
    phone; the notifier gets the phone on private/dossier; nobody else ever sees it, though each
    subscribes to the whole site; a user that may not send dossier commands is not heard at all,
    and the notifier, which may ask, may not create."""
    t = secure.topics
    config = tmp_path / "dossiers.toml"
    config.write_text(secure.config.read_text(encoding="utf-8").replace(
        f'url = "mqtt://127.0.0.1:{secure.broker.port}"', f'url = "{secure.url("dossiers")}"'), encoding="utf-8")
    phone = "84987654322"
    body = {"action": "create", "code": "HS-ACL-1", "procedure": {"name": "Chứng thực bản sao"},
            "received_at": "2026-11-23T08:00:00+07:00", "due_at": "2026-11-24", "source": "counter", "by": "x",
            "phone": phone}
    async with running_dossiers(config) as service, Probe(secure.url("notify")) as notify, \
            Probe(secure.url("web")) as web, Probe(secure.url("readonly")) as ro, \
            Probe(secure.url("bang-tin")) as board, Probe(secure.url("tang-1")) as agent:
        spies = [web, ro, board, agent]
        for spy in spies:
            await spy.subscribe(f"{t.root}/#", "#")
        await notify.subscribe(t.private_all)
        refused = await notify.request(t.cmd_dossier, {**body, "request_id": "d0"})
        assert refused["error"]["code"] == "forbidden"
        with pytest.raises(TimeoutError):  # dropped by the broker: no answer ever comes
            await ro.request(t.cmd_dossier, {**body, "request_id": "d1"}, timeout=1)
        with pytest.raises(TimeoutError):
            await board.request(t.cmd_dossier, {**body, "request_id": "d2"}, timeout=1)
        assert await service.store.get("HS-ACL-1") is None
        created = await web.request(t.cmd_dossier, {**body, "request_id": "d3"})
        assert created["ok"] and created["created"] and created["dossier"]["has_phone"]
        private = await notify.wait_topic(t.private_dossier)
        assert private["phone"] == phone and private["dossier"]["code"] == "HS-ACL-1"
        for spy in (web, ro, board):  # integrations see the dossier, without the phone
            await spy.wait_topic(t.event("dossier"), lambda e: e["dossier"]["code"] == "HS-ACL-1")
        # sent after the notifier had the phone: once a spy has this, it would have had the phone
        async with Probe(secure.url("core")) as core:
            await core.publish(t.state_site, b'{"site":"after"}')
        for spy in spies:
            await spy.wait_topic(t.state_site)
        got = await notify.request(t.cmd_dossier, {"request_id": "d4", "action": "get", "code": "HS-ACL-1"})
        assert got["dossier"]["status"] == "received"
        for spy in spies:
            assert not any(phone.encode() in m.payload or b"987654322" in m.payload for m in spy.received), spy.user
