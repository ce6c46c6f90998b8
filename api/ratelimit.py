"""Per-key rate limits counted in one api process: requests/min, tokens/min, parallel calls.

With more than one api instance each counts alone, so N instances let N times the limit
through: the api uses ``api.limits.SharedLimiter``. This one stays as the in-process baseline
that ``bench/limits.py`` measures the shared one against. A sliding log gives an exact
60-second window per key. Tokens are charged at admission with the caller's estimate. 0 means
unlimited. The clock is injected so the tests need no sleeps.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from api.errors import RateLimited
from api.limits import Limits, Permit

WINDOW_SECONDS = 60.0


class RateLimiter:
    """Sliding-window request and token limits plus a parallel-call counter, per key."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, window: float = WINDOW_SECONDS
    ) -> None:
        self.clock = clock
        self.window = window
        self._log: dict[str, deque[tuple[float, int]]] = {}
        self._tokens: dict[str, int] = {}
        self._running: dict[str, int] = {}

    def _prune(self, key: str, now: float) -> deque[tuple[float, int]]:
        log = self._log.setdefault(key, deque())
        horizon = now - self.window
        while log and log[0][0] <= horizon:
            _, tokens = log.popleft()
            self._tokens[key] -= tokens
        return log

    def admit(self, key: str, *, rpm: int, tpm: int, tokens: int) -> None:
        """Count one request of ``tokens`` against the key, or raise ``RateLimited``."""
        if rpm <= 0 and tpm <= 0:
            return
        now = self.clock()
        tokens = max(tokens, 0)
        log = self._prune(key, now)
        self._tokens.setdefault(key, 0)
        if rpm > 0 and len(log) >= rpm:
            wait = log[len(log) - rpm][0] + self.window - now
            raise RateLimited(f"rate limit: {rpm} requests per minute for this key", wait)
        used = self._tokens[key]
        # A request larger than the whole limit passes alone, or it could never pass.
        if tpm > 0 and log and used + tokens > tpm:
            raise RateLimited(
                f"rate limit: {tpm} tokens per minute for this key ({used} used, {tokens} asked)",
                self._token_wait(log, used + tokens - tpm, now),
            )
        log.append((now, tokens))
        self._tokens[key] = used + tokens

    def _token_wait(self, log: deque[tuple[float, int]], excess: int, now: float) -> float:
        freed = 0
        for at, tokens in log:
            freed += tokens
            if freed >= excess:
                return at + self.window - now
        return self.window

    def tokens_used(self, key: str) -> int:
        """Tokens charged to ``key`` in the current window."""
        self._prune(key, self.clock())
        return self._tokens.get(key, 0)

    def acquire(self, key: str, limit: int) -> None:
        """Take one parallel slot of ``key`` (``limit`` 0 is unlimited) or raise ``RateLimited``."""
        running = self._running.get(key, 0)
        if limit > 0 and running >= limit:
            raise RateLimited(f"rate limit: at most {limit} parallel calls for this key", 1.0)
        self._running[key] = running + 1

    def release(self, key: str) -> None:
        """Give back a slot taken by ``acquire`` (a streaming call releases when it ends)."""
        running = self._running.get(key, 0) - 1
        if running > 0:
            self._running[key] = running
        else:
            self._running.pop(key, None)

    def in_flight(self, key: str) -> int:
        """Parallel calls of ``key`` now running."""
        return self._running.get(key, 0)

    async def take(self, key_id: str, limits: Limits, tokens: int) -> Permit:
        """``api.limits.CallLimiter``: a slot first, then the minute's counts (a refused call
        takes neither)."""
        self.acquire(key_id, limits.max_parallel)
        try:
            self.admit(key_id, rpm=limits.rpm, tpm=limits.tpm, tokens=tokens)
        except RateLimited:
            self.release(key_id)
            raise
        return _LocalPermit(self, key_id)

    @asynccontextmanager
    async def parallel(self, key: str, limit: int) -> AsyncIterator[None]:
        """Hold one parallel slot of ``key`` for the duration of the block."""
        self.acquire(key, limit)
        try:
            yield
        finally:
            self.release(key)


class _LocalPermit(Permit):
    def __init__(self, limiter: RateLimiter, key_id: str) -> None:
        self._limiter, self._key_id = limiter, key_id
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter.release(self._key_id)
