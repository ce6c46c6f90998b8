"""A live run's budget, read from its AgentRun workflow through the admin api."""

from __future__ import annotations

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from tests.api.helpers import ADMIN
from workflows.agent_run import AgentRun
from workflows.contracts import RunInput, workflow_id


async def test_run_detail_comes_from_the_workflow(
    client: httpx.AsyncClient, temporal_client: Client, task_queue: str
) -> None:
    """GET /admin/runs/{id} answers the workflow's spend query with USD strings."""
    async with Worker(temporal_client, task_queue=task_queue, workflows=[AgentRun]):
        handle = await temporal_client.start_workflow(
            AgentRun.run,
            RunInput(run_id=f"live-{task_queue}", budget_micros=5_000_001),
            id=workflow_id(f"live-{task_queue}"),
            task_queue=task_queue,
        )
        try:
            response = await client.get(f"/admin/runs/live-{task_queue}", headers=ADMIN)
        finally:
            await handle.terminate("test over")
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["source"] == "workflow" and run["status"] == "open"
    assert run["budget_usd"] == "5.000001" and run["remaining_usd"] == "5.000001"
    assert run["spent_usd"] == "0.000000" and run["calls"] == 0 and run["by_step"] == {}
