"""Two api instances serving one key: one run, one budget."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from fake_provider import FakeControl
from tests.faults.gateway import Gateway
from tests.faults.money import CapWatch, assert_settled

pytestmark = pytest.mark.prod
BURST = 30
AFFORDABLE = 8


async def test_two_api_instances_share_one_run_budget(gateway: Gateway, fake: FakeControl) -> None:
    """Calls on one key and task through two api instances at once draw on the same run: the
    cap holds across both, fewer calls pass than two budgets would allow, the refusals are
    budget_exceeded, and the ledger equals the run."""
    if len(gateway.stack.apis) < 2:
        await gateway.stack.start_api()
    per_call = await gateway.reservation_micros()
    key = await gateway.create_key(f"{per_call * AFFORDABLE / 1_000_000:.6f}")
    task = uuid.uuid4().hex[:8]
    run_id = f"{key.id}.{task}"
    assert (await gateway.chat(key, task, api=1)).ok
    await fake.script("fake-small", latency_ms=500)
    async with CapWatch(gateway.temporal, run_id).running() as watch:
        answers = await asyncio.gather(*(gateway.chat(key, task, api=n % 2) for n in range(BURST)))
    for answer in answers:
        answer.assert_answered_or_retryable()
    ok = [a for a in answers if a.ok]
    # Both instances took part (which one won the race for the money varies), and together
    # they spent at most one budget: one run, one cap. (Calls near the cap are granted smaller
    # max_tokens, and calls that ended give back what they held but did not spend, so more
    # than AFFORDABLE may pass: the money is what is bounded.)
    assert {a.api for a in answers if a.ok or a.budget_exceeded} == {0, 1}
    assert len(ok) > 0
    assert sum(a.cost_micros or 0 for a in ok) <= per_call * AFFORDABLE
    assert all(a.ok or a.budget_exceeded for a in answers), [a.body for a in answers if not a.ok]
    assert watch.highest_micros <= watch.budget_micros
    await assert_settled(gateway, run_id, answers)
