"""Speech clips for announcements: disk cache, then gTTS (online), then espeak-ng (offline); when
no engine can speak, the call has only its chime and the text on screen.

A clip is cached on disk under a hash of engine, voice and text (never the day: ticket numbers
come back every day, so after the first days nothing new is rendered, even after a restart).
Clips are rendered ahead of need, in the background and at idle priority (espeak-ng in a worker
process under SCHED_IDLE): the template's parts and counter phrases at start, the numbers a
field will issue next, a ticket's number as soon as it is issued. A call finds its clips on disk;
only when one is missing is it rendered on demand, at once. An engine that fails (gTTS without
internet, a 429 from Google) is left alone for a while, so the fallback costs one failure, not a
timeout per clip.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import shutil
import tempfile
import time
import wave
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from display_server.speech.espeak_lib import EspeakLibrary, IdleRenderProcess, find_library, write_atomically
from display_server.speech.settings import SpeechSettings
from display_server.speech.vietnamese import nfc

log = logging.getLogger(__name__)

MIME = {".mp3": "audio/mpeg", ".wav": "audio/wav"}
# Phrases waiting to be rendered ahead of need (needed soon; likely needed later); beyond that
# new ones are dropped (a call still renders its own on demand).
PRERENDER_BACKLOG = 1000
LATER_BACKLOG = 2000
# How long a call waits for the background render of its phrase before rendering it itself: the
# background runs at idle priority: on a busy machine it may not run for a long while, and on an
# idle one it takes a few milliseconds.
URGENT_WAIT_S = 0.05
# gTTS answers 32 kbit/s MP3: a clip's length from its size, without decoding it.
MP3_BYTES_PER_S = 4000


class RenderError(Exception):
    pass


@dataclass(frozen=True)
class Clip:
    key: str
    path: Path
    engine: str

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def mime(self) -> str:
        return MIME[self.path.suffix]


class Renderer(Protocol):
    name: str
    voice: str  # everything besides the text that changes the audio
    ext: str

    def usable(self) -> bool: ...

    async def render(self, text: str) -> bytes:
        """Now: a call is waiting for it."""
        ...

    async def render_idle(self, text: str, path: Path) -> None:
        """Ahead of need, written to `path`, without competing with anything for the CPU."""
        ...

    async def close(self) -> None: ...


def clip_key(engine: str, voice: str, text: str) -> str:
    return hashlib.sha256(f"{engine}\n{voice}\n{nfc(text)}".encode()).hexdigest()[:40]


class ClipCache:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, renderer: Renderer, text: str) -> Path:
        return self.dir / f"{clip_key(renderer.name, renderer.voice, text)}{renderer.ext}"

    def get(self, renderer: Renderer, text: str) -> Clip | None:
        p = self.path(renderer, text)
        return Clip(p.stem, p, renderer.name) if p.is_file() else None

    def put(self, renderer: Renderer, text: str, audio: bytes) -> Clip:
        p = self.path(renderer, text)
        write_atomically(p, audio)
        return Clip(p.stem, p, renderer.name)

    def find(self, filename: str) -> Path | None:
        """The file behind an /audio/ URL, only if it is a clip name of ours."""
        stem, dot, ext = filename.partition(".")
        if len(stem) != 40 or any(c not in "0123456789abcdef" for c in stem) or f"{dot}{ext}" not in MIME:
            return None
        p = self.dir / filename
        return p if p.is_file() else None


class GttsRenderer:
    """Google Translate's voice through gTTS: natural, but online, unofficial and rate limited."""

    name = "gtts"
    ext = ".mp3"

    def __init__(self, tld: str = "com", timeout_s: float = 5.0, retry_s: float = 600.0) -> None:
        self.tld = tld
        self.voice = f"vi@{tld}"
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self._down_until = 0.0
        self._warned = False

    def usable(self) -> bool:
        return time.monotonic() >= self._down_until

    async def render(self, text: str) -> bytes:
        try:
            # gTTS blocks and, by default, waits forever: a thread, and a timeout on both sides
            # (asyncio.timeout: wait_for can lose a cancellation on 3.11)
            async with asyncio.timeout(self.timeout_s + 1):
                audio = await asyncio.to_thread(self._fetch, text)
        except Exception as exc:
            self._failed(exc)
            raise RenderError(f"gTTS: {exc or type(exc).__name__}") from None
        if not audio:
            self._failed(RenderError("no audio in the answer"))
            raise RenderError("gTTS: no audio")
        if self._warned:
            log.info("Giọng đọc gTTS dùng được trở lại")
            self._warned = False
        return audio

    async def render_idle(self, text: str, path: Path) -> None:
        # the network is the slow part: nothing to gain from a process of its own
        audio = await self.render(text)
        await asyncio.to_thread(write_atomically, path, audio)

    async def close(self) -> None:
        pass

    def _fetch(self, text: str) -> bytes:
        from gtts import gTTS  # imported late: it pulls in requests, which only this needs

        buf = io.BytesIO()
        gTTS(text, lang="vi", tld=self.tld, timeout=self.timeout_s).write_to_fp(buf)
        return buf.getvalue()

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_s
        reason = str(exc) or type(exc).__name__
        if not self._warned:
            log.warning("Giọng đọc gTTS (Google, cần Internet) không dùng được: %s. Dùng espeak-ng (offline); "
                        "thử lại gTTS sau %.0f giây.", reason, self.retry_s)
            self._warned = True
        else:
            log.debug("gTTS vẫn lỗi: %s", reason)


class EspeakRenderer:
    """espeak-ng (Debian package): robotic but offline, and fast. Through its library when it
    loads (a few ms a phrase), else through the espeak-ng program."""

    name = "espeak"
    ext = ".wav"

    def __init__(self, voice: str = "vi", speed: int = 150, timeout_s: float = 15.0) -> None:
        self.espeak_voice = voice
        self.speed = speed
        self.voice = f"{voice}@{speed}"
        self.timeout_s = timeout_s
        self.binary = shutil.which("espeak-ng")
        # Even a clip a call waits for runs below the core and the agents, which answer key
        # presses in milliseconds.
        self._nice = [nice, "-n", "10"] if (nice := shutil.which("nice")) else []
        self._warned = False
        self._library: EspeakLibrary | None = None
        self._idle: IdleRenderProcess | None = None
        self._idle_failures = 0
        if (path := find_library()) is not None:
            try:
                self._library = EspeakLibrary(path)
                self._idle = IdleRenderProcess()
            except OSError as exc:
                log.info("Không nạp được thư viện espeak-ng (%s): dùng chương trình espeak-ng", exc)

    @property
    def engine(self) -> str:
        return "library" if self._library is not None else "program"

    def usable(self) -> bool:
        if self.binary is None and not self._warned:
            log.warning("Không tìm thấy espeak-ng (apt-get install espeak-ng): không có giọng đọc offline")
            self._warned = True
        return self.binary is not None

    @property
    def idle_pid(self) -> int | None:
        """The background worker's process id, while it runs."""
        return self._idle.pid if self._idle is not None else None

    async def render_idle(self, text: str, path: Path) -> None:
        if self._idle is not None:
            try:
                await self._idle.render_to(text, self.espeak_voice, self.speed, path)
                self._idle_failures = 0
                return
            except OSError as exc:  # a new worker is started next time, unless it keeps failing
                self._idle_failures += 1
                log.warning("Tiến trình nền của espeak-ng lỗi (%s): câu này đọc ngay trong máy chủ web", exc)
                if self._idle_failures >= 3:
                    log.warning("Tiến trình nền của espeak-ng lỗi nhiều lần: đọc trước ngay trong máy chủ web từ nay")
                    self._idle = None
        await asyncio.to_thread(write_atomically, path, await self.render(text))

    async def close(self) -> None:
        if self._idle is not None:
            await self._idle.close()

    async def render(self, text: str) -> bytes:
        if self._library is not None:
            try:
                return await self._library.synth(text, self.espeak_voice, self.speed)
            except OSError as exc:
                log.warning("Thư viện espeak-ng lỗi (%s): dùng chương trình espeak-ng từ nay", exc)
                self._library = None
        assert self.binary is not None
        with tempfile.TemporaryDirectory(prefix="qms-espeak-") as tmp:
            text_file, out = Path(tmp) / "text.txt", Path(tmp) / "clip.wav"
            # the text from a file, as UTF-8: never parsed as an option; and no stdin pipe, which
            # on 3.11 keeps proc.wait() waiting after a kill
            text_file.write_text(text, encoding="utf-8")
            proc = await asyncio.create_subprocess_exec(
                *self._nice, self.binary, "-v", self.espeak_voice, "-s", str(self.speed), "-b", "1", "-w", str(out),
                "-f", str(text_file),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            try:
                async with asyncio.timeout(self.timeout_s):
                    _, err = await proc.communicate()
            except TimeoutError:
                raise RenderError("espeak-ng: timeout") from None
            finally:
                if proc.returncode is None:  # timed out or cancelled: no orphan left behind
                    proc.kill()
                    await asyncio.shield(proc.wait())
            if proc.returncode != 0 or not out.is_file():
                raise RenderError(f"espeak-ng: exit {proc.returncode}: {err.decode(errors='replace').strip()}")
            return out.read_bytes()


def make_renderers(s: SpeechSettings) -> list[Renderer]:
    renderers: list[Renderer] = []
    for name in s.engines:
        if name == "gtts":
            renderers.append(GttsRenderer(s.gtts_tld, s.gtts_timeout_s, s.gtts_retry_s))
        elif name == "espeak":
            renderers.append(EspeakRenderer(s.espeak_voice, s.espeak_speed))
    return renderers


def clip_seconds(path: Path) -> float | None:
    """How long a clip plays (WAV from its header, gTTS's MP3 from its size); None if unreadable."""
    try:
        if path.suffix == ".wav":
            with wave.open(str(path)) as w:
                return round(w.getnframes() / w.getframerate(), 3)
        return round(path.stat().st_size / MP3_BYTES_PER_S, 3)
    except (OSError, EOFError, wave.Error):
        return None


class Speech:
    """Clips for phrases, by the renderers in order of preference, cached on disk."""

    def __init__(self, settings: SpeechSettings, renderers: list[Renderer] | None = None) -> None:
        self.settings = settings
        self.renderers = make_renderers(settings) if renderers is None else renderers
        self.cache = ClipCache(settings.cache_dir)
        self.renders = 0  # clips rendered (a cache that works keeps this low)
        self.renders_now = 0  # of them, on demand: a call found its clip missing
        # calls whose clip was in the cache, and those that had to wait for it (/metrics)
        self.cache_hits = 0
        self.cache_misses = 0
        self._background: dict[str, asyncio.Future[Clip | None]] = {}
        self._urgent: dict[str, asyncio.Future[Clip | None]] = {}
        # needed soon (a ticket just issued), then likely needed later (numbers not issued yet)
        self._soon: deque[str] = deque()
        self._later: deque[str] = deque()
        self._queued: set[str] = set()
        self._work = asyncio.Event()
        self._renders = asyncio.Semaphore(2)  # two cores: never a crowd of espeak processes
        self._silent_warned = False
        self._drained = asyncio.Event()
        self._drained.set()
        self._new_clip = asyncio.Condition()
        self._seconds: dict[str, float | None] = {}

    async def clip(self, text: str) -> Clip | None:
        """The clip of a phrase for a call, now: from the cache, or rendered at once; None if no
        engine can say it."""
        text = nfc(text).strip()
        if not text:
            return None
        cached = self.cached(text)
        if cached is not None:
            self.cache_hits += 1
            return cached
        self.cache_misses += 1
        background = self._background.get(text)
        if background is not None:  # a call racing the pre-render of its own number
            await asyncio.wait([background], timeout=URGENT_WAIT_S)
            if background.done() and not background.cancelled() and background.exception() is None:
                return background.result()
        return await _once(self._urgent, text, lambda: self._render(text, urgent=True))

    async def _render(self, text: str, *, urgent: bool) -> Clip | None:
        for r in self.renderers:
            if not r.usable():
                continue
            try:
                if urgent:
                    async with self._renders:
                        audio = await r.render(text)
                    clip = await asyncio.to_thread(self.cache.put, r, text, audio)
                else:
                    await r.render_idle(text, self.cache.path(r, text))
                    found = self.cache.get(r, text)
                    if found is None:
                        raise RenderError("no clip written")
                    clip = found
            except RenderError as exc:
                log.debug("%s không đọc được %r: %s", r.name, text, exc)
                continue
            self.renders += 1
            self.renders_now += urgent
            async with self._new_clip:
                self._new_clip.notify_all()
            return clip
        if not self._silent_warned:
            log.warning("Không bộ đọc nào dùng được: các lần gọi số chỉ có chuông và chữ trên màn hình")
            self._silent_warned = True
        return None

    def seconds(self, clip: Clip) -> float | None:
        """How long the clip plays (remembered: a clip's name says what it holds)."""
        if clip.filename not in self._seconds:
            if len(self._seconds) > 10_000:
                self._seconds.clear()
            self._seconds[clip.filename] = clip_seconds(clip.path)
        return self._seconds[clip.filename]

    def prerender_soon(self, texts: Iterable[str]) -> None:
        """Render ahead of need, in the background, before anything asked for `later`."""
        self._enqueue(self._soon, PRERENDER_BACKLOG, texts)

    def prerender_later(self, texts: Iterable[str]) -> None:
        """Render when nothing is needed soon: phrases likely to be needed (the next numbers)."""
        self._enqueue(self._later, LATER_BACKLOG, texts)

    def _enqueue(self, queue: deque[str], limit: int, texts: Iterable[str]) -> None:
        for text in texts:
            text = nfc(text).strip()
            if not text:
                continue
            if queue is self._soon and text in self._queued and text in self._later:
                self._later.remove(text)  # wanted sooner now (rare: a number beyond the look-ahead)
            elif text in self._queued or self.cached(text):
                continue
            if len(queue) >= limit:
                return
            queue.append(text)
            self._queued.add(text)
            self._drained.clear()
            self._work.set()

    async def run_prerender(self) -> None:
        """The background renderer: one phrase at a time, at idle priority."""
        try:
            while True:
                if not self._soon and not self._later:
                    self._work.clear()
                    await self._work.wait()
                    continue
                text = (self._soon or self._later).popleft()
                try:
                    if self.cached(text) is None:
                        await _once(self._background, text, lambda t=text: self._render(t, urgent=False))
                except Exception:
                    log.exception("Lỗi khi chuẩn bị trước câu đọc %r", text)
                finally:
                    self._queued.discard(text)
                    if not self._queued:
                        self._drained.set()
        finally:
            await self.close()

    async def close(self) -> None:
        for r in self.renderers:
            await r.close()

    def cached(self, text: str) -> Clip | None:
        text = nfc(text).strip()
        return next((c for c in (self.cache.get(r, text) for r in self.renderers) if c), None)

    async def wait_cached(self, text: str) -> Clip:
        """Wait until a clip of the phrase is on disk (however it got there)."""
        async with self._new_clip:
            await self._new_clip.wait_for(lambda: self.cached(text) is not None)
        clip = self.cached(text)
        assert clip is not None
        return clip

    async def idle(self) -> None:
        """Wait until every phrase asked for ahead of need is rendered."""
        await self._drained.wait()


async def _once(table: dict[str, asyncio.Future[Clip | None]], text: str,
                make: Callable[[], Coroutine[None, None, Clip | None]]) -> Clip | None:
    """One render per phrase at a time: who asks for a phrase being rendered waits for that one."""
    fut = table.get(text)
    if fut is not None:
        await asyncio.wait([fut])
        return None if fut.cancelled() or fut.exception() else fut.result()
    fut = asyncio.get_running_loop().create_future()
    table[text] = fut
    try:
        result = await make()
    except asyncio.CancelledError:
        fut.cancel()
        raise
    except Exception as exc:
        fut.set_exception(exc)
        fut.exception()  # retrieved: no "never retrieved" warning when nobody else waited
        raise
    else:
        fut.set_result(result)
        return result
    finally:
        del table[text]
