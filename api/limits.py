"""A model call's admission against its key's rate limits, behind one small interface.

``CallLimiter.take`` admits a call or raises ``RateLimited`` (429 with ``Retry-After``); the
``Permit`` it returns holds the call's parallel slot until ``release`` (which never blocks: a
stream's slot is released from its task's done callback) or ``end`` (which waits until the slot
is given back, so the caller's next call cannot find it still taken).

``SharedLimiter`` is the api's: the counts live in the database every instance shares, so N
instances still give the configured limit (``db.limits`` says how, and why not a workflow).
``api.ratelimit.RateLimiter`` counts in one process only: the baseline of ``bench/limits.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from api.errors import RateLimited
from api.settings import Settings
from db.engine import make_engine
from db.limits import SLOT_LEASE_SECONDS, Limits, LimitStore, Refusal

log = logging.getLogger(__name__)

__all__ = ["CallLimiter", "Limits", "Permit", "SharedLimiter", "shared_limiter"]

RENEW_SECONDS = 5.0
SWEEP_SECONDS = 60.0
GIVE_BACK_ATTEMPTS = 3

LIMITER_POOL_SIZE = 4
"""The limiter's own pool (overflow twice that); docker-compose.yml's max_connections counts it."""


class Permit:
    """An admitted call; this base holds nothing (the key has no parallel limit)."""

    def release(self) -> None:
        """Give the call's slot back, in the background; idempotent."""

    async def end(self) -> None:
        """Give the call's slot back and wait until it is; idempotent."""
        self.release()


NO_SLOT = Permit()


class CallLimiter(Protocol):
    """What the call path needs of a limiter."""

    async def take(self, key_id: str, limits: Limits, tokens: int) -> Permit:
        """Admit one call of ``key_id`` costing ``tokens`` of its tpm, or raise ``RateLimited``."""
        ...


class _SlotPermit(Permit):
    def __init__(self, limiter: SharedLimiter, slot: str) -> None:
        self._limiter, self._slot = limiter, slot
        self._released: asyncio.Task[None] | None = None

    def release(self) -> None:
        if self._released is None:
            self._released = self._limiter.give_back(self._slot)

    async def end(self) -> None:
        self.release()
        assert self._released is not None
        await asyncio.shield(self._released)


class SharedLimiter:
    """Admission against the database's shared counts, and this instance's slot leases.

    Use as an async context manager: inside, a task renews the leases of the slots this
    instance holds every ``renew_every`` seconds and sweeps expired rows every
    ``sweep_every``; leaving it gives back every slot this instance still holds.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        lease: float = SLOT_LEASE_SECONDS,
        renew_every: float = RENEW_SECONDS,
        sweep_every: float = SWEEP_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < renew_every < lease:
            raise ValueError("slots must be renewed more often than their lease runs out")
        self.store = LimitStore(engine, owner=uuid.uuid4().hex, lease=lease)
        self.renew_every = renew_every
        self.sweep_every = sweep_every
        self.clock = clock
        self._held: set[str] = set()
        self._releasing: set[asyncio.Task[None]] = set()
        self._maintainer: asyncio.Task[None] | None = None

    async def take(self, key_id: str, limits: Limits, tokens: int) -> Permit:
        """Admit one call, or raise ``RateLimited`` saying which limit and when to retry."""
        if limits.unlimited:
            return NO_SLOT  # a key without limits touches no table
        try:
            taken = await asyncio.to_thread(self.store.take, key_id, limits, tokens, self.clock())
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            # The server dropped a pooled connection (a restart): the pool is fresh now. A slot
            # the first try may have taken is not renewed and lapses with its lease.
            taken = await asyncio.to_thread(self.store.take, key_id, limits, tokens, self.clock())
        if isinstance(taken, Refusal):
            raise RateLimited(taken.message, taken.retry_after)
        if not taken:
            return NO_SLOT
        self._held.add(taken)
        return _SlotPermit(self, taken)

    def give_back(self, slot: str) -> asyncio.Task[None]:
        """Delete ``slot`` in the background (tried a few times, else left to lapse)."""
        task = asyncio.get_running_loop().create_task(self._give_back(slot))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)
        return task

    async def _give_back(self, slot: str) -> None:
        delay = 0.1
        for attempt in range(GIVE_BACK_ATTEMPTS):
            try:
                await asyncio.to_thread(self.store.give_back, slot)
                break
            except SQLAlchemyError:
                if attempt + 1 == GIVE_BACK_ATTEMPTS:
                    # No longer renewed, the slot lapses with its lease.
                    log.warning("could not give back a call slot", exc_info=True)
                else:
                    await asyncio.sleep(delay)
                    delay *= 2
        self._held.discard(slot)

    @property
    def held(self) -> int:
        """Slots this instance holds now."""
        return len(self._held)

    async def _maintain(self) -> None:
        next_sweep = 0.0
        while True:
            await asyncio.sleep(self.renew_every)
            now = self.clock()
            try:
                if self._held:
                    await asyncio.to_thread(self.store.renew, list(self._held), now)
                if now >= next_sweep:
                    await asyncio.to_thread(self.store.sweep, now)
                    next_sweep = now + self.sweep_every
            except SQLAlchemyError:
                log.warning("could not renew this instance's call slots", exc_info=True)

    async def __aenter__(self) -> SharedLimiter:
        self._maintainer = asyncio.create_task(self._maintain())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._maintainer is not None:
            self._maintainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintainer
        for task in list(self._releasing):
            task.cancel()
        await asyncio.gather(*self._releasing, return_exceptions=True)
        try:
            await asyncio.to_thread(self.store.give_back_all)
        except SQLAlchemyError:
            log.warning("could not give back this instance's call slots", exc_info=True)
        self._held.clear()


@contextlib.asynccontextmanager
async def shared_limiter(engine: Engine, settings: Settings) -> AsyncIterator[SharedLimiter]:
    """The api's limiter, on a small pool of its own to ``engine``'s database.

    Why its own pool: the app's pool tests each connection it lends (a round trip); admission
    is on every limited call's path, so this pool skips that test and retries instead.
    """
    url = engine.url.render_as_string(hide_password=False)
    own = make_engine(url, pre_ping=False, pool_size=LIMITER_POOL_SIZE)
    try:
        lease, renew = settings.limit_slot_lease_seconds, settings.limit_renew_seconds
        async with SharedLimiter(own, lease=lease, renew_every=renew) as limiter:
            yield limiter
    finally:
        own.dispose()
