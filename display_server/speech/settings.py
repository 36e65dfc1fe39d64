"""The [speech] section's values, owned here so that speech imports nothing above it;
display_server.settings reads the section from the site file and fills this in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from display_server.speech.vietnamese import Phrasing

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE_DIR = REPO_ROOT / "var" / "speech-cache"

ENGINES = ("gtts", "espeak")


@dataclass(frozen=True)
class SpeechSettings:
    engines: tuple[str, ...] = ENGINES
    phrasing: Phrasing = field(default_factory=Phrasing)
    repeat: int = 1
    chime: bool = True
    cache_dir: Path = DEFAULT_CACHE_DIR
    gtts_tld: str = "com"
    gtts_timeout_s: float = 5.0
    # after a failure gTTS is left alone this long, so a call never waits for its timeout again
    gtts_retry_s: float = 600.0
    espeak_voice: str = "vi"
    espeak_speed: int = 150
