"""``make demo`` on a running stack: its run lands in that stack's ledger and Temporal."""

from __future__ import annotations

import socket

from sqlalchemy import Engine, func, select
from sqlmodel import col
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from api.run_list import double_to_micros, recent_runs
from api.runs import run_spend
from db.models import LedgerEntry
from examples.demo import DEMO_BUDGET_MICROS, DemoSettings, main, running_temporal
from fake_provider import FakeProvider
from settings.temporal import load_target
from tests.polling import eventually
from worker.devserver import DevServer
from workflows.visibility import AGENT_NAME, RUN_BUDGET, RUN_CALLS, RUN_COST, RUN_STATUS, TASK_ID


def on_the_stack(dev_server: DevServer, engine: Engine, fake: FakeProvider) -> DemoSettings:
    """The demo's settings pointing at a running stack's Temporal, database and fake provider."""
    return DemoSettings(
        temporal_address=dev_server.target,
        database_url=engine.url.render_as_string(hide_password=False),
        fake_provider_url=fake.base_url,
        openai_api_key=None,
        anthropic_api_key=None,
    )


async def test_the_demo_runs_on_the_running_gateway(
    dev_server: DevServer, temporal_client: Client, gateway_engine: Engine
) -> None:
    """With a Temporal server, a fake provider and a gateway database up, the demo uses them:
    its run is in that database's ledger and in that server's visibility, nothing private."""
    async with FakeProvider.running() as fake:
        settings = on_the_stack(dev_server, gateway_engine, fake)
        demo = await main(settings)
        assert sum(c["calls"] for c in (await fake.calls()).values()) == demo.report.calls
    report = demo.report
    assert demo.on_gateway and report.passed and report.calls == 4
    with gateway_engine.connect() as conn:
        count, cost = conn.execute(
            select(func.count(), func.sum(LedgerEntry.cost_micros)).where(
                col(LedgerEntry.run_id) == report.task_id
            )
        ).one()
    assert (count, cost) == (report.calls, report.spent_micros)

    async def listed() -> list[WorkflowExecutionStatus | None]:
        query = f"WorkflowId = '{demo.workflow_id}'"
        return [w.status async for w in temporal_client.list_workflows(query)]

    assert await eventually(listed) == [WorkflowExecutionStatus.COMPLETED]


async def test_the_demos_run_is_found_by_its_cost(
    dev_server: DevServer, temporal_client: Client, gateway_engine: Engine
) -> None:
    """After the demo on a running stack, the visibility query ``RunCost > 0`` finds its run,
    with its exact cost, calls, budget and final status as search attributes."""
    async with FakeProvider.running() as fake:
        settings = on_the_stack(dev_server, gateway_engine, fake)
        demo = await main(settings)
    report = demo.report

    async def found() -> list[WorkflowExecution]:
        return [w async for w in temporal_client.list_workflows("RunCost > 0")]

    async def the_demos() -> list[WorkflowExecution]:
        return [w for w in await found() if w.id == demo.workflow_id]

    [run] = await eventually(the_demos)
    attrs = run.typed_search_attributes
    assert double_to_micros(attrs.get(RUN_COST)) == report.spent_micros > 0
    assert attrs.get(RUN_CALLS) == report.calls == 4
    assert double_to_micros(attrs.get(RUN_BUDGET)) == DEMO_BUDGET_MICROS
    assert attrs.get(RUN_STATUS) == "closed"
    assert attrs.get(AGENT_NAME) == "example" and attrs.get(TASK_ID) == report.task_id
    # The dashboard lists it and shows its page, though the demo's worker is gone.
    rows = await recent_runs(temporal_client, gateway_engine, limit=1_000)
    [row] = [r for r in rows if r.workflow_id == demo.workflow_id]
    assert (row.run_id, row.status, row.agent) == (report.task_id, "closed", "example")
    assert (row.spent_micros, row.calls) == (report.spent_micros, report.calls)
    spend, source = await run_spend(temporal_client, gateway_engine, report.task_id)
    assert (spend.status, source, spend.budget_micros) == ("closed", "ledger", DEMO_BUDGET_MICROS)
    assert spend.spent_micros == report.spent_micros


async def test_no_running_temporal_is_seen_quickly() -> None:
    """A port nobody listens on means "no gateway": the demo then starts its own stack."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert await running_temporal(load_target(f"127.0.0.1:{port}", environ={})) is None
