"""The chime before an announcement: a two-note "ding-dong", made at start (a few KB of WAV), so
the repository holds no audio file and every TV has it even when no voice engine works."""

from __future__ import annotations

import io
import math
import wave

RATE = 11025  # plenty for two bell tones, and keeps the clip small
SECONDS = 1.2


def _tone(freq: float, seconds: float, start: float, total: int, out: list[float]) -> None:
    first = int(start * RATE)
    for i in range(min(int(seconds * RATE), total - first)):
        t = i / RATE
        envelope = math.exp(-4.0 * t) * min(1.0, t * 200)  # quick attack, bell-like decay
        out[first + i] += envelope * (math.sin(2 * math.pi * freq * t) + 0.3 * math.sin(4 * math.pi * freq * t))


def chime_wav(seconds: float = SECONDS) -> bytes:
    total = int(seconds * RATE)
    samples = [0.0] * total
    _tone(659.25, 0.9, 0.0, total, samples)  # E5
    _tone(523.25, 0.9, 0.35, total, samples)  # C5
    peak = max(abs(s) for s in samples) or 1.0
    frames = bytes(int(128 + 120 * s / peak) for s in samples)  # 8-bit PCM is unsigned
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(RATE)
        w.writeframes(frames)
    return buf.getvalue()
