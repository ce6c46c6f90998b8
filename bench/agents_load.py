"""A share of the ``agents`` scenario's agents, in a process of its own: ``python -m
bench.agents_load``, started and driven by ``bench.agents``.

Why a process per share: one Python process making 100 calls/s over 200 connections delays
its own calls (its event loop is busy when an answer arrives), so the direct target's p99
would measure the generator, not the provider. A few processes of 25 agents each keep every
loop mostly idle; their latencies come back whole, so percentiles are taken over all of them.

The process lives for the whole scenario (its connection pools stay warm) and talks in JSON
lines: a ``Round`` on stdin, its ``Outcome`` on stdout; it ends when stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import httpx

from bench.load import BODY_BYTES, LANES_PER_CLIENT, Clients, clients, json_headers

TAG_HEADER = "x-runcap-tags"


@dataclass
class Round:
    """One round for this share: each agent calls ``url``, thinks, calls again, until
    ``seconds`` after ``start_at`` (wall clock, so every share starts together)."""

    url: str
    headers: dict[str, str]
    agents: list[tuple[str, float]]
    """Each agent's name and its offset (s) after ``start_at``: offsets spread over one
    cycle, so the agents' calls are spread in time as real agents' are."""
    start_at: float
    seconds: float
    think: float
    task_tags: bool
    """Each agent's calls carry ``task:<its name>``: each agent is its own run in runcap."""


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    """Seconds, of the calls answered 200."""
    errors: dict[str, int] = field(default_factory=dict)
    calls: int = 0


async def agent(
    client: httpx.AsyncClient,
    plan: Round,
    name: str,
    begin: float,
    deadline: float,
    outcome: Outcome,
    errors: Counter[str],
) -> None:
    extra = {TAG_HEADER: f"task:{name}"} if plan.task_tags else {}
    headers = json_headers({**plan.headers, **extra})
    await asyncio.sleep(max(0.0, begin - time.monotonic()))
    while time.monotonic() < deadline:
        outcome.calls += 1
        start = time.perf_counter()
        try:
            response = await client.post(plan.url, content=BODY_BYTES, headers=headers)
        except httpx.HTTPError as err:
            errors[type(err).__name__] += 1
        else:
            if response.status_code == 200:
                outcome.latencies.append(time.perf_counter() - start)
            else:
                errors[str(response.status_code)] += 1
        await asyncio.sleep(plan.think)


async def play(http: Clients, plan: Round) -> Outcome:
    # Wall clock to this process's monotonic clock, once: the round is timed on the latter.
    start = time.monotonic() + (plan.start_at - time.time())
    deadline = start + plan.seconds
    outcome, errors = Outcome(), Counter[str]()
    await asyncio.gather(
        *(
            agent(http.for_lane(lane), plan, name, start + offset, deadline, outcome, errors)
            for lane, (name, offset) in enumerate(plan.agents)
        )
    )
    outcome.errors = dict(errors)
    return outcome


async def serve(agents: int) -> None:
    loop = asyncio.get_running_loop()
    async with clients(max(1, math.ceil(agents / LANES_PER_CLIENT))) as http:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            fields = json.loads(line)
            fields["agents"] = [tuple(a) for a in fields["agents"]]
            outcome = await play(http, Round(**fields))
            sys.stdout.write(json.dumps(asdict(outcome)) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
