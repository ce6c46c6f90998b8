"""What a call through ``AgentRun`` adds over calling the fake provider directly, and where
that time goes.

The ``Caller`` runs here, configured as the api configures its own (a ledger database, the
settle loop), so this is the api's call path without its HTTP server. The worker and the fake
provider run in their own processes, the fake answering with no latency. Each phase of a call
is timed by wrapping it: the reserve (one Temporal update, the round trip to the run), the
provider call, the ledger write (waited for before the answer), and the rest.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.harness import Stack, percentiles, timed
from bench.report import table
from caller.caller import Caller, CallSpec
from db.engine import make_engine
from db.migrate import upgrade
from providers.base import ProviderConfig
from providers.pricing import PriceBook
from providers.registry import build_providers, make_http_client
from settings.temporal import load_target
from workflows.contracts import MICROS_PER_USD, Target
from workflows.run_contracts import RunInput

BODY = {"model": "fake-small", "messages": [{"role": "user", "content": "fix the bug"}]}
CALLS = {1: 300, 10: 600, 50: 1000}
PHASES = ("reserve (lines; a hop when short)", "provider call", "ledger write", "the rest")


class Phases:
    """Durations of wrapped coroutine methods, by label."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)

    def wrap(self, obj: object, attr: str, label: str) -> None:
        original: Callable[..., Awaitable[Any]] = getattr(obj, attr)

        async def timed_call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                self.samples[label].append(time.perf_counter() - start)

        setattr(obj, attr, timed_call)

    def clear(self) -> None:
        self.samples.clear()


async def run(stack: Stack) -> None:
    client = await load_target(environ=stack.env).connect()  # the workers' own dev server
    prices = PriceBook()
    chain = [Target("fake", "fake-small", "openai", prices.price_of("fake-small"))]
    engine = make_engine(f"sqlite:///{stack.data_dir}/core.db")
    await asyncio.to_thread(upgrade, engine)
    async with make_http_client() as http:
        providers = build_providers(
            [ProviderConfig("fake", "openai", f"{stack.fake_url}/v1")], http
        )
        async with Caller(client, providers, engine=engine) as caller:
            phases = Phases()
            phases.wrap(caller.lending, "reserve", PHASES[0])
            phases.wrap(providers["fake"], "complete", PHASES[1])
            assert caller.journal is not None
            phases.wrap(caller.journal, "record", PHASES[2])
            phases.wrap(caller, "call", "total")
            await _latency(stack, http, caller, chain, phases)
            await _bursts(caller, chain)


async def _latency(
    stack: Stack, http: httpx.AsyncClient, caller: Caller, chain: list[Target], phases: Phases
) -> None:
    url = f"{stack.fake_url}/v1/chat/completions"
    run_input = RunInput(
        run_id=f"bench-{uuid.uuid4().hex[:8]}", budget_micros=1000 * MICROS_PER_USD
    )

    async def direct() -> None:
        (await http.post(url, json={**BODY, "max_tokens": 64})).raise_for_status()

    async def through() -> None:
        await caller.call(run_input, CallSpec(BODY, "openai", chain, max_tokens=64))

    await timed(through, concurrency=4, total=50)  # warm-up: run started, pools open
    await timed(direct, concurrency=4, total=50)
    rows, phase_rows = [], []
    for concurrency, total in CALLS.items():
        base, _ = await timed(direct, concurrency=concurrency, total=total)
        phases.clear()
        via, took = await timed(through, concurrency=concurrency, total=total)
        b, t = percentiles(base), percentiles(via)
        cells = [f"{v:.1f}" for v in (*b[:2], *t[:2], t[0] - b[0], t[1] - b[1])]
        rows.append([str(concurrency), *cells, f"{total / took:.0f}"])
        phase_rows += _phase_rows(concurrency, phases)
    print("\n### A call through AgentRun (the Caller, no api) vs. a direct call to the fake\n")
    header = ["conc", "direct p50", "p95", "Caller p50", "p95", "added p50", "added p95"]
    print(table([*header, "calls/s"], rows))
    print("\n### Where a Caller call's time goes (ms; mean, p50, p95 of each phase)\n")
    print("The ledger write includes the wait for its batch; the rest is the caller's own work")
    print("and the event loop's queue (shared here with the load generator).\n")
    print(table(["conc", "phase", "mean", "p50", "p95"], phase_rows))


def _phase_rows(concurrency: int, phases: Phases) -> list[list[str]]:
    rows, accounted = [], 0.0
    for label in PHASES[:3]:
        values = phases.samples[label]
        mean = sum(values) / len(values) * 1000
        accounted += mean
        p50, p95, _ = percentiles(values)
        rows.append([str(concurrency), label, f"{mean:.1f}", f"{p50:.1f}", f"{p95:.1f}"])
    # The rest has no percentiles: the phases of one call cannot be paired up afterwards.
    total = phases.samples["total"]
    rest = sum(total) / len(total) * 1000 - accounted
    rows.append([str(concurrency), PHASES[3], f"{rest:.1f}", "", ""])
    return rows


async def _bursts(caller: Caller, chain: list[Target]) -> None:
    print("\n### Bursts of 200 concurrent calls\n")
    print("| burst | calls | seconds | calls/s |\n|---|---|---|---|")
    for runs in (1, 20):
        inputs = [
            RunInput(run_id=f"burst-{uuid.uuid4().hex[:8]}", budget_micros=100 * MICROS_PER_USD)
            for _ in range(runs)
        ]
        # Start every run first, so the burst measures calls, not workflow starts.
        await asyncio.gather(*(caller.call(r, CallSpec(BODY, "openai", chain, 16)) for r in inputs))
        calls = [
            caller.call(inputs[i % runs].run_id, CallSpec(BODY, "openai", chain, max_tokens=16))
            for i in range(200)
        ]
        began = asyncio.get_running_loop().time()
        await asyncio.gather(*calls)
        took = asyncio.get_running_loop().time() - began
        label = "one run" if runs == 1 else f"across {runs} runs"
        print(f"| {label} | 200 | {took:.2f} | {200 / took:.0f} |")
