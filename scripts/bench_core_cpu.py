"""`make bench-core`: the queue core's CPU time per durable command. One JSON object last.

The flat phase of `make bench` (scripts/bench.py) alone, measured in CPU time rather than wall
time, so that it means something on a machine other work shares: our own Mosquitto, the core
with the benchmark's site (200 counters, 8 fields) and a SQLite file, and Mosquitto's C clients
sending BENCH_CORE_N commands (half tickets, half `call_next` on 10 counters, QoS 1, MQTT 5
Response Topic in the qms/{site}/reply/{user} namespace) as fast as the core answers: the
tickets first, then the calls, so that every run has the same outcomes.

  core_cpu_ms_per_command: the core process's CPU (user + system, both its threads, from
                           /proc/PID/stat) between the first command sent and the last reply
                           received, divided by the replies. The figure to compare; also per
                           phase (tickets, then call_next), with the user, system and main
                           thread (the event loop; the rest is SQLite's thread) shares.
  commands_per_s:          replies per wall-clock second (meaningful on a quiet machine only).

BENCH_CORE_N (default 20000) commands per run, BENCH_CORE_RUNS (default 3) runs, each with a
fresh broker, core and database; the medians are reported. BENCH_CORE_PROFILE=DIR runs the core
under cProfile and leaves DIR/core-N.prof per run (read with `python -m pstats`).
BENCH_CORE_SRC=DIR runs the core from another source tree, to compare two versions on the same
machine in the same minutes (e.g. `git archive main | tar -x -C DIR`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench import N_FIELDS, SITE_ID, site_toml  # noqa: E402

from qms_common.devbroker import free_port, scratch_dir, start_broker, stop_process  # noqa: E402
from qms_common.protocol import Topics  # noqa: E402

N = int(os.environ.get("BENCH_CORE_N", "20000"))
RUNS = int(os.environ.get("BENCH_CORE_RUNS", "3"))
PROFILE = os.environ.get("BENCH_CORE_PROFILE")
SRC = Path(os.environ.get("BENCH_CORE_SRC", ROOT)).resolve()
N_COUNTERS = 10  # the counters that call, as in the flat phase


def log(text: str) -> None:
    print(f"bench-core: {text}", file=sys.stderr, flush=True)


def cpu_times(pid: int) -> dict[str, float]:
    """A process's CPU seconds (every thread, from /proc): user, system, and the main thread's
    (the event loop; the rest is SQLite's thread)."""
    tick = os.sysconf("SC_CLK_TCK")

    def stat(path: str) -> list[str]:
        return Path(path).read_text().rsplit(")", 1)[1].split()

    whole, main = stat(f"/proc/{pid}/stat"), stat(f"/proc/{pid}/task/{pid}/stat")
    return {"user": int(whole[11]) / tick, "system": int(whole[12]) / tick,
            "main_thread": (int(main[11]) + int(main[12])) / tick}


def send(port: int, tmp: Path, core_pid: int, reply_topic: str,
         streams: list[tuple[str, list[str]]]) -> dict[str, Any]:
    """Every stream from a mosquitto_pub of its own, all at once; until every reply is in."""
    total = sum(len(lines) for _, lines in streams)
    files = []
    for i, (_, lines) in enumerate(streams):
        path = tmp / f"cmds-{i}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(path)
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-t", reply_topic, "-q", "1", "-C", str(total),
                            "-W", "900"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # mosquitto_sub has subscribed (not a measurement)
    cpu0 = cpu_times(core_pid)
    t0 = time.perf_counter()
    pubs = [subprocess.Popen(["mosquitto_pub", "-p", str(port), "-t", topic, "-q", "1", "-D", "publish",
                              "response-topic", reply_topic, "-l"], stdin=path.open("rb"), stderr=subprocess.DEVNULL)
            for (topic, _), path in zip(streams, files, strict=True)]
    got, _ = sub.communicate()
    elapsed = time.perf_counter() - t0
    cpu1 = cpu_times(core_pid)
    for p in pubs:
        p.wait(30)
    replies = [json.loads(line) for line in got.splitlines() if line.strip()]
    if len(replies) != total:
        raise RuntimeError(f"{len(replies)} replies to {total} commands")
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    return {"commands": total, "outcomes": dict(Counter("ok" if r.get("ok") else r["error"]["code"] for r in replies)),
            "cpu_s": cpu, "seconds": elapsed}


def one_run(tmp: Path, run: int) -> dict[str, Any]:
    """Tickets first, then call_next: the same outcomes in every run, so the CPU per command
    compares (sent together, as in `make bench`, their mix would depend on the machine's speed)."""
    broker = start_broker(workdir=tmp / "broker")
    site = tmp / "site.toml"
    site.write_text(site_toml(broker.url, tmp, free_port()), encoding="utf-8")
    topics = Topics(SITE_ID)
    argv = [sys.executable]
    if PROFILE:
        Path(PROFILE).mkdir(parents=True, exist_ok=True)
        argv += ["-m", "cProfile", "-o", str(Path(PROFILE) / f"core-{run}.prof")]
    argv += ["-m", "queue_core", "--config", str(site), "--log-level", "WARNING"]
    out = (tmp / "core.log").open("wb")
    # `-m` puts the working directory first on the path, ahead of the installed (editable) package
    core = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, cwd=SRC,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    reply_topic = topics.reply("bench-core")
    per_counter = N // (2 * N_COUNTERS)
    try:
        online = subprocess.run(["mosquitto_sub", "-p", str(broker.port), "-t", topics.status_core, "-C", "1",
                                 "-W", "60"], capture_output=True, timeout=70)
        if online.stdout.strip() != b"online":
            raise RuntimeError(f"the core did not come online: {online.stdout!r}")
        phases = {
            "tickets": send(broker.port, tmp, core.pid, reply_topic, [(topics.cmd_ticket, [
                json.dumps({"request_id": uuid.uuid4().hex, "field": f"f{i % N_FIELDS + 1}"})
                for i in range(per_counter * N_COUNTERS)])]),
            "call_next": send(broker.port, tmp, core.pid, reply_topic, [(topics.cmd_counter(str(c)), [
                json.dumps({"request_id": uuid.uuid4().hex, "action": "call_next"}) for _ in range(per_counter)])
                for c in range(1, N_COUNTERS + 1)]),
        }
    finally:
        stop_process(core)
        out.close()
        broker.stop()
    result: dict[str, Any] = {}
    commands = sum(p["commands"] for p in phases.values())
    cpu = sum(p["cpu_s"]["user"] + p["cpu_s"]["system"] for p in phases.values())
    seconds = sum(p["seconds"] for p in phases.values())
    result = {"commands": commands, "core_cpu_s": round(cpu, 2),
              "core_cpu_ms_per_command": round(cpu * 1000 / commands, 3),
              "commands_per_s": round(commands / seconds, 1), "phases": {}}
    for name, p in phases.items():
        c = p["cpu_s"]
        result["phases"][name] = {
            "commands": p["commands"], "outcomes": p["outcomes"],
            "core_cpu_ms_per_command": round((c["user"] + c["system"]) * 1000 / p["commands"], 3),
            "of_which": {k: round(v * 1000 / p["commands"], 3) for k, v in c.items()},
            "commands_per_s": round(p["commands"] / p["seconds"], 1)}
    return result


def main() -> int:
    load = round(os.getloadavg()[0], 2)
    runs = []
    for run in range(1, RUNS + 1):
        with scratch_dir("qms-bench-core-") as tmp:
            result = one_run(tmp, run)
        log(f"run {run}: {result}")
        runs.append(result)
    print(json.dumps({
        "core_cpu_ms_per_command": statistics.median(r["core_cpu_ms_per_command"] for r in runs),
        "commands_per_s": statistics.median(r["commands_per_s"] for r in runs),
        "phases": {name: statistics.median(r["phases"][name]["core_cpu_ms_per_command"] for r in runs)
                   for name in runs[0]["phases"]},
        "runs": runs,
        "source": str(SRC),
        "machine": {"cpus": os.cpu_count(), "load_before": load},
    }, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
