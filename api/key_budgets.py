"""A key's budgets as Temporal holds them: its current periods' figures, and an edited policy
pushed to its running runs and its current periods, so the next call sees it."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import KeyPolicy
from workflows.agent_run import AgentRun
from workflows.key_budget import KeyBudget
from workflows.key_contracts import PeriodFigures, RunPolicy, key_budget_id
from workflows.money import micros_to_usd
from workflows.periods import period_of

log = logging.getLogger(__name__)
PUSH_TIMEOUT_SECONDS = 10.0


async def period_figures(client: Client, key: KeyPolicy) -> list[dict[str, Any]]:
    """Each current period of the key: cap, spent (reported), leased (held by runs), remaining."""
    now = datetime.now(UTC)
    out = []
    for budget in key.periods():
        period, ends = period_of(budget.kind, now, budget.timezone)
        handle = client.get_workflow_handle(key_budget_id(key.id, budget.kind, period))
        try:
            figures = await handle.query(KeyBudget.figures)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            # No run drew from this period yet: all of it remains.
            figures = PeriodFigures(
                key.id, budget.kind, period, ends.isoformat(), budget.cap_micros, 0, 0,
                budget.cap_micros, 0,
            )  # fmt: skip
        out.append(
            {
                "kind": figures.kind,
                "period": figures.period,
                "resets_at": figures.ends_at,
                "cap_usd": micros_to_usd(figures.cap_micros),
                "spent_usd": micros_to_usd(figures.spent_micros),
                "leased_usd": micros_to_usd(figures.leased_micros),
                "remaining_usd": micros_to_usd(figures.remaining_micros),
                "runs_holding_leases": figures.runs,
            }
        )
    return out


async def push_policy(client: Client, key: KeyPolicy) -> None:
    """Give the key's running runs its new caps, and its current periods their new caps."""
    now = datetime.now(UTC)
    pushes = []
    for budget in key.periods():
        period, _ = period_of(budget.kind, now, budget.timezone)
        handle = client.get_workflow_handle(key_budget_id(key.id, budget.kind, period))
        pushes.append(_quietly(handle.execute_update(KeyBudget.set_cap, budget.cap_micros)))
    policy = RunPolicy(key.budget_micros, key.periods())
    query = f'KeyId = "{key.id}" AND ExecutionStatus = "Running"'
    try:
        async for run in client.list_workflows(query):
            handle = client.get_workflow_handle(run.id)
            pushes.append(_quietly(handle.execute_update(AgentRun.set_policy, policy)))
    except RPCError:
        log.warning("could not list the runs of key %s", key.id, exc_info=True)
    await asyncio.wait_for(asyncio.gather(*pushes), PUSH_TIMEOUT_SECONDS)


async def _quietly(update: Any) -> None:
    """A run or period that just ended has nothing to update."""
    try:
        await update
    except (WorkflowUpdateFailedError, RPCError) as err:
        if isinstance(err, RPCError) and err.status != RPCStatusCode.NOT_FOUND:
            raise
