"""The open and recent runs, from Temporal visibility: every ``AgentRun``, every agent written
as a workflow (it shows ``RunStatus`` once it has made a call), and their figures.

Why visibility, the ledger and the journal together: visibility lists runs cheaply (with their
search attributes: status, budget, task, agent), but its figures lag behind (they are upserted
in batches and the cost there is a Double). Spent comes from the ledger and what calls in
flight hold from the journal, both exact and written before each answer; an open run's status
and budget come live from its workflow's ``spend`` query.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError

from api.spend import L, utc
from db.journal import held_by_runs
from workflows.budget import figures
from workflows.contracts import MICROS_PER_USD
from workflows.money import micros_to_usd
from workflows.run_contracts import RunSpend
from workflows.visibility import AGENT_NAME, KEY_ID, RUN_BUDGET, RUN_CALLS, RUN_STATUS, TASK_ID

RUNS = '(WorkflowType = "AgentRun" OR RunStatus IS NOT NULL)'
OPEN = f'{RUNS} AND ExecutionStatus = "Running"'
CLOSED = f'{RUNS} AND ExecutionStatus != "Running" AND ExecutionStatus != "ContinuedAsNew"'
LIVE_QUERY_TIMEOUT = timedelta(seconds=1)
LIVE_QUERIES_AT_ONCE = 8
LIVE_RUNS = 20
"""Open runs queried live per listing (the latest started); the rest show listed figures, so
a page of runs whose workers are gone still answers within a few seconds."""
WORKFLOW_ID_PREFIX = "run-"


@dataclass
class RunRow:
    """One run as the runs page and ``runcap runs`` show it; money in micro-dollars."""

    run_id: str
    workflow_id: str
    status: str
    """The run's own status (open, closed, revoked, expired), else its execution's."""
    live: bool
    """True when the figures come from the running workflow's ``spend`` query."""
    budget_micros: int
    spent_micros: int
    reserved_micros: int
    calls: int
    key_id: str
    agent: str
    task_id: str
    started_at: datetime | None
    closed_at: datetime | None

    @property
    def remaining_micros(self) -> int:
        return figures(self.budget_micros, self.spent_micros, self.reserved_micros).remaining_micros

    def json(self) -> dict[str, Any]:
        """The row with money as USD strings."""
        return {
            "run_id": self.run_id,
            "workflow_id": self.workflow_id,
            "status": self.status,
            "live": self.live,
            "budget_usd": micros_to_usd(self.budget_micros),
            "spent_usd": micros_to_usd(self.spent_micros),
            "reserved_usd": micros_to_usd(self.reserved_micros),
            "remaining_usd": micros_to_usd(self.remaining_micros),
            "calls": self.calls,
            "key_id": self.key_id,
            "agent": self.agent,
            "task_id": self.task_id,
            "started_at": self.started_at,
            "closed_at": self.closed_at,
        }


def double_to_micros(value: float | None) -> int:
    """A Double search attribute holding USD, back to micro-dollars.

    Exact for every budget runcap stores: a whole number of micro-dollars under 10^9 USD has at
    most 15 significant digits, which a Double keeps, so rounding to six decimals restores it.
    """
    if value is None:
        return 0
    return int((Decimal(repr(value)) * MICROS_PER_USD).to_integral_value())


async def _row(execution: WorkflowExecution) -> RunRow:
    attrs = execution.typed_search_attributes
    # An agent written as a workflow names its run in its memo (its workflow id is its own).
    run_id = await execution.memo_value("run_id", execution.id.removeprefix(WORKFLOW_ID_PREFIX))
    status = attrs.get(RUN_STATUS)
    if execution.status not in (
        None,
        WorkflowExecutionStatus.RUNNING,
        WorkflowExecutionStatus.COMPLETED,
    ):
        status = execution.status.name.lower()
    return RunRow(
        run_id=str(run_id),
        workflow_id=execution.id,
        status=status or "open",
        live=False,
        budget_micros=double_to_micros(attrs.get(RUN_BUDGET)),
        spent_micros=0,
        reserved_micros=0,
        calls=attrs.get(RUN_CALLS) or 0,
        key_id=attrs.get(KEY_ID) or "",
        agent=attrs.get(AGENT_NAME) or "",
        task_id=attrs.get(TASK_ID) or "",
        started_at=execution.start_time,
        closed_at=execution.close_time,
    )


async def _listed(client: Client, query: str, limit: int) -> list[WorkflowExecution]:
    return [execution async for execution in client.list_workflows(query, limit=limit)]


def _ledger_spend(engine: Engine, run_ids: list[str]) -> dict[str, tuple[int, int]]:
    """(settled calls, cost micros) per run, summed from the ledger."""
    if not run_ids:
        return {}
    stmt = (
        select(L.c.run_id, func.count(), func.coalesce(func.sum(L.c.cost_micros), 0))
        .where(L.c.run_id.in_(run_ids), L.c.status != "failed")
        .group_by(L.c.run_id)
    )
    with engine.connect() as conn:
        return {run_id: (int(n), int(cost)) for run_id, n, cost in conn.execute(stmt)}


async def _live(client: Client, row: RunRow, gate: asyncio.Semaphore) -> None:
    async with gate:
        handle = client.get_workflow_handle(row.workflow_id)
        try:
            spend = await handle.query(
                "spend", result_type=RunSpend, rpc_timeout=LIVE_QUERY_TIMEOUT
            )
        except (RPCError, WorkflowQueryFailedError):  # ending, or no worker: keep listed figures
            return
    row.live = True
    row.status = spend.status
    row.budget_micros = spend.budget_micros


async def recent_runs(client: Client, engine: Engine, limit: int = 50) -> list[RunRow]:
    """Open runs first (live figures), then the most recently closed, each run once."""
    running, closed = await asyncio.gather(
        _listed(client, OPEN, limit), _listed(client, CLOSED, limit)
    )
    rows: dict[str, RunRow] = {}
    for execution in [*running, *closed]:
        if execution.id not in rows:
            rows[execution.id] = await _row(execution)
    listed = list(rows.values())[:limit]
    run_ids = [r.run_id for r in listed]
    settled = await asyncio.to_thread(_ledger_spend, engine, run_ids)
    held = await asyncio.to_thread(held_by_runs, engine, run_ids)
    for row in listed:
        calls, cost = settled.get(row.run_id, (row.calls, 0))
        row.calls, row.spent_micros = calls, cost
        row.reserved_micros = held.get(row.run_id, 0)
    gate = asyncio.Semaphore(LIVE_QUERIES_AT_ONCE)
    open_rows = [r for r in listed if r.closed_at is None][:LIVE_RUNS]
    await asyncio.gather(*(_live(client, row, gate) for row in open_rows))
    for row in listed:
        row.started_at = utc(row.started_at)
        row.closed_at = utc(row.closed_at)
    return listed
