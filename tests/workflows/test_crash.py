"""Durability: a worker killed mid-burst loses no call or cent; a vanished caller holds nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import Engine, create_engine, select
from sqlmodel import col
from temporalio.client import Client
from temporalio.service import RPCError

from caller import Caller, CallFailed, run_handle
from db.models import LedgerEntry
from fake_provider import FakeProvider
from providers.base import Provider
from tests.conftest import TargetFactory
from tests.databases import sqlite_at_head
from tests.polling import eventually
from tests.workflows.test_agent_run import assert_replays, ledger_rows, spec, spend_of
from worker.devserver import DevServer
from workflows.agent_run import AgentRun
from workflows.contracts import MICROS_PER_USD
from workflows.run_contracts import (
    RunInput,
    RunSpend,
)


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
            spend = await spend_of(caller, run)
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


async def test_a_silent_caller_is_billed_its_reservations(
    temporal_client: Client,
    fake: FakeProvider,
    providers: dict[str, Provider],
    task_queue: str,
    worker: None,
    target: TargetFactory,
    engine: Engine,
) -> None:
    """A caller with no journal that never reports (it died after calling): past its timeout
    the run bills what its line held (the call, at its reservation), as ``unknown``, and
    records it. Never released as free."""
    await fake.reset()
    small = target("fake-small")
    run = RunInput(
        run_id=uuid.uuid4().hex[:12], budget_micros=MICROS_PER_USD, caller_timeout_seconds=2
    )
    # Its report loop never runs: no report, no heartbeat ever reaches the run.
    silent = Caller(temporal_client, providers, workflow_task_queue=task_queue)
    reply = await silent.call(run, spec([small]))
    assert reply.result.status == "ok"
    handle = run_handle(temporal_client, run.run_id)

    async def expired() -> RunSpend | None:
        spend = await handle.query(AgentRun.spend)
        return spend if spend.calls == 1 else None

    spend = await eventually(expired, within=30)
    assert spend is not None, "the run never settled the silent caller's call"
    assert spend.reserved_micros == 0
    assert spend.spent_micros >= reply.result.cost_micros  # the reservation covers the real cost
    assert spend.spent_micros + spend.reserved_micros <= spend.budget_micros
    rows = await eventually(lambda: ledger_rows(engine, run), within=15)
    assert [(r.status, r.cost_micros) for r in rows] == [("unknown", spend.spent_micros)]
    assert rows[0].reserved_micros == spend.spent_micros
    await assert_replays(temporal_client, run)


async def test_a_caller_that_died_after_answering_is_billed_what_it_recorded(
    temporal_client: Client,
    fake: FakeProvider,
    providers: dict[str, Provider],
    task_queue: str,
    worker: None,
    target: TargetFactory,
    engine: Engine,
) -> None:
    """The caller wrote the call's ledger row, answered, and died before its report: the run
    finds the row in the journal and bills the call at its real cost, not at its reservation;
    the rest of the caller's line comes back."""
    await fake.reset()
    small = target("fake-small")
    run = RunInput(
        run_id=uuid.uuid4().hex[:12], budget_micros=MICROS_PER_USD, caller_timeout_seconds=2
    )
    silent = Caller(temporal_client, providers, engine=engine, workflow_task_queue=task_queue)
    reply = await silent.call(run, spec([small]))
    handle = run_handle(temporal_client, run.run_id)

    async def expired() -> RunSpend | None:
        with contextlib.suppress(RPCError):  # its workflow starts a moment after its first call
            spend = await handle.query(AgentRun.spend)
            return spend if spend.calls == 1 else None
        return None

    spend = await eventually(expired, within=30)
    assert spend is not None, "the run never settled the silent caller's call"
    assert spend.reserved_micros == 0
    assert spend.spent_micros == reply.result.cost_micros
    rows = ledger_rows(engine, run)
    assert [(r.status, r.cost_micros) for r in rows] == [("ok", reply.result.cost_micros)]
    await assert_replays(temporal_client, run)


async def test_a_silent_call_on_a_quiet_run_expires_in_time(
    caller: Caller,
    temporal_client: Client,
    providers: dict[str, Provider],
    task_queue: str,
    target: TargetFactory,
) -> None:
    """A run whose loop sleeps on its hour-long idle timer still expires a newly silent caller's
    call after the caller timeout: the reservation re-arms the loop."""
    small = target("fake-small")
    run = RunInput(
        run_id=uuid.uuid4().hex[:12], budget_micros=MICROS_PER_USD, caller_timeout_seconds=2
    )
    await caller.call(run, spec([small]))
    first = await spend_of(caller, run)  # settled: the loop now waits on the idle timer
    assert first.calls == 1 and not first.open_calls
    silent = Caller(temporal_client, providers, workflow_task_queue=task_queue)
    await silent.call(run.run_id, spec([small]))
    handle = run_handle(temporal_client, run.run_id)

    async def expired() -> RunSpend | None:
        spend = await handle.query(AgentRun.spend)
        return spend if spend.calls == 2 else None

    assert await eventually(expired, within=20), "the silent call was not expired in time"
