"""Where runcap's CPU goes under load: py-spy on the api and the worker, per call.

For each concurrency the api is loaded (one run, provider latency 0 or as given) while
``py-spy record`` samples the api and the worker (``--nonblocking``: the processes are never
paused; ``--gil``: only a thread holding the GIL is sampled, so a sample is Python CPU, never a
thread waiting).
Each sample is given to one cost, the most specific that appears in its stack
(``get_type_hints`` before the payload converter before the Temporal client...). A cost's
CPU ms per call is its share of the samples times the process's ``/proc`` CPU per call: the
sample count itself can run over ``/proc`` (16% over for the api once: py-spy reads the GIL
holder without pausing the process, so a thread that just released it may still count),
while the shares agree from run to run. Work done without the GIL (the Temporal SDK's Rust
core, sqlite) is spread over the shares this way. The raw stacks are kept (``--out``) for
flame graphs.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from bench.compare import script_latency
from bench.cpu import snapshot, spent
from bench.harness import Stack, create_key
from bench.load import Clients, Target, clients, run_block
from bench.report import table

RATE = 250
"""Samples per second per thread."""
CONCURRENCY = (10, 50)
COSTS: list[tuple[str, str]] = [
    # (label, pattern in a frame); the first that appears anywhere in a stack takes the sample.
    ("typing.get_type_hints (payload conversion)", r"^get_type_hints "),
    ("Temporal payload conversion (other)", r"temporalio/converter/"),
    ("workflow sandbox", r"temporalio/worker/workflow_sandbox/"),
    ("AgentRun code (workflows/)", r"/workflows/"),
    ("ledger write (db.ledger, SQLAlchemy, sqlite)", r"db/ledger\.py|caller/ledger\.py"),
    ("key auth and idempotency (db)", r"api/auth\.py|api/idempotency\.py"),
    ("other SQLAlchemy", r"sqlalchemy/"),
    ("Temporal client / worker (Python side)", r"temporalio/"),
    ("pydantic validation and dumps", r"pydantic"),
    ("json", r"/json/"),
    ("logging", r"/logging/"),
    ("provider call (httpx, httpcore)", r"httpx/|httpcore/"),
    ("runcap caller (caller/, providers/)", r"/caller/|/providers/"),
    ("runcap api (api/)", r"/api/"),
    ("HTTP server (uvicorn, starlette, fastapi)", r"uvicorn/|starlette/|fastapi/"),
    ("event loop (asyncio, uvloop: its C code runs under Runner.run)", r"asyncio/|uvloop"),
]
OTHER = "other"


def py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else "py-spy"


def read_raw(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw (collapsed) stacks: frames from the root, and the sample count."""
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def attribute(stacks: list[tuple[list[str], int]]) -> Counter[str]:
    compiled = [(label, re.compile(pattern)) for label, pattern in COSTS]
    costs: Counter[str] = Counter()
    for frames, count in stacks:
        label = next((lbl for lbl, rx in compiled if any(rx.search(f) for f in frames)), OTHER)
        costs[label] += count
    return costs


def top_leaves(stacks: list[tuple[list[str], int]], n: int) -> list[tuple[str, int]]:
    leaves: Counter[str] = Counter()
    for frames, count in stacks:
        leaves[frames[-1]] += count
    return leaves.most_common(n)


async def record(pid: int, out: Path) -> asyncio.subprocess.Process:
    """py-spy on ``pid`` until it gets SIGINT (then it writes ``out``)."""
    argv = [py_spy(), "record", "-p", str(pid), "-r", str(RATE), "-f", "raw", "-o", str(out)]
    argv += ["--nonblocking", "--gil"]
    return await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


async def run(stack: Stack, *, seconds: float, out: Path, latency_ms: int = 0) -> None:
    assert stack.api_url is not None
    async with clients() as http:
        auth = {"Authorization": f"Bearer {await create_key(http.first, stack)}"}
        await script_latency(http.first, stack.fake_url, latency_ms)
        target = Target("runcap", f"{stack.api_url}/v1/chat/completions", lambda: auth)
        pids = {**stack.pids, "bench": os.getpid()}
        await run_block(http, target, concurrency=10, total=300, pids={})  # warm-up
        for conc in CONCURRENCY:
            await _profile(http, target, stack, pids, conc, seconds, out, latency_ms)


async def _profile(
    http: Clients,
    target: Target,
    stack: Stack,
    pids: dict[str, int],
    conc: int,
    seconds: float,
    out: Path,
    latency_ms: int,
) -> None:
    files = {name: out / f"{name}-c{conc}-{latency_ms}ms.txt" for name in ("api", "worker")}
    spies = [await record(stack.pids[name], path) for name, path in files.items()]
    await asyncio.sleep(1.0)  # py-spy attaches
    before, began, calls = snapshot(pids), time.monotonic(), 0
    while time.monotonic() - began < seconds:
        block = await run_block(http, target, concurrency=conc, total=conc * 10, pids={})
        calls += len(block.latencies)
    cpu = spent(before, snapshot(pids))
    took = time.monotonic() - began
    for spy in spies:
        spy.send_signal(signal.SIGINT)
        await spy.wait()
    print(f"\n### Profile at concurrency {conc}: {calls} calls in {took:.1f} s")
    print(f"({calls / took:.0f} calls/s; provider latency {latency_ms} ms; one run)\n")
    cpu_rows = [[name, f"{s * 1000 / calls:.2f}"] for name, s in cpu.items()]
    print(table(["process", "CPU ms per call (/proc)"], cpu_rows))
    for name, path in files.items():
        stacks = read_raw(path)
        total = sum(c for _, c in stacks)
        per_call = cpu[name] * 1000 / calls / total  # ms per call of one sample
        sampled = total * 1000 / RATE / calls
        print(f"\n{name}: {cpu[name] * 1000 / calls:.2f} ms per call (/proc); py-spy samples")
        print(f"of GIL holders come to {sampled:.2f}. Stacks: {path}\n")
        rows = [
            [label, f"{count * per_call:.2f}", f"{100 * count / total:.0f}%"]
            for label, count in attribute(stacks).most_common()
        ]
        print(table(["cost", "ms per call", "share"], rows))
        leaves = [[f"`{f[:90]}`", f"{c * per_call:.3f}"] for f, c in top_leaves(stacks, 12)]
        print()
        print(table([f"{name}: top functions (self)", "ms per call"], leaves))
