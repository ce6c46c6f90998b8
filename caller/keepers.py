"""How a caller reaches its keepers through Temporal: one ``lend`` update per request, starting
the keeper's workflow on first contact (update-with-start), and waiting out a continue-as-new.

A run that ended is never silently restarted with a fresh budget: one that expired when idle is
reopened with its spend (``reopen``), one that was closed or revoked stays closed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from caller.errors import CallFailed, update_failure
from caller.lines import (
    Keeper,
    wall_now,
)
from workflows import errors
from workflows.agent_run import AgentRun
from workflows.contracts import TASK_QUEUE
from workflows.key_budget import KeyBudget
from workflows.key_contracts import KeyBudgetInput
from workflows.lending_contracts import LendAnswer, LendRequest
from workflows.run_contracts import RunInput, RunSpend, workflow_id
from workflows.visibility import initial_search_attributes

DRAIN_BACKOFF = (0.05, 0.1, 0.2, 0.4, 0.8, 1.0)
"""Waits between tries while a keeper continues as new; each try costs it a workflow task, so
callers back off instead of hammering it."""
DRAIN_RETRIES = 40
KEPT_RUNNING = 10_000
V = TypeVar("V")
Reopened = Callable[[RunInput], Awaitable[bool]]
"""Told a run is being reopened (the journal counts it open again); False refuses it."""


def run_handle(client: Client, run_id: str) -> WorkflowHandle[Any, RunSpend]:
    """The latest ``AgentRun`` of ``run_id``: query its spend, close it, top it up."""
    return client.get_workflow_handle(workflow_id(run_id), result_type=RunSpend)


def remember(kept: OrderedDict[str, V], key: str, value: V, limit: int) -> None:
    """Keep ``key`` as the newest entry, forgetting the oldest beyond ``limit``."""
    kept[key] = value
    kept.move_to_end(key)
    while len(kept) > limit:
        kept.popitem(last=False)


class TemporalKeepers:
    """Sends ``lend`` requests to runs and key periods, starting them when needed."""

    def __init__(
        self,
        client: Client,
        task_queue: str = TASK_QUEUE,
        *,
        reopened: Reopened | None = None,
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self.reopened = reopened
        self._running: OrderedDict[str, None] = OrderedDict()
        """Keepers seen running: their next requests need no start attempt."""

    async def lend(self, keeper: Keeper, req: LendRequest) -> LendAnswer:
        """The keeper's answer, or ``CallFailed`` (closed, unreachable, the line billed)."""
        start = keeper.start
        for attempt in range(DRAIN_RETRIES):
            try:
                return await self._send(keeper.workflow_id, start, req)
            except WorkflowAlreadyStartedError:
                if not isinstance(start, RunInput):
                    raise CallFailed.of(
                        errors.RUN_NOT_OPEN, "that budget period has ended"
                    ) from None
                start = await self._reopen(start)
                # A new workflow holds nothing of the old one's: the line starts afresh, so a
                # crash reconciliation never reads the old run's rows as this line's.
                req.opened_at = wall_now().isoformat()
                continue
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    message = f"{keeper.workflow_id} is not open"
                    raise CallFailed.of(errors.RUN_NOT_OPEN, message) from None
                message = f"Temporal: {err.message}"
                raise CallFailed.of(errors.TEMPORAL_UNAVAILABLE, message) from None
            except WorkflowUpdateRPCTimeoutOrCancelledError:
                raise CallFailed.of(
                    errors.TEMPORAL_UNAVAILABLE, "Temporal did not answer in time; retry"
                ) from None
            except WorkflowUpdateFailedError as err:
                failure = update_failure(err)
                if failure.kind != errors.RUN_DRAINING:
                    raise failure from None
            await asyncio.sleep(DRAIN_BACKOFF[min(attempt, len(DRAIN_BACKOFF) - 1)])
        raise CallFailed.of(errors.RUN_DRAINING, "the keeper kept continuing as new; try again")

    async def _send(self, keeper_id: str, start: Any, req: LendRequest) -> LendAnswer:
        update_id = uuid.uuid4().hex
        if keeper_id in self._running or start is None:
            # A plain update costs the server less than update-with-start; a keeper that has
            # since ended falls back to the start path below.
            try:
                handle = self.client.get_workflow_handle(keeper_id)
                if _is_run(keeper_id):
                    return await handle.execute_update(AgentRun.lend, req, id=update_id)
                return await handle.execute_update(KeyBudget.lend, req, id=update_id)
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND or start is None:
                    raise
                self._running.pop(keeper_id, None)
        answer = await self.client.execute_update_with_start_workflow(
            AgentRun.lend if isinstance(start, RunInput) else KeyBudget.lend,
            req,
            start_workflow_operation=self._start(keeper_id, start),
            id=update_id,
        )
        remember(self._running, keeper_id, None, KEPT_RUNNING)
        return answer

    def _start(self, keeper_id: str, start: RunInput | KeyBudgetInput) -> Any:
        if isinstance(start, RunInput):
            return WithStartWorkflowOperation(
                AgentRun.run,
                start,
                id=keeper_id,
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=initial_search_attributes(start),
                # A closed run is not silently restarted with a fresh budget: see ``_reopen``.
                id_reuse_policy=(
                    WorkflowIDReusePolicy.ALLOW_DUPLICATE
                    if start.reopen
                    else WorkflowIDReusePolicy.REJECT_DUPLICATE
                ),
            )
        return WithStartWorkflowOperation(
            KeyBudget.run,
            start,
            id=keeper_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )

    async def start_opened(self, run: RunInput) -> None:
        """Start a run this process opened with a line (no request: the line is in its input).
        A run already started (by another caller, from the same ``runs`` row) is left as is."""
        await self.client.start_workflow(
            AgentRun.run,
            run,
            id=workflow_id(run.run_id),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=initial_search_attributes(run),
        )
        remember(self._running, workflow_id(run.run_id), None, KEPT_RUNNING)

    async def _reopen(self, run: RunInput) -> RunInput:
        """A run that expired when idle reopens with its spend; a closed one stays closed."""
        handle = run_handle(self.client, run.run_id)
        try:
            last = await handle.result()
        except WorkflowFailureError as err:
            raise CallFailed.of(
                errors.RUN_NOT_OPEN, f"run {run.run_id} ended: {err.cause}"
            ) from None
        if last.status != "expired":
            raise CallFailed.of(errors.RUN_NOT_OPEN, f"run {run.run_id} is {last.status}")
        if self.reopened is not None and not await self.reopened(run):
            raise CallFailed.of(
                errors.TOO_MANY_RUNS, f"key {run.key_id} already has its most runs open"
            )
        return replace(
            run,
            budget_micros=last.budget_micros,
            spent_before_micros=last.spent_micros,
            reopen=True,
            opening=None,
        )


def _is_run(keeper_id: str) -> bool:
    return keeper_id.startswith("run-")
