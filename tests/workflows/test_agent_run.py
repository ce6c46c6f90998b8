"""AgentRun on the real dev server, with the real fake provider over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import col
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.worker import Replayer

from caller import Caller, CallFailed, CallReply, CallSpec, run_handle
from db.models import LedgerEntry
from fake_provider import FakeProvider
from providers.base import Provider
from tests.conftest import TargetFactory
from tests.polling import eventually
from workflows import errors
from workflows.agent_run import AgentRun
from workflows.budget import cost_micros, estimate_input_tokens, reservation_micros
from workflows.contracts import (
    MICROS_PER_USD,
    Extend,
    Target,
    TopUp,
    Usage,
)
from workflows.run_contracts import (
    RunInput,
    RunSpend,
    workflow_id,
)

BODY: dict[str, Any] = {"messages": [{"role": "user", "content": "fix the failing test"}]}


def new_run(budget_micros: int, **kw: Any) -> RunInput:
    return RunInput(run_id=uuid.uuid4().hex[:12], budget_micros=budget_micros, **kw)


def spec(chain: list[Target], max_tokens: int = 100, **kw: Any) -> CallSpec:
    return CallSpec(body=BODY, inbound="openai", chain=chain, max_tokens=max_tokens, **kw)


async def spend_of(caller: Caller, run: RunInput) -> RunSpend:
    """The run's figures once this caller has reported its finished calls there and handed its
    lines' unused room back (so ``reserved_micros`` is what calls in flight hold)."""
    await caller.flush(hand_back=True)
    handle = run_handle(caller.keepers.client, run.run_id)
    spend: RunSpend = await handle.query(AgentRun.spend)
    return spend


async def assert_replays(client: Client, run: RunInput) -> None:
    """The run's recorded history replays without a nondeterminism error."""
    history = await run_handle(client, run.run_id).fetch_history()
    await Replayer(workflows=[AgentRun]).replay_workflow(history)


def ledger_rows(engine: Engine, run: RunInput) -> list[LedgerEntry]:
    with engine.connect() as conn:
        rows = conn.execute(select(LedgerEntry).where(col(LedgerEntry.run_id) == run.run_id))
        return [LedgerEntry.model_validate(r._mapping) for r in rows]


@pytest.fixture(autouse=True)
async def fresh_fake(fake: FakeProvider) -> None:
    await fake.reset()


async def test_burst_of_200_spends_exactly_the_cap(
    caller: Caller, temporal_client: Client, fake: FakeProvider, target: TargetFactory
) -> None:
    """200 concurrent calls on a run that affords N: exactly N succeed, the cap holds exactly."""
    small = target("fake-small")
    estimate = estimate_input_tokens(BODY)
    await fake.script("fake-small", completion_tokens="max", prompt_tokens=estimate)
    per_call = reservation_micros([small], estimate, 100)
    assert per_call == cost_micros(small.price, Usage(estimate, 100))
    n = 7
    run = new_run(per_call * n)
    first = await caller.call(run, spec([small]))  # starts the run
    results = await asyncio.gather(
        *(caller.call(run.run_id, spec([small])) for _ in range(199)), return_exceptions=True
    )
    ok = [first, *(r for r in results if not isinstance(r, BaseException))]
    refused = [r for r in results if isinstance(r, CallFailed)]
    assert len(ok) == n
    assert len(refused) == 200 - n
    assert {r.kind for r in refused} == {errors.BUDGET_EXCEEDED}
    spend = await spend_of(caller, run)
    assert spend.spent_micros == spend.budget_micros == per_call * n
    assert spend.reserved_micros == 0 and spend.overruns == 0
    assert spend.calls == n
    await assert_replays(temporal_client, run)


async def test_fallback_bills_only_the_target_that_answered(
    caller: Caller,
    temporal_client: Client,
    fake: FakeProvider,
    target: TargetFactory,
    engine: Engine,
) -> None:
    """The first target answers 529 to everything; each call succeeds on the second."""
    large, small = target("fake-large"), target("fake-small")
    await fake.script("fake-large", faults=[{"status": 529, "times": None}])
    run = new_run(MICROS_PER_USD)
    replies = [await caller.call(run, spec([large, small])) for _ in range(3)]
    expected = 0
    for reply in replies:
        assert reply.result.target == small
        assert [a.ok for a in reply.result.attempts] == [False, True]
        assert "529" in reply.result.attempts[0].error or reply.result.attempts[0].error
        assert reply.result.cost_micros == cost_micros(small.price, reply.result.usage)
        assert reply.body is not None and reply.body["choices"][0]["message"]["content"]
        expected += reply.result.cost_micros
    spend = await spend_of(caller, run)
    assert spend.spent_micros == expected
    assert set(spend.by_model) == {"fake-small"}
    rows = ledger_rows(engine, run)  # written before each answer returned
    assert len(rows) == 3
    assert all(r.model == "fake-small" and len(r.attempts) == 2 for r in rows)
    assert sum(r.cost_micros for r in rows) == expected
    await assert_replays(temporal_client, run)


async def test_provider_400_fails_the_call_and_bills_nothing(
    caller: Caller, temporal_client: Client, fake: FakeProvider, target: TargetFactory
) -> None:
    """A 4xx is final: the provider's message comes back, nothing billed, nothing held."""
    small = target("fake-small")
    await fake.script(
        "fake-small", faults=[{"status": 400, "times": None, "message": "bad tool schema"}]
    )
    run = new_run(MICROS_PER_USD)
    with pytest.raises(CallFailed) as info:
        await caller.call(run, spec([small, target("fake-large")]))
    assert info.value.kind == errors.PROVIDER_REJECTED
    assert "bad tool schema" in info.value.message
    spend = await spend_of(caller, run)
    assert spend.spent_micros == 0 and spend.reserved_micros == 0
    assert spend.failed_calls == 1
    calls = await fake.calls()
    assert calls.get("fake-large", {}).get("calls", 0) == 0  # no fallback after a 4xx
    await assert_replays(temporal_client, run)


async def test_search_attributes_match_the_spend_query(
    caller: Caller, temporal_client: Client, target: TargetFactory
) -> None:
    """``RunCost > 0`` finds the run in visibility, with the figures of the spend query."""
    run = new_run(MICROS_PER_USD, agent="coder", task_id="t-42", tags=["agent:coder", "task:t-42"])
    for step in ("plan", "edit"):
        await caller.call(run, spec([target("fake-small")], tags=[f"step:{step}"]))
    spend = await spend_of(caller, run)
    query = f'RunCost > 0 AND WorkflowId = "{workflow_id(run.run_id)}"'

    async def listed() -> Any:
        async for wf in temporal_client.list_workflows(query):
            attrs = wf.typed_search_attributes
            cost = next(p.value for p in attrs if p.key.name == "RunCost")
            if cost == spend.spent_micros / MICROS_PER_USD:
                return attrs
        return None

    attrs = await eventually(listed)
    assert attrs, "the run never showed up with its cost"
    values = {p.key.name: p.value for p in attrs}
    assert values["RunBudget"] == 1.0
    assert values["RunCalls"] == 2
    assert values["AgentName"] == "coder" and values["TaskId"] == "t-42"
    assert set(spend.by_step) == {"step:plan", "step:edit"}
    await assert_replays(temporal_client, run)


@pytest.mark.parametrize(
    ("change", "kind", "words"),
    [
        ({"chain": []}, errors.BAD_CALL, "chain is empty"),
        ({"max_tokens": -5}, errors.BAD_CALL, "max_tokens"),
        ({"max_tokens": 10**9}, errors.BAD_CALL, "max_tokens"),
        ({"budget": 0}, errors.BAD_CALL, "budget"),
        ({"budget": -1}, errors.BAD_CALL, "budget"),
        ({"free": True}, errors.BAD_CALL, "free calls"),
    ],
)
async def test_bad_input_is_refused_with_a_clear_message(
    caller: Caller,
    temporal_client: Client,
    target: TargetFactory,
    change: dict[str, Any],
    kind: str,
    words: str,
) -> None:
    """Bad calls are refused up front, with a message that says why, and no task failure."""
    small = target("fake-small")
    chain = change.get("chain", [small])
    if change.get("free"):
        chain = [Target("fake", "free-model", "openai", small.price.__class__(0, 0))]
    run = new_run(change.get("budget", MICROS_PER_USD))
    with pytest.raises(CallFailed) as info:
        await caller.call(run, spec(chain, max_tokens=change.get("max_tokens", 100)))
    assert info.value.kind == kind
    assert words in info.value.message
    ok = await caller.call(run, spec([small])) if run.budget_micros > 0 else None
    assert ok is None or ok.result.status == "ok"  # the run still works after a refusal


def test_unknown_model_has_no_price(target: TargetFactory) -> None:
    """An unknown model cannot be priced, so no target (and no call) is made for it."""
    from providers.pricing import UnknownModel

    with pytest.raises(UnknownModel, match="no-such-model"):
        target("no-such-model")


async def test_top_up_and_close(
    caller: Caller, temporal_client: Client, target: TargetFactory
) -> None:
    """A run refused for budget works again after a top-up; a closed run refuses calls."""
    small = target("fake-small")
    run = new_run(1)
    with pytest.raises(CallFailed) as info:
        await caller.call(run, spec([small]))
    assert info.value.kind == errors.BUDGET_EXCEEDED
    handle = run_handle(temporal_client, run.run_id)
    await handle.execute_update(AgentRun.top_up, TopUp(MICROS_PER_USD))
    assert (await caller.call(run.run_id, spec([small]))).result.status == "ok"
    await handle.execute_update(AgentRun.close)
    # Closed from the Temporal client, the run stops lending at once; a caller holding a line
    # hears of it with its next report (closing through runcap's api nudges it at once).
    await caller.flush()
    with pytest.raises(CallFailed) as closed:
        await caller.call(run.run_id, spec([small]))
    assert closed.value.kind == errors.RUN_NOT_OPEN
    final = await handle.result()
    assert final.status == "closed" and final.reserved_micros == 0
    await assert_replays(temporal_client, run)


async def test_a_run_held_at_its_cap_waits_for_an_approval_with_no_timer(
    caller: Caller, temporal_client: Client, target: TargetFactory
) -> None:
    """hold_at_cap: the call the cap refuses pauses the run, and so is the next one, at once;
    the paused run waits with no timer running; a wrong approval is rejected, a right one lets
    the next call through, and a closed run takes none."""
    small = target("fake-small")
    run = new_run(1, hold_at_cap=True)
    for started in (run, run.run_id):
        with pytest.raises(CallFailed) as info:
            await caller.call(started, spec([small]))
        assert info.value.kind == errors.RUN_HELD and "runs extend" in info.value.message
    handle = run_handle(temporal_client, run.run_id)
    assert await handle.query(AgentRun.status) == "paused"

    async def no_timer_running() -> bool:
        events = (await handle.fetch_history()).events
        started = sum(e.HasField("timer_started_event_attributes") for e in events)
        ended = sum(
            e.HasField("timer_fired_event_attributes")
            or e.HasField("timer_canceled_event_attributes")
            for e in events
        )
        return started == ended

    assert await eventually(no_timer_running), "a paused run kept a timer running"
    for wrong in (Extend(), Extend(budget_micros=1), Extend(by_micros=5, budget_micros=9)):
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(AgentRun.extend, wrong)
    extended = await handle.execute_update(AgentRun.extend, Extend(by_micros=MICROS_PER_USD))
    assert extended.status == "open" and extended.budget_micros == 1 + MICROS_PER_USD
    assert (await caller.call(run.run_id, spec([small]))).result.status == "ok"
    await handle.execute_update(AgentRun.close)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(AgentRun.extend, Extend(by_micros=MICROS_PER_USD))
    await caller.flush(hand_back=True)
    assert (await handle.result()).status == "closed"
    await assert_replays(temporal_client, run)


async def test_a_1mb_prompt_stays_out_of_history(
    caller: Caller, temporal_client: Client, target: TargetFactory
) -> None:
    """History holds what budget needs, not the prompt: a 1 MB prompt adds a few KB."""
    big = {"messages": [{"role": "user", "content": "x" * 1_000_000}]}
    run = new_run(10 * MICROS_PER_USD)
    reply = await caller.call(run, CallSpec(big, "openai", [target("fake-small")], 50))
    assert reply.result.status == "ok"
    history = await run_handle(temporal_client, run.run_id).fetch_history()
    size = sum(event.ByteSize() for event in history.events)
    assert size < 20_000, f"history is {size} bytes"


async def test_an_idle_run_expires_and_reopens_with_its_spend(
    caller: Caller, temporal_client: Client, target: TargetFactory
) -> None:
    """An idle run closes itself; the next call reopens it without resetting its spend."""
    small = target("fake-small")
    run = new_run(MICROS_PER_USD, idle_timeout_seconds=1)
    first = await caller.call(run, spec([small]))
    handle = run_handle(temporal_client, run.run_id)
    expired = await handle.result()
    assert expired.status == "expired" and expired.spent_micros == first.result.cost_micros
    second = await caller.call(run, spec([small]))
    assert second.result.spent_micros == first.result.cost_micros + second.result.cost_micros
    await handle.execute_update(AgentRun.close)
    await caller.flush()  # the caller's line hears of the close (runcap's api nudges it)
    with pytest.raises(CallFailed) as closed:
        await caller.call(run, spec([small]))
    assert closed.value.kind == errors.RUN_NOT_OPEN


async def test_a_long_run_continues_as_new_without_losing_a_cent(
    temporal_client: Client,
    target: TargetFactory,
    engine: Engine,
    task_queue: str,
    providers: dict[str, Provider],
    worker: None,
) -> None:
    """Past Temporal's suggestion the run continues as new: spend, calls and ledger carry over.
    (A caller that reports after every call grows the history fast enough to get there.)"""
    small = target("fake-small")
    run = new_run(10 * MICROS_PER_USD)
    replies: list[CallReply] = []
    chatty = Caller(
        temporal_client, providers, engine=engine, workflow_task_queue=task_queue, report_every=0
    )
    async with chatty as caller:
        await _continue_as_new(caller, temporal_client, run, small, replies, engine)


async def _continue_as_new(
    caller: Caller,
    temporal_client: Client,
    run: RunInput,
    small: Target,
    replies: list[CallReply],
    engine: Engine,
) -> None:
    async def wave(step: str) -> None:
        for _ in range(10):
            replies.append(await caller.call(run, spec([small], tags=[step])))
            await caller.flush()

    for n in range(5):  # ~7 events a report; the test server suggests a new run at 400
        await wave(f"step:w{n}")
    first = await run_handle(temporal_client, run.run_id).describe()

    async def continued() -> bool:
        await wave("step:more")  # calls keep coming while the run drains and moves on
        described = await run_handle(temporal_client, run.run_id).describe()
        return described.run_id != first.run_id

    assert await eventually(continued, within=30), "the run never continued as new"
    old = temporal_client.get_workflow_handle(workflow_id(run.run_id), run_id=first.run_id)
    assert (await old.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    spend = await spend_of(caller, run)
    assert spend.calls == len(replies) and spend.reserved_micros == 0
    assert spend.spent_micros == sum(r.result.cost_micros for r in replies)
    assert {"step:w0", "step:w4", "step:more"} <= set(spend.by_step)
    rows = ledger_rows(engine, run)
    assert len(rows) == len(replies)
    assert sum(r.cost_micros for r in rows) == spend.spent_micros
    await Replayer(workflows=[AgentRun]).replay_workflow(await old.fetch_history())


async def test_a_target_refusing_runcaps_key_falls_back_without_retry(
    caller: Caller, fake: FakeProvider, target: TargetFactory
) -> None:
    """A 401 says the target cannot serve (runcap's credentials), not that the call is bad."""
    await fake.script("fake-large", faults=[{"status": 401, "times": None, "message": "bad key"}])
    reply = await caller.call(
        new_run(MICROS_PER_USD), spec([target("fake-large"), target("fake-small")])
    )
    assert reply.result.target is not None and reply.result.target.model == "fake-small"
    assert "bad key" in reply.result.attempts[0].error
    assert (await fake.calls())["fake-large"]["calls"] == 1  # no retry of a refused target
