"""The shared rate limiter on SQLite and PostgreSQL: two stores on one database stand for two
api instances; the clock is injected, so windows and leases roll over without waiting."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from api.errors import RateLimited
from api.limits import SharedLimiter
from db.limits import WINDOW_SECONDS, Limits, LimitStore, Refusal
from tests.polling import eventually

T0 = 1_800_000_000.0  # a minute boundary (epoch seconds)
assert T0 % WINDOW_SECONDS == 0


def stores(engine: Engine, lease: float = 15.0) -> tuple[LimitStore, LimitStore]:
    """Two api instances on one database."""
    return LimitStore(engine, "instance-a", lease), LimitStore(engine, "instance-b", lease)


def refused(taken: str | Refusal) -> Refusal:
    assert isinstance(taken, Refusal), taken
    return taken


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement ``engine`` runs inside the block."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_requests_per_minute_are_shared_and_roll_over(engine: Engine) -> None:
    """rpm counts the calls of both instances in one fixed minute; the refusal waits for the
    minute's end; the next minute starts from zero."""
    a, b = stores(engine)
    rpm = Limits(rpm=3)
    assert a.take("k", rpm, 10, T0 + 1) == ""
    assert b.take("k", rpm, 10, T0 + 2) == ""
    assert a.take("k", rpm, 10, T0 + 3) == ""
    refusal = refused(b.take("k", rpm, 10, T0 + 15))
    assert refusal.limit == "rpm" and refusal.retry_after == 45
    assert "3 requests per minute" in refusal.message
    assert a.used("k", T0 + 59) == (3, 30)
    assert b.take("other", rpm, 10, T0 + 15) == ""
    assert b.take("k", rpm, 10, T0 + 60) == ""
    assert a.used("k", T0 + 60) == (1, 10)


def test_tokens_per_minute_charge_the_bound(engine: Engine) -> None:
    """tpm charges each call's token bound; a call over what is left waits for the next minute,
    and a call larger than the whole tpm passes alone in an empty minute."""
    a, b = stores(engine)
    tpm = Limits(tpm=1000)
    assert a.take("k", tpm, 600, T0) == ""
    assert b.take("k", tpm, 300, T0 + 20) == ""
    refusal = refused(a.take("k", tpm, 200, T0 + 20))
    assert refusal.limit == "tpm" and refusal.retry_after == 40
    assert "(900 used, 200 asked)" in refusal.message
    assert b.take("k", tpm, 100, T0 + 30) == ""
    assert a.take("k", tpm, 5000, T0 + 60) == ""
    assert refused(b.take("k", tpm, 1, T0 + 61)).limit == "tpm"


def test_parallel_slots_are_shared_and_given_back(engine: Engine) -> None:
    """max_parallel counts live slots of every instance; giving one back frees it."""
    a, b = stores(engine)
    two = Limits(max_parallel=2)
    first = a.take("k", two, 0, T0)
    assert isinstance(first, str) and first
    assert b.take("k", two, 0, T0)
    refusal = refused(a.take("k", two, 0, T0))
    assert refusal.limit == "parallel" and refusal.retry_after == 1
    assert b.take("other", two, 0, T0)
    a.give_back(first)
    a.give_back(first)  # idempotent
    assert a.in_flight("k", T0) == 1
    assert b.take("k", two, 0, T0)


def test_a_dead_instances_slots_expire_and_renewal_keeps_them(engine: Engine) -> None:
    """Slots stop counting when their lease ends unless their instance renews them; a renewal
    is one statement for the slots named, and a slot not named (its taking failed midway)
    lapses."""
    a, b = stores(engine, lease=10)
    two = Limits(max_parallel=2)
    held, lost = a.take("k", two, 0, T0), a.take("k", two, 0, T0)
    assert isinstance(held, str) and isinstance(lost, str)
    assert refused(b.take("k", two, 0, T0 + 9)).limit == "parallel"
    with statements(engine) as seen:
        assert a.renew([held], T0 + 9) == 1
    assert len(seen) == 1 and seen[0].startswith("UPDATE")
    assert b.in_flight("k", T0 + 12) == 1
    assert b.take("k", two, 0, T0 + 12)  # the lost slot lapsed; the renewed one still counts
    assert refused(b.take("k", two, 0, T0 + 18)).limit == "parallel"
    # Instance a dies here: nobody renews its slot.
    assert b.in_flight("k", T0 + 19) == 1
    assert b.take("k", two, 0, T0 + 19)


def test_a_refused_call_takes_nothing(engine: Engine) -> None:
    """A call refused for its slot is not counted in the minute, and one refused by the minute
    holds no slot."""
    a, _ = stores(engine)
    assert a.take("k", Limits(rpm=1, max_parallel=1), 0, T0)
    assert refused(a.take("k", Limits(rpm=1, max_parallel=1), 0, T0)).limit == "parallel"
    assert a.used("k", T0) == (1, 0)
    assert refused(a.take("k", Limits(rpm=1, max_parallel=5), 0, T0)).limit == "rpm"
    assert a.in_flight("k", T0) == 1


def test_sweep_drops_expired_slots_and_old_minutes(engine: Engine) -> None:
    """The sweep deletes expired slots and minutes before the previous one, nothing live."""
    a, _ = stores(engine, lease=10)
    assert a.take("k", Limits(rpm=5, max_parallel=5), 0, T0)
    assert a.take("k", Limits(rpm=5, max_parallel=5), 0, T0 + 65)
    a.sweep(T0 + 70)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM call_slots")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM rate_windows")).scalar_one() == 2
    a.sweep(T0 + 180)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM call_slots")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM rate_windows")).scalar_one() == 0


@pytest.mark.parametrize("limits, admitted", [(Limits(max_parallel=4), 4), (Limits(rpm=20), 20)])
def test_concurrent_admissions_never_pass_the_limit(
    engine: Engine, limits: Limits, admitted: int
) -> None:
    """40 admissions released at once from 16 threads of two instances, for each of 3 keys:
    exactly the limit gets through every time."""
    a, b = stores(engine)
    start = threading.Barrier(16)

    def take(key: str, i: int) -> bool:
        if i < 16:
            start.wait()
        return not isinstance((a, b)[i % 2].take(key, limits, 10, T0 + 1), Refusal)

    with ThreadPoolExecutor(max_workers=16) as pool:
        for key in ("k1", "k2", "k3"):
            passed = list(pool.map(partial(take, key), range(40)))
            assert sum(passed) == admitted, key


async def test_a_key_without_limits_touches_no_table(engine: Engine) -> None:
    """rpm = tpm = max_parallel = 0: admission and release run no SQL at all."""
    async with SharedLimiter(engine) as limiter:
        with statements(engine) as seen:
            for _ in range(100):
                permit = await limiter.take("k", Limits(), 10**6)
                permit.release()
                await permit.end()
            assert limiter.store.take("k", Limits(), 10**6, T0) == ""
        assert seen == []


async def test_shared_limiter_refuses_releases_and_renews(engine: Engine) -> None:
    """The api's limiter: a refusal is a 429 with Retry-After; ``end`` waits until the slot is
    gone; the instance renews its slots' leases while they run; leaving gives them back."""
    now = [T0]
    limiter = SharedLimiter(engine, lease=10, renew_every=0.05, clock=lambda: now[0])
    async with limiter:
        one = Limits(max_parallel=1)
        permit = await limiter.take("k", one, 0)
        with pytest.raises(RateLimited) as caught:
            await limiter.take("k", one, 0)
        assert caught.value.code == "rate_limited" and caught.value.headers["Retry-After"] == "1"
        await permit.end()
        assert limiter.held == 0
        again = await limiter.take("k", one, 0)
        now[0] = T0 + 8

        def renewed() -> bool:
            return limiter.store.in_flight("k", T0 + 15) == 1

        assert await eventually(renewed, within=10), "the slot's lease was never renewed"
        again.release()
        assert await eventually(lambda: limiter.held == 0)
        held = await limiter.take("k", one, 0)
        assert held is not None
    assert limiter.store.in_flight("k", T0 + 8) == 0


async def test_a_release_waits_for_the_database(engine: Engine) -> None:
    """Releases run in the background and all finish even when many end at once."""
    async with SharedLimiter(engine) as limiter:
        permits = [await limiter.take("k", Limits(max_parallel=50), 0) for _ in range(50)]
        for permit in permits:
            permit.release()
        await asyncio.gather(*(p.end() for p in permits))
        assert limiter.held == 0
        assert limiter.store.in_flight("k", limiter.clock()) == 0


def test_the_limit_tables_are_unlogged_on_postgresql(pg_engine: Engine) -> None:
    """On PostgreSQL the counters and slots skip the write-ahead log (a commit waits for no
    disk flush); their indexes follow."""
    with pg_engine.connect() as conn:
        persistence: dict[str, str] = dict(
            conn.execute(
                text(
                    "SELECT relname, relpersistence FROM pg_class "
                    "WHERE relname IN ('rate_windows', 'call_slots', 'ledger')"
                )
            ).all()
        )
    assert persistence == {"rate_windows": "u", "call_slots": "u", "ledger": "p"}
