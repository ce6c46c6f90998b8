"""The example agent's worker: runcap's worker plus the example workflow and its test runner."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.client import Client

from examples.agent import ExampleAgent
from examples.suite import run_tests
from providers.base import Provider
from tests.examples.repeating_agent import RepeatingAgent
from worker.app import build_worker


@pytest.fixture
async def worker(
    temporal_client: Client,
    task_queue: str,
    engine: Engine,
    http: httpx.AsyncClient,
    providers: dict[str, Provider],
) -> AsyncIterator[None]:
    """runcap's worker with the example agent (and the loop guard's test agent) registered, on
    this test's own task queue."""
    async with build_worker(
        temporal_client,
        engine=engine,
        http=http,
        providers=providers,
        task_queue=task_queue,
        extra_workflows=[ExampleAgent, RepeatingAgent],
        extra_activities=[run_tests],
    ):
        yield
