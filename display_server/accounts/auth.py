"""Logins, sessions and CSRF for the officer console and the supervisor dashboard.

Sessions live in this process (a restart of the web server signs everyone out): a random token
in an HttpOnly, SameSite=Strict cookie, and per session a CSRF token that every state-changing
request of a logged-in page must carry (header X-CSRF-Token, or the form field `csrf`). The login
form, which has no session yet, checks its own token against a cookie (double submit).

Login limits. Each attempt on a user name is counted before its password is checked (the count
is taken synchronously, before any await: parallel tries cannot all slip past it); past
`login_failures` within `login_window_s` that name's logins are refused until the window lets
them in again; a right password gives its count back. An address is never shut: an office's
officers share one NAT address, and one officer's typos (or a script) must not lock the others
out. Past `login_address_failures` wrong passwords, an address is slowed down instead: its
password checks run one at a time, at most one per `login_address_interval_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, urlencode

from aiohttp import web

from display_server.accounts.ratelimit import RateLimiter, seconds_text
from display_server.accounts.store import REPORT_READERS, Account, Accounts, Role
from display_server.api import ApiError, check_origin, json_response, read_body, same_site
from display_server.base import SETTINGS, SITE, error_page, render, texts_for
from display_server.settings import SecuritySettings
from display_server.texts import DEFAULT_LANGUAGE, Texts

log = logging.getLogger(__name__)

SESSION_COOKIE = "qms_session"
LOGIN_COOKIE = "qms_login"
CSRF_HEADER = "X-CSRF-Token"
MAX_SESSIONS = 10_000
# close code for a live page whose session ended: the page goes to the login form
WS_SESSION_ENDED = 4401


@dataclass
class Session:
    token: str
    account: Account
    csrf: str
    expires: float


class Auth:
    def __init__(self, accounts: Accounts, settings: SecuritySettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.accounts = accounts
        self.settings = settings
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self.failures = RateLimiter(settings.login_failures, settings.login_window_s, lambda: self.clock())
        self.addresses = RateLimiter(settings.login_address_failures, settings.login_window_s, lambda: self.clock())
        self._slowed: dict[str, _AddressTurns] = {}

    def create(self, account: Account) -> Session:
        now = self.clock()
        if len(self._sessions) >= MAX_SESSIONS:
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
            while len(self._sessions) >= MAX_SESSIONS:  # the oldest go first
                del self._sessions[next(iter(self._sessions))]
        s = Session(secrets.token_urlsafe(32), account, secrets.token_urlsafe(24),
                    now + self.settings.session_hours * 3600)
        self._sessions[s.token] = s
        return s

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        s = self._sessions.get(token)
        if s is None:
            return None
        if s.expires <= self.clock():
            del self._sessions[token]
            return None
        return s

    def end(self, token: str) -> None:
        self._sessions.pop(token, None)

    def reserve(self, username: str) -> float:
        """Count an attempt on this user name before its password is checked: 0 to go on, else
        the seconds until one may be tried again (nothing counted)."""
        return self.failures.take(_user_key(username))

    def succeeded(self, username: str) -> None:
        self.failures.give_back(_user_key(username))

    def failed(self, address: str) -> None:
        """A wrong password (the user name's attempt is counted already)."""
        self.addresses.hit(address)

    async def attempt(self, address: str, username: str, password: str, t: Texts) -> Account | LoginRefused:
        """One login by password, by the rules of every login form (the office's and the
        province's): empty fields refused; the user name's attempt counted before the first
        await (parallel tries cannot all pass the limit); the check in its turn for an address
        past its limit; a wrong password counted against the address. The account, or why not
        (the form's status and Vietnamese message); the caller opens the session."""
        if not username or not password:
            return LoginRefused(400, t.err_login_empty)
        wait = self.reserve(username)
        if wait > 0:
            log.warning("Từ chối đăng nhập %r từ %s: sai mật khẩu quá nhiều lần", username, address)
            return LoginRefused(429, t.err_login_limited.format(s=seconds_text(wait)))
        try:
            async with self.turn(address):
                account = await asyncio.to_thread(self.accounts.check, username, password)
        except LoginBusy as busy:
            self.succeeded(username)  # not checked: the attempt does not count
            log.warning("Đăng nhập từ %s phải chờ: quá nhiều lần thử từ địa chỉ này", address)
            return LoginRefused(429, t.err_login_busy.format(s=seconds_text(busy.retry_after)))
        if account is None:
            self.failed(address)
            log.warning("Đăng nhập sai: %r từ %s", username, address)
            return LoginRefused(401, t.err_login_wrong)
        self.succeeded(username)
        return account

    @contextlib.asynccontextmanager
    async def turn(self, address: str) -> AsyncIterator[None]:
        """Where a password check from this address runs: at once, or, for an address past its
        own limit, in turn behind the others from it (LoginBusy when too many wait already: the login
        is asked to try again in a few seconds, not locked out)."""
        if self.addresses.retry_after(address) <= 0 and address not in self._slowed:
            yield
            return
        turns = self._slowed.get(address)
        if turns is None:
            if len(self._slowed) >= MAX_SLOWED_ADDRESSES:
                self._slowed = {a: t for a, t in self._slowed.items() if t.waiting}
            turns = self._slowed[address] = _AddressTurns()
        if turns.waiting >= MAX_WAITING_PER_ADDRESS:
            raise LoginBusy(self.settings.login_address_interval_s * turns.waiting)
        turns.waiting += 1
        try:
            async with turns.lock:
                pause = turns.last + self.settings.login_address_interval_s - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)  # the slowing down itself
                try:
                    yield
                finally:
                    turns.last = time.monotonic()
        finally:
            turns.waiting -= 1
            if not turns.waiting and self.addresses.retry_after(address) <= 0:
                self._slowed.pop(address, None)


# An address past its limit: how many logins may wait for their turn, and how many such
# addresses are remembered (beyond, the idle ones are forgotten).
MAX_WAITING_PER_ADDRESS = 30
MAX_SLOWED_ADDRESSES = 1000


@dataclass
class _AddressTurns:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0
    last: float = -math.inf


@dataclass(frozen=True)
class LoginRefused:
    """A login not granted: the status and the message the login form is shown again with."""
    status: int
    message: str


class LoginBusy(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("busy")
        self.retry_after = retry_after


def _user_key(username: str) -> str:
    return username.strip().lower()


AUTH = web.AppKey("auth", Auth)


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    app[AUTH] = Auth(settings.accounts, settings.security)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/api/me", me)


# ------------------------------------------------------------ sessions of requests


def session_of(request: web.Request) -> Session | None:
    return request.app[AUTH].get(request.cookies.get(SESSION_COOKIE))


# `role` of a page: one role, or the roles that may open it (REPORT_READERS: supervisors and leaders)
Roles = Role | frozenset[Role] | None


def _allowed(request: web.Request, session: Session, role: Roles, counter: str | None) -> str | None:
    """Why this account may not be here, or None."""
    t = texts_for(request)
    account = session.account
    if isinstance(role, frozenset):
        if account.role not in role:
            return t.err_readers_only if role == REPORT_READERS else t.err_forbidden
    elif role is not None and account.role is not role:
        return t.err_supervisor_only if role is Role.SUPERVISOR else t.err_forbidden
    if counter is not None and not account.may_use_counter(counter):
        return t.err_not_your_counter
    return None


def page_session(request: web.Request, *, role: Roles = None, counter: str | None = None) -> Session:
    """The session of a page that needs a login: without one, a redirect to the login form."""
    session = session_of(request)
    if session is None:
        raise web.HTTPFound(login_url(request))
    refused = _allowed(request, session, role, counter)
    if refused is not None:
        # a way back to the account's own page, and out (to log in as someone else)
        page = render(request, "error.html", status=403, message=refused, session=session,
                      back=landing(session.account))
        raise web.HTTPForbidden(text=page.text, content_type="text/html")
    return session


def api_session(request: web.Request, *, role: Roles = None, counter: str | None = None,
                csrf: bool = True) -> Session:
    """The session of an API call: 401 without one, 403 for another's counter or a missing or
    wrong CSRF token (checked on every state-changing call)."""
    t = texts_for(request)
    session = session_of(request)
    if session is None:
        raise ApiError(401, "unauthorized", t.err_login_needed)
    refused = _allowed(request, session, role, counter)
    if refused is not None:
        raise ApiError(403, "forbidden", refused)
    if csrf:
        check_origin(request)
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise ApiError(403, "csrf", t.err_csrf)
    return session


def socket_session(request: web.Request, *, role: Roles = None, counter: str | None = None) -> Session:
    """The session of a live page's WebSocket (a browser cannot add headers there: the SameSite
    cookie and the Origin check stand in for the CSRF token)."""
    session = session_of(request)
    if session is None:
        raise web.HTTPUnauthorized(text=texts_for(request).err_login_needed)
    if _allowed(request, session, role, counter) is not None:
        raise web.HTTPForbidden(text=texts_for(request).err_forbidden)
    if not same_site(request):
        raise web.HTTPForbidden(text=texts_for(request).err_origin)
    return session


def login_url(request: web.Request) -> str:
    return "/login?next=" + quote(request.path_qs, safe="")


# A path of this server, as a browser sends it (percent-encoded): "/" then printable ASCII, never
# "//" (another host), a backslash (browsers read it as "/"), a space or a control character
# (browsers drop tabs and newlines: "/\t/evil.example" becomes "//evil.example").
_LOCAL_PATH_RE = re.compile(r"/(?![/\\])[!-\[\]-~]*")


def _safe_next(value: str | None) -> str | None:
    """Only a path of this server: never another site (an open redirect)."""
    if not value or not _LOCAL_PATH_RE.fullmatch(value):
        return None
    return value


def landing(account: Account) -> str:
    if account.role is Role.SUPERVISOR:
        return "/supervisor"
    if account.role is Role.LEADER:
        return "/reports"
    if account.counters is not None and len(account.counters) == 1:
        return f"/counter/{account.counters[0]}"
    return "/counter"


# ------------------------------------------------------------ routes


async def login_form(request: web.Request, *, status: int = 200, message: str | None = None,
                     username: str = "", nxt: str | None = None) -> web.Response:
    """The form; after a failed login, with the page it was for (`nxt`) and its language kept."""
    t = texts_for(request)
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    nxt = _safe_next(request.query.get("next") if nxt is None else nxt) or ""
    # next and lang in the form's address too: the page after a failure switches language and keeps both
    query = {"next": nxt} if nxt else {}
    if t.lang != DEFAULT_LANGUAGE:
        query["lang"] = t.lang
    action = "/login" + ("?" + urlencode(query) if query else "")
    resp = render(request, "login.html", status=status, csrf=token, next=nxt, message=message, action=action,
                  username=username, accounts=len(request.app[AUTH].accounts) > 0)
    resp.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict", path="/login",
                    secure=request.app[SETTINGS].security.cookie_secure)
    return resp


async def form_fields(request: web.Request) -> dict[str, str]:
    t = texts_for(request)
    if request.content_type != "application/x-www-form-urlencoded":
        raise ApiError(415, "bad_request", t.err_content_type)
    body = await read_body(request)
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "bad_request", t.err_form) from None
    return {k: v[0] for k, v in fields.items()}


async def session_form(request: web.Request, session: Session) -> dict[str, str]:
    """The fields of a form this session's own page posted; ApiError for another origin, a bad
    form or a wrong CSRF token."""
    check_origin(request)
    form = await form_fields(request)
    if not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
        raise ApiError(403, "forbidden", texts_for(request).err_csrf)
    return form


async def login(request: web.Request) -> web.Response:
    t = texts_for(request)
    auth = request.app[AUTH]
    try:
        check_origin(request)
        form = await form_fields(request)
    except ApiError as exc:
        return await login_form(request, status=exc.status, message=exc.message)
    nxt = form.get("next") or request.query.get("next") or ""
    username = form.get("username", "")[:64]
    password = form.get("password", "")[:256]
    sent = form.get("csrf", "")
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
        return await login_form(request, status=403, message=t.err_login_form_expired, username=username, nxt=nxt)
    address = request.remote or "?"
    account = await auth.attempt(address, username, password, t)
    if isinstance(account, LoginRefused):
        return await login_form(request, status=account.status, message=account.message, username=username,
                                nxt=nxt)
    session = auth.create(account)
    log.info("Đăng nhập: %s (%s) từ %s", account.username, account.role, address)
    target = _safe_next(nxt) or landing(account)
    resp = web.HTTPSeeOther(target)
    resp.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="Strict", path="/",
                    secure=request.app[SETTINGS].security.cookie_secure,
                    max_age=int(auth.settings.session_hours * 3600))
    resp.del_cookie(LOGIN_COOKIE, path="/login")
    raise resp


async def logout(request: web.Request) -> web.Response:
    session = session_of(request)
    if session is not None:
        try:
            await session_form(request, session)
        except ApiError as exc:
            return error_page(request, exc.status, exc.message)
        request.app[AUTH].end(session.token)
        log.info("Đăng xuất: %s", session.account.username)
    resp = web.HTTPSeeOther("/login")
    resp.del_cookie(SESSION_COOKIE, path="/")
    raise resp


async def me(request: web.Request) -> web.Response:
    session = api_session(request, csrf=False)
    a = session.account
    return json_response({"ok": True, "username": a.username, "name": a.name, "role": str(a.role),
                          "counters": [c.id for c in request.app[SITE].counters if a.may_use_counter(c.id)]})
