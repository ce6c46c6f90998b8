"""The alert activity: a JSON POST to the configured webhook when a run crosses a threshold.

Why an activity: the workflow decides once per run and threshold, and Temporal retries the
delivery (bounded by the workflow's retry policy) across worker restarts. A 4xx means the
receiver refuses this payload, so retrying cannot help: it fails non-retryably.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

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


class AlertActivities:
    """Delivers budget alerts over one shared ``httpx.AsyncClient``."""

    def __init__(self, http: httpx.AsyncClient, webhook_url: str | None) -> None:
        self.http = http
        self.webhook_url = webhook_url

    @activity.defn(name="send_alert")
    async def send_alert(self, alert: Alert) -> None:
        """POST the alert; 5xx and connection errors raise (retried), 4xx fails for good."""
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
