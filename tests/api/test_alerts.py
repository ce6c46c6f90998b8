"""The alert activity: recorded first, webhook payload, no-op without a URL, retryable vs final
failures; and ``GET /admin/alerts``."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.alerts import AlertActivities
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
URL = "http://hooks.test/alert"


def client_answering(status: int, seen: list[httpx.Request]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_posts_usd_strings(engine: Engine) -> None:
    """The webhook gets one JSON POST with exact USD strings."""
    seen: list[httpx.Request] = []
    async with client_answering(204, seen) as http:
        await ActivityEnvironment().run(AlertActivities(http, URL, engine).send_alert, ALERT)
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


async def test_no_url_is_a_no_op(caplog: pytest.LogCaptureFixture, engine: Engine) -> None:
    """Without a webhook URL nothing is sent, the alert is logged at info and still recorded."""
    seen: list[httpx.Request] = []
    caplog.set_level("INFO")
    async with client_answering(204, seen) as http:
        await ActivityEnvironment().run(AlertActivities(http, None, engine).send_alert, ALERT)
    assert seen == [] and "run=r1" in caplog.text
    with Session(engine) as session:
        assert [a.run_id for a in session.exec(select(AlertRecord))] == ["r1"]


@pytest.mark.parametrize(
    ("status", "final"), [(500, False), (503, False), (429, False), (404, True)]
)
async def test_failures_are_classified(status: int, final: bool, engine: Engine) -> None:
    """5xx and 429 raise retryable errors; other 4xx fail non-retryably."""
    async with client_answering(status, []) as http:
        with pytest.raises(ApplicationError) as caught:
            await ActivityEnvironment().run(AlertActivities(http, URL, engine).send_alert, ALERT)
    assert caught.value.non_retryable is final


async def test_connection_error_raises_for_retry(engine: Engine) -> None:
    """A webhook that cannot be reached raises, so Temporal retries."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        with pytest.raises(httpx.ConnectError):
            await ActivityEnvironment().run(AlertActivities(http, URL, engine).send_alert, ALERT)


async def test_alerts_are_recorded_once_and_listed(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    """A failed delivery still leaves the record; a retry adds no row; /admin/alerts explains it."""
    refused = Alert("r2", "key_b", "refused", 0, 1_000_000, 1_000_000, "2025-03-01T13:00:00+00:00")
    async with client_answering(500, []) as http:
        activities = AlertActivities(http, URL, engine)
        for _ in range(2):  # Temporal retries the activity after the 500
            with pytest.raises(ApplicationError):
                await ActivityEnvironment().run(activities.send_alert, ALERT)
    async with client_answering(204, []) as http:
        await ActivityEnvironment().run(AlertActivities(http, URL, engine).send_alert, refused)
    response = await client.get("/admin/alerts", headers=ADMIN)
    assert response.status_code == 200, response.text
    alerts = response.json()["alerts"]
    assert [(a["run_id"], a["kind"]) for a in alerts] == [("r2", "refused"), ("r1", "threshold")]
    assert alerts[1]["message"] == "run r1 crossed 80% of its $20.000000 budget ($16.000001 spent)"
    assert alerts[1]["spent_usd"] == "16.000001" and alerts[1]["at"].startswith("2025-03-01T12:00")
    assert "refused" in alerts[0]["message"]
    only = await client.get("/admin/alerts", params={"run_id": "r1"}, headers=ADMIN)
    assert [a["run_id"] for a in only.json()["alerts"]] == ["r1"]
