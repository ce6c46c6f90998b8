"""Fairness: a call is refused only when the money neither spent nor held by calls in flight
cannot pay for it, whatever lines the api instances hold (unused room is recalled first).

Agents loop on their calls until their first refusal, through one api or two (calls spread
over both). Every call costs exactly its reservation (the provider reports the api's input
bound and writes every token allowed), so money is never freed after it is held.
Invariants checked: the cap is never passed; the first refusal comes only when spent plus
what calls in flight hold is within two worst-case calls of the cap; no refusal is
contradicted (no call sent after the first refusal passes); a run's refusal alerts once.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from db.models import LedgerEntry
from tests.gateway.conftest import Gateway
from tests.gateway.processes import api_process
from tests.gateway.test_call_path import MESSAGES
from tests.polling import eventually
from workflows.budget import reservation_micros
from workflows.contracts import MICROS_PER_USD, Price, Target

SMALL = Target("fake", "fake-small", "openai", Price(500_000, 1_500_000, 500_000, 500_000))
RAW = json.dumps({"model": "fake-small", "messages": MESSAGES, "max_tokens": 40}).encode()
PER_CALL = reservation_micros([SMALL], len(RAW), 40)
CALLS_IN_CAP = 40
L = LedgerEntry.__table__  # type: ignore[attr-defined]


@dataclass
class Outcome:
    """What the agents saw: each call's status and when it was sent, and the first refusal."""

    sent: list[tuple[float, int]] = field(default_factory=list)
    first_refusal: tuple[float, dict[str, Any]] | None = None


def usd(micros: int) -> str:
    return str(Decimal(micros) / MICROS_PER_USD)


async def run_agents(bases: list[str], key: dict[str, Any], agents: int, tasks: bool) -> Outcome:
    """``agents`` loops, each calling until refused; ``tasks``: each agent its own run."""
    outcome = Outcome()
    calls = 0
    limits = httpx.Limits(max_connections=agents * 2)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def agent(n: int) -> None:
            nonlocal calls
            headers = {"Authorization": f"Bearer {key['key']}", "content-type": "application/json"}
            if tasks:
                headers["x-runcap-tags"] = f"task:agent-{n}"
            while True:
                base = bases[calls % len(bases)]
                calls += 1
                sent = time.monotonic()
                answer = await http.post(
                    f"{base}/v1/chat/completions", content=RAW, headers=headers
                )
                outcome.sent.append((sent, answer.status_code))
                if answer.status_code == 200:
                    continue
                error = answer.json()["error"]
                assert answer.status_code == 429 and error["code"] == "budget_exceeded", answer.text
                if outcome.first_refusal is None:
                    outcome.first_refusal = (time.monotonic(), error)
                return

        await asyncio.gather(*(agent(n) for n in range(agents)))
    return outcome


def spent(gateway: Gateway, key_id: str) -> int:
    with gateway.engine.connect() as conn:
        query = select(func.coalesce(func.sum(L.c.cost_micros), 0)).where(L.c.key_id == key_id)
        return int(conn.execute(query).scalar() or 0)


@pytest.mark.parametrize("apis", [1, 2])
@pytest.mark.parametrize("agents", [1, 5, 50])
@pytest.mark.parametrize("cap", ["day", "run"])
async def test_the_first_refusal_comes_at_the_cap(
    gateway: Gateway, cap: str, agents: int, apis: int
) -> None:
    """Agents share a key's day cap (each its own run) or one run's cap; the first refusal
    comes within two worst cases of the cap, no later call passes, the cap holds."""
    await gateway.fake.script("fake-small", prompt_tokens=len(RAW), completion_tokens="max")
    budget = usd(PER_CALL * CALLS_IN_CAP)
    fields = (
        {"budget_usd": "100", "budget_usd_per_day": budget}
        if cap == "day"
        else {"budget_usd": "100", "budget_usd_per_run": budget}
    )
    key = await gateway.create_key(**fields)
    async with api_process(gateway) as second:
        bases = [gateway.base_url, second.base_url][:apis]
        outcome = await run_agents(bases, key, agents, tasks=cap == "day")
    assert outcome.first_refusal is not None
    refused_at, figures = outcome.first_refusal
    cap_micros = PER_CALL * CALLS_IN_CAP
    committed = (Decimal(figures["spent_usd"]) + Decimal(figures["reserved_usd"])) * MICROS_PER_USD
    assert cap_micros - committed < 2 * PER_CALL, figures
    after = [status for sent, status in outcome.sent if sent > refused_at]
    assert 200 not in after, "a call passed after a refusal: the refusal was premature"
    # What was spent in the end (every call costs what it held, so nothing held was freed):
    total = await asyncio.to_thread(spent, gateway, key["id"])
    assert cap_micros - 2 * PER_CALL < total <= cap_micros


async def test_one_sequential_agent_is_refused_once_at_the_end(gateway: Gateway) -> None:
    """One agent, one run, a small cap: every call passes until the money left cannot pay for
    the next, which is refused; every later call is refused too, and one alert fires."""
    await gateway.fake.script("fake-small", prompt_tokens=len(RAW), completion_tokens="max")
    key = await gateway.create_key(budget_usd=usd(PER_CALL * 87 + PER_CALL // 2))
    statuses = []
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as http:
        headers = {"Authorization": f"Bearer {key['key']}", "content-type": "application/json"}
        for _ in range(95):
            answer = await http.post("/v1/chat/completions", content=RAW, headers=headers)
            statuses.append(answer.status_code)
    assert statuses[:87] == [200] * 87, statuses
    assert set(statuses[87:]) == {429}, statuses
    assert await asyncio.to_thread(spent, gateway, key["id"]) == PER_CALL * 87

    def refused_alerts() -> list[dict[str, Any]]:
        return [
            a for a in gateway.alerts if a.get("kind") == "refused" and a["key_id"] == key["id"]
        ]

    assert await eventually(refused_alerts)
    assert len(refused_alerts()) == 1, refused_alerts()  # the run alerts on its first refusal only
