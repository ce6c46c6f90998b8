"""The example agent written as a workflow: its loop, its costs by step, its ledger, its replay."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlmodel import col
from temporalio.client import Client
from temporalio.worker import Replayer

from db.models import LedgerEntry
from examples.agent import AgentTask, ExampleAgent
from fake_provider import FakeProvider
from tests.conftest import TargetFactory
from workflows.budget import cost_micros
from workflows.contracts import Usage


async def test_agent_loop_is_billed_by_step(
    temporal_client: Client,
    task_queue: str,
    worker: None,
    fake: FakeProvider,
    target: TargetFactory,
    engine: Engine,
) -> None:
    """Plan, edit, fail, read, edit, pass: every call billed once, per step, within the cap,
    and the ledger equals the agent's own figures."""
    await fake.reset()
    await fake.script("fake-large", faults=[{"status": 500, "times": 2}])
    chain = [target("fake-large"), target("fake-small")]
    task = AgentTask("agent-t1", "fix the parser", budget_micros=100_000, chain=chain)
    handle = await temporal_client.start_workflow(
        ExampleAgent.run, task, id="agent-t1-" + task_queue, task_queue=task_queue
    )
    report = await handle.result()
    assert report.passed and report.iterations == 2
    assert set(report.by_step) == {"step:plan", "step:edit", "step:read-failure"}
    assert report.by_step["step:edit"].calls == 2
    assert sum(s.cost_micros for s in report.by_step.values()) == report.spent_micros
    assert 0 < report.spent_micros <= task.budget_micros
    with engine.connect() as conn:
        query = select(LedgerEntry).where(col(LedgerEntry.run_id) == "agent-t1")
        rows = [LedgerEntry.model_validate(r._mapping) for r in conn.execute(query)]
    assert len(rows) == report.calls == 4  # plan, edit, read-failure, edit
    assert all(r.status == "ok" for r in rows)
    prices = {t.model: t.price for t in chain}
    billed = [
        cost_micros(
            prices[r.model],
            Usage(r.input_tokens, r.output_tokens, r.cached_input_tokens, r.cache_write_tokens),
        )
        for r in rows
    ]
    assert [r.cost_micros for r in rows] == billed
    assert sum(billed) == report.spent_micros
    # The first call met two 500s from fake-large: its first target failed, the second served.
    assert any(len(r.attempts) == 2 for r in rows)
    history = await handle.fetch_history()
    await Replayer(workflows=[ExampleAgent]).replay_workflow(history)
