"""`make run`: a complete demo site on this machine.

Starts our own Mosquitto (1883 if free, otherwise a free port), the queue core and the web
server (the TV page; port 8080 if free) with examples/site.toml, simulated LED panels and
keypads for every counter (on ptys) with the counter agent that drives them
(examples/agent-demo.toml), the notifier with a local stand-in for Zalo ZNS, eSMS and a webhook
receiver (its "phone inbox" page shows what citizens would receive), and prints how to talk to them.
The procedure catalogue of examples/procedures.json is imported first (`qms-web import-procedures`;
again at every start: it updates, never duplicates), and ~90 open days of history (tickets,
ratings, dossiers) are generated before the core starts, for the reports (scripts/gen_history.py;
once: days already there are skipped).
Children that die are restarted; Ctrl-C stops everything. Logs go to var/logs/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from counter_agent.config import load_agent_config  # noqa: E402
from notifier.settings import ENV_SECRETS, NotifySettings, load_notify_settings  # noqa: E402
from qms_common.config import load_site_config  # noqa: E402
from qms_common.devbroker import free_port, start_broker, stop_process, wait_for_port  # noqa: E402
from qms_common.tomlconf import ConfigError  # noqa: E402

SITE = ROOT / "examples" / "site.toml"
# The demo accounts of examples/site.toml (DEMO ONLY: their passwords are public).
# tests/test_web_accounts.py checks that these passwords match the hashes in the file.
DEMO_LOGINS = (
    ("canbo1", "canbo1-demo", "cán bộ quầy 1–3 / officer, counters 1-3"),
    ("canbo2", "canbo2-demo", "cán bộ quầy 4–6 / officer, counters 4-6"),
    ("giamsat", "giamsat-demo", "giám sát / supervisor"),
    ("lanhdao", "lanhdao-demo", "lãnh đạo, xem báo cáo / leader, reports (read-only)"),
)
# The demo's dossier API key (DEMO ONLY, public): its SHA-256 is in examples/site.toml [[api_keys]].
DEMO_API_KEY = "demo-motcua-khoa-cong-khai"
AGENT = ROOT / "examples" / "agent-demo.toml"
PROCEDURES = ROOT / "examples" / "procedures.json"
VAR = ROOT / "var"
LOGS = VAR / "logs"
# the stand-in's integrator receiver that the example's webhook is pointed at
HOOK_PATH = "/hook/demo"
# the demo's history for the reports: open days before today, tickets on an average one
HISTORY_DAYS = 90
HISTORY_PER_DAY = 250


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started: float = field(default=0.0)

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=out, env=self.env, cwd=ROOT,
                                         stdin=subprocess.DEVNULL)
        self.started = time.monotonic()

    def stop(self) -> None:
        # a service gives its own stop up to 5 s (say offline, close the store) when the broker is gone
        stop_process(self.proc, timeout=10)


def tail(path: Path, n: int = 5) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return ""


def wait_online(port: int, topic: str, timeout: float = 30) -> bool:
    """mosquitto_sub prints the retained presence; "online" comes once the state is published."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["mosquitto_sub", "-p", str(port), "-t", topic, "-C", "1",
                              "-W", "2"], capture_output=True, text=True)
        if out.stdout.strip() == "online":
            return True
    return False


def demo_site_text(text: str, *, web_port: int, standin_url: str, listen_port: int) -> str:
    """examples/site.toml as this run uses it: the web port that is free, and every provider
    address of [notify] pointing at the local stand-in (the real providers are out of reach, and
    must never get the demo's messages), the delivery receipts on a free port."""
    text = re.sub(r"(?m)^port = \d+$", f"port = {web_port}", text, count=1)
    head, sep, notify = text.partition("\n[notify]\n")
    if not sep:
        return text
    notify = re.sub(r'(?m)^(base_url|oauth_url) = "[^"]*"', rf'\1 = "{standin_url}"', notify)
    notify = re.sub(r'(?m)^url = "[^"]*"', f'url = "{standin_url}{HOOK_PATH}"', notify)
    notify = re.sub(r'(?m)^listen = "[^"]*"', f'listen = "127.0.0.1:{listen_port}"', notify)
    return head + sep + notify


def not_at_standin(n: NotifySettings, standin_url: str) -> list[str]:
    """The [notify] addresses that would still leave this machine (none, or the demo stops)."""
    urls = {"[notify.webhooks] url": [w.url for w in n.webhooks]}
    if n.zalo is not None:
        urls["[notify.zalo] base_url, oauth_url"] = [n.zalo.base_url, n.zalo.oauth_url]
    if n.sms is not None:
        urls["[notify.sms] base_url"] = [n.sms.base_url]
    return [k for k, v in urls.items() if any(not u.startswith(standin_url) for u in v)]


def standin_argv(py: str, port: int, n: NotifySettings) -> list[str]:
    """The stand-in with the site's own Zalo app and webhook secret, so it checks the notifier's
    signatures and signs its delivery receipts as the real ones would."""
    argv = [py, "-m", "notifier.standin", "--port", str(port)]
    if n.zalo is not None:
        argv += ["--zalo-app-id", n.zalo.app_id, "--zalo-secret", n.zalo.secret_key]
    if n.listen is not None:
        argv += ["--receipt-url", f"http://{n.listen[0]}:{n.listen[1]}/zalo/events"]
    if n.webhooks:
        argv += ["--webhook-secret", n.webhooks[0].secret]
    return argv


def demo_history(py: str, env: dict[str, str]) -> str:
    """The last HISTORY_DAYS open days in the core's and the dossier service's databases, before
    they start (the generator refuses while they run); what it did, in one line."""
    with (LOGS / "gen-history.log").open("wb") as out:
        done = subprocess.run([py, str(ROOT / "scripts" / "gen_history.py"), "--config", str(SITE), "--days",
                               str(HISTORY_DAYS), "--per-day", str(HISTORY_PER_DAY)], stdout=subprocess.PIPE,
                              stderr=out, env=env, cwd=ROOT, check=False)
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        return "CHƯA tạo được, xem " + str(LOGS / "gen-history.log")
    return " ".join(lines)


def main() -> int:
    try:
        site = load_site_config(SITE, env={})
        agent_cfg = load_agent_config(AGENT, env={})
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    LOGS.mkdir(parents=True, exist_ok=True)
    broker = start_broker(port=1883, workdir=VAR / "broker")
    url = broker.url
    env = {**os.environ, "QMS_MQTT_URL": url, "PYTHONUNBUFFERED": "1"}
    py = sys.executable
    # the example's web port if it is free, else another: the web server reads a copy of the site
    # file that says which (in var/, a sibling of examples/, so relative paths mean the same)
    web_port = free_port(site.web_port)
    standin_port = free_port()
    standin_url = f"http://127.0.0.1:{standin_port}"
    site_file = VAR / "demo-site.toml"
    site_file.write_text(demo_site_text(SITE.read_text(encoding="utf-8"), web_port=web_port, standin_url=standin_url,
                                        listen_port=free_port()), encoding="utf-8")
    try:
        notify = load_notify_settings(load_site_config(site_file, env={}), env={})
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        broker.stop()
        return 2
    if notify is not None and (outside := not_at_standin(notify, standin_url)):
        print(f"{site_file}: {', '.join(outside)} không trỏ về máy chủ giả lập; demo không gửi tin ra ngoài.",
              file=sys.stderr)
        broker.stop()
        return 2
    # the catalogue before the web server starts (it would also pick it up later by itself)
    with (LOGS / "import-procedures.log").open("wb") as out:
        imported = subprocess.run([py, "-m", "display_server", "import-procedures", str(PROCEDURES), "--config",
                                   str(site_file)], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                  check=False).returncode == 0
    # history for the reports, before the core and the dossier service open their databases
    history = demo_history(py, env)
    print(f"[demo] Dữ liệu lịch sử cho báo cáo / history for the reports: {history}", flush=True)
    # the secrets of a real deployment in this shell would win over the demo's (settings.py)
    notify_env = {k: v for k, v in env.items() if k not in ENV_SECRETS.values()}
    children = [
        # the simulated panels first: they make the ports the agent opens
        Child("simulator", [py, "-m", "counter_agent.simulator", "--config", str(AGENT)], env,
              LOGS / "panels.log"),
        Child("core", [py, "-m", "queue_core", "--config", str(SITE)], env, LOGS / "core.log"),
        # the dossier service: the single writer of dossiers, with its own database beside the core's
        Child("dossiers", [py, "-m", "dossiers", "--config", str(SITE)], env, LOGS / "dossiers.log"),
        Child("agent", [py, "-m", "counter_agent", "--config", str(AGENT)], env, LOGS / "agent.log"),
        Child("web", [py, "-m", "display_server", "--config", str(site_file)], env, LOGS / "web.log"),
    ]
    if notify is not None:
        children += [
            Child("standin", standin_argv(py, standin_port, notify), notify_env, LOGS / "standin.log"),
            Child("notifier", [py, "-m", "notifier", "--config", str(site_file)], notify_env, LOGS / "notifier.log"),
        ]
    for c in children:
        c.start()
    ok = wait_online(broker.port, f"qms/{site.id}/status/core")
    agent_ok = wait_online(broker.port, f"qms/{site.id}/status/agent/{agent_cfg.id}")
    dossiers_ok = wait_online(broker.port, f"qms/{site.id}/status/dossiers")
    web = next(c for c in children if c.name == "web")
    try:
        wait_for_port(web_port, timeout=20, process=web.proc)
        web_ok = True
    except (TimeoutError, RuntimeError):
        web_ok = False
    if notify is not None:
        notify_ok = wait_online(broker.port, f"qms/{site.id}/status/notify")
        notify_line = ("sẵn sàng (Zalo ZNS, SMS, webhook → máy chủ giả lập / to the local stand-in)" if notify_ok
                       else "CHƯA sẵn sàng, xem " + str(LOGS / "notifier.log"))
        inbox = f"{standin_url}/"
    else:
        notify_line, inbox = f"tắt (không có [notify] trong {SITE.name}) / off", "(không có / none)"
    base = f"http://127.0.0.1:{web_port}"
    tv = f"{base}/display"
    logins = "\n".join(f"                   {user:8} / {password:13} {who}" for user, password, who in DEMO_LOGINS)
    p, s = broker.port, site.id
    rel_py = os.path.relpath(py, ROOT) if py.startswith(str(ROOT)) else py
    sim = f"{rel_py} -m counter_agent.simulator"
    agent_conf = AGENT.relative_to(ROOT)
    fields = ", ".join(f"{f.id} ({f.name} {f.first}–{f.last})" for f in site.fields)
    due = (datetime.now(site.tz) + timedelta(days=7)).date().isoformat()
    print(f"""
================ Hệ thống xếp hàng một cửa: site demo đang chạy ================
{site.name}
  Broker MQTT    : {url}   (của riêng demo; cổng 1883 của hệ thống không bị dùng nếu đã bận)
  Lõi hàng đợi   : {"sẵn sàng" if ok else "CHƯA sẵn sàng, xem " + str(LOGS / "core.log")}
  Dịch vụ hồ sơ  : {"sẵn sàng" if dossiers_ok else "CHƯA sẵn sàng, xem " + str(LOGS / "dossiers.log")}
  Tác tử quầy    : {"sẵn sàng" if agent_ok else "CHƯA sẵn sàng, xem " + str(LOGS / "agent.log")} ({agent_conf})
  Màn hình TV    : {tv if web_ok else "CHƯA sẵn sàng, xem " + str(LOGS / "web.log")}
                   (một khu vực / one area: {tv}?fields=dat-dai ; tên TV / TV id: {tv}?id=phong-cho-1)
  Ki-ốt 4 trong 1: {base}/kiosk?id=kiosk-1          (lấy số, tra cứu thủ tục, hồ sơ, đánh giá; in bằng trình duyệt)
  Quầy (cán bộ)  : {base}/counter/1 … {base}/counter/6
  Đánh giá       : {base}/rate/1 … {base}/rate/6     (máy tính bảng trước quầy / the citizen's tablet;
                   ghép nối một lần / pair once: {base}/supervisor/pairing)
  Giám sát       : {base}/supervisor
  Báo cáo        : {base}/reports    (giám sát, lãnh đạo / supervisor, leader: kỳ, cán bộ, chỉ số 766, XLSX)
  Theo dõi vé    : {base}/t/<mã vé>/<mã bảo vệ>      (mã QR trên phiếu / the ticket's QR code)
  Lấy số từ xa   : {base}/lay-so     (điện thoại / a phone; mã xác nhận trong hộp thư giả lập / code in the phone inbox)
  Đặt lịch hẹn   : {base}/dat-lich   (xác nhận tại ki-ốt / check in at the kiosk)
  Tra cứu thủ tục: {base}/thu-tuc    ({"danh mục mẫu / the sample catalogue: " + PROCEDURES.relative_to(ROOT).as_posix()
                                         if imported else "CHƯA nhập, xem " + str(LOGS / "import-procedures.log")})
  Tình trạng     : {base}/healthz    số đo / metrics (Prometheus): {base}/metrics   (docs/operations.md)
  Bộ gửi tin     : {notify_line}
  Hộp thư điện thoại (giả lập) / phone inbox: {inbox}
                   (tin Zalo/SMS công dân sẽ nhận và webhook; vé có số điện thoại / tickets with a phone)
  Tài khoản demo (CHỈ ĐỂ THỬ, mật khẩu công khai / DEMO ONLY, public passwords):
{logins}
  Cơ sở dữ liệu  : {site.storage_path}
  Lịch sử        : {HISTORY_DAYS} ngày làm việc gần nhất (báo cáo / reports): {history}
  Nhật ký (logs) : {LOGS}/
  Lĩnh vực       : {fields}
  Quầy           : {", ".join(f"{c.id} ({', '.join(c.fields)})" for c in site.counters)}

Thử với mosquitto_rr / Try it (mỗi request_id chỉ được xử lý một lần / each request_id runs once):
  # lấy số (take a ticket)
  mosquitto_rr -p {p} -t qms/{s}/cmd/ticket -e qms/{s}/reply/cli \\
    -m '{{"request_id":"'$RANDOM$RANDOM'","field":"dat-dai"}}'
  # lấy số kèm số điện thoại: tin nhắn hiện trong hộp thư giả lập (with a phone: see the phone inbox)
  mosquitto_rr -p {p} -t qms/{s}/cmd/ticket -e qms/{s}/reply/cli \\
    -m '{{"request_id":"'$RANDOM$RANDOM'","field":"dat-dai","phone":"0912345678"}}'
  # quầy 1 gọi số tiếp theo: TV hiện số và đọc (counter 1 calls next: the TV shows and speaks it)
  mosquitto_rr -p {p} -t qms/{s}/cmd/counter/1 -e qms/{s}/reply/cli \\
    -m '{{"request_id":"'$RANDOM$RANDOM'","action":"call_next"}}'
  # gọi lại (recall)
  mosquitto_rr -p {p} -t qms/{s}/cmd/counter/1 -e qms/{s}/reply/cli \\
    -m '{{"request_id":"'$RANDOM$RANDOM'","action":"recall"}}'
  # tra một hồ sơ như máy chủ web (look a dossier up as the web server does; docs/protocol.md, Dossiers)
  mosquitto_rr -p {p} -t qms/{s}/cmd/dossier -e qms/{s}/reply/web/cli \\
    -m '{{"request_id":"'$RANDOM$RANDOM'","action":"get","code":"HS-001"}}'
  # hồ sơ từ hệ thống một cửa của tỉnh qua API (a dossier from the province's system; docs/integration.md)
  curl -s -X POST {base}/api/v1/dossiers -H 'Authorization: Bearer {DEMO_API_KEY}' \\
    -H 'Content-Type: application/json' \\
    -d '{{"code":"H12.34-DEMO-0001","procedure":"Đăng ký kết hôn","due_at":"{due}","phone":"0912345678"}}'
  curl -s -X POST {base}/api/v1/dossiers/H12.34-DEMO-0001/events -H 'Authorization: Bearer {DEMO_API_KEY}' \\
    -H 'Content-Type: application/json' -d '{{"id":"ev-1","status":"done","note":"Đã có kết quả"}}'
  # theo dõi mọi trạng thái và sự kiện (watch state and events)
  mosquitto_sub -p {p} -t 'qms/{s}/#' -v

Bảng LED và bàn phím quầy giả lập / Simulated counter panels and keypads (docs/hardware.md):
  # xem các bảng LED (watch the panels)
  tail -f {LOGS.relative_to(ROOT)}/panels.log        # hoặc: {sim} show --config {agent_conf}
  # bấm phím trên bàn phím quầy 1 (press a key on counter 1's keypad)
  {sim} press --config {agent_conf} --counter 1 N
  # phím (keys): N gọi số tiếp theo, R gọi lại, S vắng mặt, F xong, P tạm dừng/tiếp tục,
  #              T1..T4 chuyển sang lĩnh vực thứ 1..4, 1..3 đánh giá (rating)
  # sức khỏe thiết bị (device health)
  mosquitto_sub -p {p} -t 'qms/{s}/health/#' -v

Nhấn Ctrl-C để dừng (Ctrl-C stops everything).
""", flush=True)

    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stopping:
            for c in children:
                if c.proc and c.proc.poll() is not None and not stopping:
                    print(f"[demo] {c.name} dừng với mã {c.proc.returncode}; khởi động lại. Nhật ký:\n{tail(c.log)}",
                          flush=True)
                    c.restarts += 1
                    time.sleep(min(5, c.restarts))
                    c.start()
            if broker.process is not None and broker.process.poll() is not None and not stopping:
                print("[demo] broker dừng; khởi động lại", flush=True)
                broker.start()
            time.sleep(0.5)
    finally:
        print("\nĐang dừng demo...", flush=True)
        for c in reversed(children):
            c.stop()
        broker.stop()
        shutil.rmtree(VAR / "broker", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
