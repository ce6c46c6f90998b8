"""The alert activity: webhook payload, no-op without a URL, retryable vs final failures."""

from __future__ import annotations

import json

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.alerts import AlertActivities
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
URL = "http://hooks.test/alert"


def client_answering(status: int, seen: list[httpx.Request]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_posts_usd_strings() -> None:
    """The webhook gets one JSON POST with exact USD strings."""
    seen: list[httpx.Request] = []
    async with client_answering(204, seen) as http:
        await ActivityEnvironment().run(AlertActivities(http, URL).send_alert, ALERT)
    assert len(seen) == 1 and seen[0].method == "POST" and str(seen[0].url) == URL
    assert json.loads(seen[0].content) == {
        "run_id": "r1",
        "key_id": "key_a",
        "kind": "threshold",
        "threshold_percent": 80,
        "budget_usd": "20.000000",
        "spent_usd": "16.000001",
        "at": "2025-03-01T12:00:00+00:00",
    }


async def test_no_url_is_a_no_op(caplog: pytest.LogCaptureFixture) -> None:
    """Without a webhook URL nothing is sent and the alert is logged at info."""
    seen: list[httpx.Request] = []
    caplog.set_level("INFO")
    async with client_answering(204, seen) as http:
        await ActivityEnvironment().run(AlertActivities(http, None).send_alert, ALERT)
    assert seen == [] and "run=r1" in caplog.text


@pytest.mark.parametrize(
    ("status", "final"), [(500, False), (503, False), (429, False), (404, True)]
)
async def test_failures_are_classified(status: int, final: bool) -> None:
    """5xx and 429 raise retryable errors; other 4xx fail non-retryably."""
    async with client_answering(status, []) as http:
        with pytest.raises(ApplicationError) as caught:
            await ActivityEnvironment().run(AlertActivities(http, URL).send_alert, ALERT)
    assert caught.value.non_retryable is final


async def test_connection_error_raises_for_retry() -> None:
    """A webhook that cannot be reached raises, so Temporal retries."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        with pytest.raises(httpx.ConnectError):
            await ActivityEnvironment().run(AlertActivities(http, URL).send_alert, ALERT)
