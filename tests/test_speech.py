"""Speech clips: the disk cache, gTTS (replaced only at its HTTP call: there is no internet here),
espeak-ng for real, and the fallbacks between them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import os
import signal
import threading
import time
import unicodedata
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from display_server.feed.follower import StateFollower
from display_server.feed.state import Call
from display_server.speech.chime import chime_wav
from display_server.speech.render import ClipCache, EspeakRenderer, GttsRenderer, RenderError, Speech, clip_key
from display_server.speech.settings import SpeechSettings
from display_server.tv.announcer import CHIME_URL, LOOKAHEAD, Announcer
from qms_common.config import load_site_config
from tests.support.site import write_site

FAKE_MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 4


class FakeGoogle:
    """Stands in for Google Translate's endpoint at requests.Session.send, the one call gTTS makes."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls: list[dict[str, Any]] = []
        self.release = threading.Event()

    def send(self, session: requests.Session, request: requests.PreparedRequest, **kw: Any) -> requests.Response:
        assert request.url is not None and "translate.google." in request.url
        self.calls.append({"url": request.url, "body": request.body, "timeout": kw.get("timeout")})
        if self.mode == "hang":
            # a server that never answers: requests gives up after the timeout gTTS passed on
            self.release.wait(kw.get("timeout") or 30)
            raise requests.exceptions.ReadTimeout("read timed out")
        resp = requests.Response()
        resp.url = request.url
        resp.request = request
        if self.mode == "ok":
            audio = base64.b64encode(FAKE_MP3).decode()
            resp.status_code, resp.reason = 200, "OK"
            resp.raw = io.BytesIO(
                f')]}}\'\n\n[["wrb.fr","jQ1olc","[\\"{audio}\\"]",null,null,null,"generic"]]\n'.encode())
        else:
            resp.status_code = int(self.mode)
            resp.reason = {"429": "Too Many Requests", "403": "Forbidden"}.get(self.mode, "Error")
            resp.raw = io.BytesIO(b"<html>error</html>")
        return resp


@pytest.fixture
def google(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogle]:
    fake = FakeGoogle()
    monkeypatch.setattr(requests.Session, "send", lambda s, request, **kw: fake.send(s, request, **kw))
    yield fake
    fake.release.set()


def settings(tmp_path: Path, **kw: Any) -> SpeechSettings:
    return SpeechSettings(cache_dir=tmp_path / "cache", **kw)


PHRASE = "Mời công dân có số thứ tự một nghìn không trăm linh năm"


async def test_gtts_renders_and_the_cache_answers_next_time(tmp_path: Path, google: FakeGoogle) -> None:
    speech = Speech(settings(tmp_path))
    clip = await speech.clip(PHRASE)
    assert clip is not None and clip.engine == "gtts" and clip.path.suffix == ".mp3"
    assert clip.path.read_bytes() == FAKE_MP3
    assert len(google.calls) == 1
    assert "vi" in str(google.calls[0]["body"])  # lang=vi travels in the request
    assert google.calls[0]["timeout"] == 5.0  # never gTTS's default of waiting forever

    again = await speech.clip(PHRASE)
    assert again == clip and len(google.calls) == 1
    # a new server process finds it on disk
    fresh = Speech(settings(tmp_path))
    assert await fresh.clip(PHRASE) == clip and len(google.calls) == 1


async def test_cache_key_is_engine_voice_and_text(tmp_path: Path, google: FakeGoogle) -> None:
    assert clip_key("gtts", "vi@com", "a") != clip_key("espeak", "vi@com", "a")
    assert clip_key("gtts", "vi@com", "a") != clip_key("gtts", "vi@com.vn", "a")
    assert clip_key("gtts", "vi@com", "a") != clip_key("gtts", "vi@com", "b")
    # NFD and NFC of the same text are the same clip
    assert clip_key("gtts", "v", unicodedata.normalize("NFD", PHRASE)) == clip_key("gtts", "v", PHRASE)
    a = await Speech(settings(tmp_path, gtts_tld="com")).clip(PHRASE)
    b = await Speech(settings(tmp_path, gtts_tld="com.vn")).clip(PHRASE)
    assert a is not None and b is not None and a.path != b.path and len(google.calls) == 2


async def test_a_hanging_gtts_times_out_to_espeak_and_is_left_alone(
        tmp_path: Path, google: FakeGoogle, caplog: pytest.LogCaptureFixture) -> None:
    google.mode = "hang"
    speech = Speech(settings(tmp_path, gtts_timeout_s=0.5))
    caplog.set_level(logging.DEBUG, "display_server.speech.render")
    clip = await speech.clip(PHRASE)
    assert clip is not None and clip.engine == "espeak" and clip.path.suffix == ".wav"
    with wave.open(str(clip.path)) as w:
        assert w.getnframes() > 0
    assert len(google.calls) == 1
    # the next clips go straight to espeak: no second timeout
    for text in ("đến quầy số ba", "đến quầy số bốn"):
        c = await speech.clip(text)
        assert c is not None and c.engine == "espeak"
    assert len(google.calls) == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "gTTS" in r.getMessage()]
    assert len(warnings) == 1 and "espeak-ng" in warnings[0].getMessage()


@pytest.mark.parametrize("status", ["429", "403"])
async def test_error_answers_fall_back_to_espeak(tmp_path: Path, google: FakeGoogle, status: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    google.mode = status
    speech = Speech(settings(tmp_path))
    clip = await speech.clip(PHRASE)
    assert clip is not None and clip.engine == "espeak"
    assert len(google.calls) == 1
    assert status in caplog.text  # the log says what Google answered
    assert (await speech.clip("đến quầy số ba")).engine == "espeak"  # type: ignore[union-attr]
    assert len(google.calls) == 1


async def test_gtts_is_tried_again_after_the_retry_time(tmp_path: Path, google: FakeGoogle,
                                                        caplog: pytest.LogCaptureFixture,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    google.mode = "429"
    renderer = GttsRenderer(retry_s=60)
    now = [1000.0]
    monkeypatch.setattr("display_server.speech.render.time.monotonic", lambda: now[0])
    with pytest.raises(RenderError, match="429"):
        await renderer.render(PHRASE)
    assert not renderer.usable()
    now[0] += 61
    assert renderer.usable()
    google.mode = "ok"
    caplog.set_level(logging.INFO, "display_server.speech.render")
    assert await renderer.render(PHRASE) == FAKE_MP3
    assert "trở lại" in caplog.text


def _library_off(renderer: EspeakRenderer) -> EspeakRenderer:
    renderer._library = None
    return renderer


@pytest.mark.parametrize("path", ["library", "program"])
async def test_espeak_voices_render_real_wav(tmp_path: Path, path: str) -> None:
    lengths = {}
    for voice in ("vi", "vi-vn-x-central", "vi-vn-x-south"):
        renderer = EspeakRenderer(voice, 175)
        if path == "program":
            _library_off(renderer)
        assert renderer.engine == path  # the library ships with Debian's espeak-ng
        audio = await renderer.render("Mời công dân có số thứ tự hai mươi mốt")
        with wave.open(io.BytesIO(audio)) as w:
            assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == 22050
            assert w.getnframes() > w.getframerate() // 2
            lengths[voice] = w.getnframes()
    assert len(set(lengths.values())) > 1  # the voices differ


async def test_library_and_program_say_the_same() -> None:
    phrase = "Mời công dân có số thứ tự một nghìn không trăm linh năm đến quầy số ba"
    lib = await EspeakRenderer().render(phrase)
    prog = await _library_off(EspeakRenderer()).render(phrase)
    with wave.open(io.BytesIO(lib)) as a, wave.open(io.BytesIO(prog)) as b:
        assert a.getparams()[:3] == b.getparams()[:3]
        assert abs(a.getnframes() - b.getnframes()) < a.getframerate() // 10  # within 0.1 s


async def test_text_starting_with_a_dash_is_not_an_option(tmp_path: Path) -> None:
    for renderer in (EspeakRenderer(), _library_off(EspeakRenderer())):
        audio = await renderer.render("-v en --help")
        assert audio[:4] == b"RIFF"


async def test_no_engine_means_no_clip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    speech = Speech(settings(tmp_path, engines=()))
    assert await speech.clip(PHRASE) is None
    assert await speech.clip("đến quầy số ba") is None
    assert caplog.text.count("chỉ có chuông") == 1


async def test_concurrent_requests_for_one_phrase_render_once(tmp_path: Path, google: FakeGoogle) -> None:
    speech = Speech(settings(tmp_path))
    clips = await asyncio.gather(*(speech.clip(PHRASE) for _ in range(5)))
    assert len({c.path for c in clips if c}) == 1 and len(google.calls) == 1


async def test_prerender_in_the_background_in_an_idle_priority_process(tmp_path: Path) -> None:
    speech = Speech(settings(tmp_path, engines=("espeak",)))
    worker = asyncio.create_task(speech.run_prerender())
    try:
        speech.prerender_soon(["đến quầy số một", "đến quầy số hai", "đến quầy số một"])
        await asyncio.wait_for(speech.idle(), 20)
        renderer = speech.renderers[0]
        assert speech.cache.get(renderer, "đến quầy số một") is not None
        assert speech.cache.get(renderer, "đến quầy số hai") is not None
        assert speech.renders == 2 and speech.renders_now == 0
        # rendered by a process of its own that gets the CPU only when nothing else wants it
        assert isinstance(renderer, EspeakRenderer)
        pid = renderer.idle_pid
        assert pid is not None and pid != os.getpid()
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        assert os.getpriority(os.PRIO_PROCESS, pid) == 10
        assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the server itself is left alone
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    assert renderer.idle_pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the worker ended with the server's renderer


async def test_a_call_does_not_wait_for_a_starved_background_renderer(tmp_path: Path) -> None:
    speech = Speech(settings(tmp_path, engines=("espeak",)))
    renderer = speech.renderers[0]
    assert isinstance(renderer, EspeakRenderer)
    worker = asyncio.create_task(speech.run_prerender())
    try:
        speech.prerender_soon(["đến quầy số một"])
        await asyncio.wait_for(speech.idle(), 20)
        pid = renderer.idle_pid
        assert pid is not None
        handed = asyncio.Event()
        render_idle = renderer.render_idle

        async def noted(text: str, path: Path) -> None:
            handed.set()
            await render_idle(text, path)

        renderer.render_idle = noted  # type: ignore[method-assign]
        os.kill(pid, signal.SIGSTOP)  # a machine so busy that idle priority never runs
        try:
            speech.prerender_soon([PHRASE])
            await asyncio.wait_for(handed.wait(), 10)  # with the (stopped) worker now
            started = time.monotonic()
            clip = await asyncio.wait_for(speech.clip(PHRASE), 10)
            assert clip is not None and time.monotonic() - started < 3
            assert speech.renders_now == 1 and PHRASE in speech._background  # the worker is still stuck
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


def test_cache_serves_only_its_own_names(tmp_path: Path) -> None:
    cache = ClipCache(tmp_path)
    name = "a" * 40 + ".wav"
    (tmp_path / name).write_bytes(b"RIFF")
    assert cache.find(name) == tmp_path / name
    for bad in ("../secret.wav", "a" * 40 + ".txt", "A" * 40 + ".wav", "a" * 39 + ".wav", "chime.wav",
                "a" * 40 + ".wav/..", "b" * 40 + ".wav"):
        assert cache.find(bad) is None


def test_chime_is_small_valid_wav() -> None:
    data = chime_wav()
    assert 2_000 < len(data) < 20_000
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnframes() / w.getframerate() > 0.5


async def test_announcement_playlists(tmp_path: Path) -> None:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", counters="""
[[counters]]
id = "1"
name = "Quầy 1"
fields = ["dat-dai"]

[[counters]]
id = "2"
name = "Quầy 2"
fields = ["ho-tich", "chung-thuc"]
spoken = "quầy tiếp nhận số hai"
""")
    site = load_site_config(path)
    follower = StateFollower(site, "t")  # not connected: the counters come from the site file
    call = Call(seq=9, ticket={"number": "C001", "field": "chung-thuc"}, counter="2", recall=True, at=None)

    twice = Announcer(site, follower, Speech(settings(tmp_path, engines=("espeak",))),
                      settings(tmp_path, engines=("espeak",), repeat=2))
    a = await twice.announce(call)
    assert a is not None and a.recall and a.counter_name == "Quầy 2" and a.field == "chung-thuc"
    assert a.text == "Mời công dân có số thứ tự xê một đến quầy tiếp nhận số hai"
    # chime, then intro, number and counter phrase twice; the second round is left out when calls wait
    assert a.clips[0] == CHIME_URL and len(a.clips) == 7 and a.must == 4
    assert a.clips[1:4] == a.clips[4:7] and len(set(a.clips[1:4])) == 3
    assert a.short == a.clips[2:4]  # said quickly: number and counter phrase, no chime, no intro
    assert set(a.seconds) == set(a.clips) and a.seconds[CHIME_URL] == 1.2
    intro, number, counter = (a.seconds[u] for u in a.clips[1:4])
    assert 0.3 < number < 3 and 0.3 < counter < 3 and 0.3 < intro < 4

    no_chime = Announcer(site, follower, Speech(settings(tmp_path, engines=("espeak",))),
                         settings(tmp_path, engines=("espeak",), chime=False))
    b = await no_chime.announce(call)
    assert b is not None and len(b.clips) == 3 and CHIME_URL not in b.clips and b.must == 3

    silent = Announcer(site, follower, Speech(settings(tmp_path / "none", engines=())),
                       settings(tmp_path / "none", engines=(), chime=False))
    c = await silent.announce(call)
    assert c is not None and c.clips == [CHIME_URL] == c.short  # nobody misses a call
    assert c.text == a.text  # still on screen


def _site_message(day: str, seq: int) -> bytes:
    return json.dumps({"name": "Xã X", "day": day, "seq": seq,
                       "fields": [{"id": "dat-dai", "name": "Đất đai", "first": 1001, "last": 1999, "prefix": None}],
                       "counters": [{"id": "1", "name": "Quầy 1", "fields": ["dat-dai"]}]}).encode()


def _issued(number: str, seq: int) -> bytes:
    return json.dumps({"kind": "issued", "seq": seq, "counter": None,
                       "ticket": {"id": f"x-{number}", "number": number, "field": "dat-dai"}}).encode()


async def _one_day(tmp_path: Path, day: str, numbers: list[str]) -> tuple[Speech, Announcer]:
    """A web server's speech for one business day: the day starts, tickets are issued, and
    everything asked for ahead of need is rendered."""
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1")
    site = load_site_config(path)
    follower = StateFollower(site, "t")
    speech = Speech(settings(tmp_path, engines=("espeak",)))
    announcer = Announcer(site, follower, speech, speech.settings)
    worker = asyncio.create_task(speech.run_prerender())
    try:
        messages = [(("state", "site"), _site_message(day, 1))]
        messages += [(("event", "issued"), _issued(n, 2 + i)) for i, n in enumerate(numbers)]
        for parts, payload in messages:
            change = follower.state.apply(parts, payload)
            assert change is not None
            await announcer.on_change(change)
        await asyncio.wait_for(speech.idle(), 60)
        return speech, announcer
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


async def test_clips_are_kept_across_days_and_restarts(tmp_path: Path) -> None:
    first, _ = await _one_day(tmp_path, "2026-11-23", ["1001", "1002"])
    # the intro, the counter phrase, the numbers issued and the next ones ahead of them
    assert first.renders >= 2 + LOOKAHEAD and first.renders_now == 0
    assert first.cached("một nghìn không trăm linh hai") is not None
    assert first.cached("một nghìn không trăm năm mươi hai") is not None  # 1002 + LOOKAHEAD
    names = {p.name for p in first.cache.dir.iterdir()}

    # the next day, after a restart: the same numbers come again, and nothing is rendered
    second, announcer = await _one_day(tmp_path, "2026-11-24", ["1001", "1002"])
    assert second.renders == 0
    # a number never issued yet, rendered ahead the day before
    call = Call(seq=9, ticket={"number": "1040", "field": "dat-dai"}, counter="1", recall=False, at=None)
    a = await announcer.announce(call)
    assert a is not None and len(a.clips) == 4 and second.renders == 0
    assert {p.name for p in second.cache.dir.iterdir()} == names
