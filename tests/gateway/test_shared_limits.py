"""Limits that hold across api instances, over real api processes sharing the test gateway's
database: parallel calls and requests per minute per key, a dead instance's slots, revocation.

Each key's calls carry a new ``task:`` tag per call, so every call is its own run: the limits
are the key's, not a run's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, text
from sqlmodel import col

from db.models import LedgerEntry
from tests.gateway.conftest import Gateway
from tests.gateway.processes import api_process
from tests.polling import eventually

MESSAGES = [{"role": "user", "content": "make the failing test pass"}]
BODY = {"model": "fake-small", "messages": MESSAGES, "max_tokens": 20}


def headers(key: dict[str, Any]) -> dict[str, str]:
    """The key's bearer and a task tag of its own: each call opens a new run."""
    return {"Authorization": f"Bearer {key['key']}", "x-runcap-tags": f"task:{uuid.uuid4().hex}"}


def slots(engine: Engine, key_id: str) -> int:
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM call_slots WHERE key_id = :key")
        return int(conn.execute(query, {"key": key_id}).scalar_one())


def windows(engine: Engine, key_id: str) -> list[int]:
    """The key's request count in each minute it used."""
    with engine.connect() as conn:
        query = text("SELECT requests FROM rate_windows WHERE key_id = :key")
        return [int(r[0]) for r in conn.execute(query, {"key": key_id})]


def assert_rate_limited(answer: httpx.Response, most_seconds: int) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(answer.headers["Retry-After"]) <= most_seconds


@pytest.fixture(autouse=True)
async def fresh_fake(gateway: Gateway) -> None:
    await gateway.fake.reset()


@pytest.fixture(scope="module")
async def two_apis(gateway: Gateway) -> AsyncIterator[list[str]]:
    """Two api processes on the gateway's database, Temporal and fake provider."""
    async with api_process(gateway) as first, api_process(gateway) as second:
        yield [first.base_url, second.base_url]


async def test_two_apis_run_at_most_max_parallel_calls_of_a_key(
    gateway: Gateway, two_apis: list[str]
) -> None:
    """max_parallel=4, 12 slow calls at once split over two api processes: 4 reach the
    provider, never more; the other 8 get 429 rate_limited; when the 4 end, calls pass again."""
    await gateway.fake.script("fake-small", latency_ms=60_000)
    key = await gateway.create_key(budget_usd="5", max_parallel=4)
    async with httpx.AsyncClient(timeout=120) as http:
        calls = [
            asyncio.create_task(
                http.post(f"{two_apis[i % 2]}/v1/chat/completions", json=BODY, headers=headers(key))
            )
            for i in range(12)
        ]

        async def four_running_eight_refused() -> bool:
            concurrency = await gateway.fake.concurrency()
            running = concurrency.get("fake-small", {}).get("running")
            return running == 4 and sum(c.done() for c in calls) == 8

        assert await eventually(four_running_eight_refused, within=60), (
            await gateway.fake.concurrency(),
            [c.done() for c in calls],
        )
        for answer in [c.result() for c in calls if c.done()]:
            assert_rate_limited(answer, most_seconds=1)
        assert (await gateway.fake.concurrency())["fake-small"] == {"running": 4, "peak": 4}
        assert slots(gateway.engine, key["id"]) == 4
        for call in calls:
            call.cancel()  # the clients leave: the api cancels the provider calls
        await asyncio.gather(*calls, return_exceptions=True)
        assert await eventually(lambda: slots(gateway.engine, key["id"]) == 0)
        await gateway.fake.script("fake-small")
        again = await asyncio.gather(
            *(
                http.post(f"{base}/v1/chat/completions", json=BODY, headers=headers(key))
                for base in two_apis
            )
        )
    assert [a.status_code for a in again] == [200, 200], [a.text for a in again]
    assert (await gateway.fake.concurrency())["fake-small"]["peak"] == 4


async def test_two_apis_admit_at_most_rpm_requests_a_minute(
    gateway: Gateway, two_apis: list[str]
) -> None:
    """rpm=20, 40 calls at once split over two api processes: 20 pass in the minute and the
    rest get 429 rate_limited with Retry-After up to the minute's end (should the burst cross
    a minute boundary, each minute still admits at most 20)."""
    key = await gateway.create_key(budget_usd="5", rpm=20)
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=40)) as http:
        answers = await asyncio.gather(
            *(
                http.post(f"{two_apis[i % 2]}/v1/chat/completions", json=BODY, headers=headers(key))
                for i in range(40)
            )
        )
    passed = [a for a in answers if a.status_code == 200]
    for answer in answers:
        if answer.status_code != 200:
            assert_rate_limited(answer, most_seconds=60)
    minutes = windows(gateway.engine, key["id"])
    assert max(minutes) == 20 and sum(minutes) == len(passed), (minutes, len(passed))
    if len(minutes) == 1:
        assert len(passed) == 20


async def test_a_dead_apis_slots_stop_counting_when_their_lease_ends(gateway: Gateway) -> None:
    """An api holding both slots of a max_parallel=2 key is SIGKILLed: the other api refuses
    the key until the dead one's leases run out (2 s here), then admits it again."""
    await gateway.fake.script("fake-small", latency_ms=60_000)
    key = await gateway.create_key(budget_usd="5", max_parallel=2)
    lease = {"RUNCAP_LIMIT_SLOT_LEASE_SECONDS": "2", "RUNCAP_LIMIT_RENEW_SECONDS": "0.5"}
    url = f"{gateway.base_url}/v1/chat/completions"
    async with api_process(gateway, env=lease) as doomed, httpx.AsyncClient(timeout=120) as http:
        held = [
            asyncio.create_task(
                http.post(f"{doomed.base_url}/v1/chat/completions", json=BODY, headers=headers(key))
            )
            for _ in range(2)
        ]

        async def both_running() -> bool:
            concurrency = await gateway.fake.concurrency()
            return concurrency.get("fake-small", {}).get("running") == 2

        assert await eventually(both_running, within=60)
        assert_rate_limited(await http.post(url, json=BODY, headers=headers(key)), 1)
        await doomed.kill()
        await asyncio.gather(*held, return_exceptions=True)
        await gateway.fake.script("fake-small")

        async def admitted() -> bool:
            answer = await http.post(url, json=BODY, headers=headers(key))
            assert answer.status_code in (200, 429), answer.text
            return answer.status_code == 200

        assert await eventually(admitted, within=30), "the dead api's slots never expired"


async def test_a_streams_slot_lasts_until_its_call_ends(gateway: Gateway) -> None:
    """max_parallel=1: a stream holds the key's slot until its call ends, then gives it back;
    a stream refused by its run's budget before any byte gives its slot back at once."""
    await gateway.fake.script("fake-small", latency_ms=3_000)
    key = await gateway.create_key(budget_usd="5", max_parallel=1)
    stream = {**BODY, "stream": True}
    url = f"{gateway.base_url}/v1/chat/completions"
    async with httpx.AsyncClient(timeout=120) as http:
        first = asyncio.create_task(http.post(url, json=stream, headers=headers(key)))

        async def at_the_provider() -> bool:
            concurrency = await gateway.fake.concurrency()
            return concurrency.get("fake-small", {}).get("running") == 1

        assert await eventually(at_the_provider, within=30)
        assert_rate_limited(await http.post(url, json=stream, headers=headers(key)), 1)
        answer = await first
        assert answer.status_code == 200 and "[DONE]" in answer.text
        assert await eventually(lambda: slots(gateway.engine, key["id"]) == 0)

        poor = await gateway.create_key(budget_usd="0.000001", max_parallel=1)
        for _ in range(3):
            refused = await http.post(url, json=stream, headers=headers(poor))
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["code"] == "budget_exceeded"
        assert slots(gateway.engine, poor["id"]) == 0


async def test_a_revoke_reaches_another_api_within_a_second(gateway: Gateway) -> None:
    """A key revoked through one api (the test gateway) while another api process serves it
    from a cache that would keep it a minute: that api refuses it with 401 within one second,
    for new task tags, and no call that started later than a second after the revoke is in
    the ledger."""
    key = await gateway.create_key(budget_usd="5")
    long_cache = {"RUNCAP_KEY_CACHE_TTL_SECONDS": "60"}
    outcomes: list[tuple[float, int]] = []  # (sent at, status), wall-clock seconds
    async with (
        api_process(gateway, env=long_cache) as other,
        httpx.AsyncClient(base_url=other.base_url, timeout=60) as http,
    ):
        warm = await http.post("/v1/chat/completions", json=BODY, headers=headers(key))
        assert warm.status_code == 200, warm.text
        revoked_at: float | None = None

        async def caller() -> None:
            # Calls one after another until 1.5 s after the revoke.
            while revoked_at is None or time.time() < revoked_at + 1.5:
                sent = time.time()
                answer = await http.post("/v1/chat/completions", json=BODY, headers=headers(key))
                assert answer.status_code in (200, 401), answer.text
                outcomes.append((sent, answer.status_code))

        callers = [asyncio.create_task(caller()) for _ in range(2)]
        assert await eventually(lambda: sum(s == 200 for _, s in outcomes) >= 4, within=30)
        revoked_at = time.time()
        revoke = await gateway.admin.post(f"/admin/keys/{key['id']}/revoke")
        assert revoke.status_code == 200, revoke.text
        await asyncio.gather(*callers)
    refusals = [sent for sent, status in outcomes if status == 401]
    assert refusals and min(refusals) <= revoked_at + 1.0, outcomes
    late = [(sent, status) for sent, status in outcomes if sent > revoked_at + 1.0]
    assert late and all(status == 401 for _, status in late), late
    with gateway.engine.connect() as conn:
        query = select(col(LedgerEntry.started_at)).where(col(LedgerEntry.key_id) == key["id"])
        started = [r[0].replace(tzinfo=UTC) for r in conn.execute(query)]
    cutoff = datetime.fromtimestamp(revoked_at + 1.0, UTC)
    assert started and all(at <= cutoff for at in started), (started, cutoff)
