"""espeak-ng as a library (libespeak-ng, installed with the espeak-ng package), on one thread.

Starting the espeak-ng program costs about 20 ms of CPU per phrase before it says a word; the
library, initialised once, synthesises a phrase in a few milliseconds. Ticket phrases come at
the pace of the kiosks, so on a small machine that difference is most of the web server's work.
The library is not thread-safe: every call goes through one worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import io
import os
import threading
import wave
from concurrent.futures import ThreadPoolExecutor

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

    def _synth(self, text: str, voice: str, speed: int) -> bytes:
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
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._synth, text, voice, speed)
