"""The worker's health: a file it touches while it runs and reaches Temporal, and the check.

Why a file: the worker serves no HTTP (no web stack in it), and a container health check can
run a command. ``python -m worker.health`` (compose's health check) succeeds while the file is
fresh; a wedged event loop, a stopped worker or an unreachable Temporal lets it go stale.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from worker.settings import get_settings

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 30.0
"""Six missed beats: long enough for a Temporal restart, short enough for a health check."""

log = logging.getLogger(__name__)


async def heartbeat(path: Path, client: Client, worker: Worker) -> None:
    """Touch ``path`` every few seconds while ``worker`` runs and Temporal answers (the first
    beat comes as soon as the worker runs, so a new worker is soon seen healthy)."""
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    beaten = False
    while True:
        if worker.is_running:
            try:
                async with asyncio.timeout(HEARTBEAT_SECONDS):
                    await client.service_client.check_health()
                await asyncio.to_thread(path.touch)
                beaten = True
            except Exception as error:  # the beat is skipped; the file goes stale if it lasts
                log.warning("health: Temporal did not answer: %s", error or type(error).__name__)
        await asyncio.sleep(HEARTBEAT_SECONDS if beaten else 0.2)


def clear(path: Path | None) -> None:
    """Remove a stale file from an earlier run, so a new worker is unhealthy until it beats."""
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def is_fresh(path: Path, max_age: float = STALE_AFTER_SECONDS) -> bool:
    """True when ``path`` was touched within ``max_age`` seconds."""
    try:
        return time.time() - path.stat().st_mtime <= max_age
    except FileNotFoundError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m worker.health``: exit 0 when the worker's health file is fresh."""
    parser = argparse.ArgumentParser(prog="python -m worker.health")
    parser.add_argument("--file", type=Path, help="default: RUNCAP_HEALTH_FILE")
    parser.add_argument("--max-age", type=float, default=STALE_AFTER_SECONDS)
    args = parser.parse_args(argv)
    path = args.file or get_settings().health_file
    if path is None:
        print("worker health: no file (set RUNCAP_HEALTH_FILE)", file=sys.stderr)
        return 1
    if is_fresh(path, args.max_age):
        return 0
    print(f"worker health: {path} is missing or older than {args.max_age:.0f}s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
