"""Session fixtures: one Temporal dev server per test run, a client, a fresh task queue per test."""

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from temporalio.client import Client

from worker.devserver import DevServer

SUGGEST_CONTINUE_AS_NEW = {"limit.historyCount.suggestContinueAsNew": 400}


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[DevServer]:
    """An in-memory, headless dev server with runcap's search attributes and update limits."""
    # Runs continue as new every few dozen calls here (4,096 events by default), so every test
    # that makes many calls also proves that budgets, results and the ledger survive it.
    async with DevServer(ui=False, extra_config=SUGGEST_CONTINUE_AS_NEW) as server:
        yield server


@pytest.fixture(scope="session")
async def temporal_client(dev_server: DevServer) -> Client:
    """A client on the session's dev server, default namespace."""
    return await Client.connect(dev_server.target)


@pytest.fixture
def task_queue() -> str:
    """A task queue no other test uses, so workers of different tests never steal tasks."""
    return f"tq-{uuid4().hex}"
