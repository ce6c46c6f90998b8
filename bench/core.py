"""What a call through ``AgentRun`` adds over calling the fake provider directly.

The caller-side helper runs here (as it would in an agent or the api), the worker and the fake
provider in their own processes, the fake answering with no latency.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
from temporalio.client import Client

from bench.harness import HEADER, Stack, row, timed
from caller.caller import Caller, CallSpec
from providers.base import ProviderConfig
from providers.pricing import PriceBook
from providers.registry import build_providers, make_http_client
from workflows.contracts import MICROS_PER_USD, RunInput, Target

BODY = {"model": "fake-small", "messages": [{"role": "user", "content": "fix the bug"}]}
CALLS = {1: 300, 16: 800}


async def run(stack: Stack) -> None:
    client = await Client.connect(stack.temporal)
    prices = PriceBook()
    chain = [Target("fake", "fake-small", "openai", prices.price_of("fake-small"))]
    async with make_http_client() as http:
        providers = build_providers(
            [ProviderConfig("fake", "openai", f"{stack.fake_url}/v1")], http
        )
        async with Caller(client, providers) as caller:
            await _latency(stack, http, caller, chain)
            await _bursts(caller, chain)


async def _latency(
    stack: Stack, http: httpx.AsyncClient, caller: Caller, chain: list[Target]
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
    print("\n### A call through AgentRun vs. a direct httpx call to the fake (ms)\n")
    print(HEADER)
    for concurrency, total in CALLS.items():
        base, _ = await timed(direct, concurrency=concurrency, total=total)
        via, _ = await timed(through, concurrency=concurrency, total=total)
        print(row(f"concurrency {concurrency}", base, via))


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
