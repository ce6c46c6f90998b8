"""The alerts page: the most recent alerts, each with what it was about."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.alerts import recent_alerts
from api.deps import SessionDep
from api.ui.guard import SignedInDep
from api.ui.render import page

router = APIRouter()
ALERTS_SHOWN = 100


@router.get("/alerts")
def alerts_page(request: Request, db: SessionDep, session: SignedInDep) -> Response:
    """The latest alerts first."""
    context = {"nav": "alerts", "alerts": recent_alerts(db, ALERTS_SHOWN)}
    return page(request, "alerts.html", context, session=session)
