"""The alert activity: record the alert, then deliver it to the webhook, signed, at most once.

Why an activity: the workflow decides an alert once, and Temporal retries the delivery with
backoff (bounded by the workflow's retry policy) across worker restarts. This activity never
retries by itself; it classifies. A 4xx other than 408/429 means the receiver refuses this
payload, so retrying cannot help: it fails non-retryably.

Why record first: the dashboard and ``GET /admin/alerts`` show every alert, delivered or not.
The row is keyed by the alert's event id, and it remembers the delivery (``delivered_at``,
``attempts``).

What "delivered at most once per event id" means here, and what it cannot mean over HTTP:
- Once a receiver has answered 2xx, that event id is never posted again: not by a retried
  activity, not by a workflow that decided the same alert twice (replayed after a restart, or
  two runs reporting one period), since the derived event id is the same
  (``activities.alert_body.event_id_of``).
- Two attempts of one event never post at the same time: each takes a claim first
  (``db.alerts.claim_delivery``); the loser fails retryably and finds it delivered next time.
- A receiver that got the request but whose 2xx never reached us (a timeout, a connection cut,
  a worker killed mid-answer) is indistinguishable from one that never got it, so it gets the
  same alert again with the same ``X-Runcap-Event-Id``. No sender can do better over HTTP:
  a receiver that must act once should keep the ids it has accepted and drop a repeat.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import httpx
from pydantic import SecretStr
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.alert_body import encode, event_id_of, json_body, sentence_of, slack_body
from activities.alert_signature import EVENT_ID_HEADER, SIGNATURE_HEADER, signature_header
from db.alerts import (
    claim_delivery,
    mark_delivered,
    mark_held_back,
    posted_since,
    record_alert,
    release_claim,
)
from workflows.contracts import Alert

log = logging.getLogger(__name__)
CLAIM_HOLD_FACTOR = 3
"""A claim is held for this many times the longest a post may take (``timeout_seconds``, end
to end); a dead attempt's claim delays the next attempt by at most that."""
POSTED_PER_KEY = 20
POSTED_WITHIN = timedelta(hours=1)
"""At most this many alerts of one kind per key are posted within this window: an agent that
opens run after run (each refused once) cannot flood the webhook; the rest are recorded."""
MAX_RETRY_AFTER = timedelta(seconds=60)
"""A receiver's ``Retry-After`` is honoured up to this; the retry policy still bounds attempts."""
AlertFormat = Literal["json", "slack"]


@dataclass(frozen=True)
class AlertWebhook:
    """Where and how alerts are delivered; the worker builds it from its settings.

    The URL is a secret too: a Slack incoming-webhook URL is its own credential.
    """

    url: SecretStr | None = None
    secret: SecretStr | None = None
    """Signs each post (``X-Runcap-Signature``); without it posts go unsigned."""
    format: AlertFormat = "json"
    dashboard_url: str | None = None
    """The dashboard's address (``https://runcap.example.com/ui``), for links in the body."""
    timeout_seconds: float = 10.0
    """The whole post, connect to last byte of the answer."""


class AlertActivities:
    """Records alerts and delivers them over one shared ``httpx.AsyncClient``."""

    def __init__(self, http: httpx.AsyncClient, webhook: AlertWebhook, engine: Engine) -> None:
        self.http = http
        self.webhook = webhook
        self.engine = engine

    @activity.defn(name="send_alert")
    async def send_alert(self, alert: Alert) -> None:
        """Record, then post the alert unless its event id was delivered already.

        Raises a retryable ``ApplicationError`` on 5xx, 408, 429, a network failure or another
        attempt holding the event; a non-retryable one on other 4xx and on redirects.
        """
        event_id = event_id_of(alert)
        await asyncio.to_thread(record_alert, self.engine, alert, event_id, sentence_of(alert))
        if self.webhook.url is None:
            log.info("alert %s recorded (no webhook configured): %s", event_id, sentence_of(alert))
            return
        if alert.key_id:
            posted = await asyncio.to_thread(
                posted_since, self.engine, alert.key_id, alert.kind, POSTED_WITHIN
            )
            if posted >= POSTED_PER_KEY:
                reason = (
                    f"held back: {posted} {alert.kind} alerts of this key were posted within "
                    f"{POSTED_WITHIN}; see the dashboard's Alerts page"
                )
                await asyncio.to_thread(mark_held_back, self.engine, event_id, reason)
                return
        hold = timedelta(seconds=CLAIM_HOLD_FACTOR * self.webhook.timeout_seconds)
        claim = await asyncio.to_thread(claim_delivery, self.engine, event_id, hold)
        if claim == "delivered":
            log.info("alert %s was delivered already; not sending it again", event_id)
            return
        if claim == "busy":
            raise ApplicationError(
                f"alert {event_id} is being delivered by another attempt", type="AlertInFlight"
            )
        try:
            response = await self._post(event_id, alert)
        except BaseException as exc:  # cancelled or unreachable: free the claim for a retry
            await asyncio.to_thread(release_claim, self.engine, event_id, type(exc).__name__)
            if isinstance(exc, httpx.HTTPError | TimeoutError):
                # Not the httpx error itself: its text may carry the URL, a secret.
                raise ApplicationError(
                    f"alert webhook unreachable: {type(exc).__name__}", type="AlertWebhookError"
                ) from None
            raise
        if response.is_success:
            await asyncio.to_thread(mark_delivered, self.engine, event_id)
            return
        problem = f"webhook answered {response.status_code}"
        await asyncio.to_thread(release_claim, self.engine, event_id, problem)
        raise _failure(event_id, response, problem)

    async def _post(self, event_id: str, alert: Alert) -> httpx.Response:
        assert self.webhook.url is not None
        render = slack_body if self.webhook.format == "slack" else json_body
        body = encode(render(alert, self.webhook.dashboard_url))
        headers = {"Content-Type": "application/json", EVENT_ID_HEADER: event_id}
        if self.webhook.secret is not None:
            # Signed per attempt: a fresh timestamp keeps a slow retry inside the tolerance.
            secret = self.webhook.secret.get_secret_value()
            headers[SIGNATURE_HEADER] = signature_header(secret, body)
        # One deadline for the whole post (httpx's timeout is per phase), so an attempt ends
        # well inside its claim and a slow receiver cannot make two attempts overlap.
        async with asyncio.timeout(self.webhook.timeout_seconds):
            return await self.http.post(
                self.webhook.url.get_secret_value(),
                content=body,
                headers=headers,
                timeout=self.webhook.timeout_seconds,
            )


def _failure(event_id: str, response: httpx.Response, problem: str) -> ApplicationError:
    """The error that tells Temporal whether another attempt can help."""
    status = response.status_code
    message = f"alert {event_id}: {problem}"
    if status in (408, 429) or status >= 500:
        return ApplicationError(
            message, type="AlertWebhookError", next_retry_delay=_retry_after(response)
        )
    return ApplicationError(message, type="AlertRejected", non_retryable=True)


def _retry_after(response: httpx.Response) -> timedelta | None:
    """The receiver's ``Retry-After`` (seconds or an HTTP date), capped; None without one."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = when - datetime.now(UTC)
    return max(timedelta(0), min(delay, MAX_RETRY_AFTER)) or None
