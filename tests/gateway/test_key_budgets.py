"""Budgets that hold across runs: a key's day cap over many runs and api instances, overruns
contained, and the loop guard, through the real gateway. (A call counts in the period it
started in: ``tests/caller/test_lending.py`` crosses midnight.)"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import httpx

from tests.gateway.conftest import Gateway, settled_spend
from tests.gateway.processes import api_process
from tests.polling import eventually
from workflows.budget import reservation_micros
from workflows.contracts import (
    MICROS_PER_USD,
    Price,
    Target,
)

MESSAGES = [{"role": "user", "content": "make the failing test pass"}]
SMALL = Target("fake", "fake-small", "openai", Price(500_000, 1_500_000, 500_000, 500_000))


def usd(micros: int) -> str:
    return str(Decimal(micros) / MICROS_PER_USD)


async def burst(
    bases: list[str], key: dict[str, Any], raw: bytes, calls: int, tasks: int
) -> list[int]:
    """``calls`` at once, spread over ``tasks`` task tags and the api instances; statuses."""
    limits = httpx.Limits(max_connections=calls)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:

        async def one(i: int) -> int:
            headers = {
                "Authorization": f"Bearer {key['key']}",
                "content-type": "application/json",
                "x-runcap-tags": f"task:{key['id'][-6:]}-{i % tasks}",
            }
            url = f"{bases[i % len(bases)]}/v1/chat/completions"
            answer = await http.post(url, content=raw, headers=headers)
            if answer.status_code == 429:
                assert answer.json()["error"]["code"] == "budget_exceeded", answer.text
            return answer.status_code

        return await asyncio.gather(*(one(i) for i in range(calls)))


async def day_figures(gateway: Gateway, key_id: str) -> dict[str, Any]:
    key = (await gateway.admin.get(f"/admin/keys/{key_id}")).json()
    (day,) = [p for p in key["periods"] if p["kind"] == "day"]
    return day  # type: ignore[no-any-return]


async def test_a_day_cap_holds_over_30_runs_and_two_apis_then_an_edit_adds_exactly_m(
    gateway: Gateway,
) -> None:
    """A key whose day affords exactly N calls gets 300 at once over 30 task runs and two api
    processes: exactly N succeed and the day's spend stays within its cap. Raising the cap by
    M calls' worth lets exactly M more through. (Every call costs exactly its reservation.)"""
    raw = json.dumps({"model": "fake-small", "messages": MESSAGES, "max_tokens": 40}).encode()
    await gateway.fake.script("fake-small", prompt_tokens=len(raw), completion_tokens="max")
    per_call = reservation_micros([SMALL], len(raw), 40)
    n, m = 20, 7
    key = await gateway.create_key(budget_usd=None, budget_usd_per_day=usd(per_call * n))
    async with api_process(gateway) as second:
        bases = [gateway.base_url, second.base_url]
        first = await burst(bases, key, raw, calls=300, tasks=30)
        assert first.count(200) == n, first
        day = await day_figures(gateway, key["id"])
        spent_or_held = Decimal(day["spent_usd"]) + Decimal(day["held_usd"])
        assert spent_or_held * MICROS_PER_USD <= per_call * n
        edited = await gateway.admin.patch(
            f"/admin/keys/{key['id']}", json={"budget_usd_per_day": usd(per_call * (n + m))}
        )
        assert edited.status_code == 200, edited.text
        more = await burst(bases, key, raw, calls=60, tasks=30)
        assert more.count(200) == m, more
    await gateway.fake.reset()
    spent = 0
    for task in range(30):
        spend = await settled_spend(gateway, f"{key['id']}.{key['id'][-6:]}-{task}")
        spent += spend.spent_micros
        assert spend.in_flight_micros == 0 and spend.overruns == 0
    assert spent == per_call * (n + m)


async def test_a_provider_returning_3x_max_tokens_is_contained(gateway: Gateway) -> None:
    """Charged in full and recorded as an overrun; its target takes no more calls of the run,
    so spend stops within one call's overrun of the cap; the overrun alert fires once."""
    await gateway.fake.script("fake-small", completion_tokens=60)  # 3x the max_tokens asked
    raw = json.dumps({"model": "fake-small", "messages": MESSAGES, "max_tokens": 20}).encode()
    per_call = reservation_micros([SMALL], len(raw), 20)
    key = await gateway.create_key(budget_usd=usd(per_call * 10))
    headers = {"Authorization": f"Bearer {key['key']}", "content-type": "application/json"}
    statuses = []
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        for _ in range(5):
            answer = await http.post("/v1/chat/completions", content=raw, headers=headers)
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert answer.json()["error"]["code"] == "target_blocked"
                assert answer.headers["x-should-retry"] == "false"
    await gateway.fake.reset()
    assert statuses == [200, 429, 429, 429, 429]
    spend = await settled_spend(gateway, key["id"])
    assert spend.overruns == 1 and spend.calls == 1
    assert spend.spent_micros <= spend.budget_micros + spend.overrun_micros

    def overrun_alerts() -> list[dict[str, Any]]:
        return [
            a for a in gateway.alerts if a.get("kind") == "overrun" and a["run_id"] == key["id"]
        ]

    assert await eventually(overrun_alerts)
    assert len(overrun_alerts()) == 1  # decided once: the target took no more calls


async def test_the_loop_guard_pauses_a_run_that_repeats_itself(gateway: Gateway) -> None:
    """With N=5: five identical requests pass (different ones too), the sixth is refused with
    loop_detected in the caller's format, the run shows RunStatus=looping, an alert fires, and
    resuming it lets calls through again."""
    key = await gateway.create_key(budget_usd="1", loop_max_repeats=5, loop_window_seconds=300)
    headers = {"Authorization": f"Bearer {key['key']}"}
    same = {"model": "fake-small", "messages": MESSAGES, "max_tokens": 20}
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        for n in range(5):
            assert (await http.post("/v1/chat/completions", json=same, headers=headers)).is_success
            other = {**same, "messages": [{"role": "user", "content": f"step {n}"}]}
            assert (await http.post("/v1/chat/completions", json=other, headers=headers)).is_success
        sixth = await http.post("/v1/chat/completions", json=same, headers=headers)
        assert sixth.status_code == 429
        error = sixth.json()["error"]
        assert error["code"] == "loop_detected" and "resume" in error["message"]
        anthropic = await http.post(
            "/v1/messages",
            json={**same, "messages": [{"role": "user", "content": "new"}]},
            headers={"x-api-key": key["key"]},
        )
        assert anthropic.status_code == 429 and anthropic.json()["type"] == "error"
        assert anthropic.json()["error"]["code"] == "loop_detected"

        async def looping() -> bool:
            query = f'KeyId = "{key["id"]}" AND RunStatus = "looping"'
            return bool([wf async for wf in gateway.temporal.list_workflows(query)])

        assert await eventually(looping), "the run never showed RunStatus=looping"
        assert await eventually(
            lambda: [
                a for a in gateway.alerts if a.get("kind") == "loop" and a["key_id"] == key["id"]
            ]
        )
        resumed = await gateway.admin.post(f"/admin/runs/{key['id']}/resume")
        assert resumed.status_code == 200 and resumed.json()["status"] == "open"
        again = await http.post("/v1/chat/completions", json=same, headers=headers)
        assert again.status_code == 200
