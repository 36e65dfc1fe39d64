"""An office's broker bridged to a province's central broker: two real Mosquittos, configured by
qms-broker (--bridge) and qms-broker central."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from broker_config.tool import main as qms_broker
from province.settings import SiteEntry
from qms_common.devbroker import Broker, free_port
from tests.support.mqtt import Probe
from tests.support.province import broker_passwords, write_province
from tests.support.site import write_site


def central_config(tmp: Path, port: int, sites: list[str]) -> Path:
    """province.toml for `qms-broker central`: its sites, all in one district."""
    return write_province(tmp, "tinh-demo", f"mqtt://province:x@127.0.0.1:{port}",
                          "postgresql://qms@127.0.0.1:5432/qms_province",
                          [SiteEntry(s, f"Xã {s}", "Huyện Một") for s in sites])


@dataclass
class Province:
    office: Broker
    central: Broker
    site: str
    other: str
    third: str
    office_pw: dict[str, str]
    central_pw: dict[str, str]

    def office_url(self, user: str = "core") -> str:
        return f"mqtt://{user}:{self.office_pw[user]}@127.0.0.1:{self.office.port}"

    def central_url(self, user: str) -> str:
        return f"mqtt://{user}:{self.central_pw[user]}@127.0.0.1:{self.central.port}"


@pytest.fixture
def province(tmp_path: Path) -> Iterator[Province]:
    yield from bridged(tmp_path, tls=False)


@pytest.fixture
def province_tls(tmp_path: Path) -> Iterator[Province]:
    yield from bridged(tmp_path, tls=True, bridge_in=True)


def bridged(tmp_path: Path, *, tls: bool, bridge_in: bool = False) -> Iterator[Province]:
    cport, ctls = free_port(), free_port()
    office_port, office_tls = free_port(), free_port()
    config, site = write_site(tmp_path, f"mqtt://127.0.0.1:{office_port}",
                              extra="[bridge]\nretry_s = 1\nretry_max_s = 1\nkeepalive_s = 5\n")
    other = f"{site}-khac"
    central_out = tmp_path / "central"
    assert qms_broker(["central", "--config", str(central_config(tmp_path, cport, [site, other, f"{site}-ba"])),
                       "--out", str(central_out), "--port", str(cport), "--tls-port", str(ctls),
                       "--run-as", "root", "--service-write", "cmd/#"]) == 0
    central_pw = broker_passwords(central_out)
    pw_file = tmp_path / "bridge.pw"
    pw_file.write_text(central_pw[site] + "\n", encoding="utf-8")
    office_out = tmp_path / "office"
    assert qms_broker(["--config", str(config), "--out", str(office_out), "--port", str(office_port),
                       "--tls-port", str(office_tls), "--run-as", "root",
                       "--bridge-password-file", str(pw_file),
                       # the central broker's own TLS listener, its certificate checked against its CA
                       *(["--bridge", f"mqtts://localhost:{ctls}", "--bridge-cafile", str(central_out / "tls/ca.crt")]
                         if tls else ["--bridge", f"mqtt://127.0.0.1:{cport}"]),
                       *(["--bridge-in", f"qms/{site}/cmd/backfill"] if bridge_in else [])]) == 0
    central = Broker(port=cport, conf=central_out / "mosquitto.conf", workdir=central_out,
                     log_path=tmp_path / "central.log").start()
    office = Broker(port=office_port, conf=office_out / "mosquitto.conf", workdir=office_out,
                    log_path=tmp_path / "office.log").start()
    try:
        yield Province(office, central, site, other, f"{site}-ba", broker_passwords(office_out), central_pw)
    finally:
        office.stop()
        central.stop()


async def bridge_up(p: Province, watcher: Probe) -> None:
    """The bridge's own notification (retained, 1 when connected) on the central broker."""
    await watcher.subscribe(f"qms/{p.site}/status/bridge")
    await watcher.wait_for(lambda m: m.topic == f"qms/{p.site}/status/bridge" and m.payload == b"1", timeout=20)


async def test_office_events_reach_the_central_broker_and_nothing_comes_back(province: Province) -> None:
    p = province
    async with Probe(p.central_url("province")) as centre, Probe(p.office_url("core")) as office:
        await bridge_up(p, centre)
        await centre.subscribe("qms/+/#")
        await office.subscribe(f"qms/{p.site}/#")
        event = {"kind": "issued", "seq": 1, "id": uuid.uuid4().hex}
        await office.publish(f"qms/{p.site}/event/issued", event)
        await office.publish(f"qms/{p.site}/state/fields", {"n": 3})
        got = await centre.wait_for(lambda m: m.topic == f"qms/{p.site}/event/issued", timeout=10)
        assert got.json == event
        await centre.wait_for(lambda m: m.topic == f"qms/{p.site}/state/fields", timeout=10)
        # commands, private data and replies to the office's own clients stay in the office;
        # only the answers to the province's backfill requests go out
        private = f"qms/{p.site}/private/phone"
        await office.publish(private, b"0901234567")
        await office.publish(f"qms/{p.site}/reply/web/r1", b"local-reply")
        await office.publish(f"qms/{p.site}/reply/province/r2", b"province-reply")
        await centre.wait_for(lambda m: m.payload == b"province-reply", timeout=10)
        assert [m for m in centre.received if m.payload == b"local-reply"] == []  # sent before, in order

    # From the centre towards the office: here the service may write qms/+/cmd/# on the central
    # broker (--service-write), but the bridge carries none of it back.
    async with Probe(p.office_url("core")) as office, Probe(p.central_url("province")) as service:
        await office.subscribe(f"qms/{p.site}/#")
        mark = office.mark()
        await service.publish(f"qms/{p.site}/cmd/ticket", b"from-centre")
        await service.publish(f"qms/{p.site}/cmd/backfill", b"from-centre")
        marker = uuid.uuid4().hex.encode()
        await office.publish(f"qms/{p.site}/event/marker", marker)
        await office.wait_for(lambda m: m.payload == marker, start=mark)
        assert [m.topic for m in office.received[mark:] if m.payload == b"from-centre"] == []
    async with Probe(p.central_url("province")) as centre:
        await centre.subscribe("qms/+/#")
        marker = uuid.uuid4().hex.encode()
        async with Probe(p.office_url("core")) as office:
            await office.publish(f"qms/{p.site}/event/marker", marker)
        await centre.wait_for(lambda m: m.payload == marker, timeout=10)
        assert not [m for m in centre.received if m.topic == private]


async def test_over_tls_and_with_an_allowed_incoming_topic(province_tls: Province) -> None:
    p = province_tls
    async with Probe(p.central_url("province")) as centre, Probe(p.office_url("core")) as office:
        await bridge_up(p, centre)  # over mqtts: the bridge verified the central certificate
        await centre.subscribe("qms/+/#")
        await office.subscribe(f"qms/{p.site}/cmd/#")
        await office.publish(f"qms/{p.site}/event/issued", b"over-tls")
        await centre.wait_for(lambda m: m.payload == b"over-tls", timeout=10)
    # the bridge logs in as the office's user: the test speaks as the province service
    async with Probe(p.office_url("core")) as office, Probe(p.central_url("province")) as service:
        await office.subscribe(f"qms/{p.site}/cmd/#")
        await service.publish(f"qms/{p.site}/cmd/ticket", b"not-allowed")
        await service.publish(f"qms/{p.site}/cmd/backfill", b"allowed")
        await office.wait_for(lambda m: m.payload == b"allowed", timeout=10)
        assert [m for m in office.received if m.payload == b"not-allowed"] == []


async def test_an_office_cannot_publish_as_another_on_the_central_broker(province: Province) -> None:
    # offices without a bridge running here: the bridge holds its office's user (its client id)
    p = province
    async with Probe(p.central_url("province")) as centre, Probe(p.central_url(p.other)) as office_a:
        await centre.subscribe("qms/+/#")
        await office_a.publish(f"qms/{p.site}/event/issued", b"forged")
        await office_a.publish(f"qms/{p.third}/state/fields", b"forged")
        await office_a.publish(f"qms/{p.other}/event/issued", b"own")
        await centre.wait_for(lambda m: m.payload == b"own")
        assert [m.topic for m in centre.received if m.payload == b"forged"] == []
        # and the province service writes only what --service-write gave it (here cmd/#)
        await centre.publish(f"qms/{p.other}/event/issued", b"service")
        await office_a.publish(f"qms/{p.other}/event/issued", b"own-2")
        await centre.wait_for(lambda m: m.payload == b"own-2")
        assert [m for m in centre.received if m.payload == b"service"] == []


async def test_an_office_cannot_read_another(province: Province) -> None:
    p = province
    async with Probe(p.central_url(p.third)) as spy, Probe(p.central_url(p.other)) as office_a:
        await spy.subscribe(f"qms/{p.other}/#", "qms/+/#")
        await office_a.publish(f"qms/{p.other}/event/issued", b"secret")
        # the spy's own publication, seen by the service, proves the secret had its chance
        async with Probe(p.central_url("province")) as centre:
            await centre.subscribe("qms/+/#")
            await spy.publish(f"qms/{p.third}/event/x", b"spy-marker")
            await centre.wait_for(lambda m: m.payload == b"spy-marker")
        assert [m for m in spy.received if m.payload == b"secret"] == []


async def test_the_centre_sees_an_office_go_offline(province: Province) -> None:
    """The bridge's will: a dead office shows 0, and 1 again when it is back. Killed, its socket
    closes and the will goes at once; a cut link is noticed after 1.5 keepalives (22.5 s by default)."""
    p = province
    topic = f"qms/{p.site}/status/bridge"
    async with Probe(p.central_url("province")) as centre:
        await bridge_up(p, centre)
        p.office.kill()
        await centre.wait_for(lambda m: m.topic == topic and m.payload == b"0", timeout=15)
        mark = centre.mark()
        p.office.start()
        await centre.wait_for(lambda m: m.topic == topic and m.payload == b"1", timeout=15, start=mark)


@contextlib.asynccontextmanager
async def persistent_client(url_user: str, password: str, port: int) -> AsyncIterator[aiomqtt.Client]:
    """A province service's session that survives the central broker's restart (clean session off)."""
    async with aiomqtt.Client("127.0.0.1", port, username=url_user, password=password, identifier=url_user,
                              clean_session=False, protocol=aiomqtt.ProtocolVersion.V311) as c:
        yield c


async def test_messages_published_while_the_central_broker_is_down_arrive_after_it_returns(
        province: Province) -> None:
    p = province
    async with Probe(p.central_url("province")) as centre:
        await bridge_up(p, centre)
    # the province service's durable subscription, kept by the central broker's persistence
    async with persistent_client("province", p.central_pw["province"], p.central.port) as c:
        await c.subscribe("qms/+/event/#", qos=1)
    p.central.stop()
    sent = [uuid.uuid4().hex.encode() for _ in range(20)]
    async with Probe(p.office_url("core")) as office:
        for i, payload in enumerate(sent):
            await office.publish(f"qms/{p.site}/event/issued/{i}", payload)
    p.central.start()
    got: list[bytes] = []
    async with persistent_client("province", p.central_pw["province"], p.central.port) as c:
        async with asyncio.timeout(30):
            async for m in c.messages:
                if isinstance(m.payload, bytes) and m.payload in sent:
                    got.append(m.payload)
                if len(got) == len(sent):
                    break
    assert got == sent  # all of them, in order, once each


def conf_lines(out: Path) -> list[str]:
    return (out / "mosquitto.conf").read_text(encoding="utf-8").splitlines()


def office_site(tmp_path: Path, bridge: str = "") -> tuple[Path, str]:
    return write_site(tmp_path, "mqtt://127.0.0.1:1883", extra=bridge)


def run_office(config: Path, out: Path, *flags: str) -> int:
    return qms_broker(["--config", str(config), "--out", str(out), "--run-as", "root", *flags])


def test_mqtts_bridge_verifies_the_central_certificate(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    (tmp_path / "pw").write_text("s3cret\n", encoding="utf-8")
    # reproducible from site.toml alone; relative paths are relative to it
    config, site = office_site(tmp_path, '[bridge]\nurl = "mqtts://trung-tam.example:8883"\n'
                               'password_file = "pw"\ncafile = "ca.crt"\n')
    assert run_office(config, tmp_path / "out") == 0
    lines = conf_lines(tmp_path / "out")
    bridge = lines[lines.index(f"connection qms-{site}"):]
    for expected in ("address trung-tam.example:8883", f"bridge_cafile {tmp_path / 'ca.crt'}", "bridge_insecure false",
                     f"remote_username {site}", "remote_password s3cret", f"remote_clientid qms-bridge-{site}",
                     "cleansession false", f"topic qms/{site}/state/# out 1", f"topic qms/{site}/event/# out 1",
                     f"topic qms/{site}/status/# out 1",
                     f"topic qms/{site}/reply/province/# out 1"):
        assert expected in bridge
    assert not [line for line in bridge if line.startswith("topic") and not line.endswith(" out 1")]
    assert "max_queued_messages 200000" in lines and "max_queued_bytes 268435456" in lines
    # the password to the central broker is in the file: not readable by everyone
    assert (tmp_path / "out" / "mosquitto.conf").stat().st_mode & 0o077 == 0o040
    # the command line overrides site.toml
    (tmp_path / "pw2").write_text("other\n", encoding="utf-8")
    assert run_office(config, tmp_path / "out", "--bridge", "mqtt://10.0.0.5:1883", "--bridge-user", "xa-a",
                      "--bridge-password-file", str(tmp_path / "pw2"),
                      "--bridge-in", f"qms/{site}/cmd/backfill") == 0
    lines = conf_lines(tmp_path / "out")
    assert {"address 10.0.0.5:1883", "remote_username xa-a", "remote_password other",
            f"topic qms/{site}/cmd/backfill in 1"} <= set(lines)
    assert not [line for line in lines if line.startswith("bridge_cafile")]


def test_without_a_bridge_the_office_broker_is_unchanged(tmp_path: Path) -> None:
    config, _ = office_site(tmp_path)
    assert run_office(config, tmp_path / "out") == 0
    lines = conf_lines(tmp_path / "out")
    assert "max_queued_messages 10000" in lines
    assert not [line for line in lines if line.startswith(("connection ", "address ", "topic "))]


@pytest.mark.parametrize(("flags", "needle"), [
    (["--bridge", "mqtts://trung-tam:8883"], "bridge.password_file"),
    (["--bridge", "mqtts://trung-tam:8883", "--bridge-password-file", "PW"], "bridge.cafile"),
    (["--bridge", "mqtt://t1:secret@trung-tam:1883", "--bridge-password-file", "PW"], "mật khẩu"),
    (["--bridge", "http://trung-tam", "--bridge-password-file", "PW"], "--bridge"),
    (["--bridge", "mqtt://trung-tam", "--bridge-password-file", "PW", "--bridge-in", "qms/khac/cmd/#"], "bridge.in"),
])
def test_bad_bridge_settings_are_refused_and_change_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             flags: list[str], needle: str) -> None:
    (tmp_path / "pw").write_text("s3cret\n", encoding="utf-8")
    config, _ = office_site(tmp_path)
    flags = [str(tmp_path / "pw") if f == "PW" else f for f in flags]
    assert run_office(config, tmp_path / "out", *flags) != 0
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_central_acl_confines_each_office(tmp_path: Path) -> None:
    from broker_config.central import central_acl_text, central_users
    from province.settings import load_province
    province = load_province(central_config(tmp_path, 1883, ["xa-a", "xa-b"]))
    assert [(s.id, s.district) for s in province.sites] == [("xa-a", "Huyện Một"), ("xa-b", "Huyện Một")]
    acl = central_acl_text(province, central_users(province))
    assert "user xa-a\ntopic write qms/xa-a/#\n" in acl
    assert "user xa-b\ntopic write qms/xa-b/#\n" in acl
    assert "user province\ntopic read qms/+/#\n" in acl
    acl = central_acl_text(province, central_users(province, service_write=("cmd/backfill",)))
    assert "user xa-a\ntopic write qms/xa-a/#\ntopic read qms/xa-a/cmd/backfill\n" in acl
    assert "user province\ntopic read qms/+/#\ntopic write qms/+/cmd/backfill\n" in acl


def test_a_bad_province_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = central_config(tmp_path, 1883, ["xa-a", "xa-a"])
    assert qms_broker(["central", "--config", str(path), "--out", str(tmp_path / "c")]) != 0
    assert "khai báo hai lần" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_the_example_province_file_makes_a_central_broker(tmp_path: Path) -> None:
    """examples/province.toml stays a file the central broker and the province service accept."""
    example = Path(__file__).resolve().parents[1] / "examples" / "province.toml"
    assert qms_broker(["central", "--config", str(example), "--out", str(tmp_path / "c")]) == 0
    acl = (tmp_path / "c" / "acl").read_text(encoding="utf-8")
    for site in ("demo", "xa-an-phu", "phuong-tan-an"):
        assert f"user {site}\ntopic write qms/{site}/#" in acl
    assert "user province\ntopic read qms/+/#" in acl
