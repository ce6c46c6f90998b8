"""``python -m bench limits``: what a call pays for limits shared by every api instance.

Admission plus release (``take`` then ``Permit.end``) through the api's ``SharedLimiter`` (on
its own pool, as ``api.limits.shared_limiter`` builds it) on SQLite (a file, WAL) and on a
throwaway PostgreSQL server (fsync on), in rounds that alternate with the in-process
``RateLimiter`` as the baseline, so that a machine busy with something else smears both sides
alike. Figures are the median over rounds, in microseconds per call; "one at a time" is one
caller's latency, "32 at once" the cost per call when 32 calls are admitted together, "its
database work alone" the same statements without the hop to a worker thread and back.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, event

from api.limits import CallLimiter, Permit, shared_limiter
from api.ratelimit import RateLimiter
from api.settings import Settings
from db.engine import make_engine
from db.limits import Limits, LimitStore, Refusal
from db.migrate import upgrade
from tests.postgres import pg_bindir, throwaway_postgres

ROUNDS = 5
CALLS = 1000
CONCURRENCY = 32
SHAPES = {
    "rpm + tpm": Limits(rpm=10**9, tpm=10**12),
    "max_parallel": Limits(max_parallel=10**6),
    "rpm + tpm + max_parallel": Limits(rpm=10**9, tpm=10**12, max_parallel=10**6),
    "no limits": Limits(),
}


class _Blocking:
    """The shared limiter's database work alone, in the loop's thread (a benchmark only: the
    api never blocks its loop on the database); the difference to ``SharedLimiter`` is the
    hand-off to a worker thread and back."""

    def __init__(self, store: LimitStore) -> None:
        self.store = store

    async def take(self, key_id: str, limits: Limits, tokens: int) -> Permit:
        taken = self.store.take(key_id, limits, tokens, time.time())
        assert not isinstance(taken, Refusal), taken
        return _BlockingPermit(self.store, taken) if taken else Permit()


class _BlockingPermit(Permit):
    def __init__(self, store: LimitStore, slot: str) -> None:
        self.store, self.slot = store, slot

    async def end(self) -> None:
        self.store.give_back(self.slot)


async def _cost(limiter: CallLimiter, limits: Limits, key: str, lanes: int) -> float:
    """Microseconds per admitted-and-released call, ``lanes`` callers at once."""

    async def lane() -> None:
        for _ in range(CALLS // lanes):
            permit = await limiter.take(key, limits, 100)
            await permit.end()

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(lanes)))
    return (time.perf_counter() - started) / (CALLS // lanes * lanes) * 1e6


async def _statements(limiter: _Blocking, limits: Limits) -> float:
    """SQL statements per admitted-and-released call (BEGIN and COMMIT not counted)."""
    seen = 0

    def count(*_: object) -> None:
        nonlocal seen
        seen += 1

    engine = limiter.store.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        await _cost(limiter, limits, "statements", 1)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return seen / CALLS


async def _measure(engine: Engine, label: str) -> None:
    upgrade(engine)
    print(f"\n### {label}: admission + release, microseconds per call (median of {ROUNDS})\n")
    print(
        "| limits | in-process | shared, one at a time | shared, 32 at once "
        "| its database work alone | SQL statements per call |"
    )
    print("|---|---|---|---|---|---|")
    async with shared_limiter(engine, Settings()) as shared:
        local = RateLimiter()
        blocking = _Blocking(shared.store)
        sides: list[tuple[str, CallLimiter, int]] = [
            ("local", local, 1),
            ("shared", shared, 1),
            ("shared-32", shared, CONCURRENCY),
            ("blocking", blocking, 1),
        ]
        for shape, limits in SHAPES.items():
            samples: dict[str, list[float]] = {}
            for round_ in range(ROUNDS):
                # Each round in another order, so that a slow spell hits every side.
                for side, limiter, lanes in sides[round_ % 4 :] + sides[: round_ % 4]:
                    key = f"{shape}-{side}-{round_}"
                    samples.setdefault(side, []).append(await _cost(limiter, limits, key, lanes))
            cells = [f"{statistics.median(samples[side]):.0f}" for side, _, _ in sides]
            cells.append(f"{await _statements(blocking, limits):g}")
            print(f"| {shape} | {' | '.join(cells)} |")


async def run() -> None:
    """Print the figures on SQLite, then on PostgreSQL when its binaries are installed."""
    with tempfile.TemporaryDirectory() as data_dir:
        engine = make_engine(f"sqlite:///{Path(data_dir) / 'bench.db'}")
        try:
            await _measure(engine, "SQLite (WAL, one file)")
        finally:
            engine.dispose()
    bindir = pg_bindir()
    if bindir is None:
        print("\n(no PostgreSQL binaries: PostgreSQL skipped)")
        return
    with throwaway_postgres(bindir, fsync=True) as url:
        engine = make_engine(url)
        try:
            await _measure(engine, "PostgreSQL (local server, fsync on)")
        finally:
            engine.dispose()
