"""espeak-ng as a library (libespeak-ng, installed with the espeak-ng package): on one thread of
the web server for a clip a call needs now, and in a process of its own at idle priority
(IdleRenderProcess) for clips rendered ahead of need.

Starting the espeak-ng program costs about 20 ms of CPU per phrase before it says a word; the
library, initialised once, synthesises a phrase in a few milliseconds. The library is not
thread-safe: every call goes through one thread.

Why a process for the background work: a rendering thread inside the web server takes the GIL
at every chunk of audio, which delayed the server's event loop (p99 3 ms → 22 ms while
rendering), and a thread at idle priority that holds the GIL while the kernel has preempted it
stalls the whole server. The process runs under SCHED_IDLE: it gets the CPU only when nothing
else on the machine wants it, so it never competes with the core, the agents or the pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import io
import json
import logging
import os
import sys
import tempfile
import threading
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)

AUDIO_OUTPUT_SYNCHRONOUS = 0x02
POS_CHARACTER = 1
CHARS_UTF8 = 1
ENDPAUSE = 0x1000
RATE = 1  # espeak_PARAMETER espeakRATE
EE_OK = 0

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def find_library() -> str | None:
    return ctypes.util.find_library("espeak-ng")


class EspeakLibrary:
    """One initialised libespeak-ng and the thread that owns it."""

    def __init__(self, path: str) -> None:
        self._lib = ctypes.CDLL(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak")
        self._samples: list[bytes] = []
        # kept referenced: the library holds a pointer to it
        self._callback = _SYNTH_CALLBACK(self._collect)
        self._rate = 0
        self._ready = threading.Event()

    def _collect(self, wav: ctypes.Array[ctypes.c_short], count: int, events: int) -> int:
        if count > 0 and wav:
            self._samples.append(ctypes.string_at(wav, count * 2))
        return 0  # go on

    def _init(self) -> None:
        lib = self._lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        # Clips are rendered ahead of need; calls, panels and TVs must never wait behind them.
        # Linux keeps a nice value per thread, so only this worker is lowered.
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, None, 0)
        if rate <= 0:
            raise OSError("espeak_Initialize failed")
        lib.espeak_SetSynthCallback(self._callback)
        self._rate = rate

    def synth_now(self, text: str, voice: str, speed: int) -> bytes:
        """Synthesise on the calling thread (always the same one)."""
        if not self._rate:
            self._init()
        lib = self._lib
        if lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
            raise OSError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(RATE, speed, 0)
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data)
        self._samples = []
        if lib.espeak_Synth(buf, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8 | ENDPAUSE, None, None) != EE_OK:
            raise OSError("espeak_Synth failed")
        out = io.BytesIO()
        with wave.open(out, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self._rate)
            w.writeframes(b"".join(self._samples))
        self._samples = []
        return out.getvalue()

    async def synth(self, text: str, voice: str, speed: int) -> bytes:
        """A WAV clip of the text (16-bit mono), synthesised on the library's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.synth_now, text, voice, speed)


def write_atomically(path: Path, data: bytes) -> None:
    """Write then rename: a page never fetches half a clip, a crash never leaves one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def idle_priority() -> None:
    """This process (or thread) runs only when the machine has nothing else to do: SCHED_IDLE,
    and nice 10 where that is refused. Linux keeps both per thread; called at the start of a
    single-threaded process, it covers the process."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_IDLE, os.sched_param(0))


class IdleRenderProcess:
    """The worker process (`python -m display_server.speech.espeak_lib`), started on first use: one JSON
    line per clip in ({"text", "voice", "speed", "path"}), the clip written to `path` by the
    worker, one JSON line back. It ends when its stdin closes, so it never outlives the server."""

    def __init__(self, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s  # idle priority on a busy machine can take long; a hang cannot
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def render_to(self, text: str, voice: str, speed: int, path: Path) -> None:
        async with self._lock:
            proc = self._proc
            if proc is None or proc.returncode is not None:
                proc = self._proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "display_server.speech.espeak_lib",
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            assert proc.stdin is not None and proc.stdout is not None
            request = {"text": text, "voice": voice, "speed": speed, "path": str(path)}
            try:
                proc.stdin.write(json.dumps(request, ensure_ascii=False).encode() + b"\n")
                await proc.stdin.drain()
                # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancellation that comes
                # as the line does, and the server's shutdown then waits for ever
                async with asyncio.timeout(self.timeout_s):
                    line = await proc.stdout.readline()
            except BaseException:
                # out of step with its answers (cancelled, timed out, gone): start a new one next time
                await self._stop(proc)
                raise
            try:
                reply = json.loads(line)
            except ValueError:
                await self._stop(proc)
                raise OSError("espeak-ng worker ended") from None
            if not reply.get("ok"):
                raise OSError(str(reply.get("error")))

    async def close(self) -> None:
        async with self._lock:
            if self._proc is not None:
                await self._stop(self._proc)

    async def _stop(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = None
        if proc.stdin is not None:
            proc.stdin.close()  # it ends at the end of its input
        try:
            async with asyncio.timeout(2):
                await proc.wait()
        except TimeoutError:
            pass
        finally:
            if proc.returncode is None:  # stuck, or we are cancelled: no orphan left behind
                proc.kill()
                await asyncio.shield(proc.wait())


def serve() -> None:
    """The worker's loop (see IdleRenderProcess)."""
    idle_priority()
    path = find_library()
    if path is None:
        raise SystemExit("libespeak-ng not found")
    lib = EspeakLibrary(path)
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        try:
            req = json.loads(line)
            write_atomically(Path(req["path"]), lib.synth_now(req["text"], req["voice"], int(req["speed"])))
            reply: dict[str, object] = {"ok": True}
        except Exception as exc:  # one bad clip must not end the worker
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    serve()
