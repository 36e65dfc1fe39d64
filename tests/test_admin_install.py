"""qms-admin install --dry-run --out DIR: the files an office (and a province's central server)
would get, their modes and owners, the units' ordering and hardening, `systemd-analyze verify`
on every unit; uninstall's plan; the refusals (no root, --out without --dry-run, a bad config)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from qms_admin.cli import main
from qms_admin.units import SiteUnits, site_units
from qms_common.config import load_site_config
from tests.support.site import write_site

REPO = Path(__file__).resolve().parents[1]
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SERVICES = ("qms-broker.service", "qms-core.service", "qms-web.service", "qms-dossiers.service",
            "qms-notify.service", "qms-agent@.service")

SITE_EXTRA = """
[[agents]]
id = "tang-1"
counters = ["1", "2"]

[[agents]]
id = "tang-2"
counters = ["3"]

[notify]
ahead = 3
store = "notify-outbox.sqlite3"

[printer]
type = "serial"
device = "/dev/ttyUSB3"

[display]
ids = ["phong-cho-1"]
"""

AGENT = """
[agent]
id = "{id}"

[mqtt]
url = "mqtt://{id}:mat-khau-cu@192.168.1.10:1883"
site = "{site}"

[[counters]]
id = "{counter}"
port = "/dev/ttyUSB0"
driver = "qms-serial"
address = 1
"""


@dataclass
class DryRun:
    config: Path
    site_id: str
    out: Path

    @property
    def plan(self) -> dict[str, object]:
        return json.loads((self.out / "plan.json").read_text(encoding="utf-8"))

    def path(self, installed: str) -> Path:
        return self.out / installed.lstrip("/")

    def unit(self, name: str) -> str:
        return self.path(f"/etc/systemd/system/{name}").read_text(encoding="utf-8")

    def entry(self, installed: str) -> dict[str, str]:
        entries = [*self.plan["dirs"], *self.plan["files"]]  # type: ignore[misc]
        return next(e for e in entries if e["path"] == installed)


def write_office(tmp: Path) -> tuple[Path, str]:
    tmp.mkdir(parents=True)
    config, site_id = write_site(tmp, "mqtt://core:x@127.0.0.1:1883", extra=SITE_EXTRA, db=tmp / "data" / "van.sqlite3")
    (tmp / "agents").mkdir()
    for agent_id, counter in (("tang-1", "1"), ("tang-2", "3")):
        (tmp / "agents" / f"{agent_id}.toml").write_text(AGENT.format(id=agent_id, site=site_id, counter=counter),
                                                          encoding="utf-8")
    return config, site_id


def dry_run(config: Path, out: Path, *extra: str) -> int:
    return main(["install", "--config", str(config), "--dry-run", "--out", str(out), *extra])


@pytest.fixture
def office(tmp_path: Path) -> DryRun:
    config, site_id = write_office(tmp_path / "site")
    out = tmp_path / "out"
    assert dry_run(config, out) == 0
    return DryRun(config, site_id, out)


def unit_keys(text: str) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            keys.setdefault(k, []).append(v)
    return keys


def verify(unit_dir: Path, *units: Path) -> subprocess.CompletedProcess[str]:
    """Offline: the units found through SYSTEMD_UNIT_PATH (the tree, then the system's own
    directories for targets), no generators, no man page checks. systemd-analyze prints a bad
    key or value as a warning and still exits 0, so callers require silence as well."""
    assert SYSTEMD_ANALYZE, "systemd-analyze is missing: make system-deps installs the systemd package"
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", "--generators=no", *map(str, units)],
                          capture_output=True, text=True, env=env, check=False)


# -- an office ---------------------------------------------------------------------------------

def machine_state() -> tuple[object, ...]:
    """What a real install would change: its directories, the units, the user."""
    def listing(path: str) -> list[tuple[str, float]]:
        root = Path(path)
        return sorted((str(p), p.lstat().st_mtime) for p in root.rglob("*")) if root.exists() else []
    return (listing("/etc/qms"), listing("/var/lib/qms"), listing("/etc/systemd/system"),
            "qms" in {e.pw_name for e in pwd.getpwall()})


def test_office_dry_run_writes_every_file_with_tight_modes_and_changes_nothing_else(tmp_path: Path) -> None:
    config, site_id = write_office(tmp_path / "site")
    before = machine_state()
    assert dry_run(config, tmp_path / "out") == 0
    assert machine_state() == before
    office = DryRun(config, site_id, tmp_path / "out")
    etc = office.path("/etc/qms")
    expected = {"site.toml", "broker/mosquitto.conf", "broker/passwd", "broker/acl", "broker/credentials.toml",
                "broker/tls/ca.crt", "broker/tls/ca.key", "broker/tls/server.crt", "broker/tls/server.key",
                "env/core.env", "env/web.env", "env/dossiers.env", "env/notify.env", "env/agent-tang-1.env",
                "env/agent-tang-2.env", "agents/tang-1.toml", "agents/tang-2.toml"}
    written = {str(p.relative_to(etc)) for p in etc.rglob("*") if p.is_file()}
    assert written == expected
    for path in etc.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.suffix == ".crt":
            assert mode == 0o644, path
        else:  # nothing else of /etc/qms is for every user: passwords, keys, the site's secrets
            assert mode & 0o007 == 0, f"{path} is {mode:04o}"
    assert stat.S_IMODE(etc.stat().st_mode) == 0o750
    for secret in ("broker/credentials.toml", "broker/tls/ca.key", "env/core.env", "env/agent-tang-1.env"):
        assert stat.S_IMODE((etc / secret).stat().st_mode) == 0o600, secret
    assert stat.S_IMODE((etc / "env").stat().st_mode) == 0o700
    # owners are in the plan (a dry run chowns nothing)
    assert office.entry("/var/lib/qms") == {"path": "/var/lib/qms", "mode": "0750", "owner": "qms", "group": "qms"}
    assert office.entry("/etc/qms") == {"path": "/etc/qms", "mode": "0750", "owner": "root", "group": "qms"}
    assert office.entry("/etc/qms/site.toml")["group"] == "qms"
    assert office.entry("/etc/qms/broker/credentials.toml")["owner"] == "root"
    assert office.entry("/etc/qms/broker/credentials.toml")["group"] == "root"
    assert office.entry("/var/lib/qms/broker")["mode"] == "0700"
    assert office.plan["user_command"][:2] == ["useradd", "--system"]  # type: ignore[index]
    assert "--shell" in office.plan["user_command"] and "/usr/sbin/nologin" in office.plan["user_command"]  # type: ignore[operator]
    modules = office.path("/etc/modules-load.d/qms-serial.conf")
    assert modules.read_text(encoding="utf-8").splitlines()[-2:] == ["usbserial", "cdc_acm"]
    assert stat.S_IMODE(modules.stat().st_mode) == 0o644
    plan_text = (office.out / "plan.txt").read_text(encoding="utf-8")
    assert "0600 root:root /etc/qms/broker/credentials.toml" in plan_text
    assert "0750 qms:qms /var/lib/qms" in plan_text


def test_installed_site_toml_points_into_var_lib_and_each_service_gets_its_own_broker_user(office: DryRun) -> None:
    site = load_site_config(office.path("/etc/qms/site.toml"), env={})
    assert site.id == office.site_id
    assert site.storage_path == Path("/var/lib/qms/van.sqlite3")
    assert site.raw["notify"]["store"] == "/var/lib/qms/notify-outbox.sqlite3"
    assert site.raw["speech"]["cache_dir"] == "/var/lib/qms/speech-cache"
    assert site.mqtt.url(with_password=True) == "mqtt://127.0.0.1:1883"  # no password in site.toml
    creds = tomllib.loads(office.path("/etc/qms/broker/credentials.toml").read_text(encoding="utf-8"))["users"]
    for env_name, user in (("core", "core"), ("web", "web"), ("dossiers", "dossiers"), ("notify", "notify"),
                           ("agent-tang-1", "tang-1"), ("agent-tang-2", "tang-2")):
        text = office.path(f"/etc/qms/env/{env_name}.env").read_text(encoding="utf-8")
        assert f"QMS_MQTT_URL=mqtt://{user}:{creds[user]['password']}@127.0.0.1:1883\n" in text
    agent = tomllib.loads(office.path("/etc/qms/agents/tang-1.toml").read_text(encoding="utf-8"))
    assert agent["mqtt"]["url"] == "mqtt://127.0.0.1:1883" and agent["counters"][0]["port"] == "/dev/ttyUSB0"
    conf = office.path("/etc/qms/broker/mosquitto.conf").read_text(encoding="utf-8")
    assert "persistence_location /var/lib/qms/broker/" in conf
    assert "password_file /etc/qms/broker/passwd" in conf and "acl_file /etc/qms/broker/acl" in conf
    assert "user qms" in conf
    acl = office.path("/etc/qms/broker/acl").read_text(encoding="utf-8")
    assert "user tang-1" in acl and "user readonly" in acl


def test_a_second_dry_run_keeps_passwords_and_certificates(office: DryRun) -> None:
    before = {p: office.path(p).read_bytes() for p in ("/etc/qms/broker/credentials.toml",
                                                        "/etc/qms/broker/tls/ca.crt", "/etc/qms/env/core.env")}
    assert dry_run(office.config, office.out) == 0
    assert {p: office.path(p).read_bytes() for p in before} == before


def test_office_units_order_restart_and_harden(office: DryRun) -> None:
    for name in SERVICES:
        keys = unit_keys(office.unit(name))
        assert keys["User"] == ["qms"] and keys["Restart"] == ["on-failure"], name
        assert keys["RestartSec"] == ["5s"] and keys["StartLimitBurst"] == ["30"], name
        assert keys["RestartPreventExitStatus"] == ["2"], name
        for key, value in (("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("NoNewPrivileges", "yes"),
                           ("PrivateTmp", "yes"), ("ProtectKernelTunables", "yes"), ("ProtectKernelModules", "yes"),
                           ("ProtectKernelLogs", "yes"), ("RestrictNamespaces", "yes"), ("LockPersonality", "yes"),
                           ("MemoryDenyWriteExecute", "yes"), ("RemoveIPC", "yes"), ("PrivateMounts", "yes"),
                           ("UMask", "0077"), ("StandardError", "journal"), ("CapabilityBoundingSet", "")):
            assert keys[key] == [value], (name, key)
        assert keys["SystemCallFilter"] == ["@system-service", "~@privileged @resources"], name
        assert keys["RestrictAddressFamilies"][0].startswith("AF_UNIX AF_INET AF_INET6"), name
        rw = keys["ReadWritePaths"][0].split()
        assert rw == (["/var/lib/qms/broker"] if name == "qms-broker.service" else ["/var/lib/qms"]), name
        exec_start = keys["ExecStart"][0].split()[0]
        assert Path(exec_start).is_file() and os.access(exec_start, os.X_OK), exec_start
        if name != "qms-broker.service":
            assert exec_start.startswith(f"{sys.prefix}/bin/qms-"), exec_start
            assert "qms-broker.service" in keys["After"][0].split(), name
            assert "qms-broker.service" in keys["Wants"][0].split(), name
            assert keys["EnvironmentFile"][0].startswith("/etc/qms/env/"), name
    assert unit_keys(office.unit("qms-broker.service"))["Conflicts"] == ["mosquitto.service"]
    for name in ("qms-web.service", "qms-dossiers.service", "qms-notify.service", "qms-agent@.service"):
        assert "qms-core.service" in unit_keys(office.unit(name))["After"][0].split(), name
    # the agents open serial ports; everything else sees no devices
    agent = unit_keys(office.unit("qms-agent@.service"))
    assert agent["PrivateDevices"] == ["no"] and agent["DevicePolicy"] == ["closed"]
    assert "char-ttyUSB rw" in agent["DeviceAllow"] and agent["SupplementaryGroups"] == ["dialout"]
    assert agent["ExecStart"][0].endswith("qms-agent --config /etc/qms/agents/%i.toml")
    assert agent["EnvironmentFile"] == ["/etc/qms/env/agent-%i.env"]
    for name in ("qms-core.service", "qms-dossiers.service", "qms-notify.service", "qms-broker.service"):
        assert unit_keys(office.unit(name))["PrivateDevices"] == ["yes"], name
    web = unit_keys(office.unit("qms-web.service"))  # [printer] type = "serial"
    assert web["PrivateDevices"] == ["no"] and "dialout" in web["SupplementaryGroups"][0]


def test_backup_runs_nightly_as_a_oneshot_with_the_site_config(office: DryRun) -> None:
    service = unit_keys(office.unit("qms-backup.service"))
    # root, to read /etc/qms's secrets (root's alone), with the files' capabilities alone
    assert service["Type"] == ["oneshot"] and service["User"] == ["root"]
    assert service["CapabilityBoundingSet"] == ["CAP_DAC_OVERRIDE CAP_CHOWN CAP_FOWNER"]
    assert service["AmbientCapabilities"] == [""] and service["SystemCallFilter"] == ["@system-service"]
    assert service["Nice"] == ["10"] and service["IOSchedulingClass"] == ["idle"]
    assert service["ExecStart"] == [f"{sys.prefix}/bin/qms-admin backup --config /etc/qms/site.toml"]
    timer = unit_keys(office.unit("qms-backup.timer"))
    assert timer["OnCalendar"] == ["*-*-* 02:30:00"] and timer["Persistent"] == ["true"]
    assert timer["WantedBy"] == ["timers.target"]
    enable = next(c for c in office.plan["commands"] if c[:3] == ["systemctl", "enable", "--now"])  # type: ignore[union-attr]
    assert enable[3:] == ["qms-broker.service", "qms-core.service", "qms-web.service", "qms-dossiers.service",
                          "qms-notify.service", "qms-agent@tang-1.service", "qms-agent@tang-2.service",
                          "qms-backup.timer"]
    assert ["systemctl", "daemon-reload"] in office.plan["commands"]  # type: ignore[operator]


def test_every_office_unit_passes_systemd_analyze_verify(office: DryRun, tmp_path: Path) -> None:
    unit_dir = office.path("/etc/systemd/system")
    # an agent instance, as `systemctl enable qms-agent@tang-1.service` makes it: a link to the template
    instances = tmp_path / "instances"
    instances.mkdir()
    (instances / "qms-agent@tang-1.service").symlink_to(unit_dir / "qms-agent@.service")
    units = [p for p in sorted(unit_dir.iterdir()) if p.name != "qms-agent@.service"]
    result = verify(unit_dir, *units, instances / "qms-agent@tang-1.service")
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result


def test_verify_catches_a_broken_unit(office: DryRun, tmp_path: Path) -> None:
    """The check above can fail: a misspelt value is reported."""
    broken = tmp_path / "broken"
    shutil.copytree(office.path("/etc/systemd/system"), broken)
    core = broken / "qms-core.service"
    core.write_text(core.read_text(encoding="utf-8").replace("Restart=on-failure", "Restart=sometimes"),
                    encoding="utf-8")
    result = verify(broken, core)
    assert "sometimes" in result.stderr


def test_an_agent_without_its_file_runs_elsewhere(tmp_path: Path) -> None:
    config, _ = write_office(tmp_path / "site")
    (tmp_path / "site" / "agents" / "tang-2.toml").unlink()
    out = tmp_path / "out"
    assert dry_run(config, out) == 0
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    assert not (out / "etc/qms/agents/tang-2.toml").exists()
    assert any("tang-2" in n and "máy khác" in n for n in plan["notes"])
    assert "qms-agent@tang-2.service" not in plan["commands"][-1]


def test_an_agent_of_another_site_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = write_office(tmp_path / "site")
    stray = tmp_path / "stray.toml"
    stray.write_text(AGENT.format(id="tang-9", site="khac", counter="1"), encoding="utf-8")
    out = tmp_path / "out"
    assert dry_run(config, out, "--agent", str(stray)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tang-9" in err and "[[agents]]" in err
    assert not out.exists()


# -- a province ----------------------------------------------------------------------------------

def test_province_dry_run_installs_the_central_broker_and_the_province_service(tmp_path: Path) -> None:
    config = tmp_path / "province.toml"
    shutil.copy(REPO / "examples" / "province.toml", config)
    out = tmp_path / "out"
    assert dry_run(config, out) == 0
    unit_dir = out / "etc/systemd/system"
    assert sorted(p.name for p in unit_dir.iterdir()) == ["qms-backup.service", "qms-backup.timer",
                                                           "qms-central-broker.service", "qms-province.service"]
    etc = out / "etc/qms"
    assert {str(p.relative_to(etc)) for p in etc.rglob("*") if p.is_file()} == {
        "province.toml", "central-broker/mosquitto.conf", "central-broker/passwd", "central-broker/acl",
        "central-broker/credentials.toml", "central-broker/tls/ca.crt", "central-broker/tls/ca.key",
        "central-broker/tls/server.crt", "central-broker/tls/server.key"}
    assert stat.S_IMODE((etc / "province.toml").stat().st_mode) == 0o640
    assert stat.S_IMODE((etc / "central-broker/credentials.toml").stat().st_mode) == 0o600
    creds = tomllib.loads((etc / "central-broker/credentials.toml").read_text(encoding="utf-8"))["users"]
    assert {"province", "demo", "xa-an-phu", "phuong-tan-an"} <= set(creds)
    province = tomllib.loads((etc / "province.toml").read_text(encoding="utf-8"))
    assert province["mqtt"]["url"] == f"mqtt://province:{creds['province']['password']}@127.0.0.1:1883"
    assert province["postgres"]["dsn"] == "postgresql://qms@127.0.0.1:5432/qms_province"
    conf = (etc / "central-broker/mosquitto.conf").read_text(encoding="utf-8")
    assert "persistence_location /var/lib/qms/central-broker/" in conf
    assert "password_file /etc/qms/central-broker/passwd" in conf
    svc = unit_keys((unit_dir / "qms-province.service").read_text(encoding="utf-8"))
    assert svc["ExecStart"] == [f"{sys.prefix}/bin/qms-province --config /etc/qms/province.toml"]
    assert "qms-central-broker.service" in svc["After"][0] and "postgresql.service" in svc["After"][0]
    assert svc["ProtectSystem"] == ["strict"] and svc["PrivateDevices"] == ["yes"]
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    assert plan["commands"][-1] == ["systemctl", "enable", "--now", "qms-central-broker.service",
                                    "qms-province.service", "qms-backup.timer"]
    result = verify(unit_dir, *sorted(unit_dir.iterdir()))
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result


# -- uninstall -------------------------------------------------------------------------------------

def test_uninstall_dry_run_keeps_the_data_unless_purged(office: DryRun, capsys: pytest.CaptureFixture[str]) -> None:
    wants = office.path("/etc/systemd/system/multi-user.target.wants")
    wants.mkdir()
    (wants / "qms-agent@tang-1.service").symlink_to("/etc/systemd/system/qms-agent@.service")
    capsys.readouterr()
    assert main(["uninstall", "--dry-run", "--root", str(office.out)]) == 0
    out = capsys.readouterr().out
    disable = next(line for line in out.splitlines() if "systemctl disable --now" in line).split()
    assert disable[-1] == "qms-broker.service"  # stopped last
    assert {"qms-core.service", "qms-agent@tang-1.service", "qms-backup.timer"} <= set(disable)
    assert "qms-agent@.service" not in disable
    assert f"xóa tệp: {office.out}/etc/modules-load.d/qms-serial.conf" in out
    assert f"xóa tệp: {office.out}/etc/systemd/system/qms-agent@.service" in out
    assert "giữ lại cấu hình /etc/qms và dữ liệu /var/lib/qms" in out and "XÓA DỮ LIỆU" not in out
    assert office.unit("qms-core.service")  # a dry run removes nothing
    assert main(["uninstall", "--dry-run", "--purge", "--root", str(office.out)]) == 0
    out = capsys.readouterr().out
    assert f"XÓA DỮ LIỆU: {office.out}/etc/qms" in out and f"XÓA DỮ LIỆU: {office.out}/var/lib/qms" in out
    assert office.path("/etc/qms/site.toml").exists()


# -- refusals ------------------------------------------------------------------------------------

def test_out_without_dry_run_and_dry_run_without_out_are_refused(office: DryRun, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["install", "--config", str(office.config), "--out", str(tmp_path / "x")]) == 2
    assert "--out chỉ dùng cùng --dry-run" in capsys.readouterr().err
    assert main(["install", "--config", str(office.config), "--dry-run"]) == 2
    assert "--dry-run cần --out" in capsys.readouterr().err
    assert main(["uninstall", "--root", str(office.out)]) == 2
    assert not (tmp_path / "x").exists()


def test_a_bad_config_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = write_office(tmp_path / "site")
    config.write_text(config.read_text(encoding="utf-8").replace("[storage]", "[storage]\npathh = 1"),
                      encoding="utf-8")
    out = tmp_path / "out"
    assert dry_run(config, out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "storage.pathh" in err
    assert not out.exists()


DROP_ROOT = """
import os, sys
from qms_admin import cli, install, status, siteplan, backup  # imported while the interpreter is readable
os.setgroups([]); os.setgid(65534); os.setuid(65534)
raise SystemExit(cli.main(sys.argv[1:]))
"""


def test_install_and_uninstall_without_root_are_refused(office: DryRun) -> None:
    nobody = pwd.getpwuid(65534).pw_name
    for argv in (["install", "--config", str(office.config)], ["uninstall"], ["uninstall", "--purge", "--yes"]):
        result = subprocess.run([sys.executable, "-c", DROP_ROOT, *argv], capture_output=True, text=True,
                                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
        assert result.returncode == 2, (nobody, result)
        assert "cần quyền root" in result.stderr and "sudo" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_installing_again_from_the_installed_config_changes_nothing(office: DryRun) -> None:
    """An upgrade: `qms-admin install --config /etc/qms/site.toml` (its agents beside it)."""
    etc = office.path("/etc/qms")
    # (the broker's password file is hashed with a new salt each time: same passwords)
    files = sorted(p for p in etc.rglob("*") if p.is_file() and p.name != "passwd")
    before = {p: p.read_bytes() for p in files}
    assert dry_run(etc / "site.toml", office.out) == 0
    after = {p: p.read_bytes() for p in files}
    assert [p for p in files if after[p] != before[p]] == []
    assert "qms-agent@tang-2.service" in office.plan["commands"][-1]  # type: ignore[index]


def test_every_service_is_rated_well_by_systemd_analyze_security(office: DryRun) -> None:
    """systemd's own exposure rating (0 is tight, 10 is none at all): every service at most 2.5,
    "OK" in its words (1.3 for each service and 1.5 for the agents when this was written)."""
    unit_dir = office.path("/etc/systemd/system")
    assert SYSTEMD_ANALYZE
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:", "SYSTEMD_LOG_COLOR": "0"}
    for name in SERVICES:
        result = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(unit_dir / name)],
                                capture_output=True, text=True, env=env, check=False)
        last = result.stdout.strip().splitlines()[-1]
        assert "Overall exposure level" in last, result
        score = float(last.split(":")[-1].split()[0])
        assert score <= 2.5, (name, last)


def test_a_bridge_to_the_province_is_installed_with_its_password_and_ca(tmp_path: Path) -> None:
    config, site_id = write_office(tmp_path / "site")
    secrets_dir = tmp_path / "site" / "tinh"
    secrets_dir.mkdir()
    (secrets_dir / "central.pw").write_text("mat-khau-cua-diem\n", encoding="utf-8")
    (secrets_dir / "central-ca.crt").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    with config.open("a", encoding="utf-8") as f:
        f.write('\n[bridge]\nurl = "mqtts://trung-tam.tinh.gov.vn:8883"\n'
                'password_file = "tinh/central.pw"\ncafile = "tinh/central-ca.crt"\n')
    out = tmp_path / "out"
    assert dry_run(config, out) == 0
    bridge = out / "etc/qms/bridge"
    assert stat.S_IMODE((bridge / "central.pw").stat().st_mode) == 0o600
    assert (bridge / "central-ca.crt").read_text(encoding="utf-8").startswith("-----BEGIN")
    installed = tomllib.loads((out / "etc/qms/site.toml").read_text(encoding="utf-8"))["bridge"]
    assert installed["password_file"] == "/etc/qms/bridge/central.pw"
    assert installed["cafile"] == "/etc/qms/bridge/central-ca.crt"
    conf = (out / "etc/qms/broker/mosquitto.conf").read_text(encoding="utf-8")
    assert "bridge_cafile /etc/qms/bridge/central-ca.crt" in conf
    assert "remote_password mat-khau-cua-diem" in conf and f"remote_username {site_id}" in conf
    assert stat.S_IMODE((out / "etc/qms/broker/mosquitto.conf").stat().st_mode) == 0o640


def test_a_second_backup_disk_is_writable_for_the_backup_only(tmp_path: Path) -> None:
    texts = site_units(SiteUnits(prefix=sys.prefix, mosquitto="/usr/sbin/mosquitto",
                                 backup_paths=("/mnt/usb-sao-luu/qms",)))
    assert unit_keys(texts["qms-backup.service"])["ReadWritePaths"] == ["/var/lib/qms -/mnt/usb-sao-luu/qms"]
    assert unit_keys(texts["qms-core.service"])["ReadWritePaths"] == ["/var/lib/qms"]
    for name, text in texts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = verify(tmp_path, tmp_path / "qms-backup.service", tmp_path / "qms-backup.timer")
    assert result.returncode == 0 and not result.stderr.strip(), result
