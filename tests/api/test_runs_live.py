"""A live run's budget, read from its AgentRun workflow through the admin api."""

from __future__ import annotations

from functools import partial
from typing import Any

import httpx
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from db.ledger import upsert_rows
from tests.api.helpers import ADMIN, row
from tests.polling import eventually
from workflows.agent_run import AgentRun
from workflows.run_contracts import (
    RunInput,
    workflow_id,
)
from workflows.visibility import initial_search_attributes


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


async def test_runs_from_temporal_are_listed_with_live_figures(
    client: httpx.AsyncClient, temporal_client: Client, task_queue: str
) -> None:
    """GET /admin/runs?source=temporal lists an open AgentRun with its exact live budget."""
    run = RunInput(run_id=f"listed-{task_queue}", budget_micros=2_500_001, agent="coder")
    run.task_id = "t9"

    async def listed(live: bool) -> dict[str, Any] | None:
        response = await client.get("/admin/runs?source=temporal", headers=ADMIN)
        assert response.status_code == 200, response.text
        found = {r["run_id"]: r for r in response.json()["runs"]}.get(run.run_id)
        return found if found and found["live"] is live else None

    async with Worker(temporal_client, task_queue=task_queue, workflows=[AgentRun]):
        handle = await temporal_client.start_workflow(
            AgentRun.run,
            run,
            id=workflow_id(run.run_id),
            task_queue=task_queue,
            search_attributes=initial_search_attributes(run),
        )
        try:
            shown = await eventually(partial(listed, live=True))
        finally:
            await handle.terminate("test over")
        assert shown is not None and shown["status"] == "open"
        assert shown["budget_usd"] == "2.500001" and shown["remaining_usd"] == "2.500001"
        assert (shown["agent"], shown["task_id"]) == ("coder", "t9")
        ended = await eventually(partial(listed, live=False))
    assert ended is not None and ended["status"] == "terminated"
    assert ended["budget_usd"] == "2.500001" and ended["closed_at"] is not None


async def test_a_run_whose_worker_is_down_is_never_shown_closed(
    client: httpx.AsyncClient, temporal_client: Client, task_queue: str, engine: Engine
) -> None:
    """The workflow exists but no worker answers its query: the ledger's figures come back
    marked stale with status unknown (never an open run shown as closed); with no ledger rows
    either, a 503 that says to retry."""
    handles = []
    for name in ("stale-a", "stale-b"):
        handles.append(
            await temporal_client.start_workflow(
                AgentRun.run,
                RunInput(run_id=f"{name}-{task_queue}", budget_micros=1_000_000),
                id=workflow_id(f"{name}-{task_queue}"),
                task_queue=task_queue,  # no worker polls it
            )
        )
    with engine.begin() as conn:
        upsert_rows(conn, [row("s1", run_id=f"stale-a-{task_queue}", cost=7)])
    try:
        stale = await client.get(f"/admin/runs/stale-a-{task_queue}", headers=ADMIN)
        unknown = await client.get(f"/admin/runs/stale-b-{task_queue}", headers=ADMIN)
    finally:
        for handle in handles:
            await handle.terminate("test over")
    assert stale.status_code == 200, stale.text
    body = stale.json()
    assert (body["status"], body["stale"], body["spent_usd"]) == ("unknown", True, "0.000007")
    assert unknown.status_code == 503 and unknown.headers["retry-after"]
