"""Spend queries over the ledger: grouping, filters and exact decimal totals."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import Engine

from activities.ledger import LedgerActivities
from tests.api.helpers import ADMIN, row
from workflows.contracts import LedgerBatch, LedgerRow


def seed(engine: Engine, rows: list[LedgerRow]) -> None:
    LedgerActivities(engine).write_sync(LedgerBatch(rows))


def task_rows() -> list[LedgerRow]:
    return [
        row("a1", tags=["task:123", "step:plan"], cost=1_000_001, model="fake-large"),
        row("a2", tags=["task:123", "step:edit"], cost=233),
        row("a3", tags=["task:123", "step:edit", "agent:coder"], cost=1_000),
        row("a4", tags=["task:123"], cost=5),
        row("b1", tags=["task:999", "step:edit"], cost=7, run_id="run2", key_id="key_b"),
        row("f1", tags=["task:123", "step:edit"], cost=0, status="failed"),
    ]


async def spend(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/admin/spend", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_group(body: dict[str, Any]) -> dict[str, tuple[int, str]]:
    return {r["group"]: (r["calls"], r["cost_usd"]) for r in body["rows"]}


async def test_group_by_step_for_one_task(client: httpx.AsyncClient, engine: Engine) -> None:
    """group_by=tag:step&tag=task:123 sums each step exactly; untagged calls are '(none)'; a
    failed call is counted apart from billed ones."""
    seed(engine, task_rows())
    body = await spend(client, group_by="tag:step", tag="task:123")
    assert by_group(body) == {
        "step:plan": (1, "1.000001"),
        "step:edit": (2, "0.001233"),
        "(none)": (1, "0.000005"),
    }
    assert body["total_cost_usd"] == "1.001239" and body["total_calls"] == 4
    assert body["failed_calls"] == 1
    assert next(r for r in body["rows"] if r["group"] == "step:edit")["failed_calls"] == 1
    edit = next(r for r in body["rows"] if r["group"] == "step:edit")
    assert edit["input_tokens"] == 30 and edit["output_tokens"] == 15
    assert body["rows"][0]["group"] == "step:plan"  # dearest first


async def test_repeated_tag_filters_are_and(client: httpx.AsyncClient, engine: Engine) -> None:
    """Two tag filters select only calls carrying both."""
    seed(engine, task_rows())
    body = await spend(client, group_by="key", tag=["task:123", "agent:coder"])
    assert by_group(body) == {"key_a": (1, "0.001000")}


async def test_group_by_key_model_provider_run(client: httpx.AsyncClient, engine: Engine) -> None:
    """Plain columns group in SQL with exact totals."""
    seed(engine, task_rows())
    assert by_group(await spend(client, group_by="key")) == {
        "key_a": (4, "1.001239"),
        "key_b": (1, "0.000007"),
    }
    assert by_group(await spend(client, group_by="model")) == {
        "fake-large": (1, "1.000001"),
        "fake-small": (4, "0.001245"),
    }
    assert by_group(await spend(client, group_by="run"))["run2"] == (1, "0.000007")
    assert by_group(await spend(client, group_by="provider")) == {"fake": (5, "1.001246")}


async def test_group_by_day_and_time_window(client: httpx.AsyncClient, engine: Engine) -> None:
    """Days are UTC days; since is inclusive and until exclusive; offsets are honoured."""
    seed(
        engine,
        [
            row("d1", cost=1, started_at="2025-01-01T23:30:00-02:00"),  # 2025-01-02 01:30 UTC
            row("d2", cost=2, started_at="2025-01-02T22:00:00+00:00"),
            row("d3", cost=4, started_at="2025-01-03T00:00:00Z"),
        ],
    )
    assert by_group(await spend(client, group_by="day")) == {
        "2025-01-02": (2, "0.000003"),
        "2025-01-03": (1, "0.000004"),
    }
    window = await spend(
        client, group_by="day", since="2025-01-02T01:30:00Z", until="2025-01-03T00:00:00Z"
    )
    assert window["total_cost_usd"] == "0.000003"
    later = await spend(client, since="2025-01-02T23:00:00+01:00")
    assert later["total_cost_usd"] == "0.000006"


async def test_empty_ledger_and_bad_queries(client: httpx.AsyncClient) -> None:
    """No rows is a zero total; an unknown group_by, bad tag or bad time is a 4xx."""
    body = await spend(client, group_by="tag:step")
    assert body["rows"] == [] and body["total_cost_usd"] == "0.000000"
    for params in ({"group_by": "color"}, {"group_by": "tag:"}, {"tag": "bad tag"}):
        response = await client.get("/admin/spend", params=params, headers=ADMIN)
        assert response.status_code == 400, params
    response = await client.get("/admin/spend", params={"since": "yesterday"}, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def test_runs_listing_and_ledger_fallback(client: httpx.AsyncClient, engine: Engine) -> None:
    """/admin/runs lists ledger runs; a run whose workflow is gone is rebuilt from the ledger."""
    seed(engine, task_rows())
    runs = (await client.get("/admin/runs", headers=ADMIN)).json()["runs"]
    assert {r["run_id"]: r["spent_usd"] for r in runs} == {"run1": "1.001239", "run2": "0.000007"}
    only_b = (await client.get("/admin/runs?key_id=key_b", headers=ADMIN)).json()["runs"]
    assert [r["run_id"] for r in only_b] == ["run2"]
    run = (await client.get("/admin/runs/run1", headers=ADMIN)).json()
    assert run["source"] == "ledger" and run["spent_usd"] == "1.001239"
    assert run["calls"] == 4 and run["failed_calls"] == 1 and run["reserved_usd"] == "0.000000"
    assert run["by_step"]["step:edit"]["cost_usd"] == "0.001233"
    assert run["by_step"]["step:edit"]["calls"] == 2
    missing = await client.get("/admin/runs/nope", headers=ADMIN)
    assert missing.status_code == 404
