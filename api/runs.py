"""Admin reads of runs: the runs list (from the ledger, or live from Temporal visibility) and
one run's budget, live from its workflow's ``spend`` query or rebuilt from the ledger.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy import literal_column as lc
from sqlmodel import Session
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import KeyPolicy, require_admin
from api.deps import EngineDep, TemporalClientDep
from api.errors import NotFound, Unavailable
from api.live import ended_rows, with_unsettled
from api.run_list import recent_runs
from api.spend import L, TagsQuery, aggregate, filters, totals, utc
from db.models import VirtualKey
from workflows.agent_run import AgentRun
from workflows.contracts import RunSpend, StepSpend, workflow_id
from workflows.money import micros_to_usd

router = APIRouter(prefix="/admin", tags=["runs"], dependencies=[Depends(require_admin)])
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


def _breakdown(conn: Connection, group_by: str, run_id: str) -> dict[str, StepSpend]:
    settled = [*filters(run_id=run_id), L.c.status != "failed"]
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
    """A run rebuilt from the ledger (its workflow is gone); ``None`` when it has no calls."""
    with engine.connect() as conn:
        calls, cost, failed = totals(conn, filters(run_id=run_id))
        if calls + failed == 0:
            return None
        key_id = conn.execute(select(func.min(L.c.key_id)).where(L.c.run_id == run_id)).scalar()
        by_step = _breakdown(conn, "tag:step", run_id)
        by_model = _breakdown(conn, "model", run_id)
    with Session(engine) as session:
        key = session.get(VirtualKey, key_id) if key_id else None
        budget_micros = KeyPolicy.of(key).budget_micros if key is not None else 0
    return RunSpend(
        run_id=run_id,
        status="closed",
        budget_micros=budget_micros,
        spent_micros=cost,
        reserved_micros=0,
        remaining_micros=max(budget_micros - cost, 0),
        calls=calls,
        failed_calls=failed,
        overruns=0,
        overrun_micros=0,
        by_step=by_step,
        by_model=by_model,
    )


async def run_spend(client: Client, engine: Engine, run_id: str) -> tuple[RunSpend, str]:
    """A run's spend and where it came from.

    - ``workflow``: live from the run, with calls answered but not yet settled there counted
      from the ledger (settlements arrive in batches; the ledger row precedes each answer);
    - ``ledger``: rebuilt from the ledger, the workflow being gone;
    - ``stale``: the workflow exists but cannot answer (its worker is down), so these are the
      ledger's figures and its status is not known: never an open run shown as closed.
    """
    handle = client.get_workflow_handle(workflow_id(run_id))
    gone = False
    try:
        live = await handle.query("spend", result_type=RunSpend, rpc_timeout=QUERY_TIMEOUT)
        ended = await asyncio.to_thread(ended_rows, engine, list(live.open_calls))
        return with_unsettled(live, ended), "workflow"
    except RPCError as err:
        gone = err.status == RPCStatusCode.NOT_FOUND
    except WorkflowQueryFailedError:
        pass
    stored = await asyncio.to_thread(ledger_run, engine, run_id)
    if stored is None:
        if not gone:
            raise Unavailable(f"run {run_id!r}: its workflow cannot be queried now; retry")
        raise NotFound(f"no run {run_id!r}: no workflow and no ledger rows")
    return stored, "ledger" if gone else "stale"


@router.get("/runs/{run_id}")
async def get_run(run_id: str, engine: EngineDep, client: TemporalClientDep) -> dict[str, Any]:
    """A run's budget: live from its workflow, else rebuilt from the ledger (see ``run_spend``)."""
    spend, source = await run_spend(client, engine, run_id)
    answer = run_json(spend, source)
    if source == "stale":
        answer.update(status="unknown", stale=True)
    return answer


@router.post("/runs/{run_id}/resume")
async def resume_run(run_id: str, client: TemporalClientDep) -> dict[str, Any]:
    """Resume a run the loop guard paused, and reopen targets an overrun closed."""
    handle = client.get_workflow_handle(workflow_id(run_id))
    try:
        spend = await handle.execute_update(AgentRun.resume)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no running run {run_id!r}") from None
        raise Unavailable(f"run {run_id!r} cannot be reached now; retry") from None
    return run_json(spend, "workflow")
