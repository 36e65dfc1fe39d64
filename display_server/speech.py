"""Speech clips for announcements: disk cache, then gTTS (online), then espeak-ng (offline); when
no engine can speak, the call has only its chime and the text on screen.

A clip is cached on disk under a hash of engine, voice and text, so each phrase is rendered once:
counter phrases at start, a ticket's phrase when the ticket is issued, and a call plays at once.
An engine that fails (gTTS without internet, a 429 from Google) is left alone for a while, so the
fallback costs one failure, not a timeout per clip.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from display_server.espeak_lib import EspeakLibrary, find_library
from display_server.settings import SpeechSettings
from display_server.vietnamese import nfc

log = logging.getLogger(__name__)

MIME = {".mp3": "audio/mpeg", ".wav": "audio/wav"}
# Phrases waiting to be rendered ahead of need; beyond that new ones are dropped (a call still
# renders its own on demand).
PRERENDER_BACKLOG = 1000


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

    async def render(self, text: str) -> bytes: ...


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
        self.dir.mkdir(parents=True, exist_ok=True)
        # write then rename: a page never fetches half a clip, a crash never leaves one
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=renderer.ext)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(audio)
            os.replace(tmp, p)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
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
            audio = await asyncio.wait_for(asyncio.to_thread(self._fetch, text), self.timeout_s + 1)
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
        # Rendering is background work next to a core and counter agents that answer key presses
        # in milliseconds: it runs at low CPU priority.
        self._nice = [nice, "-n", "10"] if (nice := shutil.which("nice")) else []
        self._warned = False
        self._library: EspeakLibrary | None = None
        if (path := find_library()) is not None:
            try:
                self._library = EspeakLibrary(path)
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


class Speech:
    """Clips for phrases, by the renderers in order of preference, cached on disk."""

    def __init__(self, settings: SpeechSettings, renderers: list[Renderer] | None = None) -> None:
        self.settings = settings
        self.renderers = make_renderers(settings) if renderers is None else renderers
        self.cache = ClipCache(settings.cache_dir)
        self._inflight: dict[str, asyncio.Future[Clip | None]] = {}
        self._backlog: asyncio.Queue[str] = asyncio.Queue(PRERENDER_BACKLOG)
        self._queued: set[str] = set()
        self._renders = asyncio.Semaphore(2)  # two cores: never a crowd of espeak processes
        self._silent_warned = False
        self._drained = asyncio.Event()
        self._drained.set()
        self._new_clip = asyncio.Condition()

    async def clip(self, text: str) -> Clip | None:
        """The clip of a phrase: from the cache, or rendered now; None if no engine can say it."""
        text = nfc(text).strip()
        if not text:
            return None
        cached = self.cached(text)
        if cached is not None:
            return cached
        fut = self._inflight.get(text)
        if fut is not None:  # the same phrase is being rendered already (a call racing its pre-render)
            await asyncio.wait([fut])
            return None if fut.cancelled() or fut.exception() else fut.result()
        fut = asyncio.get_running_loop().create_future()
        self._inflight[text] = fut
        try:
            result = await self._render(text)
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
            del self._inflight[text]

    async def _render(self, text: str) -> Clip | None:
        async with self._renders:
            for r in self.renderers:
                if not r.usable():
                    continue
                try:
                    audio = await r.render(text)
                except RenderError as exc:
                    log.debug("%s không đọc được %r: %s", r.name, text, exc)
                    continue
                clip = await asyncio.to_thread(self.cache.put, r, text, audio)
                async with self._new_clip:
                    self._new_clip.notify_all()
                return clip
        if not self._silent_warned:
            log.warning("Không bộ đọc nào dùng được: các lần gọi số chỉ có chuông và chữ trên màn hình")
            self._silent_warned = True
        return None

    def prerender_soon(self, texts: Iterable[str]) -> None:
        """Render ahead of need, in the background (run_prerender does the work)."""
        for text in texts:
            text = nfc(text).strip()
            if not text or text in self._queued or self.cached(text):
                continue
            try:
                self._backlog.put_nowait(text)
            except asyncio.QueueFull:
                return
            self._queued.add(text)
            self._drained.clear()

    async def run_prerender(self) -> None:
        while True:
            text = await self._backlog.get()
            try:
                await self.clip(text)
            except Exception:
                log.exception("Lỗi khi chuẩn bị trước câu đọc %r", text)
            finally:
                self._queued.discard(text)
                if not self._queued:
                    self._drained.set()

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
