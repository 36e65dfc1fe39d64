"""The notifier's settings: the [notify] section of the site file, read strictly.

A misspelt key, a channel without its section, a URL that is not http(s), or a message template
that cannot fit one SMS with the site's own names stops start-up with one line naming the file,
the key and the fix, instead of failing later in front of a citizen.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from notifier.texts import (
    DEFAULT_TEMPLATES,
    LANGUAGES,
    ZNS_LINK_MAX,
    Kind,
    TemplateError,
    check_sms_fits,
    dossier_link_len,
)
from qms_common.config import SiteConfig
from qms_common.tomlconf import Table, resolve_path

CHANNELS = ("zalo", "sms")
SMS_PROVIDERS = ("esms", "speedsms")
SMS_BASE_URLS = {"esms": "https://rest.esms.vn", "speedsms": "https://api.speedsms.vn"}
ZALO_BASE_URL = "https://business.openapi.zalo.me"
ZALO_OAUTH_URL = "https://oauth.zaloapp.com"
# the core's event kinds a webhook may subscribe to
EVENT_KINDS = ("issued", "called", "skipped", "finished", "transferred", "rated")

# Secrets may stay out of the site file (which is often shared or versioned); these win over it.
ENV_SECRETS = {
    ("zalo", "secret_key"): "QMS_ZALO_SECRET_KEY",
    ("zalo", "refresh_token"): "QMS_ZALO_REFRESH_TOKEN",
    ("zalo", "oa_secret_key"): "QMS_ZALO_OA_SECRET_KEY",
    ("sms", "api_key"): "QMS_SMS_API_KEY",
    ("sms", "secret_key"): "QMS_SMS_SECRET_KEY",
    ("sms", "token"): "QMS_SMS_TOKEN",
}

_URL_RE = re.compile(r"https?://[^\s/?#@]+(/[^\s?#]*)?")
_LISTEN_RE = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.\-]+)):(?P<port>\d{1,5})")
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")
# The tracking link's path after public_url: "/t/" + "YYYYMMDD-{field id}-{number}" + "/" + a
# 16-character token (display_server/track_page.py); the longest number is a 3-letter prefix and 6 digits.
_TRACK_PATH_FIXED = len("/t/") + len("20261231-") + len("-abc999999") + len("/") + 16


@dataclass(frozen=True)
class ZaloSettings:
    app_id: str
    secret_key: str
    # None: the notifier's store already holds the current one (each refresh spends the old one)
    refresh_token: str | None
    oa_secret_key: str                # checks the signature of delivery receipts
    templates: Mapping[Kind, str]  # ZNS template ids; a kind without one goes by SMS only
    base_url: str = ZALO_BASE_URL
    oauth_url: str = ZALO_OAUTH_URL
    rate_per_s: float = 10.0


@dataclass(frozen=True)
class SmsSettings:
    provider: str
    base_url: str
    api_key: str | None = None     # esms
    secret_key: str | None = None  # esms
    token: str | None = None       # speedsms
    brandname: str | None = None
    rate_per_s: float = 10.0


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    secret: str
    events: tuple[str, ...] = EVENT_KINDS
    rate_per_s: float = 10.0


@dataclass(frozen=True)
class NotifySettings:
    store: Path
    public_url: str
    ahead: int = 3
    channels: tuple[str, ...] = CHANNELS
    # [notify.kind_channels]: another order for some kinds (e.g. rate = ["sms"])
    kind_channels: Mapping[Kind, tuple[str, ...]] = field(default_factory=dict)
    phone_days: int = 30
    language: str = "vi"
    user: str = "notify"
    listen: tuple[str, int] | None = None  # the delivery-receipt webhook; None: off
    zalo: ZaloSettings | None = None
    sms: SmsSettings | None = None
    # per language, per kind: the defaults with the site's overrides applied
    templates: Mapping[str, Mapping[Kind, str]] = field(default_factory=lambda: DEFAULT_TEMPLATES)
    webhooks: tuple[WebhookSettings, ...] = ()
    retry_max_s: float = 300.0
    give_up_s: float = 3600.0

    def channels_for(self, kind: Kind | str) -> tuple[str, ...]:
        """The order of attempts for this kind of message."""
        return self.kind_channels.get(Kind(kind), self.channels)

    def template(self, kind: Kind | str, language: str | None = None) -> str:
        lang = language if language in self.templates else self.language
        return self.templates[lang][Kind(kind)]


def load_notify_settings(site: SiteConfig, *, env: Mapping[str, str] | None = None) -> NotifySettings | None:
    """The [notify] section, or None when the site has none (it then runs without notifications)."""
    if "notify" not in site.raw:
        return None
    env = os.environ if env is None else env
    t = site.section("notify")
    # the core reads these too: qms_common.config has checked them once for both
    ahead, phone_days, user = site.notify_ahead, site.phone_days, site.notify_user
    t.used.update({"ahead", "phone_days", "user"})
    channels = _channels(t)
    kind_channels: dict[Kind, tuple[str, ...]] = {}
    if "kind_channels" in t.data:
        kc = t.table("kind_channels")
        for k in kc.data:
            if k not in {str(x) for x in Kind}:
                kc.fail(k, "loại tin không có.", f"Chọn trong: {', '.join(str(x) for x in Kind)}.")
            kind_channels[Kind(k)] = _channels(kc, k)
    language = t.choice("language", LANGUAGES, "vi")
    store_s = t.str("store")
    # beside the core's database by default: backed up and protected with it
    store = resolve_path(site.path, store_s) if store_s else site.storage_path.with_name("notify.sqlite3")
    public_url = _public_url(t, site)
    listen = _listen(t)
    retry_max_s = t.float("retry_max_s", 300.0, minimum=1.0)
    give_up_s = t.float("give_up_s", 3600.0, minimum=1.0)
    if give_up_s < retry_max_s:
        t.fail("give_up_s", f"phải lớn hơn hoặc bằng retry_max_s ({retry_max_s:g} giây).",
               "Ví dụ retry_max_s = 300, give_up_s = 3600.")

    zalo = _zalo(t, env) if "zalo" in t.data else None
    sms = _sms(t, env) if "sms" in t.data else None
    t.used.update({"zalo", "sms"})
    for channel, section in (("zalo", zalo), ("sms", sms)):
        if any(channel in cs for cs in (channels, *kind_channels.values())) and section is None:
            t.fail("channels", f"kênh {channel!r} được liệt kê nhưng thiếu mục [notify.{channel}].",
                   f"Thêm [notify.{channel}] với thông tin tài khoản, hoặc bỏ {channel!r} khỏi channels.")

    templates = _templates(t, site, public_url)
    webhooks = tuple(_webhook(w) for w in t.tables("webhooks"))
    t.reject_unknown()
    return NotifySettings(
        store=store, public_url=public_url, ahead=ahead, channels=channels, kind_channels=kind_channels,
        phone_days=phone_days,
        language=language, user=user, listen=listen, zalo=zalo, sms=sms, templates=templates,
        webhooks=webhooks, retry_max_s=retry_max_s, give_up_s=give_up_s,
    )


def _channels(t: Table, k: str = "channels") -> tuple[str, ...]:
    channels = t.str_list(k, list(CHANNELS))
    for c in channels:
        if c not in CHANNELS:
            t.fail(k, f"kênh {c!r} không có.",
                   f"Liệt kê các kênh theo thứ tự thử, trong: {', '.join(CHANNELS)} (hoặc [] để chỉ dùng webhook).")
    if len(set(channels)) != len(channels):
        t.fail(k, "một kênh được liệt kê hai lần.", "Mỗi kênh chỉ ghi một lần, ví dụ [\"zalo\", \"sms\"].")
    return tuple(channels)


def _url(t: Table, k: str, default: str = "") -> str:
    value = t.str(k, default, required=not default).rstrip("/")
    if not _URL_RE.fullmatch(value):
        t.fail(k, f"địa chỉ {value!r} không hợp lệ.", "Dùng địa chỉ http:// hoặc https://, ví dụ \"https://example.vn\".")
    return value


def _public_url(t: Table, site: SiteConfig) -> str:
    if "public_url" in t.data:
        return _url(t, "public_url")
    web = site.raw.get("web")
    # the web server's own [web] public_url (it checks that key itself) is the natural default
    if isinstance(web, Mapping) and isinstance(web.get("public_url"), str) and web["public_url"].strip():
        value = web["public_url"].rstrip("/")
        if _URL_RE.fullmatch(value):
            return value
    host = site.web_host
    if host in _WILDCARD_HOSTS:
        t.fail("public_url", f"máy chủ web nghe trên mọi địa chỉ ({host!r}), "
               "không dùng làm đường dẫn cho công dân được.",
               "Đặt public_url = \"http://<địa chỉ máy chủ>:<cổng>\" trong [notify] hoặc [web].")
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{site.web_port}"


def _listen(t: Table) -> tuple[str, int] | None:
    value = t.str("listen", "")
    if not value:
        return None
    m = _LISTEN_RE.fullmatch(value)
    port = int(m.group("port")) if m else 0
    if not m or not 1 <= port <= 65535:
        t.fail("listen", f"địa chỉ {value!r} không hợp lệ.",
               "Viết dạng máy:cổng, ví dụ \"127.0.0.1:8091\" (hoặc \"\" để tắt).")
    return (m.group("v6") or m.group("host"), port)


def _rate(t: Table) -> float:
    rate = t.float("rate_per_s", 10.0, minimum=0.01)
    if rate > 1000:
        t.fail("rate_per_s", f"phải nhỏ hơn hoặc bằng 1000 (đang là {rate:g}).")
    return rate


def _secret(t: Table, channel: str, k: str, env: Mapping[str, str], *, required: bool) -> str | None:
    name = ENV_SECRETS[(channel, k)]
    from_env = env.get(name)
    value = t.str(k)
    if from_env:
        return from_env
    if value is not None and not value.strip():
        value = None
    if required and value is None:
        t.fail(k, "thiếu khóa bắt buộc.", f"Thêm {k} = \"…\" vào [{t.name}], hoặc đặt biến môi trường {name}.")
    return value


def _zalo(notify: Table, env: Mapping[str, str]) -> ZaloSettings:
    t = notify.table("zalo")
    base_url = _url(t, "base_url", ZALO_BASE_URL)
    oauth_url = _url(t, "oauth_url", ZALO_OAUTH_URL)
    app_id = t.str("app_id", required=True)
    secret_key = _secret(t, "zalo", "secret_key", env, required=True)
    refresh_token = _secret(t, "zalo", "refresh_token", env, required=False)
    # Zalo may sign the OA's webhook events with a key of their own; by default the app's
    oa_secret_key = _secret(t, "zalo", "oa_secret_key", env, required=False)
    tt = t.table("templates", required=True)
    templates: dict[Kind, str] = {}
    for kind in Kind:
        tt.used.add(kind.value)
        if kind.value not in tt.data:
            continue
        value = tt.data[kind.value]
        # ids are long numbers; written bare in TOML they arrive as integers
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            tt.fail(kind.value, f"mã mẫu ZNS {value!r} không hợp lệ.",
                    "Dùng mã mẫu đã được Zalo duyệt, ví dụ \"231456\".")
        templates[kind] = value
    tt.reject_unknown()
    if not templates:
        t.fail("templates", "chưa có mã mẫu ZNS nào.",
               "Ví dụ templates = { issued = \"231456\", called = \"231457\" } (các loại: "
               + ", ".join(k.value for k in Kind) + ").")
    rate = _rate(t)
    t.reject_unknown()
    return ZaloSettings(app_id=app_id, secret_key=secret_key or "", refresh_token=refresh_token,
                        oa_secret_key=oa_secret_key or secret_key or "",
                        templates=templates, base_url=base_url, oauth_url=oauth_url, rate_per_s=rate)


def _sms(notify: Table, env: Mapping[str, str]) -> SmsSettings:
    t = notify.table("sms")
    provider = t.choice("provider", SMS_PROVIDERS, required=True)
    base_url = _url(t, "base_url", SMS_BASE_URLS[provider])
    own = {"esms": ("api_key", "secret_key"), "speedsms": ("token",)}[provider]
    for k in ("api_key", "secret_key", "token"):
        if k not in own and k in t.data:
            t.fail(k, f"khóa này không dùng với nhà cung cấp {provider!r}.",
                   f"{provider} cần: {', '.join(own)}; xóa {k}.")
    secrets = {k: _secret(t, "sms", k, env, required=True) for k in own}
    brandname = t.str("brandname")
    if brandname is not None and not re.fullmatch(r"[A-Za-z0-9 ._&-]{1,11}", brandname):
        t.fail("brandname", f"tên thương hiệu {brandname!r} không hợp lệ.",
               "Tối đa 11 ký tự không dấu đã đăng ký với nhà mạng, ví dụ \"UBND-HB\".")
    rate = _rate(t)
    t.reject_unknown()
    return SmsSettings(provider=provider, base_url=base_url, api_key=secrets.get("api_key"),
                       secret_key=secrets.get("secret_key"), token=secrets.get("token"),
                       brandname=brandname, rate_per_s=rate)


def _link_len(site: SiteConfig, public_url: str) -> int:
    longest_id = max((len(f.id) for f in site.fields), default=0)
    return len(public_url) + _TRACK_PATH_FIXED + longest_id


def _templates(notify: Table, site: SiteConfig, public_url: str) -> dict[str, dict[Kind, str]]:
    t = notify.table("templates")
    link_len = _link_len(site, public_url)
    dossier_link = dossier_link_len(public_url)
    if max(link_len, dossier_link) > ZNS_LINK_MAX:
        notify.fail("public_url", f"đường dẫn theo dõi sẽ dài {max(link_len, dossier_link)} ký tự, "
                    f"quá {ZNS_LINK_MAX} ký tự Zalo cho phép.",
                    "Dùng địa chỉ ngắn hơn.")
    result: dict[str, dict[Kind, str]] = {}
    for lang in LANGUAGES:
        lt = t.table(lang)
        merged = dict(DEFAULT_TEMPLATES[lang])
        for kind in Kind:
            text = lt.str(kind.value)
            if text is not None:
                if not text.strip():
                    lt.fail(kind.value, "mẫu tin không được để trống.", "Xóa khóa này để dùng mẫu mặc định.")
                merged[kind] = text
        lt.reject_unknown()
        try:
            check_sms_fits(merged, office=site.name, field_names=[f.name for f in site.fields], link_len=link_len,
                           counter_names=[c.name for c in site.counters], language=lang,
                           dossier_link=dossier_link)
        except TemplateError as exc:
            kind = exc.kind or ""
            where = lt if kind in lt.data else notify
            key = kind if kind in lt.data else "templates"
            fix = ("Rút ngắn mẫu tin này." if kind in lt.data else
                   f"Mẫu mặc định không vừa với tên của đơn vị: đặt [{t.key(lang)}] {kind} = \"…\" ngắn hơn.")
            where.fail(key, f"{exc}", fix)
        result[lang] = merged
    t.reject_unknown()
    return result


def _webhook(t: Table) -> WebhookSettings:
    url = _url(t, "url")
    secret = t.str("secret", required=True)
    if len(secret) < 16:
        t.fail("secret", f"khóa bí mật quá ngắn ({len(secret)} ký tự).",
               "Dùng ít nhất 16 ký tự ngẫu nhiên, ví dụ tạo bằng: openssl rand -hex 32")
    events = t.str_list("events", list(EVENT_KINDS))
    for e in events:
        if e not in EVENT_KINDS:
            t.fail("events", f"sự kiện {e!r} không có.", f"Chọn trong: {', '.join(EVENT_KINDS)}.")
    if not events:
        t.fail("events", "chưa chọn sự kiện nào.", f"Chọn trong: {', '.join(EVENT_KINDS)}.")
    if len(set(events)) != len(events):
        t.fail("events", "một sự kiện được liệt kê hai lần.")
    rate = _rate(t)
    t.reject_unknown()
    return WebhookSettings(url=url, secret=secret, events=tuple(events), rate_per_s=rate)
