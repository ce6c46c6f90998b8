"""Admin spend queries: spend grouped by key, run, model, provider, day or any tag prefix,
the runs seen in the ledger, and one run's live budget from its workflow.

Why SQL aggregation over the ledger: the ledger is the source of every spend figure, and sums
of integer micro-dollars in the database are exact; USD strings are made only at the edge.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import ColumnElement, Connection, Engine, FromClause, and_, exists, func, select
from sqlalchemy import literal_column as lc
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import require_admin
from api.deps import EngineDep, TemporalClientDep
from api.errors import BadRequest, NotFound, Unavailable
from api.live import ended_rows, with_unsettled
from api.tags import validate_tag
from db.models import LedgerEntry, LedgerTag, VirtualKey
from providers.pricing import micros_to_usd
from workflows.budget import NO_STEP
from workflows.contracts import RunSpend, StepSpend, workflow_id

router = APIRouter(prefix="/admin", tags=["spend"], dependencies=[Depends(require_admin)])
L = LedgerEntry.__table__  # type: ignore[attr-defined]
T = LedgerTag.__table__  # type: ignore[attr-defined]
K = VirtualKey.__table__  # type: ignore[attr-defined]
PLAIN_GROUPS = {"key": L.c.key_id, "run": L.c.run_id, "model": L.c.model, "provider": L.c.provider}
QUERY_TIMEOUT = timedelta(seconds=5)
_PREFIX_RE = re.compile(r"[A-Za-z0-9_.@+\-/]{1,64}")
TagsQuery = Annotated[list[str] | None, Query(alias="tag")]


def _utc(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def filters(
    tags: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    run_id: str | None = None,
    key_id: str | None = None,
) -> list[ColumnElement[bool]]:
    """Ledger conditions: every tag present (AND), ``since <= started_at < until``."""
    conds: list[ColumnElement[bool]] = []
    for tag in tags or []:
        validate_tag(tag)
        conds.append(exists().where(T.c.call_id == L.c.call_id, T.c.tag == tag))
    if (start := _utc(since)) is not None:
        conds.append(L.c.started_at >= start)
    if (end := _utc(until)) is not None:
        conds.append(L.c.started_at < end)
    if run_id is not None:
        conds.append(L.c.run_id == run_id)
    if key_id is not None:
        conds.append(L.c.key_id == key_id)
    return conds


def _group(group_by: str, dialect: str) -> tuple[ColumnElement[Any], FromClause]:
    if group_by in PLAIN_GROUPS:
        return PLAIN_GROUPS[group_by], L
    if group_by == "day":
        if dialect == "postgresql":
            day = func.to_char(func.timezone("UTC", L.c.started_at), "YYYY-MM-DD")
        else:  # SQLite stores UTC times as ISO text
            day = func.substr(L.c.started_at, 1, 10)
        return day, L
    prefix = group_by.removeprefix("tag:")
    if group_by.startswith("tag:") and _PREFIX_RE.fullmatch(prefix):
        g = T.alias("g")
        joined = L.outerjoin(g, and_(g.c.call_id == L.c.call_id, g.c.prefix == prefix))
        return func.coalesce(g.c.tag, NO_STEP), joined
    raise BadRequest(
        f"group_by must be key, run, model, provider, day or tag:PREFIX, not {group_by!r}",
        param="group_by",
    )


def aggregate(
    conn: Connection, group_by: str, conds: list[ColumnElement[bool]]
) -> list[dict[str, Any]]:
    """Spend rows grouped by ``group_by``, dearest first, money in USD strings."""
    group, source = _group(group_by, conn.dialect.name)
    stmt = (
        select(
            group.label("grp"),
            func.count().label("calls"),
            func.coalesce(func.sum(L.c.cost_micros), 0),
            func.coalesce(func.sum(L.c.input_tokens), 0),
            func.coalesce(func.sum(L.c.output_tokens), 0),
            func.coalesce(func.sum(L.c.cached_input_tokens), 0),
            func.coalesce(func.sum(L.c.cache_write_tokens), 0),
        )
        .select_from(source)
        .where(*conds)
        .group_by(lc("grp"))
        .order_by(lc("3").desc(), lc("grp"))
    )
    return [
        {
            "group": str(grp),
            "calls": int(calls),
            "cost_usd": micros_to_usd(int(cost)),
            "cost_micros": int(cost),
            "input_tokens": int(inp),
            "output_tokens": int(out),
            "cached_input_tokens": int(cached),
            "cache_write_tokens": int(written),
        }
        for grp, calls, cost, inp, out, cached, written in conn.execute(stmt)
    ]


def totals(conn: Connection, conds: list[ColumnElement[bool]]) -> tuple[int, int]:
    """(calls, cost micros) of the filtered ledger; each call counted once."""
    stmt = select(func.count(), func.coalesce(func.sum(L.c.cost_micros), 0)).where(*conds)
    calls, cost = conn.execute(stmt).one()
    return int(calls), int(cost)


@router.get("/spend")
def spend(
    engine: EngineDep,
    group_by: str = "key",
    tag: TagsQuery = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Spend grouped as asked; ``tag`` may repeat (calls carrying all of them)."""
    conds = filters(tag, since, until)
    with engine.connect() as conn:
        rows = aggregate(conn, group_by, conds)
        calls, cost = totals(conn, conds)
    return {
        "group_by": group_by,
        "rows": rows,
        "total_calls": calls,
        "total_cost_usd": micros_to_usd(cost),
    }


@router.get("/runs")
def list_runs(
    engine: EngineDep,
    key_id: str | None = None,
    tag: TagsQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Runs seen in the ledger, latest activity first, with their calls and spend."""
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
            "first_call_at": _utc(first),
            "last_call_at": _utc(last),
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
    settled = [*filters(run_id=run_id), L.c.status == "ok"]
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
        calls, cost = totals(conn, filters(run_id=run_id))
        if calls == 0:
            return None
        failed = conn.execute(
            select(func.count()).where(L.c.run_id == run_id, L.c.status != "ok")
        ).scalar_one()
        key_id = conn.execute(select(func.min(L.c.key_id)).where(L.c.run_id == run_id)).scalar()
        budget = conn.execute(select(K.c.budget_micros).where(K.c.id == key_id)).scalar()
        by_step = _breakdown(conn, "tag:step", run_id)
        by_model = _breakdown(conn, "model", run_id)
    budget_micros = int(budget or 0)
    return RunSpend(
        run_id=run_id,
        status="closed",
        budget_micros=budget_micros,
        spent_micros=cost,
        reserved_micros=0,
        remaining_micros=max(budget_micros - cost, 0),
        calls=calls - int(failed),
        failed_calls=int(failed),
        overruns=0,
        overrun_micros=0,
        by_step=by_step,
        by_model=by_model,
    )


@router.get("/runs/{run_id}")
async def get_run(run_id: str, engine: EngineDep, client: TemporalClientDep) -> dict[str, Any]:
    """A run's live budget from its workflow, with calls answered but not yet settled there
    counted from the ledger; rebuilt from the ledger alone when the workflow is gone.

    When the workflow exists but cannot answer (its worker is down), the ledger's figures are
    given marked ``stale``, with status ``unknown``: never an open run shown as closed.
    """
    handle = client.get_workflow_handle(workflow_id(run_id))
    gone = False
    try:
        live = await handle.query("spend", result_type=RunSpend, rpc_timeout=QUERY_TIMEOUT)
        ended = await asyncio.to_thread(ended_rows, engine, list(live.open_calls))
        return run_json(with_unsettled(live, ended), "workflow")
    except RPCError as err:
        gone = err.status == RPCStatusCode.NOT_FOUND
    except WorkflowQueryFailedError:
        pass
    stored = await asyncio.to_thread(ledger_run, engine, run_id)
    if stored is None:
        if not gone:
            raise Unavailable(f"run {run_id!r}: its workflow cannot be queried now; retry")
        raise NotFound(f"no run {run_id!r}: no workflow and no ledger rows")
    if gone:
        return run_json(stored, "ledger")
    stale = run_json(dataclasses.replace(stored, status="open"), "ledger")
    return {**stale, "status": "unknown", "stale": True}
