"""The benchmark's stack on ``make prod-check``'s topology: the Temporal server on PostgreSQL,
requiring mTLS, one worker and one api as the image runs them (``prodcheck.Stack``).

Why: the dev server keeps its history in memory, in its own process; in production every
event is a write to PostgreSQL behind a TLS hop. The bench ``Stack`` it gives carries the api's
environment, so the benchmark's own Temporal client (counting the keepers' histories) connects
with the api's client certificate, and PostgreSQL's pid, so its CPU is counted as runcap's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bench.compare import progress
from bench.harness import Stack
from prodcheck.processes import Child
from prodcheck.stack import Stack as Topology
from prodcheck.temporal import TemporalServer


def _pid(child: Child | None) -> int:
    assert child is not None and child.process is not None, "a part did not start"
    return child.process.pid


@asynccontextmanager
async def production_stack(data_dir: Path) -> AsyncIterator[Stack]:
    """PostgreSQL, the Temporal server, the fake, one worker and one api, ready to serve."""
    progress("production topology: PostgreSQL, Temporal server (mTLS), worker, api")
    async with Topology.production() as topology:
        progress(topology.describe())
        assert isinstance(topology.temporal, TemporalServer)
        assert topology.postgres is not None
        pids = {
            "temporal": _pid(topology.temporal.child),
            "postgres": topology.postgres.pid,
            "fake": _pid(topology.fake_child),
            "worker": _pid(topology.workers[0]),
            "api": _pid(topology.apis[0]),
        }
        yield Stack(
            topology.temporal_address,
            topology.fake_url,
            topology.api_urls[0],
            topology.env("api"),
            data_dir,
            pids,
            topology.admin_key,
        )
