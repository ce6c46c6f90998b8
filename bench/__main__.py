"""``make bench``: print runcap's latency and throughput figures as markdown tables.

Parts, each on a stack of its own on 127.0.0.1:
- ``core``: a call through ``AgentRun`` with the Python ``Caller`` (no api), against the fake;
- ``compare``: the api and LiteLLM's proxy side by side on the same fake (LiteLLM is installed
  into a cached venv of the benchmark's own the first time), alternating, at concurrency 1, 10
  and 50, provider latency 0 and 200 ms, with CPU per process and the issue's targets;
- ``agents``: the shape users have, N agents each its own run (``task:`` tag), each calling
  (the provider answers after L), thinking T, calling again; direct, runcap and LiteLLM in
  alternating rounds, with added p50 and p99, errors, calls/s, CPU per call per process,
  runcap's Temporal updates and workflow tasks per call, and issue 14's targets. Options:
  ``--agents 20,200`` (the cells, default 20,200), ``--rounds`` (per cell, default 3: each
  target leads once), ``--round-seconds`` (30), ``--latency-ms`` (L, 1500), ``--think-ms``
  (T, 500), ``--quick`` (5 agents, one round of 8 s: a smoke test in under two minutes), e.g.
  ``make bench BENCH_ARGS='agents --agents 20,200'``. ``--stack production`` runs it on
  ``make prod-check``'s topology instead of the dev stack (the Temporal server on PostgreSQL,
  mTLS; ``make bench-prod``);
- ``gateway``: the api alone, non-stream and stream (time to first chunk), and throughput;
- ``profile``: py-spy on the api and the worker under load, the top costs per call;
- ``telemetry``: what tracing costs a call (a stack of its own, traced and not);
- ``limits``: what the shared rate limits cost a call (a database only, no stack);
- ``pricing``: what tiered prices, tool fees and media bounds change and cost (no stack).
- ``codex``: a real Codex session through the api, in both of Codex's setups.
- ``statusline``: what Claude Code waits for when it runs ``runcap statusline``.
With no argument: ``core`` and ``compare``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import signal
import sys
import tempfile
from pathlib import Path

from bench import (
    agents,
    codex,
    compare,
    core,
    gateway,
    limits,
    pricing,
    profile,
    statusline,
    telemetry,
)
from bench.harness import stack
from bench.production import production_stack

PARTS = (
    "core",
    "compare",
    "agents",
    "gateway",
    "profile",
    "telemetry",
    "limits",
    "pricing",
    "codex",
    "statusline",
)
OWN_STACK = ("telemetry", "limits", "pricing")
"""Parts that start what they need themselves."""
DEFAULT_PARTS = ["core", "compare"]


async def main(args: argparse.Namespace, root: Path) -> None:
    # SIGTERM stops the benchmark the way Ctrl-C does: every child process is stopped first.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    print(f"runcap benchmarks on {platform.node()} (Python {platform.python_version()})")
    for part in args.parts:
        if part == "telemetry":
            await telemetry.run(str(root / part))
            continue
        if part == "limits":
            await limits.run()
            continue
        if part == "pricing":
            await pricing.run()
            continue
        if args.stack == "production":
            assert part == "agents"
            async with production_stack(root / part) as running:
                print("\nStack: make prod-check's topology (Temporal server on PostgreSQL, mTLS)")
                await agents.run(running, agent_shapes(args))
            continue
        async with stack(with_api=part != "core", data_dir=str(root / part)) as running:
            if part == "core":
                await core.run(running)
            elif part == "compare":
                await compare.run(running, rounds=args.rounds or 4, scale=args.scale)
            elif part == "agents":
                await agents.run(running, agent_shapes(args))
            elif part == "gateway":
                await gateway.run(running)
            elif part == "codex":
                await codex.run(running)
            elif part == "statusline":
                await statusline.run(running)
            else:
                await profile.run(
                    running,
                    seconds=args.profile_seconds,
                    out=args.out,
                    latency_ms=args.profile_latency,
                )


def agent_shapes(args: argparse.Namespace) -> list[agents.Shape]:
    latency, think = args.latency_ms / 1000, args.think_ms / 1000
    counts = [5] if args.quick else [int(n) for n in args.agents.split(",")]
    rounds = 1 if args.quick else (args.rounds or 3)
    seconds = 8.0 if args.quick else args.round_seconds
    # Two calls per agent warm its run and its connection; one in a quick smoke test.
    warmup = (1 if args.quick else 2) * (latency + think)
    return [agents.Shape(n, latency, think, seconds, rounds, warmup) for n in counts]


def cli() -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)}")
    parser.add_argument(
        "--rounds", type=int, help="compare and agents: rounds per cell (4 and 3 by default)"
    )
    parser.add_argument("--agents", default="20,200", help="agents: agent counts, e.g. 20,200")
    parser.add_argument("--round-seconds", type=float, default=30.0, help="agents: per target")
    parser.add_argument("--latency-ms", type=int, default=1500, help="agents: provider L")
    parser.add_argument("--think-ms", type=int, default=500, help="agents: think time T")
    parser.add_argument("--quick", action="store_true", help="agents: 5 agents, one short round")
    parser.add_argument(
        "--stack",
        choices=("dev", "production"),
        default="dev",
        help="agents: the dev stack, or make prod-check's topology (make bench-prod)",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="compare: calls per block x")
    parser.add_argument("--profile-seconds", type=float, default=20.0, help="profile: per load")
    parser.add_argument("--profile-latency", type=int, default=0, help="profile: provider ms")
    parser.add_argument(
        "--out", type=Path, default=Path(".runcap/bench-profiles"), help="profile: dir"
    )
    parser.add_argument("--keep", type=Path, help="keep the stack's logs and databases here")
    args = parser.parse_args()
    args.parts = args.parts or DEFAULT_PARTS
    if unknown := set(args.parts) - set(PARTS):
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    if args.stack == "production" and set(args.parts) != {"agents"}:
        parser.error("--stack production runs the agents part alone")
    if "profile" in args.parts:
        args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="runcap-bench-") as tmp:
        root = args.keep or Path(tmp)
        for part in args.parts:
            (root / part).mkdir(parents=True, exist_ok=True)
        try:
            asyncio.run(main(args, root))
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("bench: interrupted; every process it started is stopped", file=sys.stderr)
            sys.exit(130)


if __name__ == "__main__":
    cli()
