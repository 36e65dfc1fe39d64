"""qms-broker central --config province.toml --out DIR: the province's central Mosquitto.

Users:
- one per office, named by its site id (`[[sites]] id`): what its bridge logs in as. It may write
  only qms/{its site}/#, and read only the --service-write topics of its own site (nothing by
  default), so one office can neither publish as another nor read it.
- the province service (`--service-user`, default `province`): reads qms/+/#, and writes only the
  topics under each office given with --service-write (none by default), e.g. cmd/backfill.

Passwords are random, kept in DIR/credentials.toml (mode 0600) and reused when the command runs
again; give each office its password in a file for `qms-broker --bridge-password-file`.
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import sys
from pathlib import Path

from broker_config.tool import BrokerUser, _secure_write, load_credentials, make_tls, password_hash
from province.settings import ProvinceSettings, load_province
from qms_common.runner import exit_on_config_error
from qms_common.tomlconf import ConfigError

SERVICE_USER = "province"


def central_users(province: ProvinceSettings, service_user: str = SERVICE_USER,
                  service_write: tuple[str, ...] = ()) -> list[BrokerUser]:
    """`service_write`: topics under each office (e.g. `cmd/backfill`) that the service may
    publish, for requests to the offices whose bridges let them in ([bridge] in); none by default."""
    if any(s.id == service_user for s in province.sites):
        raise ConfigError(province.path, "sites.id", f"mã điểm {service_user!r} trùng người dùng của dịch vụ tỉnh.",
                          "Đặt mã khác cho điểm, hoặc dùng --service-user khác.")
    for suffix in service_write:
        if not suffix or suffix.startswith("/") or "+" in suffix or suffix.count("#") > 1:
            raise ConfigError(province.path, "--service-write", f"chủ đề {suffix!r} không hợp lệ.",
                              "Ví dụ: cmd/backfill (dưới qms/{điểm}/).")
    users = [BrokerUser(service_user, "dịch vụ tỉnh (province service)",
                        [("read", "qms/+/#"), *(("write", f"qms/+/{suffix}") for suffix in service_write)])]
    # an office reads only the requests the service may send it (its bridge's `in` topics)
    users += [BrokerUser(s.id, f"điểm {s.name}", [("write", f"qms/{s.id}/#"),
                                                  *(("read", f"qms/{s.id}/{suffix}") for suffix in service_write)])
              for s in province.sites]
    return users


def central_acl_text(province: ProvinceSettings, users: list[BrokerUser]) -> str:
    # Explicit users rather than a `pattern write qms/%u/#`: a pattern applies to every user,
    # the service user too, and a typo in a site id would still give that user a namespace.
    lines = [f"# ACL of the central broker of {province.id}, written by qms-broker central from {province.path}.",
             "# Do not edit: change province.toml and run qms-broker central again.", ""]
    for u in users:
        lines += [f"# {u.role}", f"user {u.name}", *(f"topic {a} {t}" for a, t in u.rules), ""]
    return "\n".join(lines)


def central_conf(out: Path, *, port: int, bind: str, tls_port: int, run_as: str) -> str:
    return f"""# Central Mosquitto of the province, written by qms-broker central (docs/province.md).
per_listener_settings false
user {run_as}
allow_anonymous false
password_file {out}/passwd
acl_file {out}/acl

# Sessions of the bridges and of the province service survive a restart of this broker.
persistence true
persistence_location {out}/data/
autosave_interval 60

log_dest stderr
log_type error
log_type warning
log_type notice
connection_messages true

max_packet_size 262144
# Per client: the province service's queue while it restarts (500 offices at a busy rate).
max_queued_messages 200000
max_inflight_messages 1000
set_tcp_nodelay true

listener {port} {bind}
use_username_as_clientid true

listener {tls_port}
use_username_as_clientid true
cafile {out}/tls/ca.crt
certfile {out}/tls/server.crt
keyfile {out}/tls/server.key
tls_version tlsv1.2
"""


def write_central(province: ProvinceSettings, out: Path, *, port: int = 1883, bind: str = "127.0.0.1",
                  tls_port: int = 8883, hostnames: list[str] | None = None, service_user: str = SERVICE_USER,
                  rotate: tuple[str, ...] = (), run_as: str = "mosquitto",
                  service_write: tuple[str, ...] = ()) -> dict[str, str]:
    """Write DIR/{passwd,acl,credentials.toml,mosquitto.conf,tls/}; return the passwords by user.
    Callable by the province service's installer as well as by the command."""
    users = central_users(province, service_user, service_write)
    out = out.resolve()
    owner: str | None = run_as if run_as != "root" else None
    if owner:
        try:
            pwd.getpwnam(owner)
        except KeyError:
            owner = None
    (out / "data").mkdir(parents=True, exist_ok=True)
    creds = out / "credentials.toml"
    passwords = load_credentials(creds)
    for u in users:
        if u.name not in passwords or u.name in rotate:
            passwords[u.name] = secrets.token_urlsafe(18)
    passwords = {u.name: passwords[u.name] for u in users}
    make_tls(out / "tls", hostnames or ["localhost", "127.0.0.1"])
    _secure_write(out / "passwd", "".join(f"{n}:{password_hash(pw)}\n" for n, pw in passwords.items()), 0o640, owner)
    _secure_write(out / "acl", central_acl_text(province, users), 0o640, owner)
    lines = [f"# Central broker credentials of {province.id}. Keep secret (mode 0600).",
             "# Each office's password goes to a file for qms-broker --bridge-password-file.", ""]
    for u in users:
        lines += [f"[users.{u.name}]", f"# {u.role}", f'password = "{passwords[u.name]}"', ""]
    _secure_write(creds, "\n".join(lines), 0o600, None)
    for key in ("server.key", "ca.key"):
        if (out / "tls" / key).exists():
            (out / "tls" / key).chmod(0o600)
    if owner and os.geteuid() == 0:
        entry = pwd.getpwnam(owner)
        for path in (out / "tls" / "server.key", out / "data"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    (out / "mosquitto.conf").write_text(central_conf(out, port=port, bind=bind, tls_port=tls_port,
                                                                   run_as=run_as), encoding="utf-8")
    return passwords


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="qms-broker central", description="Viết người dùng, ACL và cấu hình "
                                "broker trung tâm của tỉnh (writes the central broker's users, ACL and configuration).")
    p.add_argument("--config", required=True, type=Path, help="tệp cấu hình tỉnh (province.toml)")
    p.add_argument("--out", required=True, type=Path, help="thư mục đích, ví dụ /etc/mosquitto/qms-central")
    p.add_argument("--port", type=int, default=1883, help="cổng MQTT thường (mặc định 1883)")
    p.add_argument("--bind", default="127.0.0.1", help="địa chỉ nghe của cổng thường (mặc định 127.0.0.1)")
    p.add_argument("--tls-port", type=int, default=8883, help="cổng MQTT qua TLS cho các điểm (mặc định 8883)")
    p.add_argument("--hostname", action="append", default=None, help="tên máy/IP trong chứng chỉ TLS")
    p.add_argument("--service-user", default=SERVICE_USER, help="người dùng của dịch vụ tỉnh (mặc định province)")
    p.add_argument("--rotate", action="append", default=[], metavar="USER", help="đổi mật khẩu của người dùng này")
    p.add_argument("--run-as", default="mosquitto", help="người dùng hệ thống chạy mosquitto (mặc định mosquitto)")
    p.add_argument("--service-write", action="append", default=[], metavar="TOPIC",
                   help="chủ đề dưới qms/{điểm}/ mà dịch vụ tỉnh được gửi tới các điểm, ví dụ cmd/backfill "
                   "(lặp lại được; mặc định: không có)")
    args = p.parse_args(argv)
    try:
        province = load_province(args.config)
        passwords = write_central(province, args.out, port=args.port, bind=args.bind, tls_port=args.tls_port,
                                  hostnames=args.hostname, service_user=args.service_user, rotate=tuple(args.rotate),
                                  run_as=args.run_as, service_write=tuple(args.service_write))
    except ConfigError as exc:
        return exit_on_config_error(exc)
    out = args.out.resolve()
    print(f"Đã viết cấu hình broker trung tâm của {province.id} cho {len(province.sites)} điểm vào {out}.",
          file=sys.stderr)
    print(f"Người dùng: {', '.join(passwords)}. Mật khẩu: {out / 'credentials.toml'}", file=sys.stderr)
    print(f"Chạy: mosquitto -c {out / 'mosquitto.conf'}", file=sys.stderr)
    return 0
