"""`make bench-agent`: how fast a key press reaches the panel, printed as one JSON object on the
last line.

Our own broker, a real core process and a real counter agent process; the keypad and panel are
the simulator's, on a pty in this process. For each press of N: the time from writing the key
frame to reading the panel's F frame with the new number (key_to_panel_ms), and the same for a
call made by another MQTT client (call_to_panel_ms), e.g. the officer's web console.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from counter_agent.simulator.bus import SimulatedBus  # noqa: E402
from counter_agent.simulator.devices import Panel  # noqa: E402
from qms_common.config import MqttSettings  # noqa: E402
from qms_common.devbroker import scratch_dir, start_broker, stop_process  # noqa: E402
from qms_common.mqtt import MqttSession, Requester  # noqa: E402
from qms_common.protocol import Topics  # noqa: E402
from scripts.bench import summary  # noqa: E402


async def measure(url: str, tmp: Path, presses: int, agent_pid: int) -> dict[str, object]:
    topics = Topics("bench")
    session = MqttSession(MqttSettings.from_url(url), identifier="bench-agent-client", name="bench")
    requester = Requester(session, topics, "bench-agent-client")
    task = asyncio.create_task(session.run())
    bus = SimulatedBus(tmp / "bus", "qms-serial", [Panel(1, "1")]).plug()
    try:
        await asyncio.wait_for(session.connected.wait(), 10)
        await bus.wait_shown(1, "", timeout=30)  # the agent is up and painted the closed counter
        for _ in range(2 * presses):
            reply = await requester.request(topics.cmd_ticket, {"field": "f"}, timeout=10)
            assert reply["ok"], reply
        agent = psutil.Process(agent_pid)
        cpu0 = sum(agent.cpu_times()[:2])
        key_ms: list[float] = []
        call_ms: list[float] = []
        number = 1
        for _ in range(presses):
            mark = bus.mark()
            t0 = time.perf_counter()
            bus.press(1, "N")
            await bus.wait_shown(1, str(number), flash=True, start=mark, timeout=10)
            key_ms.append((time.perf_counter() - t0) * 1000)
            number += 1
            mark = bus.mark()
            t0 = time.perf_counter()
            await requester.request(topics.cmd_counter("1"), {"action": "call_next"}, timeout=10)
            await bus.wait_shown(1, str(number), flash=True, start=mark, timeout=10)
            call_ms.append((time.perf_counter() - t0) * 1000)
            number += 1
        return {"presses": presses, "key_to_panel_ms": summary(key_ms), "call_to_panel_ms": summary(call_ms),
                "agent_cpu_s": round(sum(agent.cpu_times()[:2]) - cpu0, 2),
                "agent_rss_mb": round(agent.memory_info().rss / 2**20, 1)}
    finally:
        bus.close()
        task.cancel()


def main() -> int:
    with scratch_dir("qms-bench-agent-") as tmp:
        presses = int(os.environ.get("BENCH_PRESSES", "200"))
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
    [[fields]]
    id = "f"
    name = "Lĩnh vực"
    first = 1
    last = 99999
    [[counters]]
    id = "1"
    name = "Quầy 1"
    fields = ["f"]
    """, encoding="utf-8")
        agent_conf = tmp / "agent.toml"
        agent_conf.write_text(f"""
    [agent]
    id = "bench"
    [mqtt]
    url = "{broker.url}"
    site = "bench"
    [[counters]]
    id = "1"
    port = "bus"
    driver = "qms-serial"
    address = 1
    """, encoding="utf-8")
        print(f"bench-agent: broker {broker.url}, {presses} key presses and {presses} calls", file=sys.stderr)
        log = (tmp / "processes.log").open("wb")
        core = subprocess.Popen([sys.executable, "-m", "queue_core", "--config", str(site), "--log-level", "WARNING"],
                                stderr=log)
        agent = subprocess.Popen([sys.executable, "-m", "counter_agent", "--config", str(agent_conf),
                                  "--log-level", "WARNING"], stderr=log)
        try:
            result = asyncio.run(measure(broker.url, tmp, presses, agent.pid))
        finally:
            for p in (agent, core):
                stop_process(p)
            broker.stop()
        print(json.dumps(result))
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
