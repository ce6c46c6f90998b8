"""Unchanged agents' SDKs (openai, anthropic) against the running gateway."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from sqlalchemy import func, select
from sqlmodel import col

from caller import run_handle
from db.models import LedgerEntry
from tests.gateway.conftest import Gateway, settled_spend
from workflows.agent_run import AgentRun
from workflows.contracts import MICROS_PER_USD
from workflows.run_contracts import workflow_id

MESSAGES: list[Any] = [{"role": "user", "content": "make the failing test pass"}]


OPEN_CLIENTS: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = []


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    """SDK clients made by a test are closed after it, so no socket is left to the GC."""
    yield
    while OPEN_CLIENTS:
        await OPEN_CLIENTS.pop().close()


def oai(gateway: Gateway, key: str) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0)
    OPEN_CLIENTS.append(client)
    return client


def claude(gateway: Gateway, key: str) -> anthropic.AsyncAnthropic:
    client = anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key=key, max_retries=0)
    OPEN_CLIENTS.append(client)
    return client


def ledger_total(gateway: Gateway, run_id: str) -> tuple[int, int]:
    with gateway.engine.connect() as conn:
        query = select(func.count(), func.coalesce(func.sum(LedgerEntry.cost_micros), 0)).where(
            col(LedgerEntry.run_id) == run_id, col(LedgerEntry.status) == "ok"
        )
        count, total = conn.execute(query).one()
        return int(count), int(total)


async def settled(gateway: Gateway, run_id: str, calls: int) -> int:
    """Wait until the ledger holds ``calls`` settled rows of the run; return their total."""
    for _ in range(150):
        count, total = ledger_total(gateway, run_id)
        if count >= calls:
            return total
        await asyncio.sleep(0.1)
    raise AssertionError(f"ledger has {ledger_total(gateway, run_id)} for {run_id}")


async def test_openai_sdk_with_tags_is_attributed_per_task_and_step(gateway: Gateway) -> None:
    """The tag snippet verbatim: spend per task and step equals the ledger and the run's cost."""
    key = await gateway.create_key(budget_usd="5")
    client = oai(gateway, key["key"])
    task_id = uuid.uuid4().hex[:8]
    charged = Decimal(0)
    for step in ("plan", "edit", "edit"):
        raw = await client.chat.completions.with_raw_response.create(
            model="fake-small",
            messages=MESSAGES,
            extra_body={"metadata": {"tags": ["agent:coder", "task:" + task_id, f"step:{step}"]}},
        )
        completion = raw.parse()
        assert completion.choices[0].message.content
        charged += Decimal(raw.headers["x-runcap-cost-usd"])
    stream = await client.chat.completions.create(
        model="fake-small",
        messages=MESSAGES,
        stream=True,
        extra_body={"metadata": {"tags": ["agent:coder", "task:" + task_id, "step:test"]}},
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text
    run_id = f"{key['id']}.{task_id}"
    total = await settled(gateway, run_id, 4)
    assert total >= int(charged * MICROS_PER_USD)
    by_step = (
        await gateway.admin.get(
            "/admin/spend", params={"group_by": "tag:step", "tag": f"task:{task_id}"}
        )
    ).json()
    steps = {row["group"]: row for row in by_step["rows"]}
    assert set(steps) == {"step:plan", "step:edit", "step:test"}
    assert steps["step:edit"]["calls"] == 2
    assert Decimal(by_step["total_cost_usd"]) * MICROS_PER_USD == total
    assert sum(Decimal(r["cost_usd"]) for r in by_step["rows"]) * MICROS_PER_USD == total
    spend = await settled_spend(gateway, run_id)
    assert spend.spent_micros == total and spend.reserved_micros == 0
    run = (await gateway.admin.get(f"/admin/runs/{run_id}")).json()
    assert Decimal(run["spent_usd"]) * MICROS_PER_USD == total
    query = f'WorkflowId = "{workflow_id(run_id)}" AND RunCost > 0'
    for _ in range(100):  # visibility is refreshed off the call path, within a flush pause
        listed = [wf async for wf in gateway.temporal.list_workflows(query)]
        costs = [
            p.value for wf in listed for p in wf.typed_search_attributes if p.key.name == "RunCost"
        ]
        if costs == [total / MICROS_PER_USD]:
            break
        await asyncio.sleep(0.1)
    assert costs == [total / MICROS_PER_USD]


async def test_anthropic_sdk_stream_and_non_stream(gateway: Gateway) -> None:
    """Claude's SDK works unchanged, both ways, and its calls are billed to its run."""
    key = await gateway.create_key(budget_usd="5")
    client = claude(gateway, key["key"])
    message = await client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=64,
        messages=MESSAGES,
        extra_body={"metadata": {"tags": ["step:plan"]}},
    )
    assert message.content[0].type == "text" and message.content[0].text
    async with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text and final.usage.output_tokens > 0
    total = await settled(gateway, key["id"], 2)
    assert total > 0


async def test_budget_exhaustion_is_a_rate_limit_error(gateway: Gateway) -> None:
    """Past the cap both SDKs raise RateLimitError saying the budget is exhausted."""
    key = await gateway.create_key(budget_usd="0.000050")
    with pytest.raises(openai.RateLimitError, match="budget"):
        for _ in range(50):
            await oai(gateway, key["key"]).chat.completions.create(
                model="fake-large", messages=MESSAGES, max_tokens=50
            )
    with pytest.raises(anthropic.RateLimitError, match="budget"):
        await claude(gateway, key["key"]).messages.create(
            model="fake-large", max_tokens=50, messages=MESSAGES
        )
    spend = await settled_spend(gateway, key["id"])
    assert spend.spent_micros <= 50 and spend.reserved_micros == 0


async def test_100_concurrent_sdk_calls_never_pass_the_cap(gateway: Gateway) -> None:
    """A burst of 100 on a run that affords a few: at most that many succeed, spend <= cap."""
    await gateway.fake.script("fake-small", completion_tokens="max")
    key = await gateway.create_key(budget_usd="0.002")
    client = oai(gateway, key["key"])

    async def one() -> str:
        try:
            await client.chat.completions.create(
                model="fake-small", messages=MESSAGES, max_tokens=200
            )
            return "ok"
        except openai.RateLimitError:
            return "refused"

    outcomes = await asyncio.gather(*(one() for _ in range(100)))
    await gateway.fake.reset()
    ok = outcomes.count("ok")
    assert ok >= 1 and outcomes.count("refused") == 100 - ok
    spend = await settled_spend(gateway, key["id"])
    assert spend.calls == ok
    assert spend.spent_micros <= 2_000 and spend.reserved_micros == 0 and spend.overruns == 0


async def test_revoked_key_gets_401_and_others_keep_working(gateway: Gateway) -> None:
    """Revoking one key stops it on its next call and touches no other key."""
    doomed, other = await gateway.create_key(), await gateway.create_key()
    await oai(gateway, doomed["key"]).chat.completions.create(model="fake-small", messages=MESSAGES)
    revoked = await gateway.admin.post(f"/admin/keys/{doomed['id']}/revoke")
    assert revoked.status_code == 200
    with pytest.raises(openai.AuthenticationError):
        await oai(gateway, doomed["key"]).chat.completions.create(
            model="fake-small", messages=MESSAGES
        )
    answer = await oai(gateway, other["key"]).chat.completions.create(
        model="fake-small", messages=MESSAGES
    )
    assert answer.choices[0].message.content
    doomed_run = run_handle(gateway.temporal, doomed["id"])
    assert (await asyncio.wait_for(doomed_run.result(), timeout=15)).status == "revoked"
    assert await run_handle(gateway.temporal, other["id"]).query(AgentRun.status) == "open"


async def test_primary_529_mid_task_is_invisible_to_the_agent(gateway: Gateway) -> None:
    """The routed chain's first target overloads: the SDK sees successes, the ledger the truth."""
    key = await gateway.create_key(budget_usd="5")
    client = oai(gateway, key["key"])
    await client.chat.completions.create(model="coder", messages=MESSAGES)
    await gateway.fake.script("fake-large", faults=[{"status": 529, "times": None}])
    try:
        for _ in range(3):
            answer = await client.chat.completions.create(model="coder", messages=MESSAGES)
            assert answer.choices[0].message.content
    finally:
        await gateway.fake.reset()
    await settled(gateway, key["id"], 4)
    with gateway.engine.connect() as conn:
        rows = conn.execute(
            select(LedgerEntry)
            .where(col(LedgerEntry.key_id) == key["id"])
            .order_by(col(LedgerEntry.started_at))
        ).all()
    served = [(r.model, len(r.attempts)) for r in rows]
    assert served[0] == ("fake-large", 1)
    assert served[1:] == [("fake-small", 2)] * 3
    assert all(not r.attempts[0]["ok"] for r in rows[1:])
    by_model = (
        await gateway.admin.get("/admin/spend", params={"group_by": "model", "tag": "task:none"})
    ).json()
    assert by_model["rows"] == []  # no task tag on these calls: the filter finds nothing


async def test_idempotency_key_is_one_call(gateway: Gateway) -> None:
    """The same Idempotency-Key sent twice gets the same answer and one charge."""
    key = await gateway.create_key()
    client = oai(gateway, key["key"])
    headers = {"Idempotency-Key": "retry-me-1"}
    first = await client.chat.completions.with_raw_response.create(
        model="fake-small", messages=MESSAGES, extra_headers=headers
    )
    second = await client.chat.completions.with_raw_response.create(
        model="fake-small", messages=MESSAGES, extra_headers=headers
    )
    assert first.parse().model_dump() == second.parse().model_dump()
    assert first.headers["x-runcap-call-id"] == second.headers["x-runcap-call-id"]
    count, total = ledger_total(gateway, key["id"])
    spend = await settled_spend(gateway, key["id"])
    assert spend.calls == 1
    assert spend.spent_micros == int(Decimal(first.headers["x-runcap-cost-usd"]) * MICROS_PER_USD)
    assert count <= 1 and total <= spend.spent_micros


async def test_alerts_fire_once_per_threshold(gateway: Gateway) -> None:
    """Crossing 50/80/100% and a refusal each post one alert to the webhook."""
    await gateway.fake.script("fake-small", completion_tokens="max")
    key = await gateway.create_key(budget_usd="0.001")
    client = oai(gateway, key["key"])
    try:
        for _ in range(40):
            try:
                await client.chat.completions.create(
                    model="fake-small", messages=MESSAGES, max_tokens=100
                )
            except openai.RateLimitError:
                break
        for _ in range(3):
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(
                    model="fake-small", messages=MESSAGES, max_tokens=100
                )
    finally:
        await gateway.fake.reset()

    def mine() -> list[dict[str, Any]]:
        return [a for a in gateway.alerts if a["key_id"] == key["id"]]

    for _ in range(100):
        if {(a["kind"], a["threshold_percent"]) for a in mine()} >= {
            ("threshold", 50),
            ("threshold", 80),
            ("refused", 0),
        }:
            break
        await asyncio.sleep(0.1)
    kinds = sorted((a["kind"], a["threshold_percent"]) for a in mine())
    assert ("threshold", 50) in kinds and ("threshold", 80) in kinds
    assert kinds.count(("refused", 0)) == 1
    assert len(kinds) == len(set(kinds))


async def test_concurrent_retries_with_one_idempotency_key_are_one_call(gateway: Gateway) -> None:
    """Five copies of one request in flight at once: one charge, the same answer for all."""
    key = await gateway.create_key()
    await gateway.fake.script("fake-small", latency_ms=300)
    try:
        client = oai(gateway, key["key"])
        answers = await asyncio.gather(
            *(
                client.chat.completions.with_raw_response.create(
                    model="fake-small", messages=MESSAGES, extra_headers={"Idempotency-Key": "k-1"}
                )
                for _ in range(5)
            )
        )
    finally:
        await gateway.fake.reset()
    assert len({a.parse().id for a in answers}) == 1
    spend = await settled_spend(gateway, key["id"])
    assert spend.calls == 1
