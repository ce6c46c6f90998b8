"""Dashboard sessions: a signed, expiring token in an HttpOnly, SameSite=Strict cookie, and a
per-session CSRF token derived from it.

Why signed tokens and not the admin key in the cookie: a cookie leaks more easily than a
header (logs, a shared browser profile), and a leaked session token dies at its expiry or
sign-out, while a leaked admin key is good until it is rotated. The signing key is derived from
the admin key, so rotating the admin key also signs every dashboard session out.
Why a CSRF token on top of SameSite=Strict: defence in depth for browsers that ignore SameSite,
and the login form gets one too (from a signed-out session), so a third-party page cannot sign
a victim in to an attacker's session.
Signed-out sessions are kept where every api process sees them (``api.ui.signed_out``), else
one signed out through one instance would still open pages on the others. Tokens are compared
as bytes: a cookie or header with non-ASCII characters is simply not a session (it was a 500).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

COOKIE = "runcap_session"
COOKIE_PATH = "/ui"
SIGNED_IN_SECONDS = 12 * 3600
SIGNED_OUT_SECONDS = 3600
_MAX_TOKEN = 512


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class UiSession:
    """One browser's session: its id, whether it is signed in, and when it ends."""

    sid: str
    admin: bool
    expires: int


class SignedOut(Protocol):
    """Sessions signed out before they expired."""

    def add(self, sid: str, expires: int) -> None:
        """Refuse session ``sid`` until ``expires`` (unix seconds)."""
        ...

    def __contains__(self, sid: object) -> bool: ...


class SignedOutHere:
    """Signed-out sessions of this process alone (a signer on its own, as in unit tests)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._until: dict[str, int] = {}

    def add(self, sid: str, expires: int) -> None:
        now = self._clock()
        for old, until in list(self._until.items()):
            if until <= now:
                del self._until[old]
        self._until[sid] = expires

    def __contains__(self, sid: object) -> bool:
        return sid in self._until


class SessionSigner:
    """Makes and checks session tokens and CSRF tokens; refuses signed-out sessions."""

    def __init__(
        self,
        admin_key: str,
        clock: Callable[[], float] = time.time,
        signed_out: SignedOut | None = None,
    ) -> None:
        self._key = hmac.new(admin_key.encode(), b"runcap-ui-session-v1", hashlib.sha256).digest()
        self._clock = clock
        self._signed_out = signed_out if signed_out is not None else SignedOutHere(clock)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def new(self, *, admin: bool) -> tuple[UiSession, str]:
        """A fresh session (a new id on every sign-in: no fixation) and its cookie value."""
        ttl = SIGNED_IN_SECONDS if admin else SIGNED_OUT_SECONDS
        session = UiSession(secrets.token_urlsafe(18), admin, int(self._clock()) + ttl)
        body = json.dumps({"sid": session.sid, "adm": admin, "exp": session.expires})
        payload = _b64(body.encode())
        return session, f"{payload}.{self._sign(payload)}"

    def read(self, token: str | None) -> UiSession | None:
        """The session of a cookie value, or ``None`` if forged, expired or signed out."""
        if not token or len(token) > _MAX_TOKEN or token.count(".") != 1:
            return None
        payload, signature = token.split(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        try:
            data = json.loads(_unb64(payload))
            session = UiSession(str(data["sid"]), data["adm"] is True, int(data["exp"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires <= self._clock() or session.sid in self._signed_out:
            return None
        return session

    def csrf_token(self, session: UiSession) -> str:
        """The session's CSRF token: every form carries it, every POST must match it."""
        return self._sign("csrf:" + session.sid)

    def csrf_ok(self, session: UiSession, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(
            token.encode(), self.csrf_token(session).encode()
        )

    def sign_out(self, session: UiSession) -> None:
        """Refuse this session from now until it would have expired anyway (blocking: the
        shared list is in the database)."""
        self._signed_out.add(session.sid, session.expires)

    def admin_key_ok(self, candidate: str, admin_key: str) -> bool:
        """A constant-time comparison of a typed key with the admin key."""
        return hmac.compare_digest(candidate.encode(), admin_key.encode())
