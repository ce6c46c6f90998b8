"""An agent written as a workflow and named as a run (``run-<run_id>``) through the admin api:
its run read live, and the loop guard's pause lifted with ``POST /admin/runs/{id}/resume``."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import Engine
from temporalio.client import Client

from fake_provider import FakeProvider
from providers.base import Provider
from tests.api.helpers import ADMIN
from tests.conftest import TargetFactory
from tests.examples.repeating_agent import Repeat, RepeatingAgent
from tests.polling import eventually
from worker.app import build_worker
from workflows.run_contracts import workflow_id


async def test_an_agents_run_is_read_and_resumed_through_the_api(
    client: httpx.AsyncClient,
    temporal_client: Client,
    task_queue: str,
    engine: Engine,
    http: httpx.AsyncClient,
    providers: dict[str, Provider],
    fake: FakeProvider,
    target: TargetFactory,
) -> None:
    """GET /admin/runs/{id} reads a paused agent live (``looping``, its calls and spend), and
    POST /admin/runs/{id}/resume reaches its ``resume`` update: its next call passes."""
    await fake.reset()
    run_id = f"api-agent-{uuid.uuid4().hex[:8]}"
    task = Repeat(run_id, 100_000, [target("fake-small")], times=3, loop_max_repeats=2)
    worker = build_worker(
        temporal_client,
        engine=engine,
        http=http,
        providers=providers,
        task_queue=task_queue,
        extra_workflows=[RepeatingAgent],
    )
    async with worker:
        handle = await temporal_client.start_workflow(
            RepeatingAgent.run, task, id=workflow_id(run_id), task_queue=task_queue
        )

        async def paused() -> dict[str, Any] | None:
            response = await client.get(f"/admin/runs/{run_id}", headers=ADMIN)
            body: dict[str, Any] = response.json()
            return body if response.status_code == 200 and body["status"] == "looping" else None

        run = await eventually(paused)
        assert run is not None and run["source"] == "workflow"
        assert run["calls"] == 2 and run["budget_usd"] == "0.100000"
        resumed = await client.post(f"/admin/runs/{run_id}/resume", headers=ADMIN)
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["status"] == "open"
        assert await handle.result() == ["ok", "ok", "LoopDetected", "ok"]
