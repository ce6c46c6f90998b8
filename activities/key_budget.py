"""How a run reaches its key's period budgets: activities that send ``KeyBudget`` updates.

A workflow cannot send an update to another workflow, so a run draws and gives back leases
through these activities, which use the worker's Temporal client. A draw starts the period's
``KeyBudget`` when it is the first (update-with-start); request ids make retries harmless.
"""

from __future__ import annotations

import logging

from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from workflows.key_budget import KeyBudget
from workflows.key_contracts import (
    KeyBudgetInput,
    key_budget_id,
)
from workflows.legacy.contracts import (
    LeaseGrant,
    LeaseRequest,
    LeaseReturn,
)

log = logging.getLogger(__name__)


class KeyBudgetActivities:
    """Draws and gives back period leases for runs; the client is injected."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    @activity.defn
    async def draw_lease(self, req: LeaseRequest) -> LeaseGrant:
        """A slice of the period for ``req.run_id`` (the period's workflow starts if needed)."""
        start = WithStartWorkflowOperation(
            KeyBudget.run,
            KeyBudgetInput(
                key_id=req.key_id,
                kind=req.kind,
                period=req.period,
                ends_at=req.ends_at,
                cap_micros=req.cap_micros,
                timezone=req.timezone,
            ),
            id=key_budget_id(req.key_id, req.kind, req.period),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        return await self.client.execute_update_with_start_workflow(
            KeyBudget.lease, req, start_workflow_operation=start
        )

    @activity.defn
    async def give_back(self, ret: LeaseReturn) -> None:
        """Report spend and hand back unused money; a period whose workflow ended (a week after
        the period) has nothing left to take it."""
        handle = self.client.get_workflow_handle(key_budget_id(ret.key_id, ret.kind, ret.period))
        try:
            await handle.execute_update(KeyBudget.give_back, ret)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            log.warning("period %s %s of key %s has ended", ret.kind, ret.period, ret.key_id)
