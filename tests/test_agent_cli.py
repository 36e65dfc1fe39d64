"""The agent and the simulator as the demo and an installer run them: real processes, `press`
from another process, SIGTERM, and a configuration mistake."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from qms_common.devbroker import Broker
from qms_common.protocol import Topics
from tests.support.agent import write_agent_config
from tests.support.core import running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site

ROOT = Path(__file__).resolve().parents[1]


class Proc:
    """A child process whose output lines the test waits on."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, *args: str) -> Proc:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        return cls(proc)

    async def wait_line(self, predicate: Callable[[str], bool], timeout: float = 20.0) -> str:
        async with asyncio.timeout(timeout):
            for line in self.lines:
                if predicate(line):
                    return line
            assert self.proc.stdout is not None
            while raw := await self.proc.stdout.readline():
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.lines.append(line)
                if predicate(line):
                    return line
        raise AssertionError("the process ended without the line; it said:\n" + "\n".join(self.lines))

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            return await self.proc.wait()


async def run(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    async with asyncio.timeout(30):
        out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode("utf-8", "replace")


@contextlib.asynccontextmanager
async def child(*args: str) -> AsyncIterator[Proc]:
    p = await Proc.start(*args)
    try:
        yield p
    finally:
        with contextlib.suppress(ProcessLookupError, TimeoutError):
            await p.stop()


async def test_simulator_agent_and_press_as_processes(broker: Broker, tmp_path: Path) -> None:
    site_path, site_id = write_site(tmp_path, broker.url)
    t = Topics(site_id)
    config = write_agent_config(tmp_path, broker.url, site_id, [
        {"id": "1", "port": "sim/bus", "driver": "qms-serial", "address": 1},
        {"id": "2", "port": "sim/bus", "driver": "qms-serial", "address": 2},
        {"id": "2", "port": "sim/wall", "driver": "modbus-led", "address": 1},
    ])
    async with (running_core(site_path), Probe(broker.url) as probe,
                child("-m", "counter_agent.simulator", "--config", str(config)) as sim):
        await sim.wait_line(lambda s: "sim/wall" in s and "điều khiển" in s)
        async with child("-m", "counter_agent", "--config", str(config)) as agent:
            await probe.subscribe(t.status_all)
            await probe.wait_for(lambda m: m.topic == t.status_agent("agent-1") and m.text == "online")
            await sim.wait_line(lambda s: "quầy 2" in s and "(tắt)" in s)
            reply = await probe.request(t.cmd_ticket, {"request_id": new_id(), "field": "ho-tich"})
            assert reply["ok"]

            code, out = await run("-m", "counter_agent.simulator", "press", "--config", str(config),
                                  "--counter", "2", "N")
            assert (code, out.strip()) == (0, "ok")
            await sim.wait_line(lambda s: "bus" in s and "quầy 2" in s and "2001" in s and "nhấp nháy" in s)
            await sim.wait_line(lambda s: "wall" in s and "quầy 2" in s and "2001" in s)

            code, out = await run("-m", "counter_agent.simulator", "show", "--config", str(config))
            assert code == 0 and "2 2 '2001' nhấp nháy" in out and "1 2 '2001'" in out

            code, out = await run("-m", "counter_agent.simulator", "press", "--config", str(config),
                                  "--counter", "7", "N")
            assert code == 1 and "không có bàn phím" in out
            # a key the keypad does not have is an error, not an "ok" the agent then silently drops
            for key in ("X", "n", "T0", "9"):
                code, out = await run("-m", "counter_agent.simulator", "press", "--config", str(config),
                                      "--counter", "2", key)
                assert code == 1 and f"bàn phím không có phím {key!r}" in out and "N R S F P" in out, (key, out)

            assert await agent.stop() == 0
            await probe.wait_for(lambda m: m.topic == t.status_agent("agent-1") and m.text == "offline")
            await sim.wait_line(lambda s: "quầy 2" in s and "OFF" in s)
    code, out = await run("-m", "counter_agent.simulator", "press", "--config", str(config), "--counter", "1", "N")
    assert code == 1 and "Không nói chuyện được" in out


async def test_simulator_script_drives_a_bus(tmp_path: Path) -> None:
    """The simulator alone: a script presses keys and waits for what the host shows."""
    from counter_agent.drivers import qms_serial as qs
    from counter_agent.serialport import SerialLink

    script = tmp_path / "keys.txt"
    # a firmware writer's check: wait for the host's first frame, press N, wait for the call
    script.write_text("wait 1 ----\n1 N   # call next\nwait 1 1005\nwait 1 OFF\n", encoding="utf-8")
    link = tmp_path / "bus"
    async with child("-m", "counter_agent.simulator", "--link", str(link), "--device", "1=1",
                     "--script", str(script), "--exit", "--trace") as sim:
        await sim.wait_line(lambda s: "điều khiển" in s)
        frames: list[qs.Frame] = []
        got = asyncio.Event()
        decoder = qs.FrameDecoder()

        def on_data(data: bytes) -> None:
            frames.extend(decoder.feed_frames(data))
            got.set()

        port = await SerialLink.open(str(link), 9600, on_data, lambda _: None)
        try:
            port.write(qs.encode_frame(1, "D", "----"))
            async with asyncio.timeout(20):
                while qs.Frame(1, "K", "N") not in frames:
                    got.clear()
                    await got.wait()
            port.write(qs.encode_frame(1, "F", "1005"))
            async with asyncio.timeout(20):
                while qs.Frame(1, "A", "F") not in frames:
                    got.clear()
                    await got.wait()
            port.write(qs.encode_frame(1, "D", "OFF"))
            assert await sim.proc.wait() == 0  # the script saw 1005, then OFF, and ended
        finally:
            port.close()
        with contextlib.suppress(AssertionError):
            await sim.wait_line(lambda s: False)  # everything it printed
    assert any("tác tử → thiết bị: 02 30 31 46 31 30 30 35" in line for line in sim.lines)
    assert any("1005" in line and "nhấp nháy" in line for line in sim.lines)


@pytest.mark.parametrize("command", ["counter_agent", "counter_agent.simulator"])
async def test_config_mistake_is_one_line(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "agent.toml"
    bad.write_text('[agent]\nid = "a"\n[mqtt]\nurl = "mqtt://x"\nsite = "s"\n'
                   '[[counters]]\nid = "1"\nport = "/dev/ttyUSB0"\ndriver = "qms"\n', encoding="utf-8")
    code, out = await run("-m", command, "--config", str(bad))
    assert code == 2
    assert out.strip().count("\n") == 0
    assert str(bad) in out and "counters[1].driver" in out and "modbus-led" in out
