"""Period budgets and edits of virtual keys: ``POST`` and ``PATCH /admin/keys``."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from api.auth import KeyCache
from tests.api.helpers import ADMIN
from tests.api.test_keys import NEW_KEY, create


async def test_period_budgets_and_timezone_are_stored(client: httpx.AsyncClient) -> None:
    """A key may have day and month budgets without a run budget; times follow its zone."""
    body = {"name": "nightly", "budget_usd_per_day": "5", "budget_usd_per_month": "100.5"}
    response = await client.post(
        "/admin/keys", json={**body, "timezone": "Europe/Paris"}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    key = response.json()
    assert key["budget_usd_per_run"] is None and key["budget_usd"] is None
    assert key["budget_usd_per_day"] == "5.000000"
    assert key["budget_usd_per_month"] == "100.500000"
    assert key["timezone"] == "Europe/Paris"


async def test_budget_usd_is_the_keys_total(client: httpx.AsyncClient) -> None:
    """``budget_usd`` is the most the key spends over its life; a run is capped by it too, or by
    ``budget_usd_per_run`` when that is set."""
    key = await create(client, budget_usd="2.5")
    assert key["budget_usd"] == "2.500000" and key["budget_usd_per_run"] is None
    assert key["budget_usd_per_day"] is None and key["timezone"] == "UTC"
    assert key["max_open_runs"] == 100
    both = await create(client, budget_usd="20", budget_usd_per_run="2")
    assert (both["budget_usd"], both["budget_usd_per_run"]) == ("20.000000", "2.000000")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "none"},
        {"name": "a run's budget alone bounds no key", "budget_usd_per_run": "2"},
        {"name": "no open run", "budget_usd": "1", "max_open_runs": 0},
        {"name": "tz", "budget_usd_per_day": "1", "timezone": "Mars/Olympus"},
        {"name": "tz", "budget_usd_per_day": "1", "timezone": "../etc/passwd"},
        {"name": "zero", "budget_usd_per_month": "0"},
    ],
)
async def test_bad_budgets_are_refused(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    """No bounded budget (a per-run budget alone lets every new run spend afresh), no open run
    allowed, an unknown zone or a zero budget is a 422."""
    response = await client.post("/admin/keys", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"]


async def test_patch_changes_policy_and_takes_effect_on_next_call(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """PATCH edits name, budgets and limits; the auth cache (60 s TTL here) drops the key."""
    key = await create(client)
    cache: KeyCache = app.state.key_cache
    before = await cache.lookup(str(key["key"]))
    assert before.rpm == 60 and before.budget_micros == 20_000_000
    changes = {
        "name": "renamed",
        "budget_usd_per_run": None,
        "budget_usd_per_day": "3",
        "rpm": 5,
        "tpm": 0,
        "max_parallel": 2,
        "models": ["fake-large", "fake-large"],
        "tags": ["agent:reviewer"],
        "timezone": "America/New_York",
    }
    response = await client.patch(f"/admin/keys/{key['id']}", json=changes, headers=ADMIN)
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["name"] == "renamed" and edited["budget_usd_per_run"] is None
    assert edited["budget_usd_per_day"] == "3.000000" and edited["models"] == ["fake-large"]
    assert edited["tags"] == ["agent:reviewer"] and edited["timezone"] == "America/New_York"
    after = await cache.lookup(str(key["key"]))
    assert (after.rpm, after.max_parallel, after.budget_per_day_micros) == (5, 2, 3_000_000)
    assert after.budget_micros == 20_000_000  # no run budget: its largest (the day binds too)
    again = (await client.get(f"/admin/keys/{key['id']}", headers=ADMIN)).json()
    periods = again.pop("periods")
    assert again == edited
    assert [(p["kind"], p["cap_usd"]) for p in periods] == [
        ("day", "3.000000"),
        ("total", "20.000000"),
    ]


async def test_patch_sends_only_what_changes(client: httpx.AsyncClient) -> None:
    """Fields left out of a PATCH keep their values."""
    key = await create(client)
    response = await client.patch(f"/admin/keys/{key['id']}", json={"rpm": 7}, headers=ADMIN)
    edited = response.json()
    assert edited["rpm"] == 7 and edited["name"] == NEW_KEY["name"]
    assert edited["budget_usd"] == "20.000000" and edited["tpm"] == NEW_KEY["tpm"]


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"budget_usd": None}, 400),
        ({"name": None}, 400),
        ({"name": ""}, 422),
        ({"rpm": -1}, 422),
        ({"budget_usd_per_day": "0.0000001"}, 422),
        ({"timezone": "Nowhere/Town"}, 422),
        ({"tags": ["task:1", "task:2"]}, 400),
    ],
)
async def test_bad_patches_change_nothing(
    client: httpx.AsyncClient, changes: dict[str, object], status: int
) -> None:
    """A PATCH that removes the last bounded budget, nulls the name or breaks a rule is refused
    whole."""
    key = await create(client)
    response = await client.patch(f"/admin/keys/{key['id']}", json=changes, headers=ADMIN)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]
    stored = (await client.get(f"/admin/keys/{key['id']}", headers=ADMIN)).json()
    assert stored["budget_usd"] == "20.000000" and stored["name"] == NEW_KEY["name"]


async def test_patch_unknown_key_is_404(client: httpx.AsyncClient) -> None:
    """Editing a key that does not exist is a 404."""
    response = await client.patch("/admin/keys/key_nope", json={"rpm": 1}, headers=ADMIN)
    assert response.status_code == 404
