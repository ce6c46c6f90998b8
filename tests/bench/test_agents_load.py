"""The ``agents`` benchmark's load processes, against a fake provider of their own (no timing
asserted: the benchmark measures, tests only check that it counts what it did)."""

from __future__ import annotations

from pathlib import Path

from bench.agents import LoadProcesses, Shape, Target, load_processes
from fake_provider.runner import FakeProvider

LATENCY_MS = 50


async def test_load_processes_count_every_call_they_make(tmp_path: Path) -> None:
    """Agents split over two processes make their calls in a loop, each answered no sooner
    than the provider's latency, and the figures they send back add up to what it served."""
    shape = Shape(agents=30, latency=LATENCY_MS / 1000, think=0.02, seconds=0.5, rounds=1, warmup=0)
    async with FakeProvider.running() as fake:
        await fake.script("fake-small", latency_ms=LATENCY_MS)
        target = Target("direct", f"{fake.openai_base_url}/chat/completions", {}, task_tags=True)
        async with load_processes(shape, tmp_path) as load:
            assert isinstance(load, LoadProcesses) and len(load.children) == 2
            outcome = await load.play(target, shape.seconds)
        served = (await fake.calls())["fake-small"]["calls"]
    assert outcome.errors == {}
    assert len(outcome.latencies) == outcome.calls == served
    assert outcome.calls >= shape.agents  # every agent called at least once
    assert min(outcome.latencies) >= LATENCY_MS / 1000
