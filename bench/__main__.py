"""``make bench``: print runcap's latency and throughput figures as markdown tables.

Parts, each on a stack of its own on 127.0.0.1:
- ``core``: a call through ``AgentRun`` with the Python ``Caller`` (no api), against the fake;
- ``compare``: the api and LiteLLM's proxy side by side on the same fake (LiteLLM is installed
  into a cached venv of the benchmark's own the first time), alternating, at concurrency 1, 10
  and 50, provider latency 0 and 200 ms, with CPU per process and the issue's targets;
- ``gateway``: the api alone, non-stream and stream (time to first chunk), and throughput;
- ``profile``: py-spy on the api and the worker under load, the top costs per call;
- ``telemetry``: what tracing costs a call (a stack of its own, traced and not);
- ``limits``: what the shared rate limits cost a call (a database only, no stack);
- ``codex``: a real Codex session through the api, in both of Codex's setups.
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

from bench import codex, compare, core, gateway, limits, profile, telemetry
from bench.harness import stack

PARTS = ("core", "compare", "gateway", "profile", "telemetry", "limits", "codex")
OWN_STACK = ("telemetry", "limits")
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
        async with stack(with_api=part != "core", data_dir=str(root / part)) as running:
            if part == "core":
                await core.run(running)
            elif part == "compare":
                await compare.run(running, rounds=args.rounds, scale=args.scale)
            elif part == "gateway":
                await gateway.run(running)
            elif part == "codex":
                await codex.run(running)
            else:
                await profile.run(
                    running,
                    seconds=args.profile_seconds,
                    out=args.out,
                    latency_ms=args.profile_latency,
                )


def cli() -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)}")
    parser.add_argument("--rounds", type=int, default=4, help="compare: rounds per cell")
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
