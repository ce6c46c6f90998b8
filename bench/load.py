"""Load for the side-by-side comparison: blocks of calls at a fixed concurrency, with their
latencies, errors, wall time and the CPU each process of the stack spent meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import httpx

from bench.cpu import snapshot, spent

BODY = {
    "model": "fake-small",
    "messages": [{"role": "user", "content": "fix the bug"}],
    "max_tokens": 64,
}
BODY_BYTES = json.dumps(BODY).encode()
CPU_TAIL = 2.0
"""Seconds a block's CPU window stays open after its last call: runcap settles within 0.2 s
and its run flushes (ledger, search attributes) within a second after that."""
"""Encoded once: the load generator shares the machine and should spend as little as it can."""


LANES_PER_CLIENT = 10
CLIENTS = 20


@dataclass
class Clients:
    """The load generator's HTTP clients, one per ten lanes.

    Why several: one ``httpx.AsyncClient`` with 50 busy connections spends 2.75 ms of CPU per
    request here (its pool is scanned on every request), against 0.8-1.0 ms with pools of ten
    or fewer (measured against the fake: 260 requests/s against 755). A single client would
    make the generator itself the bottleneck at concurrency 50.
    """

    all: list[httpx.AsyncClient]

    @property
    def first(self) -> httpx.AsyncClient:
        return self.all[0]

    def for_lane(self, lane: int) -> httpx.AsyncClient:
        return self.all[(lane // LANES_PER_CLIENT) % len(self.all)]


@asynccontextmanager
async def clients(count: int = CLIENTS) -> AsyncIterator[Clients]:
    limits = httpx.Limits(max_connections=LANES_PER_CLIENT * 4, max_keepalive_connections=64)
    async with AsyncExitStack() as exits:
        made = [
            await exits.enter_async_context(httpx.AsyncClient(limits=limits, timeout=120))
            for _ in range(count)
        ]
        yield Clients(made)


@dataclass
class Target:
    """Something to call: the fake itself, or a gateway in front of it."""

    name: str
    url: str
    headers: Callable[[], dict[str, str]]
    own: tuple[str, ...] = ()
    """The processes that are this gateway (their CPU is the gateway's cost)."""


@dataclass
class Block:
    """One measured block of calls to one target."""

    latencies: list[float]
    errors: Counter[str]
    wall: float
    cpu: dict[str, float]
    calls: int

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall


@dataclass
class Blocks:
    """Every block of one target in one cell, in the order they ran."""

    runs: list[Block] = field(default_factory=list)

    @property
    def latencies(self) -> list[float]:
        return [x for b in self.runs for x in b.latencies]

    @property
    def rate(self) -> float:
        """Calls/s over all blocks: successful calls over the blocks' summed wall time."""
        return sum(len(b.latencies) for b in self.runs) / sum(b.wall for b in self.runs)

    @property
    def errors(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for b in self.runs:
            total.update(b.errors)
        return total

    def cpu_ms_per_call(self, process: str) -> float:
        calls = sum(b.calls for b in self.runs)
        return sum(b.cpu.get(process, 0.0) for b in self.runs) * 1000 / calls


def json_headers(extra: Mapping[str, str]) -> dict[str, str]:
    return {"content-type": "application/json", **extra}


async def run_block(
    http: Clients,
    target: Target,
    *,
    concurrency: int,
    total: int,
    pids: Mapping[str, int],
) -> Block:
    """``total`` calls to ``target``, ``concurrency`` at a time; errors are counted, not raised."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    queue = iter(range(total))

    async def lane(number: int) -> None:
        client = http.for_lane(number)
        for _ in queue:
            headers = json_headers(target.headers())
            start = time.perf_counter()
            try:
                response = await client.post(target.url, content=BODY_BYTES, headers=headers)
            except httpx.HTTPError as err:
                errors[type(err).__name__] += 1
                continue
            if response.status_code == 200:
                latencies.append(time.perf_counter() - start)
            else:
                errors[str(response.status_code)] += 1

    before = snapshot(pids)
    began = time.perf_counter()
    await asyncio.gather(*(lane(n) for n in range(concurrency)))
    wall = time.perf_counter() - began
    if pids:
        # Work a gateway defers (runcap's settle batches, its run's flush a second later) is
        # the block's: it is counted here, not in the next block's figures.
        await asyncio.sleep(CPU_TAIL)
    return Block(latencies, errors, wall, spent(before, snapshot(pids)), total)
