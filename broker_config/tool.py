"""qms-broker --config site.toml --out DIR: a site's broker users, ACLs, TLS and configuration.

Users:
- `core`: the single writer; reads and writes qms/{site}/# (its health/core included, which
  every user that reads health/# may read).
- `web`: the web server; sends the commands the pages need, reads state, events and presence,
  announces its TVs. The only user besides the core that may publish remote-ticket bookings and
  check-ins (cmd/appointment, cmd/checkin: it verifies phones) and ask the notifier for a one-time
  code (private/otp, which it may write but not read).
- one user per [[agents]] entry, named by the agent id: commands only its own counters,
  publishes only its own presence and health, reads state.
- `notify` (`[notify] user`), when the site has [notify]: the notifier; the only user besides the
  core that reads qms/{site}/private/# (citizens' phone numbers), and the only one the core
  answers a `contacts` query; publishes its presence and its statistics (qms/{site}/notify/#).
- `dossiers` (`[dossiers] user`): the dossier service, the single writer of dossiers; reads
  cmd/dossier (only the web server may write there, and the notifier to ask) and the core's
  events (ratings), writes event/dossier, private/dossier (phones, for the notifier) and its
  presence, and answers in any reply namespace, as the core does.
- `readonly`, and one user per [[integrations]] entry: for integrations; read state, events and
  presence, publish nothing.

The broker takes each client's id from its user name (production.conf), so every user has one
connection at a time and none can take another's id.

Passwords are random, kept in DIR/credentials.toml (mode 0600) and reused when the command runs
again, so adding an agent does not change everyone's password.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from broker_config import CONFIG_DIR
from broker_config.bridge import add_bridge_args, bridge_conf, bridge_settings, queue_limits
from qms_common.config import SiteConfig, load_site_config
from qms_common.protocol import EventKind, Topics
from qms_common.runner import exit_on_config_error
from qms_common.tomlconf import ConfigError, Table

RESERVED_USERS = ("core", "web", "readonly", "admin")
WEB_CLIENT_ID = "web"


@dataclass
class BrokerUser:
    name: str
    role: str
    rules: list[tuple[str, str]] = field(default_factory=list)  # (read|write|readwrite, topic)


def replies(t: Topics, user: str) -> list[tuple[str, str]]:
    """A user's reply namespace: only it may read there, and the core answers only there."""
    return [("read", t.reply(user)), ("read", t.reply(user) + "/#")]


def integration_ids(site: SiteConfig) -> list[str]:
    """[[integrations]]: one read-only broker user each, for programs outside the system (a
    dashboard, a report): each its own, as a user has one connection at a time."""
    ids: list[str] = []
    for table in Table(site.path, "", site.raw).tables("integrations"):
        iid = table.slug("id")
        if (iid in ids or iid in RESERVED_USERS or any(a.id == iid for a in site.agents)
                or (site.notify_enabled and iid == site.notify_user) or iid == site.dossiers_user):
            table.fail("id", f"tên {iid!r} đã dùng cho người dùng khác của broker.",
                       f"Đặt tên khác {', '.join(RESERVED_USERS)}, các tác tử quầy và các tích hợp khác.")
        table.reject_unknown()
        ids.append(iid)
    return ids


def site_users(site: SiteConfig) -> list[BrokerUser]:
    t = Topics(site.id)
    watch = [("read", t.state_all), ("read", t.event_all), ("read", t.status_all), ("read", t.health_all)]
    users = [
        BrokerUser("core", "lõi hàng đợi (queue core)", [("readwrite", f"{t.root}/#")]),
        BrokerUser("web", "máy chủ web (web server)", [
            ("write", t.cmd_ticket), ("write", t.cmd_counter("+")), ("write", t.cmd_rating),
            ("write", t.cmd_query), ("write", t.status_display("+")), ("write", t.status_web("+")),
            ("write", t.cmd_appointment), ("write", t.cmd_checkin), ("write", t.private_otp),
            ("write", t.cmd_dossier), ("read", t.notify_all), *watch, *replies(t, WEB_CLIENT_ID),
        ]),
    ]
    if site.notify_enabled:
        if site.notify_user in RESERVED_USERS or any(a.id == site.notify_user for a in site.agents):
            raise ConfigError(site.path, "notify.user", f"tên {site.notify_user!r} đã dùng cho người dùng khác.",
                              "Đặt tên khác cho người dùng broker của bộ gửi tin.")
        users.append(BrokerUser(site.notify_user, "bộ gửi tin nhắn cho công dân (notifier)", [
            ("write", t.cmd_query), ("write", t.cmd_dossier), ("write", t.status_notify), ("write", t.notify_all),
            ("read", t.private_all), *watch, *replies(t, site.notify_user),
        ]))
    dossiers = site.dossiers_user
    if (dossiers in RESERVED_USERS or any(a.id == dossiers for a in site.agents)
            or (site.notify_enabled and dossiers == site.notify_user)):
        raise ConfigError(site.path, "dossiers.user", f"tên {dossiers!r} đã dùng cho người dùng khác.",
                          "Đặt tên khác cho người dùng broker của dịch vụ hồ sơ.")
    users.append(BrokerUser(dossiers, "dịch vụ hồ sơ (dossier service)", [
        ("read", t.cmd_dossier), ("write", t.event(EventKind.DOSSIER)), ("write", t.private_dossier),
        ("write", t.status_dossiers), ("write", f"{t.root}/reply/#"), *watch,
    ]))
    for agent in site.agents:
        if agent.id in RESERVED_USERS:
            raise ConfigError(site.path, "agents.id", f"mã tác tử {agent.id!r} trùng tên người dùng dành riêng.",
                              f"Đặt mã khác {', '.join(RESERVED_USERS)}.")
        rules = [("write", t.cmd_counter(c)) for c in agent.counters]
        rules += [("write", t.cmd_rating), ("write", t.status_agent(agent.id)),
                  ("write", t.health_agent(agent.id)),
                  ("read", t.state_all), ("read", t.status_all), *replies(t, agent.id)]
        users.append(BrokerUser(agent.id, f"tác tử quầy {', '.join(agent.counters)}", rules))
    users.append(BrokerUser("readonly", "chỉ đọc, cho tích hợp (read-only integrations)", watch))
    # qms-admin status: its own user, so that running it never takes an integration's connection
    # (the client id is the user name: a second login with one user replaces the first)
    users.append(BrokerUser("admin", "qms-admin status (chỉ đọc hiện diện và tình trạng)",
                            [("read", t.status_all), ("read", t.health_all)]))
    users += [BrokerUser(iid, "tích hợp chỉ đọc (read-only integration)", watch) for iid in integration_ids(site)]
    return users


def acl_text(site: SiteConfig, users: list[BrokerUser]) -> str:
    lines = [f"# ACL of site {site.id}, written by qms-broker from {site.path}.",
             "# Do not edit: change the site configuration and run qms-broker again.", ""]
    for u in users:
        lines += [f"# {u.role}", f"user {u.name}"]
        lines += [f"topic {access} {topic}" for access, topic in u.rules]
        lines.append("")
    return "\n".join(lines)


def password_hash(password: str, salt: bytes | None = None, iterations: int = 101) -> str:
    """Mosquitto 2's `$7$` format: PBKDF2-HMAC-SHA512, as mosquitto_passwd writes it."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def load_credentials(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {name: entry["password"] for name, entry in data.get("users", {}).items()
            if isinstance(entry, dict) and isinstance(entry.get("password"), str)}


def credentials_text(site: SiteConfig, users: list[BrokerUser], passwords: dict[str, str], host: str,
                     port: int, tls_port: int) -> str:
    lines = [f"# Broker credentials of site {site.id}. Keep secret (mode 0600).",
             "# Each process puts its URL in [mqtt] url, or in the QMS_MQTT_URL environment variable.",
             "# Over the network use the TLS URL and set [mqtt] ca_file to tls/ca.crt.", ""]
    for u in users:
        pw = passwords[u.name]
        lines += [f"[users.{u.name}]", f"# {u.role}", f'password = "{pw}"',
                  f'url = "mqtt://{u.name}:{pw}@127.0.0.1:{port}"',
                  f'tls_url = "mqtts://{u.name}:{pw}@{host}:{tls_port}"', ""]
    return "\n".join(lines)


def make_tls(tls_dir: Path, hostnames: list[str], days: int = 3650) -> None:
    """A private CA and a server certificate for the broker, with openssl; kept when present."""
    if (tls_dir / "server.crt").exists() and (tls_dir / "ca.crt").exists():
        return
    if shutil.which("openssl") is None:
        raise SystemExit("Cần openssl để tạo chứng chỉ TLS (apt-get install openssl).")
    tls_dir.mkdir(parents=True, exist_ok=True)
    san = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hostnames)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tls_dir)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", str(days),
        "-subj", "/CN=QMS site broker CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", f"/CN={hostnames[0]}")
    (tls_dir / "san.ext").write_text(f"subjectAltName={san}\n", encoding="utf-8")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", str(days), "-extfile", "san.ext")
    for leftover in ("server.csr", "san.ext", "ca.srl"):
        (tls_dir / leftover).unlink(missing_ok=True)


def render_conf(out: Path, *, port: int, bind: str, tls_port: int, ws_port: int | None, run_as: str,
                bridge: str = "") -> str:
    template = (CONFIG_DIR / "production.conf").read_text(encoding="utf-8")
    # Always TLS: Mosquitto 2.0 binds a WebSockets listener to every interface whatever address
    # it is given, so a plain one could not be kept on this machine.
    websockets = (f"# Browser integrations over WebSockets with TLS (wss://, --websockets).\n"
                  f"listener {ws_port}\nprotocol websockets\nuse_username_as_clientid true\ncafile {out}/tls/ca.crt\n"
                  f"certfile {out}/tls/server.crt\nkeyfile {out}/tls/server.key\ntls_version tlsv1.2"
                  if ws_port else "# WebSockets listener: off (qms-broker --websockets PORT turns it on).")
    queued, queued_bytes = queue_limits(bool(bridge))
    return template.format(dir=out, port=port, bind=bind, tls_port=tls_port, websockets=websockets,
                           user_line=f"user {run_as}", max_queued_messages=queued,
                           max_queued_bytes=queued_bytes,
                           bridge=bridge or "# Bridge to a central broker: off (qms-broker --bridge URL turns it on).")


def _secure_write(path: Path, text: str, mode: int, owner: str | None) -> None:
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    if owner and os.geteuid() == 0:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="qms-broker", description="Viết tệp mật khẩu, ACL, TLS và cấu hình Mosquitto "
                                "cho một điểm (writes a site's broker users, ACLs, TLS and configuration).")
    p.add_argument("--config", required=True, type=Path, help="tệp cấu hình điểm (site.toml)")
    p.add_argument("--out", required=True, type=Path, help="thư mục đích, ví dụ /etc/mosquitto/qms")
    p.add_argument("--port", type=int, default=1883, help="cổng MQTT thường (mặc định 1883)")
    p.add_argument("--bind", default="127.0.0.1", help="địa chỉ nghe của cổng thường (mặc định 127.0.0.1)")
    p.add_argument("--tls-port", type=int, default=8883, help="cổng MQTT qua TLS (mặc định 8883)")
    p.add_argument("--websockets", type=int, metavar="PORT", help="bật cổng WebSockets qua TLS (wss), ví dụ 9001")
    p.add_argument("--hostname", action="append", default=None,
                   help="tên máy/IP trong chứng chỉ TLS (lặp lại được; mặc định localhost và 127.0.0.1)")
    p.add_argument("--run-as", default="mosquitto", help="người dùng hệ thống chạy mosquitto (mặc định mosquitto)")
    p.add_argument("--rotate", action="append", default=[], metavar="USER", help="đổi mật khẩu của người dùng này")
    add_bridge_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["central"]:
        from broker_config.central import main as central_main
        return central_main(argv[1:])
    args = parse_args(argv)
    try:
        site = load_site_config(args.config, env={})
        users = site_users(site)
        bridge = bridge_settings(site, args)
    except ConfigError as exc:
        return exit_on_config_error(exc)
    out: Path = args.out.resolve()
    (out / "data").mkdir(parents=True, exist_ok=True)
    owner = args.run_as if args.run_as != "root" else None
    if owner:
        try:
            pwd.getpwnam(owner)
        except KeyError:
            owner = None
    creds_path = out / "credentials.toml"
    passwords = load_credentials(creds_path)
    for u in users:
        if u.name not in passwords or u.name in args.rotate:
            passwords[u.name] = secrets.token_urlsafe(18)
    passwords = {u.name: passwords[u.name] for u in users}  # users no longer in the site lose access

    hostnames = args.hostname or ["localhost", "127.0.0.1"]
    make_tls(out / "tls", hostnames)
    _secure_write(out / "passwd", "".join(f"{n}:{password_hash(pw)}\n" for n, pw in passwords.items()), 0o640, owner)
    _secure_write(out / "acl", acl_text(site, users), 0o640, owner)
    _secure_write(creds_path, credentials_text(site, users, passwords, hostnames[0], args.port, args.tls_port),
                  0o600, None)
    for key in ("server.key", "ca.key"):
        if (out / "tls" / key).exists():
            os.chmod(out / "tls" / key, 0o600)
    if owner and os.geteuid() == 0:
        entry = pwd.getpwnam(owner)
        os.chown(out / "tls" / "server.key", entry.pw_uid, entry.pw_gid)
        os.chown(out / "data", entry.pw_uid, entry.pw_gid)
    conf = render_conf(out, port=args.port, bind=args.bind, tls_port=args.tls_port, ws_port=args.websockets,
                       run_as=args.run_as, bridge=bridge_conf(site.id, bridge) if bridge else "")
    # the bridge's password to the central broker is in it now
    _secure_write(out / "mosquitto.conf", conf, 0o640, owner)
    print(f"Đã viết cấu hình broker cho điểm {site.id} vào {out}:", file=sys.stderr)
    for name in ("mosquitto.conf", "passwd", "acl", "credentials.toml", "tls/ca.crt"):
        print(f"  {out / name}", file=sys.stderr)
    print(f"Người dùng: {', '.join(passwords)}. Mật khẩu và URL kết nối: {creds_path}", file=sys.stderr)
    if bridge:
        print(f"Nối lên broker trung tâm {bridge.host}:{bridge.port} với người dùng {bridge.username}.",
              file=sys.stderr)
    print(f"Chạy: mosquitto -c {out / 'mosquitto.conf'}", file=sys.stderr)
    return 0
