"""Attack: ``Idempotency-Key`` as storage and as a waiting room. Stored answers are purged after
24 h; a retry of a call still in flight waits a bounded time, and its wait counts against the
key's rate limits like a call."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
from openai import AsyncOpenAI
from sqlalchemy import select, update

from db.models import IdempotentRequest, utcnow
from tests.polling import eventually
from tests.security.conftest import HELLO, Api, Stack

FLOOR = {"floor_price_input_per_mtok_usd": "1", "floor_price_output_per_mtok_usd": "2"}
R = IdempotentRequest.__table__  # type: ignore[attr-defined]


async def stored_keys(stack: Stack, key_id: str) -> set[str]:
    with stack.engine.begin() as conn:
        return set(conn.execute(select(R.c.call_id).where(R.c.key_id == key_id)).scalars())


async def test_idempotent_answers_are_purged_after_24_hours(security_stack: Stack) -> None:
    """An answer stored 25 h ago is deleted by the api's periodic purge; a fresh one stays."""
    async with security_stack.api(idempotency_purge_interval_seconds=0.2) as api:
        created = await api.admin.post("/admin/keys", json={"name": "agent", "budget_usd": "1"})
        key, key_id = created.json()["key"], created.json()["id"]
        async with AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key=key) as client:
            for idem in ("old", "fresh"):
                await client.chat.completions.create(
                    model="gpt-4.1",
                    messages=HELLO,
                    max_tokens=16,
                    extra_headers={"Idempotency-Key": idem},
                )
        both = await stored_keys(security_stack, key_id)
        assert len(both) == 2
        with security_stack.engine.begin() as conn:
            aged = conn.execute(
                update(R)
                .where(R.c.key_id == key_id, R.c.call_id == min(both))
                .values(created_at=utcnow() - timedelta(hours=25))
            )
            assert aged.rowcount == 1

        async def purged() -> bool:
            return await stored_keys(security_stack, key_id) == both - {min(both)}

        assert await eventually(purged, within=10), "the 25 h old answer was never purged"


async def slow_call_and_retries(
    stack: Stack, api: Api, key: str, retries: int
) -> tuple[httpx.Response, list[httpx.Response], bool]:
    """One call at a slow provider and ``retries`` retries of it sent while it runs: the first
    answer, the retries' answers, and whether they all came before the first ended."""
    model = f"slow-{uuid.uuid4().hex[:8]}"
    await stack.fake.script(model, latency_ms=4000)
    body = {"model": model, "messages": HELLO, "max_tokens": 16}
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex}
    url = f"{api.base_url}/v1/chat/completions"
    async with httpx.AsyncClient(timeout=60) as http:
        first = asyncio.create_task(http.post(url, json=body, headers=headers))

        async def at_the_provider() -> bool:
            return (await stack.fake.concurrency()).get(model, {}).get("running", 0) == 1

        assert await eventually(at_the_provider)
        waiting = [
            asyncio.create_task(http.post(url, json=body, headers=headers)) for _ in range(retries)
        ]
        again = list(await asyncio.gather(*waiting))
        early = not first.done()
        return await first, again, early


async def test_waiting_on_a_call_in_flight_is_bounded(security_stack: Stack) -> None:
    """A retry of a call still at the provider waits ``RUNCAP_IDEMPOTENCY_WAIT_SECONDS``, then
    gets 409 ``idempotency_in_progress`` with Retry-After, while the call runs on."""
    async with security_stack.api(idempotency_wait_seconds=0.5, **FLOOR) as api:
        key = await api.create_key()
        first, (retry,), early = await slow_call_and_retries(security_stack, api, key, 1)
    print(f"retry: {retry.status_code} {retry.text[:120]}; answered before the call ended: {early}")
    assert first.status_code == 200
    assert early and retry.status_code == 409
    assert retry.json()["error"]["code"] == "idempotency_in_progress"
    assert int(retry.headers["retry-after"]) >= 1


async def test_waiting_counts_against_the_keys_rate_limits(security_stack: Stack) -> None:
    """With max_parallel 2, a call and one waiting retry hold both slots: a second retry is
    refused at once with 429 ``rate_limited``."""
    async with security_stack.api(idempotency_wait_seconds=30, **FLOOR) as api:
        key = await api.create_key(max_parallel=2)
        first, retries, _ = await slow_call_and_retries(security_stack, api, key, 2)
    waited, refused = sorted(retries, key=lambda answer: answer.status_code)
    print(f"retries: {waited.status_code}, {refused.status_code} {refused.text[:100]}")
    assert first.status_code == waited.status_code == 200
    assert waited.headers["x-runcap-replayed"] == "true"
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
