"""Temporal killed and started again while a run is busy."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from fake_provider import FakeControl
from tests.faults.gateway import Answer, Gateway, Key
from tests.faults.money import CapWatch, assert_settled
from tests.polling import eventually

pytestmark = pytest.mark.prod
CALLERS = 4
OUTAGE = 15.0
RECOVERY_SECONDS = 180.0


async def keep_calling(gateway: Gateway, key: Key, task: str, until: asyncio.Event) -> list[Answer]:
    """One agent's loop: a call after the other until told to stop."""
    answers = []
    while not until.is_set():
        answers.append(await gateway.chat(key, task))
    return answers


async def test_restart_temporal_mid_run(gateway: Gateway, fake: FakeControl) -> None:
    """While agents keep calling, Temporal is SIGKILLed, stays down until the agents notice,
    and comes back: each call is answered or fails retryably in OpenAI's format, calls succeed
    again afterwards, the cap holds, and the ledger equals the run once everything settled."""
    key = await gateway.create_key("5")
    task = uuid.uuid4().hex[:8]
    run_id = f"{key.id}.{task}"
    assert (await gateway.chat(key, task)).ok
    await fake.script("fake-small", latency_ms=300)
    stop = asyncio.Event()
    loops = [asyncio.create_task(keep_calling(gateway, key, task, stop)) for _ in range(CALLERS)]
    try:
        async with CapWatch(gateway.temporal, run_id).running() as watch:
            # Kill once the loops are in full swing: calls reserving, at the provider, settling.
            answered = len(gateway.answers)
            assert await eventually(lambda: len(gateway.answers) >= answered + 2 * CALLERS)
            await gateway.stack.stop_temporal(kill=True)
            killed_at = len(gateway.answers)
            # Down until the agents see it (a call fails), at most OUTAGE seconds.
            await eventually(lambda: any(not a.ok for a in gateway.answers[killed_at:]), OUTAGE)
            await gateway.stack.start_temporal()
            async with asyncio.timeout(RECOVERY_SECONDS):
                # Carry on until a call started after the restart has been answered.
                resumed = await gateway.chat(key, task)
                while not resumed.ok:
                    resumed.assert_answered_or_retryable()
                    resumed = await gateway.chat(key, task)
                stop.set()
                answers = [a for loop in await asyncio.gather(*loops) for a in loop]
    finally:
        stop.set()
        await asyncio.gather(*loops, return_exceptions=True)
    for answer in answers:
        answer.assert_answered_or_retryable()
    assert sum(a.ok for a in answers) > 0
    assert watch.samples > 0
    await assert_settled(gateway, run_id, [*answers, resumed])
