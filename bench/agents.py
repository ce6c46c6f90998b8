"""``agents``: the shape runcap's users have. N agents, each its own run (its own ``task:`` tag),
each in a loop: one call (the provider answers after L), think for T, call again.

Three targets on the same fake provider, in alternating rounds (direct, runcap, LiteLLM; then
runcap, LiteLLM, direct; ...): calling the fake directly (the physical limit), runcap's api, and
LiteLLM's proxy. What a gateway adds is its latency minus the direct latency of the same rounds.

The agents run in several processes (``bench.agents_load``, 25 agents each), so the generator
is not what is measured: the direct target's p99 over L says how close it comes. Every round
ends with a quiet tail of the api's report interval plus a second, so the round's batched
reports (and their CPU) land in its own window. For runcap, the key's keepers' histories are
counted (``bench.histories``) just before and after its round: what its calls cost Temporal,
and apart, what its idle lines cost while the other targets ran.

A first, shorter round per target (not in the figures but shown apart) opens the runs, the
lines and the connections: the measured rounds see agents already at work.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from temporalio.client import Client

from bench import agents_report
from bench.agents_load import Outcome, Round
from bench.compare import progress, script_latency
from bench.cpu import snapshot, spent
from bench.harness import Stack, child, create_key_record
from bench.histories import KeyHistories, KeyTally
from bench.litellm_proxy import Proxy, litellm_proxy
from bench.load import clients
from settings.temporal import load_target

AGENTS_PER_PROCESS = 25
"""Measured here: 25 agents (12 calls/s) keep one process's loop mostly idle."""
START_SLACK = 0.3
"""Seconds between sending a round to the load processes and its start: all get it first."""
REPORT_INTERVAL = 5.0
"""The api's default ``RUNCAP_REPORT_INTERVAL_SECONDS``."""
DIRECT, RUNCAP, LITELLM = agents_report.DIRECT, agents_report.RUNCAP, agents_report.LITELLM
PATH = "/v1/chat/completions"


@dataclass
class Shape:
    """The scenario's knobs: what a user's agents look like, and how long each round lasts."""

    agents: int
    latency: float
    think: float
    seconds: float
    rounds: int
    warmup: float

    @property
    def cycle(self) -> float:
        return self.latency + self.think


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    task_tags: bool = False
    own: tuple[str, ...] = ()
    """The processes that are this gateway: their CPU is its cost."""


@dataclass
class Measured:
    """One target in one round."""

    outcome: Outcome
    seconds: float
    """How long agents started calls (calls/s is the answered calls over it)."""
    cpu: dict[str, float]
    temporal: KeyTally | None = None
    """runcap only: the key's keepers' events in the round and its tail."""
    idle: KeyTally | None = None
    """runcap only: their events while the other targets' rounds ran (the lines idle)."""
    idle_seconds: float = 0.0


@dataclass
class Cell:
    """Every round of one agent count: ``rounds[target]`` in the order they ran."""

    shape: Shape
    processes: int
    warmup: dict[str, Measured] = field(default_factory=dict)
    rounds: dict[str, list[Measured]] = field(default_factory=dict)


class LoadProcesses:
    """The load generator: processes each running a share of the agents, driven by pipes."""

    def __init__(self, children: Sequence[asyncio.subprocess.Process], shape: Shape) -> None:
        self.children = children
        self.shape = shape
        spacing = shape.cycle / shape.agents
        # Agent i starts i/N of a cycle in: their calls are spread out, as real agents' are.
        agents = [(f"agent-{i}", i * spacing) for i in range(shape.agents)]
        self.shares = [agents[n :: len(children)] for n in range(len(children))]

    @property
    def pids(self) -> dict[str, int]:
        return {f"load-{n}": c.pid for n, c in enumerate(self.children)}

    async def play(self, target: Target, seconds: float) -> Outcome:
        start_at = time.time() + START_SLACK
        for proc, share in zip(self.children, self.shares, strict=True):
            plan = Round(
                target.url, target.headers, share, start_at, seconds, self.shape.think,
                target.task_tags,
            )  # fmt: skip
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(asdict(plan)).encode() + b"\n")
            await proc.stdin.drain()
        merged, errors = Outcome(), Counter[str]()
        for proc in self.children:
            assert proc.stdout is not None
            line = await proc.stdout.readline()
            if not line:
                raise RuntimeError(f"load process {proc.pid} exited with {await proc.wait()}")
            part = Outcome(**json.loads(line))
            merged.latencies += part.latencies
            merged.calls += part.calls
            errors.update(part.errors)
        merged.errors = dict(errors)
        return merged


@asynccontextmanager
async def load_processes(shape: Shape, logs: Path) -> AsyncIterator[LoadProcesses]:
    """The agents of ``shape`` in processes of ``AGENTS_PER_PROCESS``, their errors in ``logs``."""
    count = math.ceil(shape.agents / AGENTS_PER_PROCESS)
    async with AsyncExitStack() as exits:
        children = []
        for n in range(count):
            share = len(range(n, shape.agents, count))
            argv = [sys.executable, "-m", "bench.agents_load", str(share)]
            log = logs / f"load-{n}.log"
            children.append(
                await exits.enter_async_context(
                    child(argv, dict(os.environ), None, log, pipes=True)
                )
            )
        yield LoadProcesses(children, shape)


async def run(stack: Stack, shapes: Sequence[Shape]) -> None:
    assert stack.api_url is not None
    tail = float(stack.env.get("RUNCAP_REPORT_INTERVAL_SECONDS") or REPORT_INTERVAL) + 1.0
    cells = []
    async with AsyncExitStack() as exits:
        proxy = await exits.enter_async_context(
            litellm_proxy(stack.fake_url, stack.data_dir / "litellm")
        )
        http = await exits.enter_async_context(clients(1))
        temporal = await load_target(environ=stack.env).connect()
        load_before = os.getloadavg()
        for shape in shapes:
            await script_latency(http.first, stack.fake_url, round(shape.latency * 1000))
            key = await create_key_record(
                http.first, stack, max_open_runs=max(100, 2 * shape.agents)
            )
            async with load_processes(shape, stack.data_dir) as load:
                cells.append(await _cell(stack, proxy, temporal, key, load, shape, tail))
        load_after = os.getloadavg()
    agents_report.print_all(cells, load_before, load_after, os.cpu_count() or 0)


def _targets(stack: Stack, proxy: Proxy, key: dict[str, str]) -> list[Target]:
    auth = {"Authorization": f"Bearer {key['key']}"}
    return [
        Target(DIRECT, f"{stack.fake_url}{PATH}", {}),
        Target(RUNCAP, f"{stack.api_url}{PATH}", auth, True, agents_report.OWN[RUNCAP]),
        Target(LITELLM, f"{proxy.url}{PATH}", proxy.headers, False, agents_report.OWN[LITELLM]),
    ]


async def _cell(
    stack: Stack,
    proxy: Proxy,
    temporal: Client,
    key: dict[str, str],
    load: LoadProcesses,
    shape: Shape,
    tail: float,
) -> Cell:
    targets = _targets(stack, proxy, key)
    pids = {**stack.pids, "litellm": proxy.pid, "bench": os.getpid(), **load.pids}
    histories = KeyHistories(temporal, key["id"])
    cell = Cell(shape, len(load.children), rounds={t.name: [] for t in targets})
    n = shape.agents
    progress(f"{n} agents: warm-up, {shape.warmup:.0f} s per target (runs, lines, connections)")
    for target in targets:
        cell.warmup[target.name] = await _block(load, target, shape.warmup, pids, tail)
    counted, counted_at = await histories.count(), time.monotonic()
    for r in range(shape.rounds):
        order = targets[r % 3 :] + targets[: r % 3]
        progress(f"{n} agents: round {r + 1}/{shape.rounds}, {shape.seconds:.0f} s per target")
        for target in order:
            if target.name != RUNCAP:
                block = await _block(load, target, shape.seconds, pids, tail)
            else:
                before, idle_seconds = await histories.count(), time.monotonic() - counted_at
                block = await _block(load, target, shape.seconds, pids, tail)
                after = await histories.count()
                block.temporal, block.idle = after - before, before - counted
                block.idle_seconds = idle_seconds
                counted, counted_at = after, time.monotonic()
            cell.rounds[target.name].append(block)
    return cell


async def _block(
    load: LoadProcesses, target: Target, seconds: float, pids: dict[str, int], tail: float
) -> Measured:
    before = snapshot(pids)
    outcome = await load.play(target, seconds)
    # Work a gateway defers (a line's batched report, the keepers' tasks it wakes) belongs to
    # this round: it is counted here, not in the next target's window.
    await asyncio.sleep(tail)
    return Measured(outcome, seconds, spent(before, snapshot(pids)))
