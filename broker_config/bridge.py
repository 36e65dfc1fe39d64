"""The office broker's bridge to the province's central broker (issue 15, "Offices to the centre").

Mosquitto bridges the office's own topics out: state, events and presence, QoS 1, on a persistent
session, so what is published while the link is down waits in a bounded queue on the office broker
and is sent when the link comes back. Nothing flows back in unless [bridge] in (or --bridge-in)
names topics (`qms/{site}/cmd/backfill` for the province's backfill, whose answers go out on
`qms/{site}/reply/province/#`). The office logs in to the central broker with its own user (its site id by default),
whom the central ACL confines to qms/{site}/# (broker_config/central.py).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from qms_common.config import MqttSettings, SiteConfig
from qms_common.protocol import Topics
from qms_common.tomlconf import ConfigError, Table, resolve_path

# Queue of the bridge while the central broker is away. A busy office publishes about 20 000
# messages a day (events, state snapshots, presence); 200 000 hold several days of a busy office,
# and the byte cap keeps the broker's memory bounded (Mosquitto keeps the queue in memory and in
# its persistence file) whatever the messages' sizes. Mosquitto applies both limits per client,
# globally: every offline persistent client of the office broker gets the same bound.
QUEUE_MESSAGES = 200_000
QUEUE_BYTES = 256 * 1024 * 1024
# Without a bridge, the office broker keeps its former limits.
LOCAL_QUEUE_MESSAGES = 10_000
LOCAL_QUEUE_BYTES = 0

# reply/province/#: the answers to the province's backfill requests (cmd/backfill, when [bridge]
# in lets them in); only the core answers there, and only the province's requests ask for it.
OUT_TOPICS = ("state/#", "event/#", "status/#", "reply/province/#")


@dataclass(frozen=True)
class BridgeSettings:
    host: str
    port: int
    tls: bool
    username: str
    password: str
    cafile: Path | None
    topics_in: tuple[str, ...] = ()
    retry_s: int = 5
    retry_max_s: int = 60
    keepalive_s: int = 15


def _fail(path: Path, key: str, problem: str, fix: str = "") -> ConfigError:
    return ConfigError(path, key, problem, fix)


def bridge_settings(site: SiteConfig, args: argparse.Namespace) -> BridgeSettings | None:
    """[bridge] of site.toml, overridden by the --bridge* flags; None when neither asks for one."""
    t = Table(site.path, "bridge", site.raw.get("bridge", {}))
    # every key is read (so a misspelt one is refused) before the flags override them
    t_url, t_user, t_pw, t_ca = t.str("url"), t.str("user"), t.str("password_file"), t.str("cafile")
    t_in = t.str_list("in", [])
    url = args.bridge or t_url
    user = args.bridge_user or t_user
    password_file = args.bridge_password_file or (resolve_path(site.path, t_pw) if t_pw else None)
    cafile = args.bridge_cafile or (resolve_path(site.path, t_ca) if t_ca else None)
    topics_in = tuple(args.bridge_in) if args.bridge_in else tuple(t_in)
    retry_s = t.int("retry_s", 5, minimum=1)
    retry_max_s = t.int("retry_max_s", 60, minimum=1)
    # the central broker notices a cut link after 1.5 keepalives: 22.5 s, within the 30 s in which
    # the province must show an office offline
    keepalive_s = t.int("keepalive_s", 15, minimum=5)
    t.reject_unknown()
    if not url:
        return None
    key = "--bridge" if args.bridge else "bridge.url"
    try:
        remote = MqttSettings.from_url(url)
    except ValueError as exc:
        raise _fail(site.path, key, f"địa chỉ broker trung tâm không hợp lệ: {exc}.",
                    "Dạng đúng: mqtts://trung-tam.example:8883") from None
    if remote.password:
        raise _fail(site.path, key, "không ghi mật khẩu trong địa chỉ broker trung tâm.",
                    "Đặt mật khẩu vào một tệp và chỉ ra bằng --bridge-password-file hoặc [bridge] password_file.")
    if password_file is None:
        raise _fail(site.path, "bridge.password_file", "thiếu tệp mật khẩu của điểm trên broker trung tâm.",
                    "Dùng --bridge-password-file TỆP hoặc [bridge] password_file.")
    try:
        password = Path(password_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise _fail(site.path, "bridge.password_file", f"không đọc được {password_file} ({exc.strerror}).") from None
    if not password or any(c.isspace() for c in password):
        raise _fail(site.path, "bridge.password_file", f"tệp {password_file} phải chứa đúng một mật khẩu.")
    if remote.tls:
        if cafile is None:
            raise _fail(site.path, "bridge.cafile", "kết nối mqtts cần chứng chỉ CA của broker trung tâm.",
                        "Dùng --bridge-cafile ca.crt hoặc [bridge] cafile.")
        if not Path(cafile).is_file():
            raise _fail(site.path, "bridge.cafile", f"không tìm thấy tệp {cafile}.")
    prefix = f"qms/{site.id}/"
    for topic in topics_in:
        if not topic.startswith(prefix) or "+" in topic or topic.count("#") > 1:
            raise _fail(site.path, "bridge.in", f"chủ đề {topic!r} không thuộc điểm này.",
                        f"Chỉ nhận vào các chủ đề dưới {prefix}, ví dụ {prefix}cmd/backfill.")
    if retry_max_s < retry_s:
        raise _fail(site.path, "bridge.retry_max_s", "phải lớn hơn hoặc bằng retry_s.")
    return BridgeSettings(host=remote.host, port=remote.port, tls=remote.tls,
                          username=user or remote.username or site.id, password=password,
                          cafile=Path(cafile).resolve() if cafile else None, topics_in=topics_in,
                          retry_s=retry_s, retry_max_s=retry_max_s, keepalive_s=keepalive_s)


def bridge_conf(site_id: str, b: BridgeSettings) -> str:
    """The bridge section of mosquitto.conf (it must come after every listener)."""
    lines = [
        "# Bridge to the province's central broker (qms-broker --bridge; docs/province.md).",
        f"connection qms-{site_id}",
        f"address {b.host}:{b.port}",
        # A fixed id: the central broker keeps this office's session (cleansession false) across
        # reconnections, and a second office cannot take it (the central ACL names the user).
        f"remote_clientid qms-bridge-{site_id}",
        f"remote_username {b.username}",
        f"remote_password {b.password}",
        "bridge_protocol_version mqttv311",
        "cleansession false",
        # The office side keeps its subscription too, so the queue survives a link that is down.
        "local_cleansession false",
        "start_type automatic",
        f"restart_timeout {b.retry_s} {b.retry_max_s}",
        f"keepalive_interval {b.keepalive_s}",
        # The central broker learns when an office goes away (the bridge's will, 0) and comes
        # back (1), on a topic of the office that the central ACL lets it write.
        "notifications true",
        f"notification_topic {Topics(site_id).status_bridge}",
    ]
    if b.tls:
        lines += [f"bridge_cafile {b.cafile}", "bridge_insecure false", "bridge_tls_version tlsv1.2"]
    lines += [f"topic qms/{site_id}/{t} out 1" for t in OUT_TOPICS]
    lines += [f"topic {t} in 1" for t in b.topics_in]
    return "\n".join(lines) + "\n"


def queue_limits(bridged: bool) -> tuple[int, int]:
    return (QUEUE_MESSAGES, QUEUE_BYTES) if bridged else (LOCAL_QUEUE_MESSAGES, LOCAL_QUEUE_BYTES)


def add_bridge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bridge", metavar="URL", help="nối broker của điểm lên broker trung tâm của tỉnh, "
                   "ví dụ mqtts://trung-tam:8883 (mặc định: [bridge] url trong site.toml)")
    p.add_argument("--bridge-user", metavar="USER", help="người dùng của điểm trên broker trung tâm "
                   "(mặc định: mã điểm)")
    p.add_argument("--bridge-password-file", type=Path, metavar="FILE",
                   help="tệp chứa mật khẩu của điểm trên broker trung tâm")
    p.add_argument("--bridge-cafile", type=Path, metavar="CA", help="chứng chỉ CA của broker trung tâm (mqtts)")
    p.add_argument("--bridge-in", action="append", default=[], metavar="TOPIC",
                   help="chủ đề được phép đi từ trung tâm vào điểm (lặp lại được; mặc định: không có)")
