"""Logins, sessions and CSRF for the officer console and the supervisor dashboard.

Sessions live in this process (a restart of the web server signs everyone out): a random token
in an HttpOnly, SameSite=Strict cookie, and per session a CSRF token that every state-changing
request of a logged-in page must carry (header X-CSRF-Token, or the form field `csrf`). The login
form, which has no session yet, checks its own token against a cookie (double submit). Wrong
passwords are counted per user name and per address; past `login_failures` within
`login_window_s`, logins are refused until the window lets them in again.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlencode

from aiohttp import web

from display_server.accounts import Account, Accounts, Role
from display_server.api import ApiError, check_origin, json_response, read_body, same_site
from display_server.base import SETTINGS, SITE, error_page, render, texts_for
from display_server.ratelimit import RateLimiter, seconds_text
from display_server.settings import SecuritySettings
from display_server.texts import DEFAULT_LANGUAGE

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

    def refused_for(self, username: str, address: str) -> float:
        """Seconds until a login may be tried again (0: now)."""
        return max(self.failures.retry_after(f"user:{username.strip().lower()}"),
                   self.failures.retry_after(f"addr:{address}"))

    def failed(self, username: str, address: str) -> None:
        self.failures.hit(f"user:{username.strip().lower()}")
        self.failures.hit(f"addr:{address}")


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


def _allowed(request: web.Request, session: Session, role: Role | None, counter: str | None) -> str | None:
    """Why this account may not be here, or None."""
    t = texts_for(request)
    account = session.account
    if role is Role.SUPERVISOR and account.role is not Role.SUPERVISOR:
        return t.err_supervisor_only
    if counter is not None and not account.may_use_counter(counter):
        return t.err_not_your_counter
    return None


def page_session(request: web.Request, *, role: Role | None = None, counter: str | None = None) -> Session:
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


def api_session(request: web.Request, *, role: Role | None = None, counter: str | None = None,
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


def socket_session(request: web.Request, *, role: Role | None = None, counter: str | None = None) -> Session:
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


def _safe_next(value: str | None) -> str | None:
    """Only a path of this server: never another site (an open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    return value


def landing(account: Account) -> str:
    if account.role is Role.SUPERVISOR:
        return "/supervisor"
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


async def _form(request: web.Request) -> dict[str, str]:
    t = texts_for(request)
    if request.content_type != "application/x-www-form-urlencoded":
        raise ApiError(415, "bad_request", t.err_content_type)
    body = await read_body(request)
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "bad_request", t.err_form) from None
    return {k: v[0] for k, v in fields.items()}


async def login(request: web.Request) -> web.Response:
    t = texts_for(request)
    auth = request.app[AUTH]
    try:
        check_origin(request)
        form = await _form(request)
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
    wait = auth.refused_for(username, address)
    if wait > 0:
        log.warning("Từ chối đăng nhập %r từ %s: sai mật khẩu quá nhiều lần", username, address)
        return await login_form(request, status=429, username=username, nxt=nxt,
                                message=t.err_login_limited.format(s=seconds_text(wait)))
    if not username or not password:
        return await login_form(request, status=400, message=t.err_login_empty, username=username, nxt=nxt)
    account = await asyncio.to_thread(auth.accounts.check, username, password)
    if account is None:
        auth.failed(username, address)
        log.warning("Đăng nhập sai: %r từ %s", username, address)
        return await login_form(request, status=401, message=t.err_login_wrong, username=username, nxt=nxt)
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
    t = texts_for(request)
    session = session_of(request)
    if session is not None:
        try:
            check_origin(request)
            form = await _form(request)
        except ApiError as exc:
            return error_page(request, exc.status, exc.message)
        if not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
            return error_page(request, 403, t.err_csrf)
        request.app[AUTH].end(session.token)
        log.info("Đăng xuất: %s", session.account.username)
    resp = web.HTTPSeeOther("/login")
    resp.del_cookie(SESSION_COOKIE, path="/")
    raise resp


async def me(request: web.Request) -> web.Response:
    session = api_session(request, csrf=False)
    a = session.account
    return json_response({"ok": True, "username": a.username, "name": a.name, "role": str(a.role),
                          "counters": list(a.counters) if a.counters is not None else
                          [c.id for c in request.app[SITE].counters]})
