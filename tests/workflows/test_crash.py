"""Durability: a worker killed mid-burst loses no call or cent; a vanished caller holds nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlmodel import col
from temporalio.client import Client

from caller.caller import Caller, CallFailed
from db.models import LedgerEntry
from fake_provider import FakeProvider
from providers.base import Provider
from tests.conftest import TargetFactory
from tests.databases import sqlite_at_head
from tests.waiting import eventually
from tests.workflows.test_agent_run import assert_replays, spec, spend_of
from worker.devserver import DevServer
from workflows import errors
from workflows.contracts import MICROS_PER_USD, RunInput


def start_worker(
    dev_server: DevServer, fake: FakeProvider, task_queue: str, db: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RUNCAP_TEMPORAL_ADDRESS": dev_server.target,
        "RUNCAP_TASK_QUEUE": task_queue,
        "RUNCAP_DATABASE_URL": f"sqlite:///{db}",
        "RUNCAP_FAKE_PROVIDER_URL": fake.base_url,
    }
    return subprocess.Popen([sys.executable, "-m", "worker"], env=env)


async def test_sigkill_worker_mid_burst(
    dev_server: DevServer,
    temporal_client: Client,
    fake: FakeProvider,
    providers: dict[str, Provider],
    task_queue: str,
    target: TargetFactory,
    tmp_path: Path,
) -> None:
    """Every call ends (success or clean error), nothing stays reserved, nothing settles twice."""
    await fake.reset()
    await fake.script("fake-small", latency_ms=1500)
    db = tmp_path / "ledger.db"
    sqlite_at_head(db).dispose()  # what `python -m db upgrade` does before a worker starts
    worker = start_worker(dev_server, fake, task_queue, db)
    run = RunInput(run_id=uuid.uuid4().hex[:12], budget_micros=MICROS_PER_USD)
    try:
        async with Caller(temporal_client, providers, workflow_task_queue=task_queue) as caller:
            small = target("fake-small")
            calls = [asyncio.create_task(caller.call(run, spec([small]))) for _ in range(10)]
            await asyncio.sleep(0.8)  # the attempts are in flight at the provider
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            worker = start_worker(dev_server, fake, task_queue, db)
            outcomes = await asyncio.wait_for(
                asyncio.gather(*calls, return_exceptions=True), timeout=120
            )
        ok = [o for o in outcomes if not isinstance(o, BaseException)]
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(isinstance(f, CallFailed) for f in failed), failed
        spend = await spend_of(temporal_client, run)
        assert spend.reserved_micros == 0
        assert spend.calls == len(ok)
        assert spend.spent_micros == sum(o.result.cost_micros for o in ok)
        engine = create_engine(f"sqlite:///{db}")

        def settled() -> list[LedgerEntry]:
            with engine.connect() as conn:
                query = select(LedgerEntry).where(
                    col(LedgerEntry.run_id) == run.run_id, col(LedgerEntry.status) == "ok"
                )
                return [LedgerEntry.model_validate(r._mapping) for r in conn.execute(query)]

        rows = await eventually(lambda: len(settled()) == len(ok) and settled(), within=30)
        assert rows, "the ledger never caught up"
        assert sum(r.cost_micros for r in rows) == spend.spent_micros
        engine.dispose()
        await assert_replays(temporal_client, run)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


async def test_a_vanished_caller_releases_its_reservation(
    temporal_client: Client,
    fake: FakeProvider,
    providers: dict[str, Provider],
    task_queue: str,
    worker: None,
    target: TargetFactory,
) -> None:
    """A caller that goes away mid-call: its call fails cleanly and gives its money back."""
    await fake.reset()
    await fake.script("fake-small", latency_ms=60_000)
    run = RunInput(run_id=uuid.uuid4().hex[:12], budget_micros=MICROS_PER_USD)
    own_client = await Client.connect(temporal_client.service_client.config.target_host)
    doomed = Caller(own_client, providers, workflow_task_queue=task_queue)
    await doomed.__aenter__()
    call = asyncio.create_task(doomed.call(run, spec([target("fake-small")])))
    await eventually(lambda: bool(doomed.pending), within=10)
    await asyncio.sleep(0.5)
    doomed.pending.clear()  # the process forgot its bodies, as a restarted one would
    await doomed.__aexit__(None, None, None)  # and stopped polling its queue
    with pytest.raises(CallFailed) as info:
        await asyncio.wait_for(call, timeout=60)
    assert info.value.kind == errors.CALLER_GONE
    spend = await spend_of(temporal_client, run)
    assert spend.reserved_micros == 0 and spend.spent_micros == 0
    assert spend.failed_calls == 1
