"""The web server's own secret, and what it signs: the tracking pages' tokens (a ticket id alone is
guessable: day, field, number) and the rating tablets' device cookies. The notifier reads the
same secret to put a ticket's tracking link in its messages.

The secret is 32 random bytes in a file only the server's user may read (mode 0600), made on the
first start and kept across restarts, so printed tickets and paired tablets stay valid. Nothing
else is stored: a token is the HMAC-SHA256 of what it names, checked by computing it again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path
from urllib.parse import quote

from qms_common.config import SiteConfig
from qms_common.tomlconf import resolve_path

log = logging.getLogger(__name__)

TRACKING = "track"  # the signer's purpose for tracking tokens
BOOKING = "booking"  # ... and for a booking's own page (see, cancel, move)
DOSSIER = "dossier"  # ... and for a dossier's page (the receipt's QR code): codes are guessable
SECRET_BYTES = 32
# 96 bits: far beyond guessing over HTTP, short enough for a small QR code
TOKEN_CHARS = 16


def load_secret(path: Path) -> bytes:
    """The secret in `path`, made (0600) if there is none yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    secret = secrets.token_bytes(SECRET_BYTES)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secret.hex() + "\n")
    log.info("Đã tạo tệp bí mật %s", path)
    return secret


def _read_secret(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("Tệp bí mật %s đọc được bởi người khác (quyền %o): đặt lại 0600", path, mode)
        path.chmod(0o600)
    secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    if len(secret) < SECRET_BYTES:
        raise ValueError(f"{path}: bí mật quá ngắn; xoá tệp để tạo lại")
    return secret


class Signer:
    """Tokens for values, one family per purpose (a tracking token is never a device cookie)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def token(self, purpose: str, value: str) -> str:
        mac = hmac.new(self._secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii")[:TOKEN_CHARS]

    def check(self, purpose: str, value: str, token: str) -> bool:
        return hmac.compare_digest(self.token(purpose, value).encode(), token.encode("utf-8", "replace"))

    def sign(self, purpose: str, value: str) -> str:
        """`value.token`: a value that carries its own proof (a cookie)."""
        return f"{value}.{self.token(purpose, value)}"

    def unsign(self, purpose: str, signed: str | None) -> str | None:
        """The value of a sign()ed string, or None if it was not made here."""
        if not signed or "." not in signed:
            return None
        value, _, token = signed.rpartition(".")
        return value if self.check(purpose, value, token) else None


def web_secret_file(site: SiteConfig) -> Path:
    """Where the web server keeps its secret: `[web] secret_file`, else beside the database."""
    # next to the site's data by default: kept with it, and as private
    value = site.section("web").str("secret_file")
    return resolve_path(site.path, value) if value else site.storage_path.with_name(f"{site.id}-web.secret")


def tracking_path(signer: Signer, ticket_id: str) -> str:
    """A ticket's own page, /t/{id}/{token}: only who holds its slip (or its message) opens it."""
    return f"/t/{quote(ticket_id)}/{signer.token(TRACKING, ticket_id)}"


def booking_path(signer: Signer, code: str) -> str:
    """A booking's own page, /dat-lich/{code}/{token}: who holds the message or the QR manages it."""
    return f"/dat-lich/{quote(code)}/{signer.token(BOOKING, code)}"


def dossier_path(signer: Signer, code: str) -> str:
    """A dossier's own page, /hs/{code}?k={token}: who holds the receipt (or its message) opens it;
    a dossier code alone (often sequential) does not."""
    return f"/hs/{quote(code)}?k={signer.token(DOSSIER, code)}"
