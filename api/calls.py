"""Admin reads of single calls: the ledger rows of a run, and the calls settled after a cursor.

Why a ``settled_at`` cursor and not ``started_at``: calls finish out of order, so a follower
that asked for "started after the last one seen" would skip a slow call that started earlier.
Writers on several processes can still commit a little out of ``settled_at`` order, so
``runcap tail`` asks again from a few seconds before its cursor and skips call ids it has seen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Connection, func, select

from api.auth import require_admin
from api.deps import EngineDep
from api.spend import L, utc
from db.models import LedgerEntryPublic
from workflows.money import micros_to_usd

router = APIRouter(prefix="/admin", tags=["calls"], dependencies=[Depends(require_admin)])
MAX_ROWS = 1000
Limit = Annotated[int, Query(ge=0, le=MAX_ROWS)]


def call_public(row: Any) -> LedgerEntryPublic:
    """One ledger row as the admin api shows it: money in USD strings, times in UTC."""
    values = dict(row._mapping)
    cost, reserved = values.pop("cost_micros"), values.pop("reserved_micros")
    values["started_at"] = utc(values["started_at"])
    values["settled_at"] = utc(values["settled_at"])
    return LedgerEntryPublic(
        **values, cost_usd=micros_to_usd(cost), reserved_usd=micros_to_usd(reserved)
    )


def run_calls(conn: Connection, run_id: str, limit: int = 200) -> list[LedgerEntryPublic]:
    """A run's calls, latest first."""
    stmt = (
        select(L)
        .where(L.c.run_id == run_id)
        .order_by(L.c.started_at.desc(), L.c.call_id)
        .limit(limit)
    )
    return [call_public(row) for row in conn.execute(stmt)]


def calls_after(
    conn: Connection, after: datetime | None, limit: int
) -> tuple[list[LedgerEntryPublic], datetime | None]:
    """Calls settled after ``after`` (else the latest ``limit``), oldest first, and the cursor."""
    if after is not None:
        stmt = (
            select(L)
            .where(L.c.settled_at > utc(after))
            .order_by(L.c.settled_at, L.c.call_id)
            .limit(limit)
        )
        rows = [call_public(row) for row in conn.execute(stmt)]
    else:
        stmt = select(L).order_by(L.c.settled_at.desc(), L.c.call_id.desc()).limit(limit)
        rows = [call_public(row) for row in conn.execute(stmt)][::-1]
    if rows:
        return rows, rows[-1].settled_at
    if after is not None:
        return rows, utc(after)
    return rows, utc(conn.execute(select(func.max(L.c.settled_at))).scalar())


@router.get("/calls")
def list_calls(
    engine: EngineDep, after: datetime | None = None, limit: Limit = 100
) -> dict[str, Any]:
    """Calls as they settle: ``after`` is the ``cursor`` of the previous answer."""
    with engine.connect() as conn:
        rows, cursor = calls_after(conn, after, limit)
    return {"calls": rows, "cursor": cursor}


@router.get("/runs/{run_id}/calls")
def list_run_calls(run_id: str, engine: EngineDep, limit: Limit = 200) -> dict[str, Any]:
    """The ledger rows of one run, latest first."""
    with engine.connect() as conn:
        return {"run_id": run_id, "calls": run_calls(conn, run_id, limit)}
