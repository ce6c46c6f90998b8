"""SIGKILL an api instance mid-burst and mid-stream; its clients retry by Idempotency-Key.

The doomed instance gives its runs a 3 s caller timeout, so the run bills its calls that may
have gone out (its intents) soon after the kill; the other instances keep the default.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from fake_provider import FakeControl
from prodcheck.processes import Child
from tests.faults.gateway import DROPPED, Answer, Gateway, Key
from tests.faults.money import CapWatch, assert_settled, ledger_rows
from tests.polling import eventually

pytestmark = pytest.mark.prod
CALLS = 12
CALLER_TIMEOUT = {"RUNCAP_RUN_CALLER_TIMEOUT_SECONDS": "3"}
LONG = " ".join(f"word{i}" for i in range(200))


async def doomed_api(gateway: Gateway) -> tuple[Child, int]:
    """An api instance of its own (started once per session, restarted by each case)."""
    stack = gateway.stack
    for index, child in enumerate(stack.apis):
        if child.env.get("RUNCAP_RUN_CALLER_TIMEOUT_SECONDS") == "3":
            return child, index
    await stack.start_api(**CALLER_TIMEOUT)
    return stack.apis[-1], len(stack.apis) - 1


async def retry_until_final(
    gateway: Gateway, key: Key, task: str, idem: str, *, api: int, stream: bool
) -> Answer:
    """What an SDK does with a dropped connection: send the same request again, same key."""
    headers = {"Idempotency-Key": idem}
    for _ in range(5):
        answer = await gateway.chat(
            key, task, api=api, headers=headers, max_tokens=500, stream=stream
        )
        if answer.status != DROPPED:
            return answer
    return answer


async def kill_mid_call(gateway: Gateway, fake: FakeControl, *, stream: bool) -> None:
    """Calls with Idempotency-Keys on the doomed instance; kill it while they are at the
    provider (or streaming to their clients); retry each on the other instance and on the
    doomed one once it is back. Each gets one final answer, the same from both: a call cut off
    after the provider worked is billed at its reservation once and says so (502
    ``call_interrupted``, do not repeat it), and a new request then succeeds."""
    doomed, index = await doomed_api(gateway)
    key = await gateway.create_key("5")
    task = uuid.uuid4().hex[:8]
    run_id = f"{key.id}.{task}"
    assert (await gateway.chat(key, task, api=index)).ok  # the run starts on the doomed api
    if stream:
        await fake.script("fake-small", reply=LONG, chunk_delay_ms=100)
    else:
        await fake.script("fake-small", latency_ms=4000)
    keys = [f"{task}-{n}" for n in range(CALLS)]
    before = (await fake.calls())["fake-small"]["calls"]
    async with CapWatch(gateway.temporal, run_id).running():
        flowing = [asyncio.Event() for _ in keys]
        calls = [
            asyncio.create_task(
                gateway.chat(
                    key,
                    task,
                    api=index,
                    headers={"Idempotency-Key": idem},
                    max_tokens=500,
                    stream=stream,
                    streaming=started,
                )
            )
            for idem, started in zip(keys, flowing, strict=True)
        ]

        async def all_at_the_provider() -> bool:
            return (await fake.calls())["fake-small"]["calls"] >= before + CALLS

        if stream:  # every client has text on screen
            async with asyncio.timeout(60):
                await asyncio.gather(*(started.wait() for started in flowing))
        else:
            assert await eventually(all_at_the_provider, within=60)
        await doomed.kill()
        cut = await asyncio.gather(*calls)
        assert all(a.status == DROPPED for a in cut), [a.status for a in cut]
        await fake.script("fake-small", latency_ms=0)
        await gateway.stack.restart(doomed)
        first = await asyncio.gather(
            *(retry_until_final(gateway, key, task, idem, api=0, stream=stream) for idem in keys)
        )
        again = await asyncio.gather(
            *(
                retry_until_final(gateway, key, task, idem, api=index, stream=stream)
                for idem in keys
            )
        )
        fresh = await gateway.chat(key, task, headers={"Idempotency-Key": f"{task}-new"})
    for a, b in zip(first, again, strict=True):
        assert a.status == b.status == 502, a.body
        assert a.error["code"] == b.error["code"] == "call_interrupted", a.body
        assert a.headers["x-should-retry"] == b.headers["x-should-retry"] == "false"
    assert fresh.ok, fresh.body
    spend = await assert_settled(gateway, run_id, [fresh])
    rows = await ledger_rows(gateway, run_id, calls=spend.calls)
    cut_rows = [row for row in rows if row.call_id != fresh.call_id and "idem-" in row.call_id]
    # Every request the provider worked on for the cut calls is billed, once, at its reservation.
    assert len(cut_rows) == CALLS, [row.status for row in rows]
    assert all(r.status == "unknown" and r.cost_micros == r.reserved_micros > 0 for r in cut_rows)
    # Nothing else: the doomed instance's lines held unused room, and that came back (README,
    # Crashes): the first call, the cut ones, the fresh one.
    assert spend.calls == 2 + CALLS


async def test_sigkill_api_mid_burst_clients_retry_by_idempotency_key(
    gateway: Gateway, fake: FakeControl
) -> None:
    await kill_mid_call(gateway, fake, stream=False)


async def test_sigkill_api_mid_stream_clients_retry_by_idempotency_key(
    gateway: Gateway, fake: FakeControl
) -> None:
    await kill_mid_call(gateway, fake, stream=True)
