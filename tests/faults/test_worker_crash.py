"""SIGKILL the worker in the middle of a burst of calls."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from fake_provider import FakeControl
from tests.faults.gateway import Gateway
from tests.faults.money import CapWatch, assert_settled
from tests.polling import eventually

pytestmark = pytest.mark.prod
BURST = 24
AFFORDABLE = 10
IN_FLIGHT = 3


async def provider_calls(fake: FakeControl) -> int:
    """Requests the fake provider has received for fake-small since its reset."""
    return (await fake.calls()).get("fake-small", {}).get("calls", 0)


async def _more(fake: FakeControl, before: int, count: int) -> bool:
    return await provider_calls(fake) >= before + count


async def test_sigkill_worker_mid_burst(gateway: Gateway, fake: FakeControl) -> None:
    """Each call is answered, refused as unaffordable, or fails retryably in OpenAI's format;
    the cap holds throughout; once a worker is back nothing stays reserved and the ledger
    equals the run."""
    per_call = await gateway.reservation_micros()
    key = await gateway.create_key(f"{per_call * AFFORDABLE / 1_000_000:.6f}")
    task = uuid.uuid4().hex[:8]
    run_id = f"{key.id}.{task}"
    assert (await gateway.chat(key, task)).ok  # the run exists before the fault
    await fake.script("fake-small", latency_ms=1500)
    worker = gateway.stack.workers[0]
    before = await provider_calls(fake)
    async with CapWatch(gateway.temporal, run_id).running() as watch:
        calls = [asyncio.create_task(gateway.chat(key, task)) for _ in range(BURST)]
        # Kill once attempts are in flight at the provider (each takes 1.5 s there).
        assert await eventually(lambda: _more(fake, before, IN_FLIGHT), within=60)
        await worker.kill()
        await gateway.stack.restart(worker)
        answers = await asyncio.gather(*calls)
        await fake.script("fake-small", latency_ms=0)
        after = await gateway.chat(key, task)
    for answer in [*answers, after]:
        answer.assert_answered_or_retryable()
    assert after.ok or after.budget_exceeded, after.body
    assert watch.samples > 0
    spend = await assert_settled(gateway, run_id, [*answers, after])
    assert spend.calls >= 1 + sum(a.ok for a in answers)
