"""2,000 calls on one run: nothing on the call path may grow with the run's age."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from pathlib import Path

import pytest

from caller import run_handle
from fake_provider import FakeControl
from prodcheck.processes import Child
from tests.faults.gateway import Gateway
from tests.faults.money import assert_settled

pytestmark = pytest.mark.prod
CALLS = 2_000
AGENTS = 8
WINDOW = 100
SLOWER_AT_MOST = 3.0
"""Late calls' p50 against early calls' (with a few ms of slack): generous, since this machine
is shared; a call path that grew with the run's history would pass it within a few hundred calls."""
GROWTH_MB_AT_MOST = 64


def rss_mb(child: Child) -> float:
    """Resident memory of a running part, from /proc."""
    assert child.process is not None
    for line in Path(f"/proc/{child.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {child.name}")


async def test_2000_calls_on_one_run_stay_as_fast_and_small(
    gateway: Gateway, fake: FakeControl
) -> None:
    """Eight agents make 2,000 calls on one run. Calls 1901-2000 are about as fast as calls
    1-100 (p50 within 3x, plus 5 ms), the worker's and api's memory grow by less than 64 MB
    from call 100 to call 2000, the run's history stays bounded (continue-as-new), and the
    ledger equals the run: 2,000 calls, each billed once."""
    key = await gateway.create_key("100")
    task = uuid.uuid4().hex[:8]
    run_id = f"{key.id}.{task}"
    parts = [gateway.stack.workers[0], gateway.stack.apis[0]]
    latencies: list[float] = [0.0] * CALLS
    memory: dict[str, tuple[float, float]] = {}
    next_call = 0
    done = 0
    early_memory = asyncio.Event()

    async def agent() -> None:
        nonlocal next_call, done
        while next_call < CALLS:
            index, next_call = next_call, next_call + 1
            began = time.perf_counter()
            answer = await gateway.chat(key, task, max_tokens=20)
            latencies[index] = time.perf_counter() - began
            assert answer.ok, answer.body
            done += 1
            if done == WINDOW:
                memory.update({child.name: (rss_mb(child), 0.0) for child in parts})
                early_memory.set()

    await asyncio.gather(*(agent() for _ in range(AGENTS)))
    assert early_memory.is_set()
    for child in parts:
        memory[child.name] = (memory[child.name][0], rss_mb(child))
    early = statistics.median(latencies[:WINDOW]) * 1000
    late = statistics.median(latencies[-WINDOW:]) * 1000
    description = await run_handle(gateway.temporal, run_id).describe()
    history = description.raw_description.workflow_execution_info.history_length
    print(
        f"\np50 calls 1-{WINDOW}: {early:.1f} ms; calls {CALLS - WINDOW + 1}-{CALLS}: "
        f"{late:.1f} ms ({late / early:.2f}x); history of the current run: {history} events"
    )
    for name, (before, after) in memory.items():
        print(f"{name}: {before:.0f} MB at call {WINDOW}, {after:.0f} MB at call {CALLS}")
    assert late <= SLOWER_AT_MOST * early + 5, (early, late)
    for name, (before, after) in memory.items():
        assert after - before < GROWTH_MB_AT_MOST, (name, before, after)
    assert history < 10_000
    spend = await assert_settled(gateway, run_id, gateway.answers)
    assert spend.calls == CALLS
