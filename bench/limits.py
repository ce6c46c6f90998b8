"""``python -m bench limits``: what a call pays for limits shared by every api instance.

Admission plus release (``take`` then ``Permit.end``) through the api's ``SharedLimiter`` (on
its own pool, as ``api.limits.shared_limiter`` builds it) on SQLite (a file, WAL) and on a
throwaway PostgreSQL server (fsync on), in rounds that alternate with the in-process
``RateLimiter`` as the baseline, so that a machine busy with something else smears both sides
alike. Figures are the median over rounds, in microseconds per call; "one at a time" is one
caller's latency, "32 at once" the cost per call when 32 calls are admitted together.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine

from api.limits import CallLimiter, shared_limiter
from api.ratelimit import RateLimiter
from api.settings import Settings
from db.engine import create_tables, make_engine
from db.limits import Limits
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


async def _cost(limiter: CallLimiter, limits: Limits, key: str, lanes: int) -> float:
    """Microseconds per admitted-and-released call, ``lanes`` callers at once."""

    async def lane() -> None:
        for _ in range(CALLS // lanes):
            permit = await limiter.take(key, limits, 100)
            await permit.end()

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(lanes)))
    return (time.perf_counter() - started) / (CALLS // lanes * lanes) * 1e6


async def _measure(engine: Engine, label: str) -> None:
    create_tables(engine)
    print(f"\n### {label}: admission + release, microseconds per call (median of {ROUNDS})\n")
    print(
        "| limits | in-process, one at a time | shared, one at a time "
        "| in-process, 32 at once | shared, 32 at once |"
    )
    print("|---|---|---|---|---|")
    async with shared_limiter(engine, Settings()) as shared:
        local = RateLimiter()
        for shape, limits in SHAPES.items():
            samples: dict[tuple[str, int], list[float]] = {}
            for round_ in range(ROUNDS):
                for lanes in (1, CONCURRENCY):
                    sides: list[tuple[str, CallLimiter]] = [("local", local), ("shared", shared)]
                    if round_ % 2:
                        sides.reverse()
                    for side, limiter in sides:
                        key = f"{shape}-{side}-{lanes}-{round_}"
                        cost = await _cost(limiter, limits, key, lanes)
                        samples.setdefault((side, lanes), []).append(cost)
            cells = [
                f"{statistics.median(samples[(side, lanes)]):.0f}"
                for lanes in (1, CONCURRENCY)
                for side in ("local", "shared")
            ]
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
