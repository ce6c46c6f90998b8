"""Advances: far from its caps a run lends an api instance a slice of its budget, and calls are
reserved against it in the api with no Temporal round trip.

Invariants checked: spent + reserved never above the cap; each call charged once; the ledger
equal to the workflow; nothing held once the api is idle; a crash bills what the provider may
have done and nothing twice.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from caller import run_handle
from tests.gateway.conftest import Gateway, settled_spend
from tests.gateway.processes import api_process
from tests.gateway.test_call_path import MESSAGES, bearer, ledger, usd_micros
from tests.polling import eventually
from workflows.agent_run import AgentRun
from workflows.budget import reservation_micros
from workflows.contracts import (
    MICROS_PER_USD,
    Price,
    Target,
)
from workflows.run_contracts import RunSpend

SMALL = Target("fake", "fake-small", "openai", Price(500_000, 1_500_000, 500_000, 500_000))


@pytest.fixture(autouse=True)
async def fresh_fake(gateway: Gateway) -> None:
    await gateway.fake.reset()


def body(max_tokens: int = 20) -> dict[str, Any]:
    return {"model": "fake-small", "messages": MESSAGES, "max_tokens": max_tokens}


async def spend_of(gateway: Gateway, run_id: str) -> RunSpend:
    result: RunSpend = await run_handle(gateway.temporal, run_id).query(AgentRun.spend)
    return result


async def test_calls_after_the_first_reserve_under_an_advance_and_it_goes_back_when_idle(
    gateway: Gateway,
) -> None:
    """An agent's loop: the first call reserves in the run and brings an advance; the next
    ones are reserved under it (their call ids say so). Each answer is in the run's figures on
    the next read; once the agent stops, the advance goes back, nothing stays reserved, and
    the ledger equals the run."""
    key = await gateway.create_key(budget_usd="1")
    seen: list[str] = []
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        for _ in range(12):
            answer = await http.post("/v1/chat/completions", json=body(), headers=bearer(key))
            assert answer.status_code == 200, answer.text
            seen.append(answer.headers["x-runcap-call-id"])
            run = await gateway.admin.get(f"/admin/runs/{key['id']}")
            assert run.status_code == 200, run.text
            calls = run.json()["calls"]
            assert calls == len(seen), (calls, len(seen))
    assert "/" not in seen[0]
    under = [call_id for call_id in seen if "/" in call_id]
    assert len(under) >= 8, seen  # all but the odd call that renews the advance
    assert {call_id.split("/")[0] for call_id in under} <= {c.split("/")[0] for c in seen}
    spend = await settled_spend(gateway, key["id"])  # waits for the advance to go back
    rows = ledger(gateway, key["id"])
    assert spend.calls == len(rows) == 12 and spend.reserved_micros == 0
    assert spend.spent_micros == sum(r.cost_micros for r in rows)
    assert all(r.status == "ok" for r in rows)


async def test_near_the_cap_every_call_reserves_in_the_run(gateway: Gateway) -> None:
    """A run that affords only a few calls grants no advance: each call passes through the run,
    so none is refused while money remains in an api's advance."""
    raw = json.dumps(body(40)).encode()
    await gateway.fake.script("fake-small", prompt_tokens=len(raw), completion_tokens="max")
    per_call = reservation_micros([SMALL], len(raw), 40)
    key = await gateway.create_key(budget_usd=str(Decimal(per_call * 5) / MICROS_PER_USD))
    headers = {**bearer(key), "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        answers = [await http.post("/v1/chat/completions", content=raw, headers=headers)]
        answers += [await http.post("/v1/chat/completions", content=raw, headers=headers)]
    assert [a.status_code for a in answers] == [200, 200]
    assert all("/" not in a.headers["x-runcap-call-id"] for a in answers)
    spend = await settled_spend(gateway, key["id"])
    assert spend.calls == 2 and spend.spent_micros == 2 * per_call


async def test_a_run_under_the_loop_guard_grants_no_advance(gateway: Gateway) -> None:
    """The loop guard must see every call, so its runs reserve each call in the run."""
    key = await gateway.create_key(budget_usd="1", loop_max_repeats=50)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        for n in range(4):
            text = [{"role": "user", "content": f"step {n}"}]
            answer = await http.post(
                "/v1/chat/completions",
                json={"model": "fake-small", "messages": text, "max_tokens": 20},
                headers=bearer(key),
            )
            assert answer.status_code == 200, answer.text
            assert "/" not in answer.headers["x-runcap-call-id"]


@pytest.mark.parametrize("apis", [1, 2])
async def test_a_burst_spends_exactly_the_cap_with_advances_out(
    gateway: Gateway, apis: int
) -> None:
    """A run affording exactly 40 calls gets 120 at once, through one api or two: the first
    calls bring advances, and no money sits idle in them when the others are refused. Exactly
    40 succeed, spent equals the cap, and nothing stays reserved."""
    raw = json.dumps(body(40)).encode()
    await gateway.fake.script(
        "fake-small", prompt_tokens=len(raw), completion_tokens="max", latency_ms=200
    )
    per_call = reservation_micros([SMALL], len(raw), 40)
    n = 40
    key = await gateway.create_key(budget_usd=str(Decimal(per_call * n) / MICROS_PER_USD))
    headers = {**bearer(key), "content-type": "application/json"}
    async with (
        api_process(gateway) as second,
        httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=200)) as http,
    ):
        bases = [gateway.base_url, second.base_url][:apis]
        first = await http.post(f"{bases[0]}/v1/chat/completions", content=raw, headers=headers)
        assert first.status_code == 200, first.text
        answers = [first]
        answers += await asyncio.gather(
            *(
                http.post(f"{bases[i % apis]}/v1/chat/completions", content=raw, headers=headers)
                for i in range(119)
            )
        )
    statuses = [a.status_code for a in answers]
    assert any("/" in a.headers.get("x-runcap-call-id", "") for a in answers)
    assert statuses.count(200) == n, statuses
    assert {a.json()["error"]["code"] for a in answers if a.status_code != 200} == {
        "budget_exceeded"
    }
    spend = await settled_spend(gateway, key["id"])
    assert spend.spent_micros == spend.budget_micros == per_call * n
    assert spend.reserved_micros == 0 and spend.calls == n
    rows = [r for r in ledger(gateway, key["id"]) if r.status == "ok"]
    assert len(rows) == n and sum(r.cost_micros for r in rows) == spend.spent_micros


async def test_sigkill_an_api_holding_an_advance(gateway: Gateway) -> None:
    """An api dies with calls in flight under its advance. The run settles what the api
    recorded as recorded, and bills the rest of the advance once, as ``unknown`` (the
    provider may have worked on calls the run never heard of). Spent + reserved stays within
    the cap, the ledger equals the run, and no call is charged twice."""
    key = await gateway.create_key(budget_usd="1")
    fast = {"RUNCAP_RUN_CALLER_TIMEOUT_SECONDS": "3"}
    async with (
        api_process(gateway, env=fast) as doomed,
        httpx.AsyncClient(base_url=doomed.base_url, timeout=60) as http,
    ):
        url = "/v1/chat/completions"
        done = [await http.post(url, json=body(), headers=bearer(key)) for _ in range(3)]
        assert [a.status_code for a in done] == [200, 200, 200]
        assert "/" in done[-1].headers["x-runcap-call-id"]
        await gateway.fake.script("fake-small", latency_ms=5000)
        calls = [asyncio.create_task(http.post(url, json=body(), headers=bearer(key)))]
        calls += [asyncio.create_task(http.post(url, json=body(), headers=bearer(key)))]

        async def at_the_provider() -> bool:
            return (await gateway.fake.calls()).get("fake-small", {}).get("calls", 0) >= 5

        assert await eventually(at_the_provider)
        before = await spend_of(gateway, key["id"])
        assert before.spent_micros + before.reserved_micros <= before.budget_micros
        await doomed.kill()
        await asyncio.gather(*calls, return_exceptions=True)

    async def expired() -> RunSpend | None:
        spend = await spend_of(gateway, key["id"])
        return None if spend.open_calls else spend

    spend = await eventually(expired, within=30)
    assert spend is not None, "the dead api's advance was never settled"

    async def all_rows() -> bool:  # the run writes the unknown row a moment later
        return len(ledger(gateway, key["id"])) >= spend.calls

    assert await eventually(all_rows)
    rows = ledger(gateway, key["id"])
    assert len(rows) == len({r.call_id for r in rows}) == spend.calls
    assert spend.spent_micros == sum(r.cost_micros for r in rows) <= spend.budget_micros
    answered = {
        a.headers["x-runcap-call-id"]: usd_micros(a.headers["x-runcap-cost-usd"]) for a in done
    }
    billed = {r.call_id: r.cost_micros for r in rows}
    assert {c: billed[c] for c in answered} == answered  # answered calls billed as answered
    unreported = [r for r in rows if r.status == "unknown"]
    assert len(unreported) == 1 and unreported[0].cost_micros > 0
