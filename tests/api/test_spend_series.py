"""Spend over time: short group names, hourly and daily buckets, and the CSV export."""

from __future__ import annotations

import csv
import io

import httpx
from sqlalchemy import Engine

from tests.api.helpers import ADMIN, row
from tests.api.test_spend import by_group, seed, spend, task_rows
from workflows.contracts import LedgerRow


def timed_rows() -> list[LedgerRow]:
    return [
        row("h1", tags=["step:plan"], cost=1_000_001, started_at="2025-03-01T10:05:00Z"),
        row("h2", tags=["step:edit"], cost=2, started_at="2025-03-01T10:59:59Z"),
        row("h3", tags=["step:edit"], cost=3, started_at="2025-03-01T11:00:00Z"),
        row("h4", tags=["step:edit"], cost=4, started_at="2025-03-02T09:00:00+02:00"),
    ]


async def test_short_group_names_are_tag_prefixes(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    """group_by=step, task and agent group like tag:step, tag:task and tag:agent."""
    seed(engine, task_rows())
    for short in ("step", "task", "agent"):
        assert by_group(await spend(client, group_by=short)) == by_group(
            await spend(client, group_by=f"tag:{short}")
        )
    assert by_group(await spend(client, group_by="step"))["step:edit"] == (3, "0.001240")


async def test_series_buckets_by_utc_hour_and_day(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    """Hourly and daily series sum each (bucket, group) exactly, oldest bucket first."""
    seed(engine, timed_rows())
    hourly = await client.get(
        "/admin/spend/series", params={"bucket": "hour", "group_by": "step"}, headers=ADMIN
    )
    assert hourly.status_code == 200, hourly.text
    points = [(r["bucket"], r["group"], r["calls"], r["cost_usd"]) for r in hourly.json()["rows"]]
    assert points == [
        ("2025-03-01T10:00:00+00:00", "step:edit", 1, "0.000002"),
        ("2025-03-01T10:00:00+00:00", "step:plan", 1, "1.000001"),
        ("2025-03-01T11:00:00+00:00", "step:edit", 1, "0.000003"),
        ("2025-03-02T07:00:00+00:00", "step:edit", 1, "0.000004"),
    ]
    daily = await client.get(
        "/admin/spend/series",
        params={"bucket": "day", "group_by": "model", "tag": "step:edit"},
        headers=ADMIN,
    )
    assert [(r["bucket"], r["cost_usd"]) for r in daily.json()["rows"]] == [
        ("2025-03-01T00:00:00+00:00", "0.000005"),
        ("2025-03-02T00:00:00+00:00", "0.000004"),
    ]


async def test_csv_export(client: httpx.AsyncClient, engine: Engine) -> None:
    """The CSV has a header and one line per bucket and group, money as USD strings."""
    seed(engine, timed_rows())
    response = await client.get(
        "/admin/spend/export.csv",
        params={"bucket": "day", "group_by": "step", "since": "2025-03-01T11:00:00Z"},
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    lines = list(csv.DictReader(io.StringIO(response.text)))
    assert lines == [
        {
            "bucket": "2025-03-01T00:00:00+00:00",
            "group": "step:edit",
            "calls": "1",
            "cost_usd": "0.000003",
            "input_tokens": "10",
            "output_tokens": "5",
        },
        {
            "bucket": "2025-03-02T00:00:00+00:00",
            "group": "step:edit",
            "calls": "1",
            "cost_usd": "0.000004",
            "input_tokens": "10",
            "output_tokens": "5",
        },
    ]


async def test_series_refuses_bad_buckets_and_needs_admin(client: httpx.AsyncClient) -> None:
    """An unknown bucket is a 422; without the admin key the export is a 401."""
    bad = await client.get("/admin/spend/series", params={"bucket": "week"}, headers=ADMIN)
    assert bad.status_code == 422
    assert (await client.get("/admin/spend/export.csv")).status_code == 401
