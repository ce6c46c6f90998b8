"""``make demo`` on a running stack: its run lands in that stack's ledger and Temporal."""

from __future__ import annotations

import socket

from sqlalchemy import Engine, func, select
from sqlmodel import col
from temporalio.client import Client, WorkflowExecutionStatus

from db.models import LedgerEntry
from examples.demo import DemoSettings, main, running_temporal
from fake_provider import FakeProvider
from settings.temporal import load_target
from tests.polling import eventually
from worker.devserver import DevServer


async def test_the_demo_runs_on_the_running_gateway(
    dev_server: DevServer, temporal_client: Client, gateway_engine: Engine
) -> None:
    """With a Temporal server, a fake provider and a gateway database up, the demo uses them:
    its run is in that database's ledger and in that server's visibility, nothing private."""
    async with FakeProvider.running() as fake:
        settings = DemoSettings(
            temporal_address=dev_server.target,
            database_url=gateway_engine.url.render_as_string(hide_password=False),
            fake_provider_url=fake.base_url,
            openai_api_key=None,
            anthropic_api_key=None,
        )
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


async def test_no_running_temporal_is_seen_quickly() -> None:
    """A port nobody listens on means "no gateway": the demo then starts its own stack."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert await running_temporal(load_target(f"127.0.0.1:{port}", environ={})) is None
