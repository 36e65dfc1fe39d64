"""qms-admin status: the pure assessment (observations -> Vietnamese lines, exit code) and the
command against a real production broker (ACLs of qms-broker, read as its `admin` user) with
a real core and dossier service, an agent that reports a closed port, one that never came, a web
server that is missing, and a warning on health/core."""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker_config.tool import main as qms_broker
from qms_admin.cli import main
from qms_admin.status import Expected, Observed, assess, assess_province
from qms_common.devbroker import Broker, free_port
from qms_common.protocol import Topics
from tests.support.core import CoreProcess
from tests.support.dossiers import running_dossiers
from tests.support.mqtt import Probe
from tests.support.site import write_site

EXPECTED = Expected("demo", "Bộ phận Một cửa", notify=True, agents=("tang-1", "tang-2"), displays=("tv-1",))
WARNING = {"code": "QMS-CORE-W101", "message": "Ghi đĩa chậm: p99 850 ms trong 5 phút qua.",
           "since": "2026-11-29T08:00:00+07:00"}


def all_well() -> dict[str, bytes]:
    return {"status/core": b"online", "status/web/may-chu": b"online", "status/dossiers": b"online",
            "status/notify": b"online", "status/agent/tang-1": b"online", "status/agent/tang-2": b"online",
            "status/display/tv-1": b"online",
            "health/core": json.dumps({"warnings": [], "commit_ms_p99": 4.2, "disk_free_bytes": 52_000_000_000,
                                       "at": "2026-11-29T08:00:00+07:00"}).encode()}


# -- the pure assessment ---------------------------------------------------------------------------

def test_all_well_is_exit_0_and_says_so() -> None:
    report = assess(EXPECTED, Observed(all_well(), units=None))
    assert report.exit_code == 0 and not report.offline and not report.attention
    text = report.text("Tình trạng điểm demo:")
    assert "✓ lõi hàng đợi" in text and "✓ tác tử quầy tang-2" in text
    assert "lõi không có cảnh báo (đĩa còn trống 52.0 GB, ghi đĩa p99 4 ms)" in text
    assert "máy này không chạy systemd: chỉ kiểm tra các dịch vụ qua MQTT" in text
    assert "Kết luận: mọi thứ bình thường." in text


def test_an_offline_agent_and_one_never_seen_are_offline() -> None:
    retained = all_well()
    retained["status/agent/tang-1"] = b"offline"
    del retained["status/agent/tang-2"]
    report = assess(EXPECTED, Observed(retained))
    assert report.offline == ["tác tử quầy tang-1: offline", "tác tử quầy tang-2: chưa từng kết nối broker"]
    assert report.exit_code == 1


def test_core_warnings_and_agent_hardware_need_attention() -> None:
    retained = all_well()
    retained["health/core"] = json.dumps({"warnings": [WARNING], "at": "x"}).encode()
    retained["health/agent/tang-1"] = json.dumps({
        "agent": "tang-1", "ports": [{"port": "/dev/ttyUSB0", "open": False, "error": "cáp bị rút"}],
        "counters": [{"counter": "2", "driver": "qms-serial", "address": 2, "device": "offline"},
                     {"counter": "1", "driver": "qms-serial", "address": 1, "device": "online"}]}).encode()
    retained["status/display/tv-1"] = b"offline"
    report = assess(EXPECTED, Observed(retained))
    assert report.attention == [
        "lõi cảnh báo [QMS-CORE-W101] Ghi đĩa chậm: p99 850 ms trong 5 phút qua. (từ 2026-11-29T08:00:00+07:00)",
        "tác tử tang-1: cổng /dev/ttyUSB0 đang đóng: cáp bị rút (kiểm tra cáp và bộ chuyển USB)",
        "tác tử tang-1: thiết bị quầy 2 (qms-serial, địa chỉ 2) không phản hồi",
        "TV tv-1: offline (kiểm tra TV và trình duyệt)",
    ]
    assert not report.offline and report.exit_code == 1
    assert not any("không có cảnh báo" in line for line in report.running)


def test_a_missing_health_report_is_said_but_is_not_an_alarm() -> None:
    retained = all_well()
    del retained["health/core"]
    report = assess(EXPECTED, Observed(retained))
    assert report.exit_code == 0
    assert any("chưa công bố tình trạng (health/core)" in n for n in report.notes)


def test_a_stopped_or_failed_unit_is_offline_whatever_its_retained_presence() -> None:
    units = {"qms-broker.service": "active", "qms-core.service": "active", "qms-web.service": "failed",
             "qms-dossiers.service": "inactive", "qms-notify.service": "active",
             "qms-agent@tang-1.service": "active", "qms-backup.timer": "active", "qms-backup.service": "failed"}
    report = assess(EXPECTED, Observed(all_well(), units=units))
    assert report.offline == ["máy chủ web: dịch vụ qms-web.service: failed (xem: journalctl -u qms-web.service)",
                              "dịch vụ hồ sơ: dịch vụ qms-dossiers.service: inactive"]
    assert "lõi hàng đợi (qms-core.service: active)" in report.running
    assert "tác tử quầy tang-2" in report.running  # runs on another machine: MQTT only
    assert report.attention == ["lần sao lưu gần nhất thất bại (journalctl -u qms-backup.service)"]
    assert not report.notes


def test_no_broker_means_the_broker_is_offline_and_presence_is_unknown() -> None:
    units = {"qms-broker.service": "failed", "qms-core.service": "active"}
    report = assess(EXPECTED, Observed(broker_error="broker mqtt://127.0.0.1:1883: refused", units=units))
    assert report.offline[0] == "broker MQTT: không kết nối được (broker mqtt://127.0.0.1:1883: refused); " \
                                "qms-broker.service: failed"
    assert "lõi hàng đợi (qms-core.service: active; không kiểm tra được qua MQTT)" in report.running
    assert report.exit_code == 1


# -- the command, against a real broker and core ---------------------------------------------------

AGENTS = """
[[agents]]
id = "tang-1"
counters = ["1", "2"]

[[agents]]
id = "tang-2"
counters = ["3"]

[[integrations]]
id = "bang-tin"
"""


@dataclass
class Office:
    config: Path
    topics: Topics
    port: int
    passwords: dict[str, str]

    def url(self, user: str) -> str:
        return f"mqtt://{user}:{self.passwords[user]}@127.0.0.1:{self.port}"


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Office]:
    port, tls_port = free_port(), free_port()
    config, site_id = write_site(tmp_path, f"mqtt://127.0.0.1:{port}", extra=AGENTS)
    out = tmp_path / "broker"  # beside the configuration, as /etc/qms/broker is beside /etc/qms/site.toml
    assert qms_broker(["--config", str(config), "--out", str(out), "--port", str(port), "--tls-port",
                       str(tls_port), "--run-as", "root"]) == 0
    creds = tomllib.loads((out / "credentials.toml").read_text(encoding="utf-8"))
    broker = Broker(port=port, conf=out / "mosquitto.conf", workdir=out, log_path=tmp_path / "mosquitto.log")
    broker.start()
    try:
        yield Office(config, Topics(site_id), port,
                     {name: entry["password"] for name, entry in creds["users"].items()})
    finally:
        broker.stop()


async def run_status(office: Office, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    # --mqtt-only: the same report on a machine that runs systemd
    code = await asyncio.to_thread(main, ["status", "--config", str(office.config), "--wait", "1", "--mqtt-only"])
    return code, capsys.readouterr().out


async def test_status_over_a_real_broker_names_what_runs_what_is_offline_and_the_core_warning(
        office: Office, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    t = office.topics
    async with Probe(office.url("tang-1")) as agent:
        await agent.publish(t.status_agent("tang-1"), "online", retain=True)
        await agent.publish(t.health_agent("tang-1"), {
            "agent": "tang-1", "ports": [{"port": "/dev/ttyUSB0", "open": False, "error": "không có thiết bị"}],
            "counters": []}, retain=True)
    agent_port = "tác tử tang-1: cổng /dev/ttyUSB0 đang đóng: không có thiết bị (kiểm tra cáp và bộ chuyển USB)"
    core = CoreProcess(office.config, office.config.parent / "core.log", env={"QMS_MQTT_URL": office.url("core")})
    # not `admin`: status reads as that user, and the broker lets each user one connection
    async with Probe(office.url("bang-tin")) as watcher:
        await watcher.subscribe(t.status_core)
        core.start()
        try:
            await watcher.wait_for(lambda m: m.topic == t.status_core and m.text == "online", timeout=20)
            monkeypatch.setenv("QMS_MQTT_URL", office.url("dossiers"))
            async with running_dossiers(office.config):
                monkeypatch.delenv("QMS_MQTT_URL")
                code, out = await run_status(office, capsys)
            assert code == 1, out
            running, offline, attention = sections(out)
            assert {"broker MQTT", "lõi hàng đợi", "dịch vụ hồ sơ", "tác tử quầy tang-1"} <= set(running), out
            assert offline == ["máy chủ web: chưa từng kết nối broker",
                               "tác tử quầy tang-2: chưa từng kết nối broker"], out
            assert attention == [agent_port], out
            assert "Ghi chú: đã chọn --mqtt-only: chỉ kiểm tra các dịch vụ qua MQTT." in out

            # the core dies: the broker publishes its Last Will, and status reports it
            mark = watcher.mark()
            core.kill9()
            await watcher.wait_for(lambda m: m.topic == t.status_core and m.text == "offline", start=mark)
        finally:
            core.stop()
    # the last health the core published before it died (written here as the core user, which is
    # free now: a core that publishes its own health on connect would replace one written earlier)
    async with Probe(office.url("core")) as core_user:
        await core_user.publish(f"{t.root}/health/core", {"warnings": [WARNING], "commit_ms_p99": 850,
                                                          "disk_free_bytes": 9_000_000_000, "at": "x"}, retain=True)
    code, out = await run_status(office, capsys)
    assert code == 1
    running, offline, attention = sections(out)
    assert "lõi hàng đợi: offline" in offline, out
    assert attention == [f"lõi cảnh báo [QMS-CORE-W101] {WARNING['message']} (từ {WARNING['since']})",
                         agent_port], out


async def test_status_without_a_broker_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = write_site(tmp_path, f"mqtt://127.0.0.1:{free_port()}")
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["status", "--config", str(config), "--wait", "0.5", "--mqtt-only"])
    out = capsys.readouterr().out
    assert code == 1
    assert "✗ broker MQTT: không kết nối được (broker mqtt://127.0.0.1:" in out


def test_status_with_a_bad_config_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "site.toml"
    config.write_text("[site]\nid = \"Sai Mã\"\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["status", "--config", str(config)]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and "site.id" in captured.err
    assert captured.out == ""


def sections(out: str) -> tuple[list[str], list[str], list[str]]:
    """The lines under Đang chạy, Ngoại tuyến and Cần chú ý, without their marks."""
    found: dict[str, list[str]] = {}
    current = ""
    for line in out.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            current = line[:-1]
            found[current] = []
        elif line.startswith("  ") and line.strip() != "(không có)":
            found[current].append(line.strip()[2:])
    return found.get("Đang chạy", []), found.get("Ngoại tuyến", []), found.get("Cần chú ý", [])


def test_a_province_server_reports_its_units() -> None:
    report = assess_province({"qms-central-broker.service": "active", "qms-province.service": "failed"})
    assert report.running == ["broker trung tâm (qms-central-broker.service: active)"]
    assert report.offline == ["dịch vụ tỉnh: dịch vụ qms-province.service: failed"]
    assert report.exit_code == 1
    assert assess_province({"qms-central-broker.service": "active", "qms-province.service": "active"}).exit_code == 0


def test_status_with_a_province_config_reads_it_as_one(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    config = Path(__file__).parents[1] / "examples" / "province.toml"
    assert main(["status", "--config", str(config), "--mqtt-only"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Tình trạng máy chủ tỉnh tinh-demo (")
    assert "đã chọn --mqtt-only: không kiểm tra được các dịch vụ của tỉnh." in out
