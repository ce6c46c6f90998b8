"""``make bench``: print runcap's latency and throughput figures as markdown tables.

``python -m bench core`` measures ``AgentRun`` through the caller-side helper, ``python -m bench
gateway`` the api, ``python -m bench limits`` the shared rate limits (no stack: a database
only); with no argument, all three. Each starts what it needs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import tempfile

from bench import core, gateway, limits
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
    if "limits" in parts:
        await limits.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("parts", nargs="*", help="core, gateway, limits; all by default")
    parts = parser.parse_args().parts or ["core", "gateway", "limits"]
    if unknown := set(parts) - {"core", "gateway", "limits"}:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    asyncio.run(main(parts))
