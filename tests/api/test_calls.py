"""Single calls through the admin api: a run's ledger rows, and calls as they settle."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine

from tests.api.helpers import ADMIN, row
from tests.api.test_spend import seed


async def test_run_calls_lists_its_ledger_rows(client: httpx.AsyncClient, engine: Engine) -> None:
    """GET /admin/runs/{id}/calls lists that run's rows, latest first, money in USD strings."""
    seed(
        engine,
        [
            row("c1", run_id="r1", cost=1_500_000, started_at="2025-03-01T10:00:00Z"),
            row("c2", run_id="r1", cost=7, started_at="2025-03-01T10:00:01Z", tags=["step:x"]),
            row("c3", run_id="r2", cost=9),
        ],
    )
    response = await client.get("/admin/runs/r1/calls", headers=ADMIN)
    assert response.status_code == 200, response.text
    calls = response.json()["calls"]
    assert [(c["call_id"], c["cost_usd"]) for c in calls] == [
        ("c2", "0.000007"),
        ("c1", "1.500000"),
    ]
    assert calls[0]["tags"] == ["step:x"] and calls[0]["reserved_usd"] == "0.000014"
    assert calls[1]["started_at"] == "2025-03-01T10:00:00Z"
    empty = await client.get("/admin/runs/nope/calls", headers=ADMIN)
    assert empty.json()["calls"] == []


async def test_calls_follow_a_settled_cursor(client: httpx.AsyncClient, engine: Engine) -> None:
    """Without after: the latest rows and a cursor; with it: only rows settled later."""
    empty = (await client.get("/admin/calls", headers=ADMIN)).json()
    assert empty == {"calls": [], "cursor": None}
    seed(engine, [row("a1"), row("a2")])
    first = (await client.get("/admin/calls", params={"limit": 1}, headers=ADMIN)).json()
    assert len(first["calls"]) == 1 and first["cursor"] == first["calls"][0]["settled_at"]
    cursor = (await client.get("/admin/calls", params={"limit": 0}, headers=ADMIN)).json()
    assert cursor["calls"] == [] and cursor["cursor"] >= first["cursor"]
    seed(engine, [row("b1", started_at="2020-01-01T00:00:00Z")])  # started long ago, settled now
    later = (
        await client.get("/admin/calls", params={"after": cursor["cursor"]}, headers=ADMIN)
    ).json()
    assert [c["call_id"] for c in later["calls"]] == ["b1"]
    assert later["cursor"] == later["calls"][0]["settled_at"]
    nothing = (
        await client.get("/admin/calls", params={"after": later["cursor"]}, headers=ADMIN)
    ).json()
    assert nothing == {"calls": [], "cursor": later["cursor"]}
