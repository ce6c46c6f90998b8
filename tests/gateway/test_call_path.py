"""The gateway call path end to end: one update per call, the walk in the api, batched settles.

Each test states the money invariant it checks: spent + reserved never above the cap, the
ledger equal to the workflow, no call charged twice, no answered call missing from the ledger.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import col

from db.models import LedgerEntry
from tests.gateway.conftest import ADMIN, Gateway, settled_spend
from tests.gateway.processes import api_process
from tests.polling import eventually
from workflows.budget import reservation_micros
from workflows.contracts import MICROS_PER_USD, Price, Target

MESSAGES = [{"role": "user", "content": "make the failing test pass"}]


def ledger(gateway: Gateway, run_id: str) -> list[LedgerEntry]:
    with gateway.engine.connect() as conn:
        query = select(LedgerEntry).where(col(LedgerEntry.run_id) == run_id)
        return [LedgerEntry.model_validate(r._mapping) for r in conn.execute(query)]


def usd_micros(text: str) -> int:
    return int(Decimal(text) * MICROS_PER_USD)


def bearer(key: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


@pytest.fixture(autouse=True)
async def fresh_fake(gateway: Gateway) -> None:
    await gateway.fake.reset()


async def test_each_answer_is_in_spend_on_the_next_read(gateway: Gateway) -> None:
    """Read-your-writes: after each of 50 answers, a spend query and the run's figures on
    another api instance already include that call (no answered call missing)."""
    key = await gateway.create_key(budget_usd="5")
    task = uuid.uuid4().hex[:8]
    run_id = f"{key['id']}.{task}"
    headers = {**bearer(key), "x-runcap-tags": f"task:{task}"}
    body = {"model": "fake-small", "messages": MESSAGES, "max_tokens": 20}
    async with (
        api_process(gateway) as other,
        httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as calls,
        httpx.AsyncClient(base_url=other.base_url, headers=ADMIN, timeout=30) as reads,
    ):
        charged = 0
        for n in range(1, 51):
            answer = await calls.post("/v1/chat/completions", json=body, headers=headers)
            assert answer.status_code == 200, answer.text
            charged += usd_micros(answer.headers["x-runcap-cost-usd"])
            spend = (await reads.get("/admin/spend", params={"tag": f"task:{task}"})).json()
            assert spend["total_calls"] == n
            assert usd_micros(spend["total_cost_usd"]) == charged
            run = (await reads.get(f"/admin/runs/{run_id}")).json()
            assert (run["calls"], usd_micros(run["spent_usd"])) == (n, charged)
            assert usd_micros(run["spent_usd"]) + usd_micros(run["reserved_usd"]) <= 5_000_000
    final = await settled_spend(gateway, run_id)
    assert final.calls == 50 and final.spent_micros == charged and final.reserved_micros == 0
    assert sum(r.cost_micros for r in ledger(gateway, run_id)) == charged


async def test_a_hanging_primary_falls_back_within_the_first_byte_timeout(
    gateway: Gateway,
) -> None:
    """A primary that never answers costs one first-byte timeout (1 s on this route), then the
    fallback answers; only the fallback is billed."""
    await gateway.fake.script("fake-large", timeout=True)
    key = await gateway.create_key(budget_usd="1")
    body = {"model": "guarded", "messages": MESSAGES, "max_tokens": 20}
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as http:
        began = time.monotonic()
        answer = await http.post("/v1/chat/completions", json=body, headers=bearer(key))
        took = time.monotonic() - began
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-runcap-target"] == "fake/fake-small"
    assert took < 1 + 1, f"the fallback answered after {took:.2f} s"
    calls = await gateway.fake.calls()
    assert calls["fake-large"]["calls"] == 1  # a hang is not tried twice
    (row,) = ledger(gateway, key["id"])
    assert (row.model, row.status) == ("fake-small", "ok")
    assert row.cost_micros == usd_micros(answer.headers["x-runcap-cost-usd"])


async def test_a_client_that_leaves_mid_stream_cancels_upstream_and_pays_what_it_got(
    gateway: Gateway,
) -> None:
    """The provider sees the request cancelled; the call is billed its input plus the output
    received (at least what the client saw), below its reservation, and settles once."""
    reply = " ".join(f"word{i}" for i in range(60))
    await gateway.fake.script("fake-small", reply=reply, chunk_delay_ms=100)
    key = await gateway.create_key(budget_usd="1")
    body = {"model": "fake-small", "messages": MESSAGES, "max_tokens": 500, "stream": True}
    seen = ""
    async with (
        httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http,
        http.stream("POST", "/v1/chat/completions", json=body, headers=bearer(key)) as response,
    ):
        assert response.status_code == 200
        call_id = response.headers["x-runcap-call-id"]
        events = 0
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"]
                seen += delta.get("content") or ""
                events += 1
                if events == 4:
                    break  # the agent goes away
    assert seen and len(seen) < len(reply)

    async def cancelled() -> bool:
        return (await gateway.fake.calls())["fake-small"]["cancelled"] == 1

    assert await eventually(cancelled), "the provider never saw the request cancelled"
    spend = await settled_spend(gateway, key["id"])
    (row,) = ledger(gateway, key["id"])
    assert row.call_id == call_id and row.status == "cancelled"
    assert len(seen.encode()) <= row.output_tokens < 500
    assert 0 < row.cost_micros < row.reserved_micros
    assert spend.calls == 1 and spend.spent_micros == row.cost_micros
    assert spend.reserved_micros == 0


@pytest.mark.parametrize("apis", [1, 2])
async def test_200_concurrent_calls_on_one_run_spend_exactly_the_cap(
    gateway: Gateway, apis: int
) -> None:
    """A run affording exactly N calls gets 200 at once, through one api or split over two
    api processes: exactly N succeed, spent equals the cap, nothing stays reserved, the
    ledger equals the workflow."""
    raw = json.dumps({"model": "fake-small", "messages": MESSAGES, "max_tokens": 40}).encode()
    # Every call costs exactly its reservation: the provider reports the api's own input bound
    # and uses the whole output bound.
    await gateway.fake.script("fake-small", prompt_tokens=len(raw), completion_tokens="max")
    small = Target("fake", "fake-small", "openai", Price(500_000, 1_500_000, 500_000, 500_000))
    per_call = reservation_micros([small], len(raw), 40)
    n = 9
    budget = Decimal(per_call * n) / MICROS_PER_USD
    key = await gateway.create_key(budget_usd=str(budget))
    headers = {**bearer(key), "content-type": "application/json"}
    limits = httpx.Limits(max_connections=200)
    async with api_process(gateway) as second:
        bases = [gateway.base_url, second.base_url][:apis]
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            answers = await asyncio.gather(
                *(
                    http.post(
                        f"{bases[i % apis]}/v1/chat/completions", content=raw, headers=headers
                    )
                    for i in range(200)
                )
            )
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == n, statuses
    refused = [a for a in answers if a.status_code == 429]
    assert len(refused) == 200 - n
    assert {a.json()["error"]["code"] for a in refused} == {"budget_exceeded"}
    assert all(a.headers["x-should-retry"] == "false" for a in refused)
    spend = await settled_spend(gateway, key["id"])
    assert spend.spent_micros == spend.budget_micros == per_call * n
    assert spend.reserved_micros == 0 and spend.overruns == 0 and spend.calls == n
    rows = [r for r in ledger(gateway, key["id"]) if r.status == "ok"]
    assert len(rows) == n and sum(r.cost_micros for r in rows) == spend.spent_micros


async def test_an_idempotent_answer_is_kept_across_instances(gateway: Gateway) -> None:
    """A retry with the same Idempotency-Key on another api instance gets the stored answer
    and no second charge; the same key with another body is a 409."""
    key = await gateway.create_key(budget_usd="1")
    body = {"model": "fake-small", "messages": MESSAGES, "max_tokens": 20}
    headers = {**bearer(key), "Idempotency-Key": "retry-me"}
    async with (
        api_process(gateway) as other,
        httpx.AsyncClient(timeout=30) as http,
    ):
        first = await http.post(
            f"{gateway.base_url}/v1/chat/completions", json=body, headers=headers
        )
        again = await http.post(f"{other.base_url}/v1/chat/completions", json=body, headers=headers)
        changed = {**body, "max_tokens": 21}
        reused = await http.post(
            f"{other.base_url}/v1/chat/completions", json=changed, headers=headers
        )
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["x-runcap-replayed"] == "true"
    assert again.headers["x-runcap-cost-usd"] == first.headers["x-runcap-cost-usd"]
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    spend = await settled_spend(gateway, key["id"])
    assert spend.calls == 1
    assert spend.spent_micros == usd_micros(first.headers["x-runcap-cost-usd"])
    assert len(ledger(gateway, key["id"])) == 1


async def test_sigkill_an_api_with_40_calls_in_flight(gateway: Gateway) -> None:
    """An api dies with 40 calls at a 4 s provider, and comes back. Every reservation ends
    settled at its reservation (the provider may have worked), spent + reserved never passes
    the cap, and retries with the same Idempotency-Key on either instance get one answer and
    add no charge."""
    await gateway.fake.script("fake-small", latency_ms=4000)
    key = await gateway.create_key(budget_usd="1")
    body = {"model": "fake-small", "messages": MESSAGES, "max_tokens": 20}

    def headers(i: int) -> dict[str, str]:
        return {**bearer(key), "Idempotency-Key": f"kill-{i}"}

    fast = {"RUNCAP_RUN_CALLER_TIMEOUT_SECONDS": "3"}
    async with (
        api_process(gateway, env=fast) as doomed,
        api_process(gateway, env=fast) as other,
        httpx.AsyncClient(timeout=60) as http,
    ):
        url = f"{doomed.base_url}/v1/chat/completions"
        calls = [
            asyncio.create_task(http.post(url, json=body, headers=headers(i))) for i in range(40)
        ]

        async def all_at_the_provider() -> bool:
            return (await gateway.fake.calls()).get("fake-small", {}).get("calls", 0) == 40

        assert await eventually(all_at_the_provider), "the 40 calls never reached the provider"
        await doomed.kill()
        cut = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(c, httpx.HTTPError) for c in cut), cut
        async with api_process(gateway, port=doomed.port) as back:
            bases = [back.base_url, other.base_url]

            async def retry(i: int, side: int) -> httpx.Response:
                base = bases[(i + side) % 2]
                return await http.post(f"{base}/v1/chat/completions", json=body, headers=headers(i))

            first = await asyncio.gather(*(retry(i, 0) for i in range(40)))
            second = await asyncio.gather(*(retry(i, 1) for i in range(40)))
    # One answer per key: the same one on every retry, on either instance.
    for a, b in zip(first, second, strict=True):
        assert a.status_code == b.status_code == 502, a.text
        assert a.json()["error"]["code"] == b.json()["error"]["code"] == "call_interrupted"
        assert a.headers["x-should-retry"] == "false"
    spend = await settled_spend(gateway, key["id"])
    rows = ledger(gateway, key["id"])
    assert len(rows) == len({r.call_id for r in rows}) == 40  # one row, one charge, per call
    assert all(r.status == "unknown" and r.cost_micros == r.reserved_micros for r in rows)
    assert spend.calls == 40 and spend.reserved_micros == 0
    assert spend.spent_micros == sum(r.cost_micros for r in rows) <= spend.budget_micros
