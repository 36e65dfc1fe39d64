"""Our own Mosquitto for tests, the demo and the benchmark, on a free port.

The system Mosquitto on 1883 is not ours: we start mosquitto with broker_config/ and the port
we choose, and wait until it accepts connections.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BROKER_CONFIG_DIR = Path(__file__).resolve().parents[1] / "broker_config"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


# Ports handed out by this process and maybe not bound yet: a test asks for two ports (plain and
# TLS) before its broker binds either, and must not get the same one twice.
_GIVEN: collections.deque[int] = collections.deque(maxlen=2000)


def free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """A port nothing listens on, outside the kernel's ephemeral range: a port the kernel picked
    (bind to 0) is also what it gives outgoing connections as their local port, so between this
    answer and the server's bind a client socket could take it, and the server would fail with
    "address in use" (a CI run lost a broker so)."""
    if preferred is not None and port_is_free(preferred, host):
        return preferred
    low, _ = _ephemeral_range()
    floor = max(1024, low - 12000) if low > 13024 else 20000
    ceiling = low - 1 if low > 13024 else 29999
    for _ in range(200):
        port = random.randint(floor, ceiling)
        if port not in _GIVEN and port_is_free(port, host):
            _GIVEN.append(port)
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, *, host: str = "127.0.0.1", timeout: float = 10.0,
                  process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something accepts connections on the port (or the process died)."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)


@dataclass
class Broker:
    port: int
    conf: Path
    workdir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    extra: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log, stderr=log,
                                        stdin=subprocess.DEVNULL)
        log.close()
        try:
            wait_for_port(self.port, process=self.process)
        except RuntimeError as exc:
            tail = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
            raise RuntimeError(f"{exc}; mosquitto said: {' | '.join(tail)}") from None
        return self

    def stop(self) -> None:
        stop_process(self.process, timeout=5)
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """Ask a process to end (SIGTERM); kill it if it has not within `timeout`. Always reaped."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A working directory for one run of a script (logs, databases, speech clips: hundreds of
    megabytes after a benchmark), removed afterwards. It stays when the run fails, or always with
    QMS_KEEP=1, and its path is printed then."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    keep = bool(os.environ.get("QMS_KEEP"))
    try:
        yield path
    except BaseException:
        keep = True
        raise
    finally:
        if keep:
            print(f"(logs and data kept in {path})", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def start_broker(*, port: int | None = None, base_conf: Path | None = None,
                 workdir: Path | None = None, extra: str = "") -> Broker:
    """Start mosquitto with our configuration on `port` (a free one when None or taken)."""
    workdir = Path(tempfile.mkdtemp(prefix="qms-broker-")) if workdir is None else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port(port)
    base = (base_conf or BROKER_CONFIG_DIR / "test.conf").read_text(encoding="utf-8")
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"{base}\n{extra}\nlistener {port} 127.0.0.1\n", encoding="utf-8")
    broker = Broker(port=port, conf=conf, workdir=workdir, log_path=workdir / "mosquitto.log", extra=extra)
    return broker.start()
