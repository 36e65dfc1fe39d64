"""The web server's own settings: the rest of [web], [speech] and [display] of the site file.

Read strictly with qms_common.tomlconf.Table: a misspelt key or a wrong value stops start-up
with one line naming the file, the key and the fix. Pages added later read their own sections
here too, so every setting of the web server is found in one module.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from display_server.vietnamese import (
    DEFAULT_SPOKEN_TEMPLATE,
    DEFAULT_TEMPLATE,
    FOUR_WORDS,
    THOUSAND_WORDS,
    ZERO_TENS_WORDS,
    NumberStyle,
    Phrasing,
    TemplateError,
)
from qms_common.config import SiteConfig
from qms_common.tomlconf import SLUG_RE, resolve_path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE_DIR = REPO_ROOT / "var" / "speech-cache"

ENGINES = ("gtts", "espeak")
ESPEAK_VOICES = ("vi", "vi-vn-x-central", "vi-vn-x-south")
CLOSED_COUNTERS = ("dim", "hide")


@dataclass(frozen=True)
class WebSettings:
    host: str
    port: int
    # names this server's presence topic, qms/{site}/status/web/{id}
    server_id: str


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


@dataclass(frozen=True)
class DisplaySettings:
    closed_counters: str = "dim"
    recent_calls: int = 6
    blink_s: float = 6.0


@dataclass(frozen=True)
class ServerSettings:
    web: WebSettings
    speech: SpeechSettings
    display: DisplaySettings


def default_server_id() -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower()).strip("-")[:40].strip("-")
    return slug or "web"


def load_server_settings(site: SiteConfig) -> ServerSettings:
    return ServerSettings(web=_web(site), speech=_speech(site), display=_display(site))


def _web(site: SiteConfig) -> WebSettings:
    t = site.section("web")
    t.used.update({"host", "port"})  # read by qms_common.config
    server_id = t.slug("id", required=False) or default_server_id()
    t.reject_unknown()
    return WebSettings(host=site.web_host, port=site.web_port, server_id=server_id)


def _speech(site: SiteConfig) -> SpeechSettings:
    t = site.section("speech")
    engines = tuple(t.str_list("engines", list(ENGINES)))
    for e in engines:
        if e not in ENGINES:
            t.fail("engines", f"bộ đọc {e!r} không có.",
                   f"Dùng các bộ đọc theo thứ tự ưu tiên, trong: {', '.join(ENGINES)} (hoặc [] chỉ phát chuông).")
    if len(set(engines)) != len(engines):
        t.fail("engines", "một bộ đọc được liệt kê hai lần.")
    style = NumberStyle(
        zero_tens=t.choice("zero_tens", ZERO_TENS_WORDS, "linh"),
        thousand=t.choice("thousand", THOUSAND_WORDS, "nghìn"),
        four=t.choice("four", FOUR_WORDS, "tư"),
        by_digit=t.bool("by_digit", False),
    )
    template = t.str("template", DEFAULT_TEMPLATE)
    spoken_template = t.str("spoken_template", DEFAULT_SPOKEN_TEMPLATE)
    try:
        Phrasing(template=template)
    except TemplateError:
        t.fail("template", f"mẫu câu {template!r} không dùng được.",
               "Mẫu cần {number} rồi đến {counter}, mỗi chỗ một lần, ví dụ "
               f"\"{DEFAULT_TEMPLATE}\".")
    try:
        phrasing = Phrasing(template=template, spoken_template=spoken_template, style=style)
    except TemplateError:
        t.fail("spoken_template", f"mẫu câu {spoken_template!r} không dùng được.",
               f"Mẫu cần {{spoken}} đúng một lần, ví dụ \"{DEFAULT_SPOKEN_TEMPLATE}\".")
    cache = t.str("cache_dir")
    tld = t.str("gtts_tld", "com")
    if not re.fullmatch(r"[a-z]{2,3}(\.[a-z]{2,3})?", tld):
        t.fail("gtts_tld", f"tên miền {tld!r} không hợp lệ.", "Ví dụ \"com\" hoặc \"com.vn\".")
    s = SpeechSettings(
        engines=engines,
        phrasing=phrasing,
        repeat=t.int("repeat", 1, minimum=1, maximum=3),
        chime=t.bool("chime", True),
        cache_dir=resolve_path(site.path, cache) if cache else DEFAULT_CACHE_DIR,
        gtts_tld=tld,
        gtts_timeout_s=t.float("gtts_timeout_s", 5.0, minimum=0.5),
        gtts_retry_s=t.float("gtts_retry_s", 600.0, minimum=1.0),
        espeak_voice=t.choice("espeak_voice", ESPEAK_VOICES, "vi"),
        espeak_speed=t.int("espeak_speed", 150, minimum=80, maximum=450),
    )
    t.reject_unknown()
    return s


def _display(site: SiteConfig) -> DisplaySettings:
    t = site.section("display")
    s = DisplaySettings(
        closed_counters=t.choice("closed_counters", CLOSED_COUNTERS, "dim"),
        recent_calls=t.int("recent_calls", 6, minimum=0, maximum=20),
        blink_s=t.float("blink_s", 6.0, minimum=0.0),
    )
    t.reject_unknown()
    return s


def is_slug(value: str) -> bool:
    return bool(SLUG_RE.match(value))
