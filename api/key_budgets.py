"""A key's budgets: its current periods' figures, and an edited policy pushed to its running runs
and its current periods, so the next call sees it.

The figures come from the journal: spent from the ledger, held from the intents of calls in
flight, remaining from the budget core (``workflows.budget.figures``). A call's row and intent
are written before its answer, so the next read shows it, from any api instance; the periods'
workflows learn of spend a few seconds later, and lend what is not held.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import KeyPolicy
from db.journal import key_period_figures, nudge
from workflows.agent_run import AgentRun
from workflows.budget import figures
from workflows.key_budget import KeyBudget
from workflows.key_contracts import RunPolicy, key_budget_id
from workflows.money import micros_to_usd
from workflows.periods import period_window

log = logging.getLogger(__name__)
PUSH_TIMEOUT_SECONDS = 10.0


def period_figures(engine: Engine, key: KeyPolicy) -> list[dict[str, Any]]:
    """Each current period of the key: cap, spent, held by calls in flight, remaining
    (blocking)."""
    now = datetime.now(UTC)
    out = []
    for budget in key.periods():
        period, starts, ends = period_window(budget.kind, now, budget.timezone)
        spent, held = key_period_figures(engine, key.id, starts, ends)
        now_figures = figures(budget.cap_micros, spent, held)
        out.append(
            {
                "kind": budget.kind,
                "period": period,
                "resets_at": None if budget.kind == "total" else ends.isoformat(),
                "cap_usd": micros_to_usd(now_figures.cap_micros),
                "spent_usd": micros_to_usd(now_figures.spent_micros),
                "held_usd": micros_to_usd(now_figures.held_micros),
                "remaining_usd": micros_to_usd(now_figures.remaining_micros),
            }
        )
    return out


async def push_policy(client: Client, engine: Engine, key: KeyPolicy) -> None:
    """Give the key's running runs its new caps, and its current periods their new caps; then
    nudge their lines, so every api instance hears of it at once."""
    now = datetime.now(UTC)
    pushes = []
    keepers = []
    for budget in key.periods():
        period, _, _ = period_window(budget.kind, now, budget.timezone)
        keeper_id = key_budget_id(key.id, budget.kind, period)
        handle = client.get_workflow_handle(keeper_id)
        pushes.append(_quietly(handle.execute_update(KeyBudget.set_cap, budget.cap_micros)))
        keepers.append(keeper_id)
    policy = RunPolicy(key.budget_micros, key.periods())
    query = f'KeyId = "{key.id}" AND ExecutionStatus = "Running"'
    try:
        async for run in client.list_workflows(query):
            handle = client.get_workflow_handle(run.id)
            pushes.append(_quietly(handle.execute_update(AgentRun.set_policy, policy)))
            keepers.append(run.id)
    except RPCError:
        log.warning("could not list the runs of key %s", key.id, exc_info=True)
    await asyncio.wait_for(asyncio.gather(*pushes), PUSH_TIMEOUT_SECONDS)
    await nudge_keepers(engine, keepers)


async def nudge_keepers(engine: Engine, keeper_ids: list[str]) -> None:
    """Tell the api instances holding lines at these keepers to report at once (they learn a
    changed cap or status, and hand unused room back)."""
    at_ms = int(datetime.now(UTC).timestamp() * 1000)
    try:
        await asyncio.to_thread(nudge, engine, keeper_ids, at_ms)
    except Exception:
        log.warning("could not nudge %d keepers", len(keeper_ids), exc_info=True)


async def _quietly(update: Any) -> None:
    """A run or period that just ended, or never started, has nothing to update."""
    try:
        await update
    except (WorkflowUpdateFailedError, RPCError) as err:
        if isinstance(err, RPCError) and err.status != RPCStatusCode.NOT_FOUND:
            raise
