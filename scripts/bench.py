"""`make bench`: how fast the queue core is, printed as one JSON object on the last line.

Starts our own broker and a real core process, drives it flat out with concurrent clients
(issue, call_next, finish at realistic proportions) and reports durable commands per second,
round-trip latency and the core's memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from qms_common.config import MqttSettings  # noqa: E402
from qms_common.devbroker import start_broker  # noqa: E402
from qms_common.mqtt import MqttSession, Requester  # noqa: E402
from qms_common.protocol import Topics  # noqa: E402

FIELDS = "\n".join(f"""
[[fields]]
id = "f{i}"
name = "Lĩnh vực {i}"
first = 1
last = 99999
prefix = "{chr(65 + i)}"
""" for i in range(4))
COUNTERS = "\n".join(f"""
[[counters]]
id = "{i}"
name = "Quầy {i}"
fields = ["f{i % 4}", "f{(i + 1) % 4}"]
""" for i in range(1, 41))


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return round(values[k], 3)


async def drive(url: str, site: str, seconds: float, clients: int) -> dict[str, object]:
    topics = Topics(site)
    sessions = []
    for i in range(clients):
        s = MqttSession(MqttSettings.from_url(url), identifier=f"bench-{i}", name=f"bench-{i}")
        r = Requester(s, topics, f"bench-{i}")
        sessions.append((s, r, asyncio.create_task(s.run())))
    for s, _, _ in sessions:
        await asyncio.wait_for(s.connected.wait(), 10)
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker(idx: int, r: Requester) -> None:
        nonlocal errors
        counter = str(idx % 40 + 1)
        n = 0
        while time.perf_counter() < stop_at:
            n += 1
            if n % 3 == 0:
                topic, body = topics.cmd_counter(counter), {"action": "call_next"}
            else:
                topic, body = topics.cmd_ticket, {"field": f"f{(idx + n) % 4}"}
            t0 = time.perf_counter()
            reply = await r.request(topic, body, timeout=10)
            latencies.append((time.perf_counter() - t0) * 1000)
            if not reply["ok"] and reply["error"]["code"] != "queue_empty":
                errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i, r) for i, (_, r, _) in enumerate(sessions)))
    elapsed = time.perf_counter() - t0
    for _, _, task in sessions:
        task.cancel()
    return {"commands": len(latencies), "seconds": round(elapsed, 2), "errors": errors,
            "latency_ms": {"p50": pct(latencies, 50), "p95": pct(latencies, 95), "p99": pct(latencies, 99),
                           "max": round(max(latencies), 3) if latencies else 0},
            "core_commands_per_s": round(len(latencies) / elapsed, 1)}


def main() -> int:
    seconds = float(os.environ.get("BENCH_SECONDS", "15"))
    clients = int(os.environ.get("BENCH_CLIENTS", "32"))
    tmp = Path(tempfile.mkdtemp(prefix="qms-bench-"))
    broker = start_broker(workdir=tmp / "broker")
    site = tmp / "site.toml"
    site.write_text(f"""
[site]
id = "bench"
name = "Benchmark"
[mqtt]
url = "{broker.url}"
[storage]
path = "{tmp / 'bench.sqlite3'}"
{FIELDS}
{COUNTERS}
""", encoding="utf-8")
    print(f"bench: broker {broker.url}, core flat out with {clients} clients for {seconds:.0f} s", file=sys.stderr)
    profile = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
    argv = [sys.executable, *profile, "-m", "queue_core", "--config", str(site), "--log-level", "WARNING"]
    core = subprocess.Popen(argv, stderr=(tmp / "core.log").open("wb"))
    try:
        out = subprocess.run(["mosquitto_sub", "-p", str(broker.port), "-t", "qms/bench/status/core", "-C", "1",
                              "-W", "20"], capture_output=True, text=True)
        assert out.stdout.strip() == "online", "core did not come online"
        procs = {"core": psutil.Process(core.pid), "broker": psutil.Process(broker.process.pid),
                 "load": psutil.Process()}
        cpu0 = {k: sum(p.cpu_times()[:2]) for k, p in procs.items()}
        result = asyncio.run(drive(broker.url, "bench", seconds, clients))
        cpu1 = {k: sum(p.cpu_times()[:2]) for k, p in procs.items()}
        result["core_rss_mb"] = round(procs["core"].memory_info().rss / 2**20, 1)
        result["cpu_s"] = {k: round(cpu1[k] - cpu0[k], 2) for k in procs}
        result["core_threads_cpu_s"] = sorted((round(t.user_time + t.system_time, 2) for t in procs["core"].threads()),
                                              reverse=True)
    finally:
        core.terminate()
        core.wait(10)
        broker.stop()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
