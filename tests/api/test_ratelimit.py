"""The per-key rate limiter, on an injected clock."""

from __future__ import annotations

import pytest

from api.errors import RateLimited
from api.limits import Limits
from api.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_requests_per_minute_slide() -> None:
    """The rpm+1th request in 60 s is refused with Retry-After until the oldest expires."""
    clock = Clock()
    limiter = RateLimiter(clock)
    for _ in range(3):
        limiter.admit("k", rpm=3, tpm=0, tokens=10)
        clock.now += 10
    with pytest.raises(RateLimited) as caught:
        limiter.admit("k", rpm=3, tpm=0, tokens=10)
    assert caught.value.headers["Retry-After"] == "30"
    clock.now = 1060.0
    limiter.admit("k", rpm=3, tpm=0, tokens=10)
    limiter.admit("other", rpm=3, tpm=0, tokens=10)


def test_tokens_per_minute_charge_the_estimate() -> None:
    """Tokens are charged at admission; a request over the remaining tokens waits."""
    clock = Clock()
    limiter = RateLimiter(clock)
    limiter.admit("k", rpm=0, tpm=1000, tokens=600)
    clock.now += 20
    limiter.admit("k", rpm=0, tpm=1000, tokens=300)
    assert limiter.tokens_used("k") == 900
    with pytest.raises(RateLimited) as caught:
        limiter.admit("k", rpm=0, tpm=1000, tokens=200)
    assert caught.value.headers["Retry-After"] == "40"
    assert "tokens per minute" in caught.value.message
    clock.now += 40
    limiter.admit("k", rpm=0, tpm=1000, tokens=200)
    assert limiter.tokens_used("k") == 500


def test_one_request_larger_than_the_limit_passes_alone() -> None:
    """A request bigger than tpm passes when the window is empty, else it could never pass."""
    clock = Clock()
    limiter = RateLimiter(clock)
    limiter.admit("k", rpm=0, tpm=100, tokens=5000)
    with pytest.raises(RateLimited):
        limiter.admit("k", rpm=0, tpm=100, tokens=1)


def test_zero_means_unlimited() -> None:
    """rpm=0, tpm=0 and max_parallel=0 never refuse."""
    limiter = RateLimiter(Clock())
    for _ in range(10_000):
        limiter.admit("k", rpm=0, tpm=0, tokens=10**9)
    for _ in range(100):
        limiter.acquire("k", 0)
    assert limiter.in_flight("k") == 100


async def test_parallel_calls_are_capped_and_released() -> None:
    """max_parallel slots are held for a block, refused beyond it, and given back after."""
    limiter = RateLimiter(Clock())
    async with limiter.parallel("k", 2), limiter.parallel("k", 2):
        assert limiter.in_flight("k") == 2
        with pytest.raises(RateLimited) as caught:
            async with limiter.parallel("k", 2):
                pass
        assert caught.value.code == "rate_limited"
        assert caught.value.headers["Retry-After"] == "1"
    assert limiter.in_flight("k") == 0
    with pytest.raises(ValueError):
        async with limiter.parallel("k", 2):
            raise ValueError("the slot is released on error too")
    assert limiter.in_flight("k") == 0


async def test_take_admits_per_key_and_a_refusal_takes_nothing() -> None:
    """The in-process ``take``: one slot per call of the key, released by the permit; a call
    refused by rpm holds no slot, and one refused for its slot is not counted."""
    limiter = RateLimiter(Clock())
    limits = Limits(rpm=2, max_parallel=1)
    permit = await limiter.take("k", limits, 10)
    with pytest.raises(RateLimited):
        await limiter.take("k", limits, 10)
    assert limiter.in_flight("k") == 1
    await permit.end()
    permit.release()  # idempotent
    assert limiter.in_flight("k") == 0
    (await limiter.take("k", limits, 10)).release()
    with pytest.raises(RateLimited) as caught:
        await limiter.take("k", limits, 10)
    assert "requests per minute" in caught.value.message
    assert limiter.in_flight("k") == 0
