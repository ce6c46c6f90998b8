"""Alert records on SQLite and PostgreSQL: one row per event id, claims that let one attempt
post at a time, and ``GET /admin/alerts`` with scope, sentence and delivery."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import httpx
from sqlalchemy import Engine
from sqlmodel import Session, select

from activities.alert_body import event_id_of, sentence_of
from db.alerts import claim_delivery, mark_delivered, record_alert, release_claim
from db.models import AlertRecord
from tests.api.helpers import ADMIN
from workflows.contracts import Alert

ALERT = Alert(
    run_id="r1",
    key_id="key_a",
    kind="threshold",
    threshold_percent=80,
    budget_micros=20_000_000,
    spent_micros=16_000_001,
    at="2025-03-01T12:00:00+00:00",
)
DAY = Alert(
    run_id="r2",
    key_id="key_b",
    kind="refused",
    threshold_percent=0,
    budget_micros=1_000_000,
    spent_micros=1_000_000,
    at="2025-03-01T13:00:00+00:00",
    scope="day",
    period="2025-03-01",
    detail="Key key_b spent its $1 for 2025-03-01; calls resume at midnight UTC.",
)
HOLD = timedelta(seconds=30)


def record(engine: Engine, alert: Alert) -> str:
    event_id = event_id_of(alert)
    record_alert(engine, alert, event_id, sentence_of(alert))
    return event_id


def test_an_event_is_one_row_and_a_repeat_keeps_its_delivery(engine: Engine) -> None:
    """Recording the same event again adds no row and does not reset its delivery."""
    event_id = record(engine, ALERT)
    assert claim_delivery(engine, event_id, HOLD) == "claimed"
    mark_delivered(engine, event_id)
    record(engine, dataclasses.replace(ALERT, at="2025-03-01T12:09:00+00:00"))
    with Session(engine) as session:
        rows = list(session.exec(select(AlertRecord)))
    assert [(r.id, r.attempts) for r in rows] == [(event_id, 1)]
    assert rows[0].delivered_at is not None


def test_claims_let_one_attempt_post_at_a_time(engine: Engine) -> None:
    """A held claim turns the next attempt away, a released one lets it in, a delivered event
    is never claimed again, and each claim counts one attempt."""
    event_id = record(engine, ALERT)
    assert claim_delivery(engine, event_id, HOLD) == "claimed"
    assert claim_delivery(engine, event_id, HOLD) == "busy"
    release_claim(engine, event_id, "webhook answered 500")
    assert claim_delivery(engine, event_id, HOLD) == "claimed"
    mark_delivered(engine, event_id)
    assert claim_delivery(engine, event_id, HOLD) == "delivered"
    release_claim(engine, event_id, "late failure of a stale attempt")
    with Session(engine) as session:
        row = session.get(AlertRecord, event_id)
        assert row is not None
        assert (row.attempts, row.last_error, row.claimed_until) == (2, "", None)


def test_a_dead_attempts_claim_expires(engine: Engine) -> None:
    """A claim whose hold has passed (its worker died mid-post) is taken over."""
    event_id = record(engine, ALERT)
    assert claim_delivery(engine, event_id, timedelta(seconds=-1)) == "claimed"
    assert claim_delivery(engine, event_id, HOLD) == "claimed"
    assert claim_delivery(engine, event_id, HOLD) == "busy"


async def test_admin_alerts_show_scope_sentence_and_delivery(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    """``GET /admin/alerts`` lists the latest first with event id, scope, period, the sentence
    (the workflow's, else ours) and how delivery went; filters by run and by key."""
    run_event, day_event = record(engine, ALERT), record(engine, DAY)
    claim_delivery(engine, run_event, HOLD)
    release_claim(engine, run_event, "webhook answered 500")
    claim_delivery(engine, day_event, HOLD)
    mark_delivered(engine, day_event)
    response = await client.get("/admin/alerts", headers=ADMIN)
    assert response.status_code == 200, response.text
    day, run = response.json()["alerts"]
    assert (day["event_id"], day["scope"], day["period"]) == (day_event, "day", "2025-03-01")
    assert day["message"] == DAY.detail and day["delivered_at"] and day["attempts"] == 1
    assert (run["event_id"], run["scope"], run["period"]) == (run_event, "run", "")
    assert run["message"] == "run r1 crossed 80% of its $20.000000 budget ($16.000001 spent)"
    assert run["spent_usd"] == "16.000001" and run["at"].startswith("2025-03-01T12:00")
    assert (run["delivered_at"], run["attempts"], run["last_error"]) == (
        None,
        1,
        "webhook answered 500",
    )
    only = await client.get("/admin/alerts", params={"run_id": "r1"}, headers=ADMIN)
    assert [a["run_id"] for a in only.json()["alerts"]] == ["r1"]
    by_key = await client.get("/admin/alerts", params={"key_id": "key_b"}, headers=ADMIN)
    assert [a["event_id"] for a in by_key.json()["alerts"]] == [day_event]
