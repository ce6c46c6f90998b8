"""Lines through the gateway: far from its caps a call costs no Temporal round trip, a run's
history grows by a bounded number of events per call, and an api that dies holding lent money
is billed only its calls that may have gone out.

Invariants checked: spent + lent never above a cap; the ledger equal to the workflow; each call
charged once; an answered call never missing from the ledger.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType

from caller import run_handle
from db.journal import held_by_runs
from tests.gateway.conftest import Gateway, settled_spend
from tests.gateway.processes import api_process
from tests.gateway.test_call_path import MESSAGES, bearer, ledger, usd_micros
from tests.polling import eventually
from workflows.agent_run import AgentRun
from workflows.budget import reservation_micros
from workflows.contracts import MICROS_PER_USD, Price, Target
from workflows.key_budget import KeyBudget
from workflows.run_contracts import RunSpend

SMALL = Target("fake", "fake-small", "openai", Price(500_000, 1_500_000, 500_000, 500_000))
EVENTS_PER_REPORT = 7
"""A report is one update: a workflow task (scheduled, started, completed), the update accepted
and completed, and the refreshed search attributes and memo."""
REPORT_AT_ONCE = {"RUNCAP_REPORT_INTERVAL_SECONDS": "0"}
REPORT_LATE = {"RUNCAP_REPORT_INTERVAL_SECONDS": "60"}


@pytest.fixture(autouse=True)
async def fresh_fake(gateway: Gateway) -> None:
    await gateway.fake.reset()


def body(max_tokens: int = 20) -> dict[str, Any]:
    return {"model": "fake-small", "messages": MESSAGES, "max_tokens": max_tokens}


async def updates_in(gateway: Gateway, workflow_id: str) -> int:
    """How many updates the workflow has taken (each a round trip of some caller)."""
    history = await gateway.temporal.get_workflow_handle(workflow_id).fetch_history()
    accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    return sum(1 for event in history.events if event.event_type == accepted)


async def test_a_new_run_of_a_key_with_lines_costs_no_round_trip(gateway: Gateway) -> None:
    """A key's first call draws its period's line; a new run of that key then opens with a
    line its api holds (the ``runs`` row), so its first call, and the next, reach neither the
    run's workflow nor the period's before they are answered."""
    key = await gateway.create_key(budget_usd="5", budget_usd_per_day="5")
    day = await gateway.admin.get(f"/admin/keys/{key['id']}")
    async with (
        api_process(gateway, env=REPORT_LATE) as api,
        httpx.AsyncClient(base_url=api.base_url, timeout=30) as http,
    ):
        first = await http.post(
            "/v1/chat/completions",
            json=body(),
            headers={**bearer(key), "x-runcap-tags": "task:warm"},
        )
        assert first.status_code == 200, first.text
        periods = [
            f"keybudget-{key['id']}-{p['kind']}-{p['period']}" for p in day.json()["periods"]
        ]
        before = {p: await updates_in(gateway, p) for p in periods}
        task = uuid.uuid4().hex[:8]
        for _ in range(3):
            answer = await http.post(
                "/v1/chat/completions",
                json=body(),
                headers={**bearer(key), "x-runcap-tags": f"task:{task}"},
            )
            assert answer.status_code == 200, answer.text
        run_id = f"{key['id']}.{task}"

        async def started() -> bool:
            try:
                return await updates_in(gateway, f"run-{run_id}") >= 0
            except Exception:
                return False

        assert await eventually(started), "the run's workflow never started"
        assert await updates_in(gateway, f"run-{run_id}") == 0
        assert {p: await updates_in(gateway, p) for p in periods} == before
        run = await gateway.admin.get(f"/admin/runs/{run_id}")
        assert run.json()["calls"] == 3  # the ledger has them all already


async def test_history_grows_by_a_bounded_number_of_events_per_call(gateway: Gateway) -> None:
    """Even reported after every call, a run's history grows by at most seven events per call
    (one report: a workflow task, the update, the refreshed figures), plus its start."""
    key = await gateway.create_key(budget_usd="5")
    calls = 10
    async with (
        api_process(gateway, env=REPORT_AT_ONCE) as api,
        httpx.AsyncClient(base_url=api.base_url, timeout=30) as http,
    ):
        for _ in range(calls):
            answer = await http.post("/v1/chat/completions", json=body(), headers=bearer(key))
            assert answer.status_code == 200, answer.text
            await asyncio.sleep(0.3)  # the report lands before the next call
        spend = await settled_spend(gateway, key["id"])
        assert spend.calls == calls
        history = await run_handle(gateway.temporal, key["id"]).fetch_history()
    start = 3 + 3  # the run's start, its first workflow task and its patch marker
    kinds = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events]
    assert len(kinds) <= start + EVENTS_PER_REPORT * calls, " ".join(k[:12] for k in kinds)


async def test_near_the_cap_every_call_passes_through_the_run(gateway: Gateway) -> None:
    """A run that affords only a few calls lends no spare room: each call asks the run, and
    none is refused while money remains."""
    raw = json.dumps(body(40)).encode()
    await gateway.fake.script("fake-small", prompt_tokens=len(raw), completion_tokens="max")
    per_call = reservation_micros([SMALL], len(raw), 40)
    key = await gateway.create_key(budget_usd=str(Decimal(per_call * 5) / MICROS_PER_USD))
    headers = {**bearer(key), "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        answers = [await http.post("/v1/chat/completions", content=raw, headers=headers)]
        answers += [await http.post("/v1/chat/completions", content=raw, headers=headers)]
    assert [a.status_code for a in answers] == [200, 200]
    spend = await settled_spend(gateway, key["id"])
    assert spend.calls == 2 and spend.spent_micros == 2 * per_call
    assert await updates_in(gateway, f"run-{key['id']}") >= 2


async def test_a_run_under_the_loop_guard_sees_every_call(gateway: Gateway) -> None:
    """The loop guard must see every call, so its runs lend no room: each call is one
    update to the run."""
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
    assert await updates_in(gateway, f"run-{key['id']}") >= 4


@pytest.mark.parametrize("apis", [1, 2])
async def test_a_burst_spends_exactly_the_cap(gateway: Gateway, apis: int) -> None:
    """A run affording exactly 40 calls gets 120 at once, through one api or two: no money
    sits in one api's line while the other's calls are refused. Exactly 40 succeed, spent
    equals the cap, and nothing stays held."""
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
        assert statuses.count(200) == n, statuses
        assert {a.json()["error"]["code"] for a in answers if a.status_code != 200} == {
            "budget_exceeded"
        }
        spend = await settled_spend(gateway, key["id"])
    assert spend.spent_micros == spend.budget_micros == per_call * n
    assert spend.in_flight_micros == 0 and spend.calls == n
    rows = [r for r in ledger(gateway, key["id"]) if r.status == "ok"]
    assert len(rows) == n and sum(r.cost_micros for r in rows) == spend.spent_micros


async def test_sigkill_an_api_holding_lent_money(gateway: Gateway) -> None:
    """An api dies holding lines at its run and its key's period, with two calls in flight at
    the provider. Its run and period bill what it recorded and did not report, and its two
    calls in flight at their reservations (the provider may have done them), and nothing
    else: the rest of its lines comes back. The ledger equals the run, each call once."""
    key = await gateway.create_key(budget_usd="5", budget_usd_per_run="1")
    fast = {"RUNCAP_RUN_CALLER_TIMEOUT_SECONDS": "3", **REPORT_LATE}
    async with (
        api_process(gateway, env=fast) as doomed,
        httpx.AsyncClient(base_url=doomed.base_url, timeout=60) as http,
    ):
        url = "/v1/chat/completions"
        done = [await http.post(url, json=body(), headers=bearer(key)) for _ in range(3)]
        assert [a.status_code for a in done] == [200, 200, 200]
        await gateway.fake.script("fake-small", latency_ms=5000)
        calls = [asyncio.create_task(http.post(url, json=body(), headers=bearer(key)))]
        calls += [asyncio.create_task(http.post(url, json=body(), headers=bearer(key)))]

        async def at_the_provider() -> bool:
            return (await gateway.fake.calls()).get("fake-small", {}).get("calls", 0) >= 5

        assert await eventually(at_the_provider)
        held = (await asyncio.to_thread(held_by_runs, gateway.engine, [key["id"]]))[key["id"]]
        before: RunSpend = await run_handle(gateway.temporal, key["id"]).query(AgentRun.spend)
        assert before.spent_micros + before.lent_micros <= before.budget_micros
        lent_before = before.lent_micros
        await doomed.kill()
        await asyncio.gather(*calls, return_exceptions=True)

    async def reconciled() -> RunSpend | None:
        spend: RunSpend = await run_handle(gateway.temporal, key["id"]).query(AgentRun.spend)
        return spend if spend.lines == 0 and spend.calls == 5 else None

    spend = await eventually(reconciled, within=40)
    assert spend is not None, "the dead api's line was never reconciled"
    rows = ledger(gateway, key["id"])
    assert len(rows) == len({r.call_id for r in rows}) == spend.calls == 5
    assert spend.spent_micros == sum(r.cost_micros for r in rows) <= spend.budget_micros
    answered = {
        a.headers["x-runcap-call-id"]: usd_micros(a.headers["x-runcap-cost-usd"]) for a in done
    }
    billed = {r.call_id: r.cost_micros for r in rows}
    assert {c: billed[c] for c in answered} == answered  # answered calls billed as answered
    unknown = [r for r in rows if r.status == "unknown"]
    assert len(unknown) == 2 and sum(r.cost_micros for r in unknown) == held
    assert spend.spent_micros < sum(answered.values()) + lent_before  # the unused room came back
    total = f"keybudget-{key['id']}-total-all"

    async def period_reconciled() -> bool:
        figures = await gateway.temporal.get_workflow_handle(total).query(KeyBudget.figures)
        return figures.leased_micros == 0 and figures.spent_micros == spend.spent_micros

    reconciled_in_time = await eventually(period_reconciled, within=30)
    last = await gateway.temporal.get_workflow_handle(total).query(KeyBudget.figures)
    assert reconciled_in_time, f"the key's total: {last}; the run: {spend}"
