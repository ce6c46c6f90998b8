"""The fault suite's topology: one per session, production-shaped or on the dev server.

``RUNCAP_STACK=production`` (``make prod-check``) runs it on PostgreSQL and the Temporal server
built from source; ``RUNCAP_STACK=dev`` (the default) on the dev server and SQLite, as
``make run`` does. Every case is marked ``prod``: ``make test`` leaves them out, ``-m prod``
selects them. Each test starts with every part running and the fake provider reset; a failed
test prints the last lines of each part's log.

Adding a case: take the ``gateway`` fixture (``tests/faults/gateway.py``: keys, calls through
any api instance, what the client saw), fault the topology through ``gateway.stack``
(``workers``/``apis`` with ``kill()`` and ``stack.restart(child)``, ``start_api()``,
``stop_temporal()``/``start_temporal()``) or the provider through ``fake.script`` (statuses such
as 529, hangs, dropped streams), watch the cap with ``CapWatch`` and end with
``assert_settled`` (``tests/faults/money.py``) and each answer's
``assert_answered_or_retryable()``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator
from typing import Any

import pytest
from temporalio.client import Client

from fake_provider import FakeControl
from prodcheck.stack import Kind, Stack
from tests.faults.gateway import Gateway

KIND: Kind = "production" if os.environ.get("RUNCAP_STACK") == "production" else "dev"


@pytest.fixture(scope="session")
async def stack() -> AsyncIterator[Stack]:
    """The whole topology (one api and one worker to begin with)."""
    async with Stack(KIND) as running:
        print(f"\n{running.describe()}")  # shown with -s, and in the log of a failure
        yield running


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so a fixture can see whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
async def gateway(stack: Stack, request: pytest.FixtureRequest) -> AsyncIterator[Gateway]:
    """Every part running, the fake reset; logs printed if the test fails."""
    assert stack.fake is not None
    for child in [*stack.workers, *stack.apis]:
        if not child.running:
            await stack.restart(child)
    await stack.fake.reset()
    client = await stack.client()
    async with Gateway.open(stack, client) as gateway:
        yield gateway
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for child in [*stack.workers, *stack.apis]:
            print(f"--- {child.name} (last lines)\n{child.tail(3000)}")


@pytest.fixture
def fake(stack: Stack) -> FakeControl:
    """The fake provider's control client."""
    assert stack.fake is not None
    return stack.fake


@pytest.fixture
async def temporal(stack: Stack) -> Client:
    """A Temporal client on the topology's server."""
    return await stack.client()
