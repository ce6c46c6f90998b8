"""How an agent written as a workflow reaches its key's period budgets: an activity that sends
its ``lend`` requests (``workflows.agent_lines``) to the periods' ``KeyBudget`` workflows.

A workflow cannot send an update to another workflow, so it asks through this activity, which
uses the worker's Temporal client and the caller's own transport (``caller.keepers``: the
update, update-with-start of a new period, waiting out a continue-as-new). The requests of one
call go to its periods at once. A need that must wait while other borrowers hand unused room
back nudges them through the journal and asks again for about a second, then for the last time,
as a gateway call does (``caller.lending``).

Retries are Temporal's: a period that cannot be reached fails the activity retryably. A retried
request is harmless: its report is applied once (its ``seq``), and a need granted twice comes
back with the agent's next report (the answer says what the period holds for the line).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from sqlalchemy import Engine
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from caller.errors import CallFailed
from caller.journal import Journal
from caller.keepers import TemporalKeepers
from caller.lending import RECALL_RETRY, RECALL_WAIT
from caller.lines import Keeper
from workflows import errors
from workflows.agent_lines import LendBatch, LendBatchAnswer, PeriodAnswer, PeriodLend

FINAL_FAILURES = (errors.LINE_GONE, errors.RUN_NOT_OPEN)
"""What a period answers that no retry changes: the workflow handles them."""


class WorkflowLendingActivities:
    """Sends agents' workflows' requests to their key's periods; client and engine injected."""

    def __init__(self, client: Client, task_queue: str, engine: Engine) -> None:
        self.keepers = TemporalKeepers(client, task_queue)
        self.journal = Journal(engine)

    @activity.defn
    async def lend_to_workflow(self, batch: LendBatch) -> LendBatchAnswer:
        """Each period's answer to its request, or why it would not hear it."""
        answers = await asyncio.gather(*(self._lend(lend) for lend in batch.lends))
        return LendBatchAnswer(list(answers))

    async def _lend(self, lend: PeriodLend) -> PeriodAnswer:
        keeper = Keeper(lend.keeper_id, lend.start, is_run=False)
        request = lend.request
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECALL_WAIT
        while True:
            try:
                answer = await self.keepers.lend(keeper, request)
            except CallFailed as failed:
                if failed.kind in FINAL_FAILURES:
                    return PeriodAnswer(lend.keeper_id, failure=failed.failure)
                raise ApplicationError(failed.message, type=failed.kind) from None
            if not any(need.wait for need in answer.needs):
                return PeriodAnswer(lend.keeper_id, answer)
            if answer.recalling:
                await self.journal.nudge([lend.keeper_id])
            if loop.time() >= deadline:
                request = replace(request, needs=[replace(n, final=True) for n in request.needs])
            await asyncio.sleep(RECALL_RETRY)
