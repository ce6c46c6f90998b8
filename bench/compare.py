"""runcap and LiteLLM's proxy side by side, on one fake provider, in one run.

The machine is shared and noisy, so the two are never measured minutes apart: each cell
(provider latency x concurrency) runs several rounds, and each round calls the fake directly,
then every gateway, their order turning from round to round (A, B, A', B, A, A'...). What a
gateway adds is its latency minus the direct latency of the same rounds. CPU is read from
``/proc`` around every block, per process.

runcap is measured on one run (a key without a task tag, the heaviest case: every call goes
to one workflow) and on 64 runs (one per ``task:`` tag); and on one run of a key with the loop
guard on, through a second api instance (its CPU apart): the loop guard sees every call, so
that run lends no line and each call reserves in it, one Temporal hop per call. So the lines'
effect is measured in the same rounds. Its guard never trips: it allows more identical calls
per second (``LOOP_MAX_REPEATS`` in ``LOOP_WINDOW_SECONDS``) than any block makes.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack

import httpx

from bench import report
from bench.harness import Stack, create_key, free_port, python_child
from bench.litellm_proxy import Proxy, litellm_proxy
from bench.load import BODY_BYTES, Blocks, Clients, Target, clients, json_headers, run_block

LATENCIES_MS = (0, 200)
CONCURRENCY = (1, 10, 50)
CALLS = {(0, 1): 100, (0, 10): 300, (0, 50): 500, (200, 1): 25, (200, 10): 150, (200, 50): 400}
"""Calls per block: enough for a few seconds each, so CPU ticks (10 ms) and p95 mean something."""
TASK_RUNS = 64
BURST = 200
RUNCAP, LITELLM, TASKS, DIRECT = "runcap", "LiteLLM", "runcap 64 runs", "direct"
HOP = "runcap, hop per call (loop guard)"
HOP_API = "api-hop"
LOOP_MAX_REPEATS, LOOP_WINDOW_SECONDS = 10_000, 1


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def script_latency(http: httpx.AsyncClient, fake_url: str, latency_ms: int) -> None:
    body = {"model": "fake-small", "latency_ms": latency_ms}
    (await http.post(f"{fake_url}/_control/script", json=body)).raise_for_status()


def fixed(headers: dict[str, str]) -> Callable[[], dict[str, str]]:
    return lambda: headers


def targets(stack: Stack, proxy: Proxy, key: str, hop_key: str, hop_url: str) -> list[Target]:
    assert stack.api_url is not None
    auth = {"Authorization": f"Bearer {key}"}
    hop_auth = {"Authorization": f"Bearer {hop_key}"}
    tasks = itertools.cycle(range(TASK_RUNS))
    path = "/v1/chat/completions"
    return [
        Target(DIRECT, f"{stack.fake_url}{path}", dict),
        Target(RUNCAP, f"{stack.api_url}{path}", lambda: auth, ("temporal", "worker", "api")),
        Target(LITELLM, f"{proxy.url}{path}", lambda: proxy.headers, ("litellm",)),
        Target(
            TASKS,
            f"{stack.api_url}{path}",
            lambda: {**auth, "x-runcap-tags": f"task:bench-{next(tasks)}"},
            ("temporal", "worker", "api"),
        ),
        Target(HOP, f"{hop_url}{path}", lambda: hop_auth, ("temporal", "worker", HOP_API)),
    ]


async def run(stack: Stack, *, rounds: int, scale: float) -> None:
    async with AsyncExitStack() as exits:
        proxy = await exits.enter_async_context(
            litellm_proxy(stack.fake_url, stack.data_dir / "litellm")
        )
        hop_port = free_port()
        hop_env = {**stack.env, "RUNCAP_API_PORT": str(hop_port)}
        hop = await exits.enter_async_context(
            python_child("api", hop_env, hop_port, stack.data_dir / "api-hop.log")
        )
        http = await exits.enter_async_context(clients())
        pids = {**stack.pids, "litellm": proxy.pid, "bench": os.getpid(), HOP_API: hop.pid}
        load_before = os.getloadavg()[0]
        key = await create_key(http.first, stack)
        hop_key = await create_key(
            http.first,
            stack,
            loop_max_repeats=LOOP_MAX_REPEATS,
            loop_window_seconds=LOOP_WINDOW_SECONDS,
        )
        all_targets = targets(stack, proxy, key, hop_key, f"http://127.0.0.1:{hop_port}")
        await _check_prices(http, all_targets)
        progress("warming up: the run, 64 task runs, pools")
        for target in all_targets:
            await run_block(http, target, concurrency=10, total=200, pids=pids)
        cells: dict[tuple[int, int], dict[str, Blocks]] = {}
        for latency in LATENCIES_MS:
            await script_latency(http.first, stack.fake_url, latency)
            for concurrency in CONCURRENCY:
                calls = max(concurrency, round(CALLS[latency, concurrency] * scale))
                cells[latency, concurrency] = await _cell(
                    http, all_targets, pids, concurrency, calls, rounds, latency
                )
        bursts = await _bursts(http, stack, proxy)
    print(
        f"\nMachine: {os.cpu_count()} cores; load average (1 min) {load_before:.1f} at the start,"
        f" {os.getloadavg()[0]:.1f} at the end (other work on the machine counts in it)."
    )
    own = {t.name: t.own for t in all_targets[1:]}
    report.comparison(cells, rounds, bursts, [RUNCAP, LITELLM, TASKS, HOP], own)


async def _cell(
    http: Clients,
    all_targets: Sequence[Target],
    pids: dict[str, int],
    concurrency: int,
    calls: int,
    rounds: int,
    latency: int,
) -> dict[str, Blocks]:
    progress(f"provider {latency} ms, concurrency {concurrency}: {rounds} rounds of {calls}")
    direct, gateways = all_targets[0], list(all_targets[1:])
    for target in all_targets:  # open `concurrency` connections to each before measuring
        await run_block(http, target, concurrency=concurrency, total=concurrency * 2, pids={})
    cell = {t.name: Blocks() for t in all_targets}
    for r in range(rounds):
        # Rotate the gateways each round: each goes first, second and last in turn.
        turn = r % len(gateways)
        order = [direct, *gateways[turn:], *gateways[:turn]]
        for target in order:
            block = await run_block(http, target, concurrency=concurrency, total=calls, pids=pids)
            cell[target.name].runs.append(block)
    return cell


async def _check_prices(http: Clients, all_targets: Sequence[Target]) -> None:
    """Both gateways must bill the same call the same amount, or the comparison is unfair."""
    bills = []
    for target in all_targets[1:3]:
        response = await http.first.post(
            target.url, content=BODY_BYTES, headers=json_headers(target.headers())
        )
        response.raise_for_status()
        cost = response.headers.get("x-runcap-cost-usd") or response.headers.get(
            "x-litellm-response-cost"
        )
        bills.append(f"{target.name} ${cost}")
    progress("one call billed: " + ", ".join(bills))


async def _bursts(http: Clients, stack: Stack, proxy: Proxy) -> list[report.BurstRow]:
    """``BURST`` calls at once on one run: a fresh run (its start in the burst) and a warm one."""
    assert stack.api_url is not None
    url = "/v1/chat/completions"
    rows = []
    for latency in LATENCIES_MS:
        await script_latency(http.first, stack.fake_url, latency)
        for label in ("runcap, new run", "runcap, warm run", "LiteLLM"):
            if label == "LiteLLM":
                target = Target(label, f"{proxy.url}{url}", lambda: proxy.headers)
            else:
                auth = {"Authorization": f"Bearer {await create_key(http.first, stack)}"}
                target = Target(label, f"{stack.api_url}{url}", fixed(auth))
            if label != "runcap, new run":
                await run_block(http, target, concurrency=1, total=1, pids={})
            block = await run_block(http, target, concurrency=BURST, total=BURST, pids={})
            rows.append(report.BurstRow(label, latency, block))
    progress("bursts done")
    return rows
