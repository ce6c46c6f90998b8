"""Admin reads of runs: the runs list (from the ledger, or live from Temporal visibility) and
one run's budget, live from its workflow's ``spend`` query or rebuilt from the ledger; and the
controls a person uses on one run: resume it, or approve more budget for it (``extend``).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy import literal_column as lc
from sqlmodel import Session
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from api.auth import KeyPolicy, require_admin
from api.body import HardenedRoute
from api.deps import EngineDep, TemporalClientDep
from api.errors import NotFound, Unavailable
from api.forecast import run_forecast
from api.run_list import double_to_micros, recent_runs
from api.spend import L, TagsQuery, aggregate, filters, totals, utc
from db.journal import MAX_CHILDREN, R, held_by_runs, parents_of, run_tree, sub_runs
from db.models import VirtualKey
from workflows.budget import figures
from workflows.contracts import RunStatus, StepSpend
from workflows.money import micros_to_usd
from workflows.run_contracts import (
    RunSpend,
    workflow_id,
)
from workflows.visibility import RUN_BUDGET, RUN_STATUS

router = APIRouter(
    prefix="/admin",
    tags=["runs"],
    dependencies=[Depends(require_admin)],
    route_class=HardenedRoute,
)
QUERY_TIMEOUT = timedelta(seconds=5)


@router.get("/runs")
async def list_runs(
    engine: EngineDep,
    client: TemporalClientDep,
    key_id: str | None = None,
    tag: TagsQuery = None,
    source: Literal["ledger", "temporal"] = "ledger",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Runs, latest first: those seen in the ledger, or (``source=temporal``) the open and
    recently closed ``AgentRun`` workflows with live figures for the open ones."""
    if source == "temporal":
        rows = await recent_runs(client, engine, limit)
        return {"runs": [row.json() for row in rows]}
    stmt = (
        select(
            L.c.run_id,
            func.min(L.c.key_id),
            func.count(),
            func.coalesce(func.sum(L.c.cost_micros), 0),
            func.min(L.c.started_at),
            func.max(L.c.started_at).label("last"),
        )
        .where(*filters(tag, key_id=key_id))
        .group_by(L.c.run_id)
        .order_by(lc("last").desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        result = conn.execute(stmt).all()
    runs = [
        {
            "run_id": run_id,
            "key_id": key,
            "calls": int(calls),
            "spent_usd": micros_to_usd(int(cost)),
            "first_call_at": utc(first),
            "last_call_at": utc(last),
        }
        for run_id, key, calls, cost, first, last in result
    ]
    parents = await asyncio.to_thread(parents_of, engine, [run["run_id"] for run in runs])
    for run in runs:
        run["parent_run_id"] = parents.get(run["run_id"])
    return {"runs": runs}


def _step_json(step: StepSpend) -> dict[str, Any]:
    return {
        "calls": step.calls,
        "cost_usd": micros_to_usd(step.cost_micros),
        "input_tokens": step.input_tokens,
        "output_tokens": step.output_tokens,
    }


def run_json(spend: RunSpend, source: str) -> dict[str, Any]:
    """A run's spend with money in USD strings; ``source`` says where it was read."""
    return {
        "run_id": spend.run_id,
        "source": source,
        "status": spend.status,
        "budget_usd": micros_to_usd(spend.budget_micros),
        "spent_usd": micros_to_usd(spend.spent_micros),
        "reserved_usd": micros_to_usd(spend.reserved_micros),
        "remaining_usd": micros_to_usd(spend.remaining_micros),
        "calls": spend.calls,
        "failed_calls": spend.failed_calls,
        "overruns": spend.overruns,
        "overrun_usd": micros_to_usd(spend.overrun_micros),
        "by_step": {k: _step_json(v) for k, v in spend.by_step.items()},
        "by_model": {k: _step_json(v) for k, v in spend.by_model.items()},
    }


def _breakdown(conn: Connection, group_by: str, tree: list[str]) -> dict[str, StepSpend]:
    settled = [*filters(run_id=tree), L.c.status != "failed"]
    rows = aggregate(conn, group_by, settled)
    return {
        r["group"]: StepSpend(
            calls=r["calls"],
            cost_micros=r["cost_micros"],
            input_tokens=r["input_tokens"] + r["cached_input_tokens"] + r["cache_write_tokens"],
            output_tokens=r["output_tokens"],
        )
        for r in rows
    }


def ledger_run(engine: Engine, run_id: str) -> RunSpend | None:
    """A run's spend from the ledger, and what its calls in flight hold from the journal, its
    sub-agents' runs included (their calls took room at it too); ``None`` when it has neither.
    Status and budget are the caller's to fill in."""
    with engine.connect() as conn:
        tree = run_tree(conn, run_id)
        calls, cost, failed = totals(conn, filters(run_id=tree))
        key_id = conn.execute(select(func.min(L.c.key_id)).where(L.c.run_id.in_(tree))).scalar()
        by_step = _breakdown(conn, "tag:step", tree) if calls + failed else {}
        by_model = _breakdown(conn, "model", tree) if calls + failed else {}
    held = sum(held_by_runs(engine, tree).values())
    if calls + failed == 0 and not held:
        return None
    with Session(engine) as session:
        key = session.get(VirtualKey, key_id) if key_id else None
        budget_micros = KeyPolicy.of(key).budget_micros if key is not None else 0
    now = figures(budget_micros, cost, held)
    return RunSpend(
        run_id=run_id,
        status="closed",
        budget_micros=budget_micros,
        spent_micros=now.spent_micros,
        reserved_micros=now.held_micros,
        remaining_micros=now.remaining_micros,
        calls=calls,
        failed_calls=failed,
        overruns=0,
        overrun_micros=0,
        by_step=by_step,
        by_model=by_model,
        in_flight_micros=now.held_micros,
    )


async def run_spend(
    client: Client, engine: Engine, run_id: str, query_timeout: timedelta = QUERY_TIMEOUT
) -> tuple[RunSpend, str]:
    """A run's spend and where its status came from.

    Spent and the per-step figures always come from the ledger, and what calls in flight hold
    from the journal: a call's row and intent are written before its answer, so the next read
    shows it, from any api instance. The run's own figures (reported a few seconds late) give
    its status and budget:
    - ``workflow``: its workflow answered;
    - ``ledger``: its workflow is gone (it ended);
    - ``stale``: the workflow exists but cannot answer (its worker is down): its status is not
      known, never an open run shown as closed.
    """
    handle = client.get_workflow_handle(workflow_id(run_id))
    live: RunSpend | None = None
    gone = False
    try:
        live = await handle.query("spend", result_type=RunSpend, rpc_timeout=query_timeout)
    except RPCError as err:
        gone = err.status == RPCStatusCode.NOT_FOUND
    except WorkflowQueryFailedError:
        pass
    stored = await asyncio.to_thread(ledger_run, engine, run_id)
    if live is None and not gone and stored is not None:
        last = await last_shown(handle)
        if last is not None:  # it ended, and no worker answers for it (the demo's agent)
            status, budget_micros = last
            now = figures(budget_micros, stored.spent_micros, stored.in_flight_micros)
            spend = replace(
                stored,
                status=status,
                budget_micros=budget_micros,
                remaining_micros=now.remaining_micros,
            )
            return spend, "ledger"
    if live is not None:
        if stored is None:
            return replace(live, reserved_micros=live.in_flight_micros), "workflow"
        now = figures(live.budget_micros, stored.spent_micros, stored.in_flight_micros)
        spend = replace(
            stored,
            status=live.status,
            budget_micros=live.budget_micros,
            remaining_micros=now.remaining_micros,
            overruns=live.overruns,
            overrun_micros=live.overrun_micros,
            lines=live.lines,
        )
        return spend, "workflow"
    if stored is None:
        if not gone:
            raise Unavailable(f"run {run_id!r}: its workflow cannot be queried now; retry")
        raise NotFound(f"no run {run_id!r}: no workflow and no ledger rows")
    return stored, "ledger" if gone else "stale"


async def last_shown(handle: WorkflowHandle[Any, Any]) -> tuple[RunStatus, int] | None:
    """An ended run's status and its last ``RunBudget`` (``None`` while it runs), readable
    with no worker to answer a query: an ended workflow's run is closed unless it showed that
    it was revoked or expired."""
    try:
        described = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    except RPCError:
        return None
    if described.status in (None, WorkflowExecutionStatus.RUNNING):
        return None
    attrs = described.typed_search_attributes
    shown = attrs.get(RUN_STATUS)
    status: RunStatus = "revoked" if shown == "revoked" else "closed"
    if shown == "expired":
        status = "expired"
    return status, double_to_micros(attrs.get(RUN_BUDGET))


def run_family(engine: Engine, run_id: str) -> dict[str, Any]:
    """Where a run sits in its tree: its parent, and its sub-agents' runs (the first
    ``MAX_CHILDREN``), each with what it and its own sub-agents spent."""
    with engine.connect() as conn:
        parent = conn.execute(select(R.c.parent_run_id).where(R.c.run_id == run_id)).scalar()
        children = []
        for child in sub_runs(conn, run_id, MAX_CHILDREN):
            calls, cost, _ = totals(conn, filters(run_id=run_tree(conn, child)))
            children.append({"run_id": child, "calls": calls, "spent_usd": micros_to_usd(cost)})
    return {"parent_run_id": parent, "children": children}


async def run_view(
    client: Client, engine: Engine, run_id: str, query_timeout: timedelta = QUERY_TIMEOUT
) -> dict[str, Any]:
    """A run's JSON: its figures (see ``run_spend``), its parent and sub-agents' runs, and its
    burn rate and forecast."""
    spend, source = await run_spend(client, engine, run_id, query_timeout)
    answer = run_json(spend, source)
    if source == "stale":
        answer.update(status="unknown", stale=True)
    answer.update(await asyncio.to_thread(run_family, engine, run_id))
    answer["forecast"] = (await asyncio.to_thread(run_forecast, engine, spend)).json()
    return answer


@router.get("/runs/{run_id}")
async def get_run(run_id: str, engine: EngineDep, client: TemporalClientDep) -> dict[str, Any]:
    """A run's budget: live from its workflow, else rebuilt from the ledger (see ``run_spend``),
    with its parent and sub-agents' runs, its burn rate and when its cap will be reached at
    that rate."""
    return await run_view(client, engine, run_id)
