"""``python -m prodcheck``: build the tools once, or run the production topology by hand.

python -m prodcheck tools        # build (or find) Temporal server, schema tool, CLI
python -m prodcheck up           # start everything, print the addresses, wait for Ctrl-C
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence

from prodcheck.stack import Stack
from prodcheck.tools import ensure_server_tools
from worker.temporal_cli import TemporalCliError


async def _up() -> None:
    async with Stack.production() as stack:
        print(stack.describe(), flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; exit 1 with the reason when it fails."""
    parser = argparse.ArgumentParser(prog="python -m prodcheck")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("tools", help="build or find the Temporal server and schema tool")
    commands.add_parser("up", help="run the production topology until Ctrl-C")
    args = parser.parse_args(argv)
    try:
        if args.command == "tools":
            started = time.monotonic()
            tools = ensure_server_tools()
            print(f"temporal server tools in {tools.root} ({time.monotonic() - started:.1f}s)")
        else:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_up())
    except TemporalCliError as error:
        print(f"prodcheck: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
