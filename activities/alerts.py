"""The alert activity: record the alert, then POST it to the configured webhook.

Why an activity: the workflow decides once per run and threshold, and Temporal retries the
delivery (bounded by the workflow's retry policy) across worker restarts. A 4xx means the
receiver refuses this payload, so retrying cannot help: it fails non-retryably.
Why record first: the dashboard and ``GET /admin/alerts`` show every alert, delivered or not;
the record's id comes from the alert itself, so a retried activity leaves one row.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.models import AlertRecord
from providers.pricing import micros_to_usd
from workflows.contracts import Alert

log = logging.getLogger(__name__)
ALERT_TIMEOUT_SECONDS = 10.0


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The webhook's JSON body: money as exact USD strings."""
    return {
        "run_id": alert.run_id,
        "key_id": alert.key_id,
        "kind": alert.kind,
        "threshold_percent": alert.threshold_percent,
        "budget_usd": micros_to_usd(alert.budget_micros),
        "spent_usd": micros_to_usd(alert.spent_micros),
        "at": alert.at,
    }


def record_alert(engine: Engine, alert: Alert) -> None:
    """Store the alert (idempotent: the same alert is one row however often it is recorded)."""
    identity = f"{alert.run_id}\x00{alert.kind}\x00{alert.threshold_percent}\x00{alert.at}"
    record = AlertRecord(
        id=hashlib.sha256(identity.encode()).hexdigest()[:32],
        run_id=alert.run_id,
        key_id=alert.key_id,
        kind=alert.kind,
        threshold_percent=alert.threshold_percent,
        budget_micros=alert.budget_micros,
        spent_micros=alert.spent_micros,
        at=datetime.fromisoformat(alert.at),
    )
    with Session(engine) as session:
        session.merge(record)
        session.commit()


class AlertActivities:
    """Records budget alerts and delivers them over one shared ``httpx.AsyncClient``."""

    def __init__(self, http: httpx.AsyncClient, webhook_url: str | None, engine: Engine) -> None:
        self.http = http
        self.webhook_url = webhook_url
        self.engine = engine

    @activity.defn(name="send_alert")
    async def send_alert(self, alert: Alert) -> None:
        """Record, then POST the alert; 5xx and connection errors raise (retried), 4xx fails."""
        await asyncio.to_thread(record_alert, self.engine, alert)
        payload = alert_payload(alert)
        if not self.webhook_url:
            log.info(
                "alert (no webhook configured): run=%s kind=%s threshold=%s%%",
                alert.run_id,
                alert.kind,
                alert.threshold_percent,
            )
            return
        response = await self.http.post(
            self.webhook_url, json=payload, timeout=ALERT_TIMEOUT_SECONDS
        )
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise ApplicationError(
                f"alert webhook refused the alert with {response.status_code}",
                type="AlertRejected",
                non_retryable=True,
            )
        if response.status_code >= 400:
            raise ApplicationError(
                f"alert webhook answered {response.status_code}", type="AlertWebhookError"
            )
