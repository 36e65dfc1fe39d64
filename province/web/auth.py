"""Logins of the province dashboard, and who may read the JSON API.

Sessions, login limits and the slowing down of an address that guesses are the office web
server's (display_server.accounts.auth.Auth), reused as they are: a session cookie (HttpOnly,
SameSite=Strict) per login, a CSRF token per session for the logout form, a double-submit token
for the login form, and per user name at most `login_failures` wrong passwords per window. The
accounts are province.toml's `[[accounts]]` with the office's scrypt hashes (verify_password).

The API (`/api/v1/...`) answers a loopback peer without a session (a script on the server
itself), anyone else with a province session or `Authorization: Bearer <key>` whose SHA-256 is in
`[[api_keys]]`. The peer is the TCP peer (display_server.api.local_request): X-Forwarded-For is
never trusted to make a request local, since anyone can send it, and a loopback request that a
proxy forwarded (it carries such a header) is not local either: its client is elsewhere.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs, quote, urlsplit

from aiohttp import web

from display_server.accounts.auth import Auth, LoginRefused, Session
from display_server.accounts.ratelimit import RateLimiter, seconds_text
from display_server.accounts.store import (
    Accounts,
    HashFormatError,
    ParsedHash,
    hash_password,
    parse_hash,
    verify_password,
)
from display_server.api import local_request
from display_server.settings import SecuritySettings
from display_server.texts import Texts
from province.settings import ProvinceSettings
from province.web.base import SETTINGS, render
from qms_common.tomlconf import ConfigError

log = logging.getLogger("province.web")

SESSION_COOKIE = "qms_tinh_session"
LOGIN_COOKIE = "qms_tinh_login"
LOGIN_PATH = "/dang-nhap"
LOGOUT_PATH = "/dang-xuat"
MAX_FORM_BYTES = 4096
VI = Texts("vi")


@dataclass(frozen=True)
class ProvinceUser:
    username: str
    role: str


class ProvinceAccounts:
    """province.toml's `[[accounts]]`, checked as the office checks its own (what Auth needs:
    check() and len())."""

    def __init__(self, settings: ProvinceSettings) -> None:
        self.by_name: dict[str, tuple[ProvinceUser, ParsedHash]] = {}
        for i, a in enumerate(settings.accounts, start=1):
            try:
                parsed = parse_hash(a.password_hash)
            except HashFormatError as exc:
                raise ConfigError(settings.path, f"accounts[{i}].password_hash",
                                  f"mã băm mật khẩu không hợp lệ ({exc}).",
                                  "Tạo mã băm bằng lệnh: qms-web hash-password") from None
            self.by_name[a.username.strip().lower()] = (ProvinceUser(a.username, a.role), parsed)
        # checked for an unknown name, so a wrong name costs as long as a wrong password
        self._dummy = parse_hash(hash_password(secrets.token_urlsafe(12)))

    def check(self, username: str, password: str) -> ProvinceUser | None:
        """The account if the password is right. Slow (scrypt): call it in a thread."""
        found = self.by_name.get(username.strip().lower())
        ok = verify_password(password, found[1] if found else self._dummy)
        return found[0] if ok and found is not None else None

    def __len__(self) -> int:
        return len(self.by_name)


AUTH = web.AppKey("province_auth", Auth)
KEY_FAILURES = web.AppKey("province_key_failures", RateLimiter)


def setup(app: web.Application, settings: ProvinceSettings, security: SecuritySettings) -> None:
    app[AUTH] = Auth(cast(Accounts, ProvinceAccounts(settings)), security)
    # wrong API keys per address: a key cannot be guessed at the speed of the network
    app[KEY_FAILURES] = RateLimiter(security.login_address_failures, security.login_window_s)
    app.router.add_get(LOGIN_PATH, login_form)
    app.router.add_post(LOGIN_PATH, login)
    app.router.add_post(LOGOUT_PATH, logout)


def session_of(request: web.Request) -> Session | None:
    return request.app[AUTH].get(request.cookies.get(SESSION_COOKIE))


def page_session(request: web.Request) -> Session:
    """A page's session; without one, a redirect to the login form (and back here after it)."""
    session = session_of(request)
    if session is None:
        raise web.HTTPFound(LOGIN_PATH + "?next=" + quote(request.path_qs, safe=""))
    return session


class ApiDenied(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def api_access(request: web.Request) -> str:
    """Who reads the API: "loopback", "session:{user}" or "key:{name}"; ApiDenied otherwise."""
    if local_request(request):
        return "loopback"
    session = session_of(request)
    if session is not None:
        return f"session:{session.account.username}"
    address = request.remote or "?"
    limiter = request.app[KEY_FAILURES]
    wait = limiter.retry_after(address)
    if wait > 0:
        raise ApiDenied(429, f"Sai khoá API quá nhiều lần. Vui lòng thử lại sau {seconds_text(wait)} giây.",
                        seconds_text(wait))
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    key = None
    if scheme.lower() == "bearer" and presented.strip() and len(presented) <= 512:
        key = request.app[SETTINGS].api_keys.find(presented.strip())
    if key is None:
        if scheme:
            limiter.hit(address)
        log.warning("API tỉnh: không có phiên đăng nhập hay khoá hợp lệ từ %s", address)
        raise ApiDenied(401, "Cần đăng nhập tài khoản cấp tỉnh hoặc khoá API hợp lệ "
                             "(tiêu đề Authorization: Bearer <khoá>).")
    return f"key:{key.name}"


# ------------------------------------------------------------ the forms

# a path of this server only (never "//host" or a backslash): where to go after logging in
_LOCAL_PATH_RE = re.compile(r"/(?![/\\])[!-\[\]-~]*")


def _safe_next(value: str | None) -> str:
    return value if value and _LOCAL_PATH_RE.fullmatch(value) else "/"


def same_origin(request: web.Request) -> bool:
    """A form posted from one of our pages (programs that send no Origin are no browser riding a
    session)."""
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


async def _form(request: web.Request) -> dict[str, str] | None:
    if request.content_type != "application/x-www-form-urlencoded":
        return None
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        return None
    body = await request.content.read(MAX_FORM_BYTES + 1)
    if len(body) > MAX_FORM_BYTES:
        return None
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return None
    return {k: v[0] for k, v in fields.items()}


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    return render(request, template, status=status, **context)


async def login_form(request: web.Request, *, status: int = 200, message: str | None = None,
                     username: str = "", nxt: str | None = None) -> web.Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    resp = _render(request, "login.html", status, csrf=token, message=message, username=username,
                   next=_safe_next(request.query.get("next") if nxt is None else nxt))
    resp.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict", path=LOGIN_PATH,
                    secure=request.app[AUTH].settings.cookie_secure)
    return resp


async def login(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    form = await _form(request) if same_origin(request) else None
    if form is None:
        return await login_form(request, status=400, message="Biểu mẫu đăng nhập không hợp lệ. Vui lòng thử lại.")
    nxt = form.get("next", "")
    username = form.get("username", "")[:64]
    password = form.get("password", "")[:256]
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(form.get("csrf", "").encode(), cookie.encode()):
        return await login_form(request, status=403, message=VI.err_login_form_expired, username=username, nxt=nxt)
    address = request.remote or "?"
    user = await auth.attempt(address, username, password, VI)
    if isinstance(user, LoginRefused):
        return await login_form(request, status=user.status, message=user.message, username=username, nxt=nxt)
    session = auth.create(user)
    log.info("Đăng nhập bảng điều khiển tỉnh: %s từ %s", user.username, address)
    resp = web.HTTPSeeOther(_safe_next(nxt))
    resp.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="Strict", path="/",
                    secure=auth.settings.cookie_secure, max_age=int(auth.settings.session_hours * 3600))
    resp.del_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    raise resp


async def logout(request: web.Request) -> web.Response:
    session = session_of(request)
    if session is not None:
        form = await _form(request) if same_origin(request) else None
        if form is None or not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
            return _render(request, "error.html", 403, message=VI.err_csrf)
        request.app[AUTH].end(session.token)
        log.info("Đăng xuất: %s", session.account.username)
    resp = web.HTTPSeeOther(LOGIN_PATH)
    resp.del_cookie(SESSION_COOKIE, path="/")
    raise resp
