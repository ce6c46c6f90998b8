"""Admin reads of alerts: the most recent ones, each with a sentence saying what it was about."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlmodel import Session, col, select

from api.auth import require_admin
from api.deps import SessionDep
from api.spend import utc
from db.models import AlertRecord, AlertRecordPublic
from providers.pricing import micros_to_usd

router = APIRouter(prefix="/admin", tags=["alerts"], dependencies=[Depends(require_admin)])


def describe(alert: AlertRecord) -> str:
    """What happened, in words: which run, which threshold, the figures then."""
    budget, spent = micros_to_usd(alert.budget_micros), micros_to_usd(alert.spent_micros)
    if alert.kind == "refused":
        return f"run {alert.run_id}: a call was refused, ${spent} of its ${budget} budget spent"
    return (
        f"run {alert.run_id} crossed {alert.threshold_percent}% of its ${budget} budget "
        f"(${spent} spent)"
    )


def alert_public(alert: AlertRecord) -> AlertRecordPublic:
    """An alert with money in USD strings and its sentence."""
    at = utc(alert.at)
    assert at is not None
    return AlertRecordPublic(
        id=alert.id,
        run_id=alert.run_id,
        key_id=alert.key_id,
        kind=alert.kind,
        threshold_percent=alert.threshold_percent,
        budget_usd=micros_to_usd(alert.budget_micros),
        spent_usd=micros_to_usd(alert.spent_micros),
        at=at,
        message=describe(alert),
    )


def recent_alerts(
    session: Session, limit: int = 100, run_id: str | None = None
) -> list[AlertRecordPublic]:
    """The latest alerts first, of one run or of all."""
    stmt = select(AlertRecord).order_by(col(AlertRecord.at).desc(), col(AlertRecord.id))
    if run_id is not None:
        stmt = stmt.where(AlertRecord.run_id == run_id)
    return [alert_public(a) for a in session.exec(stmt.limit(limit))]


@router.get("/alerts")
def list_alerts(
    session: SessionDep,
    run_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The most recent alerts, latest first."""
    return {"alerts": recent_alerts(session, limit, run_id)}
