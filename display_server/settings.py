"""The web server's own settings: the rest of [web], [speech] and [display] of the site file.

Read strictly with qms_common.tomlconf.Table: a misspelt key or a wrong value stops start-up
with one line naming the file, the key and the fix. Pages added later read their own sections
here too, so every setting of the web server is read in one module; a feature package may own its
section's dataclass (speech.settings), so that it imports nothing above itself.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from display_server.accounts.store import Accounts, parse_accounts
from display_server.catalogue import catalogue_path
from display_server.speech.settings import DEFAULT_CACHE_DIR, ENGINES, SpeechSettings
from display_server.speech.vietnamese import (
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
from qms_common.signing import web_secret_file
from qms_common.tomlconf import SLUG_RE, Table, resolve_path

ESPEAK_VOICES = ("vi", "vi-vn-x-central", "vi-vn-x-south")
CLOSED_COUNTERS = ("dim", "hide")
KIOSK_FUNCTIONS = ("ticket", "procedures", "dossiers", "rating")


@dataclass(frozen=True)
class WebSettings:
    host: str
    port: int
    # names this server's presence topic, qms/{site}/status/web/{id}
    server_id: str
    # where citizens' phones reach the tracking pages (the QR code on a ticket); None: the
    # address the kiosk itself used
    public_url: str | None = None
    # the server's own secret (tracking tokens, paired tablets), made on the first start (0600)
    secret_file: Path = Path("web.secret")
    # the procedure catalogue's SQLite file (`qms-web import-procedures` writes it)
    catalogue: Path = Path("procedures.sqlite3")


@dataclass(frozen=True)
class DisplaySettings:
    closed_counters: str = "dim"
    recent_calls: int = 6
    blink_s: float = 6.0
    # the site's TVs (?id=): their presence stays, offline, when they go; others' is removed
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class KioskSettings:
    # kiosk ids (?id= of /kiosk; "kiosk" without one) allowed to issue
    ids: tuple[str, ...] = ("kiosk",)
    # opt-in: any well-formed id issues (each with its own allowance, all under the site's cap)
    any_id: bool = False
    # per kiosk id: a stuck button or a script must not exhaust a field's number range
    tickets_per_minute: int = 10
    # all kiosks together: invented or stolen ids cannot add up to more than this
    site_tickets_per_minute: int = 60
    # "Tra cứu hồ sơ" by a typed code: each answer tells whether a code exists, so guessing codes
    # is bounded per kiosk id, per client address and for all kiosks together
    dossier_lookups_per_minute: int = 10
    address_dossier_lookups_per_minute: int = 20
    site_dossier_lookups_per_minute: int = 60
    # how long a new ticket stays on the screen
    show_s: float = 20.0
    priority: bool = True
    # untouched this long in another language, the kiosk speaks Vietnamese again; with the menu,
    # any screen but a new ticket goes back to the menu
    idle_s: float = 60.0
    # the home menu's functions ("4 trong 1"); with only "ticket", the kiosk opens on the fields
    functions: tuple[str, ...] = ("ticket", "procedures", "dossiers", "rating")


PRINTER_TYPES = ("none", "file", "serial", "network", "usb")
PAPER_WIDTH_PX = {80: 576, 58: 384}
DEFAULT_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
DEFAULT_BOLD_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


@dataclass(frozen=True)
class PrinterSettings:
    type: str = "none"
    paper_width_mm: int = 80
    device: str | None = None       # file: /dev/usb/lp0; serial: /dev/ttyUSB0
    baudrate: int = 9600
    host: str | None = None
    port: int = 9100
    vendor_id: int | None = None
    product_id: int | None = None
    timeout_s: float = 5.0
    check_paper: bool = True
    cut: bool = True
    font: Path = DEFAULT_FONT
    font_bold: Path = DEFAULT_BOLD_FONT
    # kiosk ids that print here; empty: every kiosk
    kiosks: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.type != "none"

    @property
    def width_px(self) -> int:
        return PAPER_WIDTH_PX[self.paper_width_mm]

    def serves(self, kiosk: str) -> bool:
        return self.enabled and (not self.kiosks or kiosk in self.kiosks)


@dataclass(frozen=True)
class SecuritySettings:
    session_hours: float = 12.0
    # attempts per user name within login_window_s before that name's logins are refused
    login_failures: int = 5
    login_window_s: float = 300.0
    # wrong passwords per address (an office's officers share one NAT address) within
    # login_window_s before that address is slowed down: never refused, one check at a time
    login_address_failures: int = 50
    login_address_interval_s: float = 1.0
    # true behind HTTPS: the session cookie is then never sent in clear
    cookie_secure: bool = False


@dataclass(frozen=True)
class ReceiptPrinterSettings:
    """A counter's printer for dossier receipts: `[[receipt_printers]]`, the keys of [printer]
    plus the counters it serves."""

    printer: PrinterSettings
    counters: tuple[str, ...]


@dataclass(frozen=True)
class ApiKey:
    """One integrator's key of the dossier API (`[[api_keys]]`): only its SHA-256 is kept."""

    name: str
    key_sha256: bytes


class ApiKeys:
    """The integrators' keys; find() compares the SHA-256 of what was presented with every stored
    one in constant time, so neither the answer's time nor its content tells how close a guess was."""

    def __init__(self, keys: tuple[ApiKey, ...] = ()) -> None:
        self.keys = keys

    def __bool__(self) -> bool:
        return bool(self.keys)

    def find(self, presented: str) -> ApiKey | None:
        digest = hashlib.sha256(presented.encode("utf-8", "replace")).digest()
        found = None
        for key in self.keys:  # all of them, always: no early exit
            if hmac.compare_digest(digest, key.key_sha256):
                found = key
        return found


@dataclass(frozen=True)
class ReportSettings:
    """[reports]: the report warehouse (docs/web.md, "Báo cáo")."""

    database: Path
    target_wait_min: int = 15  # the wait a ticket is "within target" for


@dataclass(frozen=True)
class ServerSettings:
    web: WebSettings
    speech: SpeechSettings
    display: DisplaySettings
    kiosk: KioskSettings = field(default_factory=KioskSettings)
    printer: PrinterSettings = field(default_factory=PrinterSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    accounts: Accounts = field(default_factory=lambda: Accounts({}))
    receipt_printers: tuple[ReceiptPrinterSettings, ...] = ()
    api_keys: ApiKeys = field(default_factory=ApiKeys)
    reports: ReportSettings | None = None  # None: beside the core's database, the default target

    def receipt_printer(self, counter: str) -> PrinterSettings | None:
        """The printer of a counter's dossier receipts, if it has one."""
        for rp in self.receipt_printers:
            if counter in rp.counters and rp.printer.enabled:
                return rp.printer
        return None


def default_server_id() -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower()).strip("-")[:40].strip("-")
    return slug or "web"


def load_server_settings(site: SiteConfig) -> ServerSettings:
    root = Table(site.path, "", site.raw)
    return ServerSettings(web=_web(site), speech=_speech(site), display=_display(site), kiosk=_kiosk(site),
                          printer=_printer(site), security=_security(site),
                          accounts=parse_accounts(root, {c.id for c in site.counters}),
                          receipt_printers=_receipt_printers(site, root), api_keys=parse_api_keys(root),
                          reports=_reports(site))


def default_reports_database(site: SiteConfig) -> Path:
    return site.storage_path.with_name(f"{site.id}-reports.sqlite3")


def _reports(site: SiteConfig) -> ReportSettings:
    t = site.section("reports")
    value = t.str("database")
    # beside the core's database by default; a cache, so no backup is needed
    database = resolve_path(site.path, value) if value else default_reports_database(site)
    section = site.raw.get("dossiers")
    dossiers = section.get("database") if isinstance(section, dict) else None
    taken = {site.storage_path.resolve(): "của lõi hàng đợi ([storage] path)",
             (resolve_path(site.path, dossiers) if isinstance(dossiers, str) and dossiers
              else site.storage_path.with_name(f"{site.id}-dossiers.sqlite3")).resolve():
                 "của dịch vụ hồ sơ ([dossiers] database)"}
    if database.resolve() in taken:
        t.fail("database", f"trùng tệp cơ sở dữ liệu {taken[database.resolve()]}.",
               "Dùng một tệp riêng, ví dụ \"data/bao-cao.sqlite3\", hoặc bỏ khóa này.")
    target = t.int("target_wait_min", 15, minimum=1, maximum=24 * 60)
    t.reject_unknown()
    return ReportSettings(database=database, target_wait_min=target)


def _web(site: SiteConfig) -> WebSettings:
    t = site.section("web")
    t.used.update({"host", "port"})  # read by qms_common.config
    server_id = t.slug("id", required=False) or default_server_id()
    public_url = t.str("public_url")
    if public_url is not None:
        public_url = public_url.rstrip("/")
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", public_url):
            t.fail("public_url", f"địa chỉ {public_url!r} không hợp lệ.",
                   "Ví dụ \"http://192.168.1.10:8080\" hoặc \"https://xephang.hoabinh.gov.vn\".")
    secret_file = web_secret_file(site)
    t.used.add("secret_file")
    catalogue = catalogue_path(site)
    t.used.add("catalogue")
    t.reject_unknown()
    return WebSettings(host=site.web_host, port=site.web_port, server_id=server_id, public_url=public_url,
                       secret_file=secret_file, catalogue=catalogue)


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
        ids=_slug_list(t, "ids"),
    )
    t.reject_unknown()
    return s


def is_slug(value: str) -> bool:
    return bool(SLUG_RE.match(value))


def _slug_list(t: Table, k: str, default: list[str] | None = None) -> tuple[str, ...]:
    values = t.str_list(k, default or [])
    for v in values:
        if not SLUG_RE.match(v):
            t.fail(k, f"mã {v!r} không hợp lệ.",
                   "Chỉ dùng chữ thường không dấu, chữ số và dấu gạch ngang, ví dụ \"kiosk-1\".")
    return tuple(dict.fromkeys(values))


def _kiosk(site: SiteConfig) -> KioskSettings:
    t = site.section("kiosk")
    ids = _slug_list(t, "ids", ["kiosk"])
    any_id = t.bool("any_id", False)
    if not ids and not any_id:
        t.fail("ids", "không ki-ốt nào được lấy số.",
               "Liệt kê các ki-ốt, ví dụ ids = [\"kiosk-1\", \"kiosk-2\"] (hoặc any_id = true).")
    s = KioskSettings(
        ids=ids,
        any_id=any_id,
        tickets_per_minute=t.int("tickets_per_minute", 10, minimum=1, maximum=600),
        site_tickets_per_minute=t.int("site_tickets_per_minute", 60, minimum=1, maximum=6000),
        dossier_lookups_per_minute=t.int("dossier_lookups_per_minute", 10, minimum=1, maximum=120),
        address_dossier_lookups_per_minute=t.int("address_dossier_lookups_per_minute", 20, minimum=1, maximum=600),
        site_dossier_lookups_per_minute=t.int("site_dossier_lookups_per_minute", 60, minimum=1, maximum=1200),
        show_s=t.float("show_s", 20.0, minimum=3.0),
        priority=t.bool("priority", True),
        idle_s=t.float("idle_s", 60.0, minimum=5.0),
        functions=_kiosk_functions(t),
    )
    t.reject_unknown()
    return s


def _kiosk_functions(t: Table) -> tuple[str, ...]:
    values = t.str_list("functions", list(KIOSK_FUNCTIONS))
    for v in values:
        if v not in KIOSK_FUNCTIONS:
            t.fail("functions", f"chức năng {v!r} không có.", f"Chọn trong: {', '.join(KIOSK_FUNCTIONS)}.")
    if not values:
        t.fail("functions", "ki-ốt cần ít nhất một chức năng.", "Ví dụ functions = [\"ticket\"] (chỉ lấy số).")
    return tuple(dict.fromkeys(values))


def _printer(site: SiteConfig) -> PrinterSettings:
    t = site.section("printer")
    s = _printer_keys(site, t, kiosks=_slug_list(t, "kiosks"))
    t.reject_unknown()
    return s


def _printer_keys(site: SiteConfig, t: Table, **more: tuple[str, ...]) -> PrinterSettings:
    """The keys of one printer ([printer], or one of [[receipt_printers]])."""
    kind = t.choice("type", PRINTER_TYPES, "none")
    width = t.int("paper_width_mm", 80)
    if width not in PAPER_WIDTH_PX:
        t.fail("paper_width_mm", f"khổ giấy {width} mm không hỗ trợ.", "Dùng 80 (576 điểm) hoặc 58 (384 điểm).")
    device = t.str("device")
    host = t.str("host")
    vendor = t.int("vendor_id", minimum=0, maximum=0xFFFF)
    product = t.int("product_id", minimum=0, maximum=0xFFFF)
    if kind in ("file", "serial") and not device:
        example = "/dev/usb/lp0" if kind == "file" else "/dev/ttyUSB0"
        t.fail("device", f"máy in kiểu {kind!r} cần đường dẫn thiết bị.", f"Ví dụ device = \"{example}\".")
    if kind == "network" and not host:
        t.fail("host", "máy in mạng cần địa chỉ.", "Ví dụ host = \"192.168.1.50\" (cổng mặc định 9100).")
    if kind == "usb" and (vendor is None or product is None):
        t.fail("vendor_id", "máy in USB cần vendor_id và product_id.",
               "Xem bằng lệnh lsusb, ví dụ vendor_id = 0x0416, product_id = 0x5011.")
    font = resolve_path(site.path, t.str("font", str(DEFAULT_FONT)))
    bold = resolve_path(site.path, t.str("font_bold", str(DEFAULT_BOLD_FONT)))
    s = PrinterSettings(
        type=kind, paper_width_mm=width, device=device, baudrate=t.int("baudrate", 9600, minimum=1200),
        host=host, port=t.int("port", 9100, minimum=1, maximum=65535), vendor_id=vendor, product_id=product,
        timeout_s=t.float("timeout_s", 5.0, minimum=0.5), check_paper=t.bool("check_paper", True),
        cut=t.bool("cut", True), font=font, font_bold=bold if bold.exists() else font, **more,
    )
    if s.enabled and not s.font.exists():
        t.fail("font", f"không có phông chữ {s.font}.",
               "Cài gói fonts-dejavu-core (apt-get install fonts-dejavu-core) hoặc chỉ tới một phông TTF có chữ Việt.")
    return s


def _receipt_printers(site: SiteConfig, root: Table) -> tuple[ReceiptPrinterSettings, ...]:
    """`[[receipt_printers]]`: each counter prints its dossier receipts on at most one."""
    out: list[ReceiptPrinterSettings] = []
    taken: dict[str, str] = {}
    counter_ids = [c.id for c in site.counters]
    for t in root.tables("receipt_printers"):
        counters = t.str_list("counters", required=True)
        if not counters:
            t.fail("counters", "danh sách quầy rỗng.",
                   "Liệt kê các quầy in biên nhận ở máy này, ví dụ counters = [\"1\"].")
        for cid in counters:
            if cid not in counter_ids:
                t.fail("counters", f"quầy {cid!r} không có trong [[counters]].",
                       f"Dùng một trong: {', '.join(counter_ids)}.")
            if cid in taken:
                t.fail("counters", f"quầy {cid!r} đã có máy in biên nhận ({taken[cid]}).",
                       "Mỗi quầy in ở một máy; xoá quầy này khỏi một trong hai mục.")
            taken[cid] = t.name
        printer = _printer_keys(site, t)
        if not printer.enabled:
            t.fail("type", "máy in biên nhận cần kiểu máy in.", f"Chọn một trong: {', '.join(PRINTER_TYPES[1:])}.")
        t.reject_unknown()
        out.append(ReceiptPrinterSettings(printer, tuple(dict.fromkeys(counters))))
    return tuple(out)


_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_KEY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_api_keys(root: Table) -> ApiKeys:
    """`[[api_keys]]`: an integrator's name and the hex SHA-256 of its key, never the key (the
    office's site file and the province's province.toml read them alike)."""
    keys: list[ApiKey] = []
    for t in root.tables("api_keys"):
        name = t.str("name", required=True)
        if not _KEY_NAME_RE.match(name):
            t.fail("name", f"tên {name!r} không hợp lệ.",
                   "Dùng 1–64 ký tự không dấu: chữ, số, dấu chấm, gạch dưới, gạch ngang; ví dụ \"motcua-tinh\".")
        if any(k.name == name for k in keys):
            t.fail("name", f"tên {name!r} bị trùng.", "Mỗi bên tích hợp một tên riêng.")
        raw = t.str("key_sha256", required=True).strip()
        if not _SHA256_RE.match(raw):
            t.fail("key_sha256", "phải là mã SHA-256 dạng hex (64 ký tự 0-9, a-f), không phải khoá.",
                   "Tạo bằng: printf %s 'KHOÁ' | sha256sum (xem docs/integration.md).")
        digest = bytes.fromhex(raw)
        if any(k.key_sha256 == digest for k in keys):
            t.fail("key_sha256", "hai mục dùng cùng một khoá.", "Mỗi bên tích hợp cần khoá riêng.")
        t.reject_unknown()
        keys.append(ApiKey(name, digest))
    return ApiKeys(tuple(keys))


def _security(site: SiteConfig) -> SecuritySettings:
    t = site.section("security")
    s = SecuritySettings(
        session_hours=t.float("session_hours", 12.0, minimum=0.01),
        login_failures=t.int("login_failures", 5, minimum=1, maximum=100),
        login_window_s=t.float("login_window_s", 300.0, minimum=1.0),
        login_address_failures=t.int("login_address_failures", 50, minimum=1, maximum=10_000),
        login_address_interval_s=t.float("login_address_interval_s", 1.0, minimum=0.0),
        cookie_secure=t.bool("cookie_secure", False),
    )
    t.reject_unknown()
    return s
