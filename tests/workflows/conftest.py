"""Fixtures for runs on the real dev server: the fake provider, a worker, a caller."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.client import Client

from caller import Caller
from providers.base import Provider
from worker.app import build_worker


@pytest.fixture
async def worker(
    temporal_client: Client,
    task_queue: str,
    engine: Engine,
    http: httpx.AsyncClient,
    providers: dict[str, Provider],
) -> AsyncIterator[None]:
    """runcap's worker on this test's own task queue."""
    async with build_worker(
        temporal_client, engine=engine, http=http, providers=providers, task_queue=task_queue
    ):
        yield


@pytest.fixture
async def caller(
    temporal_client: Client,
    task_queue: str,
    providers: dict[str, Provider],
    engine: Engine,
    worker: None,
) -> AsyncIterator[Caller]:
    """A caller whose runs live on this test's worker and which journals its calls itself."""
    async with Caller(
        temporal_client, providers, engine=engine, workflow_task_queue=task_queue
    ) as c:
        yield c
