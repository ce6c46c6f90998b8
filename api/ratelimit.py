"""Per-key rate limits in the api process: requests/min, tokens/min, parallel calls.

Why in-process and a sliding log: limits protect providers and wallets from one runaway agent;
an exact 60-second window per key is cheap at agent call rates and needs no shared store
(limits are per api process; the budget cap, which must be exact, lives in the workflow).
Tokens are charged at admission with the caller's estimate. 0 means unlimited. The clock is
injected so the tests need no sleeps.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from api.errors import RateLimited

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

    @asynccontextmanager
    async def parallel(self, key: str, limit: int) -> AsyncIterator[None]:
        """Hold one parallel slot of ``key`` for the duration of the block."""
        self.acquire(key, limit)
        try:
            yield
        finally:
            self.release(key)
