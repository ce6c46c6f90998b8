"""``make bench``: print runcap's latency and throughput figures as markdown tables.

``python -m bench core`` measures ``AgentRun`` through the caller-side helper, ``python -m bench
gateway`` the api, ``python -m bench telemetry`` what tracing costs a call, ``python -m bench
limits`` what the shared rate limits cost a call (a database only, no stack); with no
argument, core and gateway. Each starts what it needs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import tempfile

from bench import core, gateway, limits, telemetry
from bench.harness import stack


async def main(parts: list[str]) -> None:
    print(f"runcap benchmarks on {platform.node()} ({platform.python_version()}), fake latency 0")
    with tempfile.TemporaryDirectory() as data_dir:
        if "core" in parts:
            async with stack(with_api=False, data_dir=data_dir) as running:
                await core.run(running)
        if "gateway" in parts:
            async with stack(with_api=True, data_dir=data_dir) as running:
                await gateway.run(running)
        if "telemetry" in parts:
            await telemetry.run(data_dir)
    if "limits" in parts:
        await limits.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "parts", nargs="*", help="core, gateway, telemetry, limits; core and gateway by default"
    )
    parts = parser.parse_args().parts or ["core", "gateway"]
    if unknown := set(parts) - {"core", "gateway", "telemetry", "limits"}:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    asyncio.run(main(parts))
