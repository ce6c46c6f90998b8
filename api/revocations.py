"""Revocations made through any api instance reach this one's key cache within ``every`` seconds.

Why a poll of ``virtual_keys.revoked_at`` and not a shorter cache TTL: one query per instance
every quarter second costs the same whatever the number of keys, where a TTL that short would
cost a query per key and instance as often; the cache keeps its TTL for edits, and as the bound
if this poll ever stalls. The revocation time is the mark: no new table, and a revoke stays a
single ``UPDATE``.

A revocation is looked for over the last ``horizon`` seconds rather than since the last poll,
so a revoke whose clock (another instance's) lags this one's is still seen; each key is dropped
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from api.auth import KeyCache
from db.models import VirtualKey, utcnow

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
HORIZON_SECONDS = 60.0


class RevocationWatch:
    """Polls for recent revocations and drops those keys from ``cache``; an async context."""

    def __init__(
        self,
        engine: Engine,
        cache: KeyCache,
        *,
        every: float = POLL_SECONDS,
        horizon: float = HORIZON_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.cache = cache
        self.every = every
        self.horizon = timedelta(seconds=horizon)
        self.clock = clock
        self._seen: dict[str, datetime] = {}
        self._task: asyncio.Task[None] | None = None

    def recent(self) -> list[tuple[str, datetime]]:
        """Keys revoked within the horizon, with when (blocking)."""
        since = self.clock() - self.horizon
        with Session(self.engine) as session:
            statement = select(VirtualKey.id, VirtualKey.revoked_at).where(
                col(VirtualKey.revoked_at) >= since
            )
            return [(key_id, at) for key_id, at in session.exec(statement) if at is not None]

    async def poll(self) -> list[str]:
        """One look: drop every newly revoked key from the cache; their ids."""
        recent = await asyncio.to_thread(self.recent)
        fresh = [key_id for key_id, _ in recent if key_id not in self._seen]
        for key_id in fresh:
            self.cache.invalidate(key_id)
        self._seen = dict(recent)  # what left the horizon is forgotten; it stays revoked
        return fresh

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except SQLAlchemyError:
                log.warning("could not look for revoked keys", exc_info=True)
            await asyncio.sleep(self.every)

    async def __aenter__(self) -> RevocationWatch:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
