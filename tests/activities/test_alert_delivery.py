"""Alert delivery through Temporal to a real receiver on 127.0.0.1: signed, retried with
backoff by Temporal, and delivered once per event id however often it is decided."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.alert_body import event_id_of
from activities.alert_signature import EVENT_ID_HEADER, verify_signature
from activities.alerts import (
    MAX_RETRY_AFTER,
    POSTED_PER_KEY,
    AlertActivities,
    AlertFormat,
    AlertWebhook,
)
from db.models import AlertRecord
from tests.activities.alert_workflow import DeliverAlert, Delivery
from tests.polling import eventually
from tests.webhook_receiver import WebhookReceiver, receiving
from worker.devserver import free_port
from workflows.contracts import Alert

SECRET = "whsec-delivery-test"
ALERT = Alert(
    run_id="run-key_a-task-9",
    key_id="key_a",
    kind="threshold",
    threshold_percent=80,
    budget_micros=20_000_000,
    spent_micros=16_000_001,
    at="2026-11-28T12:00:00+00:00",
)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with receiving(WebhookReceiver(secret=SECRET)) as started:
        yield started


def webhook(receiver: WebhookReceiver, fmt: AlertFormat = "json") -> AlertWebhook:
    return AlertWebhook(
        url=SecretStr(receiver.url),
        secret=SecretStr(SECRET),
        format=fmt,
        dashboard_url="http://127.0.0.1:8000/ui",
    )


def record_of(engine: Engine, event_id: str) -> AlertRecord:
    with Session(engine) as session:
        record = session.get(AlertRecord, event_id)
        assert record is not None, event_id
        return record


class Deliverer:
    """Starts ``DeliverAlert`` workflows on a worker that runs the real alert activity."""

    def __init__(self, client: Client, queue: str) -> None:
        self.client = client
        self.queue = queue

    async def start(
        self, alert: Alert, max_attempts: int = 5
    ) -> WorkflowHandle[DeliverAlert, None]:
        return await self.client.start_workflow(
            DeliverAlert.run,
            Delivery(alert, max_attempts),
            id=f"deliver-{uuid4().hex}",
            task_queue=self.queue,
        )

    async def deliver(self, alert: Alert, max_attempts: int = 5) -> None:
        await (await self.start(alert, max_attempts)).result()


@pytest.fixture
async def deliverer(
    temporal_client: Client,
    task_queue: str,
    http: httpx.AsyncClient,
    engine: Engine,
    receiver: WebhookReceiver,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Deliverer]:
    fmt: AlertFormat = getattr(request, "param", "json")
    activities = AlertActivities(http, webhook(receiver, fmt), engine)
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[DeliverAlert],
        activities=[activities.send_alert],
    ):
        yield Deliverer(temporal_client, task_queue)


async def test_a_receiver_failing_twice_gets_the_alert_on_the_third_try_once(
    deliverer: Deliverer, receiver: WebhookReceiver, engine: Engine
) -> None:
    """Two 500s, then Temporal's third attempt is accepted: three signed posts of the same
    bytes under one event id, one acceptance, and the record says delivered after 3 attempts."""
    receiver.statuses = [500, 500]
    await deliverer.deliver(ALERT)
    event_id = event_id_of(ALERT)
    assert [seen.status for seen in receiver.seen] == [500, 500, 204]
    assert all(seen.verified for seen in receiver.seen)
    assert {seen.headers[EVENT_ID_HEADER.lower()] for seen in receiver.seen} == {event_id}
    assert len({seen.body for seen in receiver.seen}) == 1
    assert receiver.accepted == [event_id]
    body = receiver.seen[-1].json()
    assert (body["version"], body["event_id"], body["spent_usd"]) == (1, event_id, "16.000001")
    assert body["links"]["run"] == "http://127.0.0.1:8000/ui/runs/run-key_a-task-9"
    record = record_of(engine, event_id)
    assert record.attempts == 3 and record.delivered_at is not None and record.last_error == ""


async def test_an_alert_decided_twice_is_delivered_once(
    deliverer: Deliverer, receiver: WebhookReceiver, engine: Engine
) -> None:
    """The activity run again for the same alert (and for the same threshold decided again
    later, as after a restart) posts nothing more: one post, one acceptance, one attempt."""
    await deliverer.deliver(ALERT)
    await deliverer.deliver(ALERT)
    await deliverer.deliver(dataclasses.replace(ALERT, at="2026-11-28T12:00:07+00:00"))
    assert len(receiver.seen) == 1 and receiver.accepted == [event_id_of(ALERT)]
    assert record_of(engine, event_id_of(ALERT)).attempts == 1


async def test_two_attempts_at_once_post_once(
    deliverer: Deliverer, receiver: WebhookReceiver, temporal_client: Client
) -> None:
    """Two workflows deliver the same alert at the same time: while the first post is held by
    the receiver, the other attempt fails as in flight and is retried by Temporal, then finds
    the alert delivered; the receiver sees one post."""
    receiver.gate = asyncio.Event()
    handles = [await deliverer.start(ALERT, max_attempts=20) for _ in range(2)]

    async def one_was_turned_away() -> bool:
        for handle in handles:
            description = await handle.describe()
            for pending in description.raw_description.pending_activities:
                failure = pending.last_failure.application_failure_info
                if pending.attempt >= 2 and failure.type == "AlertInFlight":
                    return True
        return False

    assert await eventually(one_was_turned_away, within=30)
    receiver.gate.set()
    await asyncio.gather(*(handle.result() for handle in handles))
    assert len(receiver.seen) == 1 and receiver.accepted == [event_id_of(ALERT)]


async def test_a_refusing_receiver_fails_the_alert_at_once(
    deliverer: Deliverer, receiver: WebhookReceiver, engine: Engine
) -> None:
    """A 404 is final: one post, no retry, and the record says why it was not delivered."""
    receiver.statuses = [404]
    with pytest.raises(WorkflowFailureError) as failed:
        await deliverer.deliver(ALERT)
    activity_error = failed.value.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError) and cause.type == "AlertRejected"
    assert len(receiver.seen) == 1 and receiver.accepted == []
    record = record_of(engine, event_id_of(ALERT))
    assert (record.attempts, record.delivered_at) == (1, None)
    assert record.last_error == "webhook answered 404"


async def test_a_wrong_secret_is_refused_by_the_receiver(
    http: httpx.AsyncClient, engine: Engine, receiver: WebhookReceiver
) -> None:
    """Signed with another secret, the alert does not verify: the receiver refuses it (400)."""
    wrong = dataclasses.replace(webhook(receiver), secret=SecretStr("whsec-not-the-one"))
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(AlertActivities(http, wrong, engine).send_alert, ALERT)
    assert caught.value.non_retryable
    assert [(seen.verified, seen.status) for seen in receiver.seen] == [(False, 400)]
    seen = receiver.seen[0]
    assert not verify_signature(SECRET, seen.headers["x-runcap-signature"], seen.body)
    assert verify_signature("whsec-not-the-one", seen.headers["x-runcap-signature"], seen.body)


async def test_retry_after_is_passed_to_temporal(
    http: httpx.AsyncClient, engine: Engine, receiver: WebhookReceiver
) -> None:
    """A 503 with ``Retry-After: 2`` is retryable with Temporal's next delay set to 2 s; an
    hour is capped at a minute."""
    activities = AlertActivities(http, webhook(receiver), engine)
    for retry_after, delay in (("2", timedelta(seconds=2)), ("3600", MAX_RETRY_AFTER)):
        receiver.statuses, receiver.retry_after = [503], retry_after
        with pytest.raises(ApplicationError) as caught:
            await ActivityEnvironment().run(activities.send_alert, ALERT)
        assert not caught.value.non_retryable and caught.value.type == "AlertWebhookError"
        assert caught.value.next_retry_delay == delay


@pytest.mark.parametrize("deliverer", ["slack"], indirect=True)
async def test_slack_format_through_the_activity(
    deliverer: Deliverer, receiver: WebhookReceiver
) -> None:
    """With ``RUNCAP_ALERT_FORMAT=slack`` the post is Slack's text and blocks, still signed."""
    await deliverer.deliver(ALERT)
    (seen,) = receiver.seen
    body = seen.json()
    assert seen.verified and set(body) == {"text", "blocks"}
    assert "run run-key_a-task-9 crossed 80% of its $20.000000 budget" in body["text"]
    assert "<http://127.0.0.1:8000/ui/runs/run-key_a-task-9|open the run>" in str(body["blocks"])


async def test_without_a_webhook_the_alert_is_only_recorded(
    http: httpx.AsyncClient, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """No URL: nothing is posted, the alert is recorded with its sentence and logged at info."""
    caplog.set_level("INFO")
    await ActivityEnvironment().run(AlertActivities(http, AlertWebhook(), engine).send_alert, ALERT)
    record = record_of(engine, event_id_of(ALERT))
    assert record.detail.startswith("run run-key_a-task-9 crossed 80%")
    assert (record.attempts, record.delivered_at) == (0, None)
    assert "run-key_a-task-9" in caplog.text


async def test_an_unreachable_webhook_is_retryable_and_its_url_is_not_told(
    http: httpx.AsyncClient, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listening: a retryable error that names neither the URL nor its token, and the
    claim is released with the reason so the next attempt may post."""
    closed = f"http://127.0.0.1:{free_port()}/hook/T0KEN-IN-PATH"
    hook = AlertWebhook(url=SecretStr(closed), secret=SecretStr(SECRET))
    caplog.set_level("DEBUG")
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(AlertActivities(http, hook, engine).send_alert, ALERT)
    error = caught.value
    assert not error.non_retryable and error.__cause__ is None and error.__suppress_context__
    assert "T0KEN" not in str(error) and "T0KEN" not in caplog.text
    record = record_of(engine, event_id_of(ALERT))
    assert (record.attempts, record.last_error, record.claimed_until) == (1, "ConnectError", None)


async def test_a_receiver_that_never_answers_times_out_and_frees_the_event(
    http: httpx.AsyncClient, engine: Engine, receiver: WebhookReceiver
) -> None:
    """A post gets one deadline end to end: past it the attempt fails retryably and releases
    its claim, so it cannot overlap the next attempt; the next attempt delivers."""
    receiver.gate = asyncio.Event()  # holds every request until set
    hook = dataclasses.replace(webhook(receiver), timeout_seconds=0.5)
    activities = AlertActivities(http, hook, engine)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(activities.send_alert, ALERT)
    assert not caught.value.non_retryable and "TimeoutError" in str(caught.value)
    record = record_of(engine, event_id_of(ALERT))
    assert (record.attempts, record.last_error, record.claimed_until) == (1, "TimeoutError", None)
    receiver.gate.set()
    await ActivityEnvironment().run(activities.send_alert, ALERT)
    # The first post may still reach the receiver after runcap gave up on it: the one case
    # a receiver sees an event twice, under the same id, which is why the id is sent.
    assert set(receiver.accepted) == {event_id_of(ALERT)}
    assert record_of(engine, event_id_of(ALERT)).delivered_at is not None


async def test_alerts_of_one_kind_are_bounded_per_key_per_window(
    http: httpx.AsyncClient, engine: Engine, receiver: WebhookReceiver
) -> None:
    """An agent opening run after run, each refused once, cannot flood the webhook: past
    ``POSTED_PER_KEY`` refusals of one key within the window, the rest are recorded and held
    back (saying why); another kind and another key are still posted."""
    activities = AlertActivities(http, webhook(receiver), engine)
    key, now = f"key_{uuid4().hex[:16]}", datetime.now(UTC).isoformat()

    def refused(n: int, key_id: str = key, kind: Any = "refused") -> Alert:
        return dataclasses.replace(
            ALERT, run_id=f"{key_id}.t{n}", key_id=key_id, kind=kind, threshold_percent=0, at=now
        )

    flood = [refused(n) for n in range(POSTED_PER_KEY + 3)]
    for alert in flood:
        await ActivityEnvironment().run(activities.send_alert, alert)
    assert len(receiver.seen) == POSTED_PER_KEY
    for alert in flood[POSTED_PER_KEY:]:
        record = record_of(engine, event_id_of(alert))
        assert record.delivered_at is None and "held back" in (record.last_error or "")
    await ActivityEnvironment().run(activities.send_alert, refused(0, kind="threshold"))
    await ActivityEnvironment().run(activities.send_alert, refused(0, key_id="key_other"))
    assert len(receiver.seen) == POSTED_PER_KEY + 2
