"""The counter agent in a test: its configuration, simulated buses on real ptys, the agent itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from counter_agent.agent import Agent
from counter_agent.config import load_agent_config
from counter_agent.simulator.bus import SimulatedBus
from counter_agent.simulator.devices import Panel

# Generous for a loaded 2-core machine; the tests wait on frames, not on these.
FAST_SERIAL = {"ack_timeout_s": 1.0, "retries": 2, "ping_s": 0.5, "reopen_max_s": 0.3}


def write_agent_config(tmp: Path, broker_url: str, site_id: str, devices: list[dict[str, object]], *,
                       agent_id: str = "agent-1", serial: dict[str, float] | None = None,
                       notice_s: float = 2.0, request_timeout_s: float = 5.0) -> Path:
    def value(v: object) -> str:
        return f'"{v}"' if isinstance(v, str) else str(v)

    counters = "\n".join("[[counters]]\n" + "\n".join(f"{k} = {value(v)}" for k, v in d.items()) + "\n"
                         for d in devices)
    serial_s = "\n".join(f"{k} = {v}" for k, v in {**FAST_SERIAL, **(serial or {})}.items())
    path = tmp / f"agent-{site_id}-{agent_id}.toml"
    path.write_text(f"""
[agent]
id = "{agent_id}"
notice_s = {notice_s}
request_timeout_s = {request_timeout_s}
health_s = 0.05

[mqtt]
url = "{broker_url}"
site = "{site_id}"

[serial]
{serial_s}

{counters}
""", encoding="utf-8")
    return path


def sim_bus(tmp: Path, name: str, driver: str, addresses: dict[int, str]) -> SimulatedBus:
    """A plugged simulated bus at tmp/name with a device per address (label: the counter)."""
    panels = [Panel(a, label) for a, label in addresses.items()]
    return SimulatedBus(tmp / name, driver, panels).plug()


@contextlib.asynccontextmanager
async def running_agent(config: Path) -> AsyncIterator[Agent]:
    agent = Agent(load_agent_config(config, env={}))
    task = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await agent.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
