"""Alert rows in the database: recorded once per event id, then claimed, delivered or released.

Why a claim rather than a read-then-post: two attempts of one event (Temporal retrying an
attempt it timed out while that attempt still runs, or two workflows deciding the same period
alert at once) would both read "not delivered" and both post. The claim is one conditional
UPDATE, atomic on SQLite and PostgreSQL alike, so at most one attempt posts at a time; it also
counts the attempt. A claim expires on its own, so a worker that died holding one delays the
next attempt; it never blocks it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from db.ledger import parse_time
from db.models import AlertRecord, utcnow
from workflows.contracts import Alert

Claim = Literal["claimed", "delivered", "busy"]
MAX_ERROR_CHARS = 200
ALERTS = AlertRecord.__table__  # type: ignore[attr-defined]


def record_alert(engine: Engine, alert: Alert, event_id: str, sentence: str) -> None:
    """Store the alert under its event id, once: a repeat leaves the first row (and its
    delivery state) as it was."""
    with Session(engine) as session:
        if session.get(AlertRecord, event_id) is not None:
            return
        session.add(
            AlertRecord(
                id=event_id,
                run_id=alert.run_id,
                key_id=alert.key_id,
                kind=alert.kind,
                threshold_percent=alert.threshold_percent,
                scope=alert.scope,
                period=alert.period,
                detail=sentence,
                budget_micros=alert.budget_micros,
                spent_micros=alert.spent_micros,
                at=parse_time(alert.at),
            )
        )
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # another attempt recorded it between our read and our write


def posted_since(engine: Engine, key_id: str, kind: str, since: timedelta) -> int:
    """How many alerts of this key and kind were posted within ``since`` (delivered, or being
    delivered now)."""
    after = utcnow() - since
    query = select(func.count()).where(
        ALERTS.c.key_id == key_id,
        ALERTS.c.kind == kind,
        ALERTS.c.at >= after,
        or_(ALERTS.c.delivered_at.is_not(None), ALERTS.c.attempts > 0),
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def mark_held_back(engine: Engine, event_id: str, reason: str) -> None:
    """Recorded, not posted: the key's alerts of this kind reached their bound."""
    with engine.begin() as conn:
        conn.execute(
            update(ALERTS)
            .where(ALERTS.c.id == event_id)
            .values(last_error=reason[:MAX_ERROR_CHARS])
        )


def claim_delivery(engine: Engine, event_id: str, hold: timedelta) -> Claim:
    """Take the right to post this event for ``hold``, counting one attempt; or say why not:
    it was delivered already, or another attempt holds it now."""
    now = utcnow()
    with engine.begin() as connection:
        taken = connection.execute(
            update(ALERTS)
            .where(
                ALERTS.c.id == event_id,
                ALERTS.c.delivered_at.is_(None),
                or_(ALERTS.c.claimed_until.is_(None), ALERTS.c.claimed_until < now),
            )
            .values(attempts=ALERTS.c.attempts + 1, claimed_until=now + hold)
        )
        if taken.rowcount == 1:
            return "claimed"
        delivered = connection.execute(
            select(ALERTS.c.delivered_at).where(ALERTS.c.id == event_id)
        ).scalar_one_or_none()
    return "delivered" if delivered is not None else "busy"


def mark_delivered(engine: Engine, event_id: str) -> None:
    """The receiver said 2xx: never post this event again."""
    with engine.begin() as connection:
        connection.execute(
            update(ALERTS)
            .where(ALERTS.c.id == event_id)
            .values(delivered_at=utcnow(), claimed_until=None, last_error="")
        )


def release_claim(engine: Engine, event_id: str, error: str) -> None:
    """This attempt failed: free the event for the next one at once, saying why."""
    with engine.begin() as connection:
        connection.execute(
            update(ALERTS)
            .where(ALERTS.c.id == event_id, ALERTS.c.delivered_at.is_(None))
            .values(claimed_until=None, last_error=error[:MAX_ERROR_CHARS])
        )
