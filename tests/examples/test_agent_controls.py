"""An agent written as a workflow gets the gateway's controls: its key's period caps, alerts,
the loop guard, and its figures in the Temporal UI."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session, col
from temporalio.client import Client, WorkflowExecution, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from api.run_list import RunRow, double_to_micros, recent_runs
from api.runs import run_spend
from db.models import AlertRecord, LedgerEntry
from examples.agent import AgentTask, ExampleAgent
from fake_provider import FakeProvider
from tests.conftest import TargetFactory
from tests.examples.repeating_agent import Repeat, RepeatingAgent
from tests.polling import eventually
from workflows import errors
from workflows.contracts import PeriodBudget
from workflows.key_budget import KeyBudget
from workflows.key_contracts import PeriodFigures, key_budget_id
from workflows.periods import period_of
from workflows.run_contracts import workflow_id
from workflows.visibility import RUN_CALLS, RUN_COST, RUN_STATUS

HISTORIES = Path(__file__).parents[1] / "workflows" / "histories"
RECORD = os.environ.get("RUNCAP_RECORD_HISTORIES") == "1"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def agent_task(
    target: TargetFactory,
    budget_micros: int = 100_000,
    key_id: str = "",
    periods: list[PeriodBudget] | None = None,
) -> AgentTask:
    """The example agent's task on fake-small, with a key's id and periods when given."""
    chain = [target("fake-small")]
    return AgentTask(
        new_id("agent"),
        "fix the parser",
        budget_micros,
        chain,
        key_id=key_id,
        periods=periods or [],
    )


async def period_figures(client: Client, key_id: str, budget: PeriodBudget) -> PeriodFigures:
    period, _ = period_of(budget.kind, datetime.now(UTC), budget.timezone)
    handle = client.get_workflow_handle(key_budget_id(key_id, budget.kind, period))
    return await handle.query(KeyBudget.figures)


def alerts_of(engine: Engine, run_id: str) -> list[AlertRecord]:
    with Session(engine) as session:
        query = select(AlertRecord).where(col(AlertRecord.run_id) == run_id)
        return list(session.scalars(query))


async def test_agent_draws_from_its_keys_periods(
    temporal_client: Client,
    task_queue: str,
    worker: None,
    fake: FakeProvider,
    target: TargetFactory,
    engine: Engine,
) -> None:
    """Each call of an agent with its key's day and total caps is held at both periods: once it
    is done, each period has spent exactly what the agent's ledger rows cost, and holds
    nothing more for it."""
    await fake.reset()
    key_id = new_id("key")
    periods = [PeriodBudget("day", 1_000_000), PeriodBudget("total", 2_000_000)]
    task = agent_task(target, key_id=key_id, periods=periods)
    report = await temporal_client.execute_workflow(
        ExampleAgent.run, task, id=task.task_id, task_queue=task_queue
    )
    assert report.passed and report.calls == 4
    with engine.connect() as conn:
        query = select(col(LedgerEntry.cost_micros), col(LedgerEntry.key_id)).where(
            col(LedgerEntry.run_id) == task.task_id
        )
        rows = list(conn.execute(query))
    assert len(rows) == 4 and {key for _, key in rows} == {key_id}
    assert sum(cost for cost, _ in rows) == report.spent_micros > 0
    for budget in periods:
        figures = await period_figures(temporal_client, key_id, budget)
        assert figures.spent_micros == report.spent_micros
        assert figures.leased_micros == 0
        assert figures.remaining_micros == budget.cap_micros - report.spent_micros


async def test_agent_is_held_to_its_keys_day_before_calls_go_out(
    temporal_client: Client,
    task_queue: str,
    worker: None,
    fake: FakeProvider,
    target: TargetFactory,
    engine: Engine,
) -> None:
    """A key's day too small for the agent's task (its run's budget is not): a call the day
    cannot pay for is refused before it reaches the provider, with the day's figures; the day
    never spends past its cap, and it spent exactly the calls that went out."""
    await fake.reset()
    key_id = new_id("key")
    day = PeriodBudget("day", 100)  # less than one full call's worst case
    task = agent_task(target, key_id=key_id, periods=[day])
    with pytest.raises(WorkflowFailureError) as failed:
        await temporal_client.execute_workflow(
            ExampleAgent.run, task, id=task.task_id, task_queue=task_queue
        )
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == errors.BUDGET_EXCEEDED
    assert "day budget" in cause.message
    figures = await period_figures(temporal_client, key_id, day)
    refusal = cause.details[0]["refusal"]
    assert refusal["cap"] == "day" and refusal["resets_at"] == figures.ends_at
    assert refusal["spent_micros"] == figures.spent_micros <= day.cap_micros
    assert refusal["remaining_micros"] == day.cap_micros - figures.spent_micros
    assert refusal["needed_micros"] > refusal["remaining_micros"]
    assert figures.leased_micros == 0
    with engine.connect() as conn:
        query = select(col(LedgerEntry.cost_micros)).where(col(LedgerEntry.run_id) == task.task_id)
        costs = list(conn.scalars(query))
    sent = sum(c["calls"] for c in (await fake.calls()).values())
    assert 0 < len(costs) == sent  # the refused call never went out
    assert sum(costs) == figures.spent_micros


async def test_agent_raises_its_runs_threshold_alerts(
    temporal_client: Client,
    task_queue: str,
    worker: None,
    fake: FakeProvider,
    target: TargetFactory,
    engine: Engine,
) -> None:
    """The agent's spend crossing its run's thresholds raises each alert once, as a gateway
    run's does (recorded under the run's id, with the run's figures)."""
    await fake.reset()
    await fake.script("fake-small", completion_tokens=200)
    budget = 2_000
    task = agent_task(target, budget)
    report = await temporal_client.execute_workflow(
        ExampleAgent.run, task, id=task.task_id, task_queue=task_queue
    )
    crossed = {pct for pct in (50, 80, 100) if report.spent_micros * 100 >= pct * budget}
    assert 50 in crossed
    alerts = alerts_of(engine, task.task_id)
    assert sorted(a.threshold_percent for a in alerts) == sorted(crossed)
    assert {(a.kind, a.budget_micros) for a in alerts} == {("threshold", budget)}


async def test_the_loop_guard_pauses_an_agent_until_it_is_resumed(
    temporal_client: Client,
    task_queue: str,
    worker: None,
    fake: FakeProvider,
    target: TargetFactory,
    engine: Engine,
) -> None:
    """The same request a third time (two allowed) is refused before it goes out and pauses
    the agent (``RunStatus=looping`` in the Temporal UI, a loop alert); after ``resume`` its
    next call passes, and only the calls that went out are billed."""
    await fake.reset()
    task = Repeat(new_id("loop"), 100_000, [target("fake-small")], times=3, loop_max_repeats=2)
    handle = await temporal_client.start_workflow(
        RepeatingAgent.run, task, id=task.run_id, task_queue=task_queue
    )

    async def paused() -> bool:
        return (await handle.query(RepeatingAgent.spend)).status == "looping"

    assert await eventually(paused)

    async def listed() -> list[WorkflowExecution]:
        query = f"WorkflowId = '{task.run_id}' AND RunStatus = 'looping'"
        return [w async for w in temporal_client.list_workflows(query)]

    assert await eventually(listed)
    [loop] = [a for a in alerts_of(engine, task.run_id) if a.kind == "loop"]
    assert "3 times" in loop.detail
    await handle.execute_update(RepeatingAgent.resume)
    assert await handle.result() == ["ok", "ok", errors.LOOP_DETECTED, "ok"]
    assert sum(c["calls"] for c in (await fake.calls()).values()) == 3

    async def final() -> list[WorkflowExecution]:
        query = f"WorkflowId = '{task.run_id}' AND RunStatus = 'closed'"
        return [w async for w in temporal_client.list_workflows(query)]

    [run] = await eventually(final)
    spend = await handle.query(RepeatingAgent.spend)
    assert run.typed_search_attributes.get(RUN_CALLS) == spend.calls == 3
    assert double_to_micros(run.typed_search_attributes.get(RUN_COST)) == spend.spent_micros
    assert run.typed_search_attributes.get(RUN_STATUS) == "closed"


async def test_an_agents_run_is_live_in_the_dashboard(
    temporal_client: Client,
    task_queue: str,
    worker: None,
    fake: FakeProvider,
    target: TargetFactory,
    engine: Engine,
) -> None:
    """An agent whose workflow is named as a run (``run-<run_id>``) is in the dashboard's runs
    list while it works, with live figures from its ``spend`` query and its spend from the
    ledger, and its run page reads it live, before and after it ends; the Temporal UI shows its
    latest figures though it makes no call after them."""
    await fake.reset()
    run_id = new_id("live")
    task = Repeat(run_id, 100_000, [target("fake-small")], times=2, loop_max_repeats=0)
    handle = await temporal_client.start_workflow(
        RepeatingAgent.run, task, id=workflow_id(run_id), task_queue=task_queue
    )

    async def listed() -> list[RunRow]:
        rows = await recent_runs(temporal_client, engine, limit=1_000)
        return [r for r in rows if r.run_id == run_id and r.calls == 2]

    [row] = await eventually(listed)
    assert (row.live, row.status, row.agent, row.budget_micros) == (
        True,
        "open",
        "repeater",
        task.budget_micros,
    )
    spend, source = await run_spend(temporal_client, engine, run_id)
    assert (source, spend.status, spend.calls) == ("workflow", "open", 2)
    assert spend.spent_micros == row.spent_micros > 0

    async def shown() -> list[WorkflowExecution]:
        # Its two calls came within a second: the second's figures show at the pause's end,
        # though the agent makes no call after it (it waits for its resume).
        query = f"WorkflowId = '{workflow_id(run_id)}' AND RunCalls = 2 AND RunCost > 0"
        return [w async for w in temporal_client.list_workflows(query)]

    [run] = await eventually(shown)
    assert double_to_micros(run.typed_search_attributes.get(RUN_COST)) == spend.spent_micros
    await handle.execute_update(RepeatingAgent.resume)
    assert await handle.result() == ["ok", "ok", "ok"]
    spend, source = await run_spend(temporal_client, engine, run_id)
    assert (source, spend.status, spend.calls) == ("workflow", "closed", 3)


@pytest.mark.skipif(not RECORD, reason="records histories only when asked to")
async def test_record_agent_controls_histories(
    temporal_client: Client,
    task_queue: str,
    worker: None,
    fake: FakeProvider,
    target: TargetFactory,
) -> None:
    """Histories of agents with every control, replayed by tests/workflows (only with
    RUNCAP_RECORD_HISTORIES=1): the example agent on its key's day and total, crossing its
    run's thresholds (alerts, batched figures); the test agent paused by the loop guard and
    resumed."""
    await fake.reset()
    await fake.script("fake-small", completion_tokens=200)
    periods = [PeriodBudget("day", 1_000_000), PeriodBudget("total", 2_000_000)]
    task = agent_task(target, 2_000, key_id=new_id("key"), periods=periods)
    handle = await temporal_client.start_workflow(
        ExampleAgent.run, task, id=workflow_id(task.task_id), task_queue=task_queue
    )
    await handle.result()
    HISTORIES.mkdir(exist_ok=True)
    history = await handle.fetch_history()
    (HISTORIES / "example_agent_controls.json").write_text(history.to_json())
    await fake.reset()
    repeat = Repeat(new_id("loop"), 100_000, [target("fake-small")], times=3, loop_max_repeats=2)
    looping = await temporal_client.start_workflow(
        RepeatingAgent.run, repeat, id=workflow_id(repeat.run_id), task_queue=task_queue
    )

    async def paused() -> bool:
        return (await looping.query(RepeatingAgent.spend)).status == "looping"

    assert await eventually(paused)
    await looping.execute_update(RepeatingAgent.resume)
    await looping.result()
    (HISTORIES / "repeating_agent.json").write_text((await looping.fetch_history()).to_json())


async def test_calls_made_at_once_share_the_caps_exactly(
    temporal_client: Client,
    task_queue: str,
    worker: None,
    fake: FakeProvider,
    target: TargetFactory,
    engine: Engine,
) -> None:
    """Calls an agent makes together each get their own id, reservation and ledger row, and
    their key's day hears each once: the run, the day and the ledger agree to the micro-dollar."""
    await fake.reset()
    key_id = new_id("key")
    day = PeriodBudget("day", 1_000_000)
    task = Repeat(
        new_id("together"),
        100_000,
        [target("fake-small")],
        times=2,
        loop_max_repeats=0,
        key_id=key_id,
        periods=[day],
        at_once=3,
    )
    handle = await temporal_client.start_workflow(
        RepeatingAgent.run, task, id=task.run_id, task_queue=task_queue
    )
    assert await handle.result() == ["ok"] * 6
    spend = await handle.query(RepeatingAgent.spend)
    with engine.connect() as conn:
        query = select(col(LedgerEntry.call_id), col(LedgerEntry.cost_micros)).where(
            col(LedgerEntry.run_id) == task.run_id
        )
        rows = {call_id: cost for call_id, cost in conn.execute(query)}
    assert len(rows) == spend.calls == 6
    assert sum(rows.values()) == spend.spent_micros
    figures = await period_figures(temporal_client, key_id, day)
    assert (figures.spent_micros, figures.leased_micros) == (spend.spent_micros, 0)
