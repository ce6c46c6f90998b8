"""A provider that fails: a 529 storm, a hang, a stream dropped before and after bytes.

Calls go to the ``fallback`` route (``prodcheck.stack.ROUTES``): ``fake-large`` first, guarded
by a 2 s first-byte timeout, then ``fake-small``; ``alone`` is ``fake-small`` with that timeout.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from fake_provider import FakeControl
from tests.faults.gateway import Gateway
from tests.faults.money import CapWatch, assert_settled, ledger_rows

pytestmark = pytest.mark.prod
FIRST_BYTE_SECONDS = 2
LONG = " ".join(f"word{i}" for i in range(40))


async def test_a_529_storm_on_the_primary_falls_back_and_bills_only_the_fallback(
    gateway: Gateway, fake: FakeControl
) -> None:
    """Every call to the primary answers 529 (overloaded, with Retry-After) while 40 calls
    arrive at once: each is answered by the fallback at once, not after the Retry-After; each
    is billed once, at the fallback's price; the primary's failures cost nothing."""
    await fake.script(
        "fake-large", faults=[{"status": 529, "retry_after": 30, "times": None}], latency_ms=50
    )
    key = await gateway.create_key("5")
    task = uuid.uuid4().hex[:8]
    run_id = f"{key.id}.{task}"
    async with CapWatch(gateway.temporal, run_id).running():
        answers = await asyncio.gather(
            *(gateway.chat(key, task, model="fallback") for _ in range(40))
        )
    assert all(a.ok for a in answers), [a.body for a in answers if not a.ok][:3]
    assert {a.headers["x-runcap-target"] for a in answers} == {"fake/fake-small"}
    calls = await fake.calls()
    assert calls["fake-large"]["failures"] >= 40  # each call met the storm first
    await assert_settled(gateway, run_id, answers)
    rows = await ledger_rows(gateway, run_id, calls=40)
    assert {row.model for row in rows} == {"fake-small"}
    assert all([a["ok"] for a in row.attempts][-1] for row in rows)


async def test_a_hanging_provider_costs_one_first_byte_timeout(
    gateway: Gateway, fake: FakeControl
) -> None:
    """The primary accepts the connection and never answers: each of 10 calls moves to the
    fallback after the route's first-byte timeout, the hang is not tried twice, and only the
    fallback is billed. With no fallback left (a route of one hanging target) the client gets a
    retryable error in its own format, and the call costs nothing."""
    await fake.script("fake-large", timeout=True)
    key = await gateway.create_key("5")
    task = uuid.uuid4().hex[:8]
    run_id = f"{key.id}.{task}"
    async with CapWatch(gateway.temporal, run_id).running():
        answers = await asyncio.gather(
            *(gateway.chat(key, task, model="fallback") for _ in range(10))
        )
    assert all(a.ok for a in answers), [a.body for a in answers if not a.ok][:3]
    assert (await fake.calls())["fake-large"]["calls"] == 10  # once per call, never retried
    await assert_settled(gateway, run_id, answers)
    # The same hang on a model with no fallback: an error the SDKs retry, nothing billed.
    await fake.script("fake-small", timeout=True)
    stuck = await gateway.chat(key, task, model="alone")
    assert not stuck.ok
    stuck.assert_answered_or_retryable()
    spend = await assert_settled(gateway, run_id, [*answers, stuck])
    assert spend.calls == 10 and spend.failed_calls == 1


async def test_a_stream_dropped_before_any_byte_falls_back(
    gateway: Gateway, fake: FakeControl
) -> None:
    """The primary drops each stream before its first chunk: nothing reached the client, so
    the fallback streams the whole answer, and only it is billed."""
    await fake.script("fake-large", faults=[{"drop_stream_after": 0, "times": None}])
    key = await gateway.create_key("5")
    task = uuid.uuid4().hex[:8]
    run_id = f"{key.id}.{task}"
    answers = await asyncio.gather(
        *(gateway.chat(key, task, model="fallback", stream=True) for _ in range(10))
    )
    assert all(a.ok and a.body["text"].startswith("echo:") for a in answers), answers[:2]
    await assert_settled(gateway, run_id, answers)
    rows = await ledger_rows(gateway, run_id, calls=10)
    assert {(row.status, row.model) for row in rows} == {("ok", "fake-small")}


async def test_a_stream_dropped_midway_ends_with_an_error_and_bills_what_was_received(
    gateway: Gateway, fake: FakeControl
) -> None:
    """The provider drops each stream after 5 chunks: the client's stream ends with an error
    event in OpenAI's format (never a silent truncation), and each call is billed what was
    received, less than its reservation."""
    await fake.script("fake-small", reply=LONG, drop_stream_after=5)
    key = await gateway.create_key("5")
    task = uuid.uuid4().hex[:8]
    run_id = f"{key.id}.{task}"
    answers = await asyncio.gather(
        *(gateway.chat(key, task, max_tokens=500, stream=True) for _ in range(10))
    )
    for answer in answers:
        assert answer.status == 200 and not answer.ok, answer.body
        answer.assert_answered_or_retryable()
        assert answer.body["text"] and len(answer.body["text"]) < len(LONG)
    spend = await assert_settled(gateway, run_id, answers)
    rows = await ledger_rows(gateway, run_id, calls=10)
    assert {row.status for row in rows} == {"broken"}
    assert all(0 < row.cost_micros < row.reserved_micros for row in rows)
    assert spend.calls == 10
