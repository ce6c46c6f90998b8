"""The example agent written as a workflow: its loop, its costs by step, its replay."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.worker import Replayer

from examples.agent import AgentTask, ExampleAgent
from fake_provider import FakeProvider
from tests.conftest import TargetFactory
from workflows.budget import cost_micros


async def test_agent_loop_is_billed_by_step(
    temporal_client: Client,
    task_queue: str,
    worker: None,
    fake: FakeProvider,
    target: TargetFactory,
) -> None:
    """Plan, edit, fail, read, edit, pass: every call billed once, per step, within the cap."""
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
    prices = {t.model: t.price for t in chain}
    assert report.spent_micros == sum(cost_micros(prices[r.model], r.usage) for r in report.ledger)
    # The first call met two 500s from fake-large and was served by it on retry or by fake-small.
    assert all(r.status == "ok" for r in report.ledger)
    history = await handle.fetch_history()
    await Replayer(workflows=[ExampleAgent]).replay_workflow(history)
