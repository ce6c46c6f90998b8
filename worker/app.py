"""The worker's parts, wired from settings: workflows, and the server-side activities.

Split from ``__main__`` so tests, the demo and benchmarks build the very same worker.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.alerts import AlertActivities
from activities.direct import DirectCallActivities
from activities.example_tests import run_tests
from activities.ledger import LedgerActivities
from activities.providers.base import Provider
from workflows.agent_run import AgentRun
from workflows.contracts import TASK_QUEUE
from workflows.example_agent import ExampleAgent

WORKFLOWS = [AgentRun, ExampleAgent]


def build_worker(
    client: Client,
    *,
    engine: Engine,
    http: httpx.AsyncClient,
    providers: Mapping[str, Provider],
    alert_webhook_url: str | None = None,
    task_queue: str = TASK_QUEUE,
    max_concurrent_activities: int = 200,
) -> Worker:
    """The worker of runcap's own task queue: every workflow and the bookkeeping activities."""
    ledger = LedgerActivities(engine)
    alerts = AlertActivities(http, alert_webhook_url)
    direct = DirectCallActivities(providers)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[ledger.write_ledger, alerts.send_alert, direct.complete_call, run_tests],
        max_concurrent_activities=max_concurrent_activities,
    )
