"""The worker's parts, wired from settings: workflows, and the server-side activities.

Split from ``__main__`` so tests, the demo and benchmarks build the very same worker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.alerts import AlertActivities, AlertWebhook
from activities.journal import JournalActivities
from activities.key_budget import KeyBudgetActivities
from activities.ledger import LedgerActivities
from activities.model_call import ModelCallActivities
from activities.workflow_lending import WorkflowLendingActivities
from providers.base import Provider
from workflows.agent_run import AgentRun
from workflows.contracts import TASK_QUEUE
from workflows.key_budget import KeyBudget

WORKFLOWS = [AgentRun, KeyBudget]


def build_worker(
    client: Client,
    *,
    engine: Engine,
    http: httpx.AsyncClient,
    providers: Mapping[str, Provider],
    alert_webhook: AlertWebhook | None = None,
    task_queue: str = TASK_QUEUE,
    max_concurrent_activities: int = 200,
    extra_workflows: Sequence[type] = (),
    extra_activities: Sequence[Callable[..., Any]] = (),
) -> Worker:
    """The worker of runcap's own task queue: ``AgentRun``, its bookkeeping activities, and the
    model-call and period-lending activities of agents written as workflows.

    ``extra_*`` add an application's own workflows (the example agent in the demo and tests).
    """
    ledger = LedgerActivities(engine)
    journal = JournalActivities(engine)
    alerts = AlertActivities(http, alert_webhook or AlertWebhook(), engine)
    model_calls = ModelCallActivities(providers)
    periods = KeyBudgetActivities(client, task_queue)
    agents_periods = WorkflowLendingActivities(client, task_queue, engine)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[*WORKFLOWS, *extra_workflows],
        activities=[
            ledger.write_ledger,
            ledger.recorded_calls,  # runs started before lines
            ledger.recorded_under_advances,  # runs started before lines
            journal.recorded_for_run,
            journal.recorded_for_key,
            journal.run_ended,
            alerts.send_alert,
            model_calls.call_target,
            agents_periods.lend_to_workflow,
            periods.draw_lease,  # runs started before lines
            periods.give_back,  # runs started before lines
            *extra_activities,
        ],
        max_concurrent_activities=max_concurrent_activities,
    )
