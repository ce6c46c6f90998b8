"""Admin reads of alerts: the most recent ones, each with its sentence and its delivery."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlmodel import Session, col, select

from activities.alert_body import describe
from api.auth import require_admin
from api.deps import SessionDep
from api.spend import utc
from db.models import AlertRecord, AlertRecordPublic
from workflows.money import micros_to_usd

router = APIRouter(prefix="/admin", tags=["alerts"], dependencies=[Depends(require_admin)])


def alert_public(alert: AlertRecord) -> AlertRecordPublic:
    """An alert with money in USD strings, its sentence (``message``) and its delivery."""
    at = utc(alert.at)
    assert at is not None
    return AlertRecordPublic(
        id=alert.id,
        event_id=alert.id,
        run_id=alert.run_id,
        key_id=alert.key_id,
        kind=alert.kind,
        threshold_percent=alert.threshold_percent,
        scope=alert.scope,
        period=alert.period,
        detail=alert.detail,
        attempts=alert.attempts,
        delivered_at=utc(alert.delivered_at),
        last_error=alert.last_error,
        budget_usd=micros_to_usd(alert.budget_micros),
        spent_usd=micros_to_usd(alert.spent_micros),
        at=at,
        # Recorded alerts carry their sentence; rows from before it was stored get one made.
        message=alert.detail or describe(alert),
    )


def recent_alerts(
    session: Session, limit: int = 100, run_id: str | None = None, key_id: str | None = None
) -> list[AlertRecordPublic]:
    """The latest alerts first: of one run, of one key (its runs and its periods), or all."""
    stmt = select(AlertRecord).order_by(col(AlertRecord.at).desc(), col(AlertRecord.id))
    if run_id is not None:
        stmt = stmt.where(AlertRecord.run_id == run_id)
    if key_id is not None:
        stmt = stmt.where(AlertRecord.key_id == key_id)
    return [alert_public(a) for a in session.exec(stmt.limit(limit))]


@router.get("/alerts")
def list_alerts(
    session: SessionDep,
    run_id: str | None = None,
    key_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The most recent alerts, latest first."""
    return {"alerts": recent_alerts(session, limit, run_id, key_id)}
