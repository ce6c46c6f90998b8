"""Who may call: the admin bearer token and the virtual keys of ``/v1`` calls.

Why a cache: every model call authenticates, and the hot path should not wait on the database
each time. Entries live ``ttl`` seconds (so an edit made through another api process lands
within that bound), a revoke through this process drops them at once (effective on the next
call), and ``api.revocations`` drops a key revoked through another process within a fraction of
a second. A load that overlaps a drop is not cached, so it cannot bring a revoked key back.

Unknown secrets are remembered as unknown for ``unknown_ttl`` seconds, in at most
``unknown_size`` entries (the oldest forgotten first): a client repeating a bad key costs no
database lookup each time, and cannot grow the cache. A secret never becomes valid later (a new
key gets a new random secret; a revoke is final), so remembering it costs nothing in freshness.
At most ``LOOKUPS_AT_ONCE`` lookups run at once, so a flood of random keys holds a few of the
pool's connections, not all of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import Engine
from sqlmodel import Session, select
from starlette.requests import HTTPConnection

from api.errors import AuthError, GatewayError
from api.settings import Settings
from db.models import VirtualKey
from workflows.contracts import PeriodBudget, PeriodKind

KEY_PREFIX = "rc-"
MAX_SECRET_LENGTH = 200
_MAX_CACHED = 10_000
LOOKUPS_AT_ONCE = 4


def new_secret() -> str:
    """A fresh virtual-key secret: ``rc-`` and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The sha256 hex digest stored instead of the secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyPolicy:
    """A key's policy, detached from the database so it can be cached and shared."""

    id: str
    name: str
    budget_per_run_micros: int | None
    budget_per_day_micros: int | None
    budget_per_month_micros: int | None
    budget_total_micros: int | None
    timezone: str
    max_parallel: int
    rpm: int
    tpm: int
    models: tuple[str, ...]
    tags: tuple[str, ...]
    loop_max_repeats: int = 0
    loop_window_seconds: int = 300
    max_open_runs: int = 100
    run_by: tuple[str, ...] = ("task", "session")
    subagent_share_ppm: int | None = None
    hold_at_cap: bool = False

    def allows(self, model: str) -> bool:
        """An empty model list allows every model."""
        return not self.models or model in self.models

    @property
    def budget_micros(self) -> int:
        """The cap of one run: the per-run budget, else the key's largest budget (its periods
        and total bound its runs more tightly anyway; a run's cap must be a number)."""
        if self.budget_per_run_micros is not None:
            return self.budget_per_run_micros
        caps = [c for c in (b.cap_micros for b in self.periods()) if c]
        return max(caps, default=0)

    def periods(self) -> list[PeriodBudget]:
        """The key's day, month and total caps: each call needs room at each of them."""
        caps: list[tuple[PeriodKind, int | None]] = [
            ("day", self.budget_per_day_micros),
            ("month", self.budget_per_month_micros),
            ("total", self.budget_total_micros),
        ]
        return [PeriodBudget(kind, cap, self.timezone) for kind, cap in caps if cap]

    @classmethod
    def of(cls, key: VirtualKey) -> KeyPolicy:
        return cls(
            id=key.id,
            name=key.name,
            budget_per_run_micros=key.budget_per_run_micros,
            budget_per_day_micros=key.budget_per_day_micros,
            budget_per_month_micros=key.budget_per_month_micros,
            budget_total_micros=key.budget_total_micros,
            timezone=key.timezone,
            max_parallel=key.max_parallel,
            rpm=key.rpm,
            tpm=key.tpm,
            models=tuple(key.models),
            tags=tuple(key.tags),
            loop_max_repeats=key.loop_max_repeats,
            loop_window_seconds=key.loop_window_seconds,
            max_open_runs=key.max_open_runs,
            run_by=tuple(key.run_by),
            subagent_share_ppm=key.subagent_share_ppm,
            hold_at_cap=key.hold_at_cap,
        )


class KeyCache:
    """Looks keys up by secret hash, caching active keys for ``ttl`` seconds and unknown ones
    for ``unknown_ttl``."""

    def __init__(
        self,
        engine: Engine,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        unknown_ttl: float = 10.0,
        unknown_size: int = 10_000,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.clock = clock
        self.unknown_ttl = unknown_ttl
        self.unknown_size = unknown_size
        self._entries: dict[str, tuple[KeyPolicy, float]] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._lookups = asyncio.Semaphore(LOOKUPS_AT_ONCE)
        self._drops = 0
        """How many drops so far: a load that saw the count change meanwhile is not kept."""

    def load(self, key_hash: str) -> KeyPolicy | None:
        """The active key with this hash, straight from the database (blocking)."""
        with Session(self.engine) as session:
            key = session.exec(select(VirtualKey).where(VirtualKey.key_hash == key_hash)).first()
            if key is None or key.revoked_at is not None:
                return None
            return KeyPolicy.of(key)

    async def lookup(self, secret: str) -> KeyPolicy:
        """The active key of ``secret``; unknown or revoked raises ``AuthError``."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
            raise AuthError("invalid api key: runcap keys start with rc-")
        key_hash = hash_secret(secret)
        now = self.clock()
        hit = self._entries.get(key_hash)
        if hit is not None and hit[1] > now:
            return hit[0]
        if self._known_unknown(key_hash, now):
            raise AuthError("invalid api key: unknown or revoked")
        drops = self._drops
        async with self._lookups:
            policy = await asyncio.to_thread(self.load, key_hash)
        if policy is None:
            self._entries.pop(key_hash, None)
            self._unknown[key_hash] = now + self.unknown_ttl
            self._unknown.move_to_end(key_hash)
            while len(self._unknown) > self.unknown_size:
                self._unknown.popitem(last=False)
            raise AuthError("invalid api key: unknown or revoked")
        if drops == self._drops:
            if len(self._entries) >= _MAX_CACHED:
                self._entries.clear()
            self._entries[key_hash] = (policy, now + self.ttl)
        return policy

    def _known_unknown(self, key_hash: str, now: float) -> bool:
        until = self._unknown.get(key_hash)
        if until is None:
            return False
        if until <= now:
            del self._unknown[key_hash]
            return False
        return True

    def invalidate(self, key_id: str | None = None) -> None:
        """Forget one key (after a revoke or an update) or every key."""
        self._drops += 1
        if key_id is None:
            self._entries.clear()
            return
        for key_hash, (policy, _) in list(self._entries.items()):
            if policy.id == key_id:
                self._entries.pop(key_hash, None)


def bearer_token(request: HTTPConnection) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def request_secret(request: HTTPConnection) -> str:
    """The virtual key of a ``/v1`` call: ``Authorization: Bearer`` (OpenAI) or ``x-api-key``."""
    secret = bearer_token(request) or request.headers.get("x-api-key", "").strip()
    if not secret:
        raise AuthError(
            "missing api key: send Authorization: Bearer rc-... or x-api-key: rc-...",
            code="missing_api_key",
        )
    return secret


async def authenticate_key(request: Request) -> KeyPolicy:
    """Dependency of ``/v1`` routes: the caller's active virtual key."""
    cache: KeyCache = request.app.state.key_cache
    return await cache.lookup(request_secret(request))


def require_admin(request: Request) -> None:
    """Dependency of ``/admin`` routes: ``Authorization: Bearer $RUNCAP_ADMIN_KEY``."""
    settings: Settings = request.app.state.settings
    if settings.admin_key is None or not settings.admin_key.get_secret_value():
        raise GatewayError(
            "admin disabled: set RUNCAP_ADMIN_KEY to enable /admin",
            status=503,
            code="admin_disabled",
        )
    token = bearer_token(request)
    if token is None:
        raise AuthError("missing admin key: send Authorization: Bearer <RUNCAP_ADMIN_KEY>")
    expected = settings.admin_key.get_secret_value().encode("utf-8")
    if not hmac.compare_digest(token.encode("utf-8"), expected):
        raise AuthError("invalid admin key")
