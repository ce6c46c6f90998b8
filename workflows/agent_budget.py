"""Write a budgeted agent as a Temporal workflow: an ``AgentBudget`` in your workflow's state, and
``call_model`` for every model call.

    @workflow.defn
    class MyAgent:
        @workflow.init
        def __init__(self, task: Task) -> None:
            self.budget = AgentBudget(task.id, budget_micros=2_000_000, chain=task.chain)

        @workflow.run
        async def run(self, task: Task) -> str:
            reply = await call_model(self.budget, {"messages": [...]}, step="plan")
            self.budget.close()  # the final figures, in the Temporal UI
            return reply.text

        @workflow.query
        def spend(self) -> RunSpend:  # the dashboard's live view
            return self.budget.spend()

``call_model`` reserves the call's worst case from the budget (no await before it, so concurrent
calls of one agent cannot pass the cap together), holds it at the key's period budgets too when
the budget names a key and its periods (``workflows.agent_periods``), tries each target of the
chain as an activity under Temporal's retry policy, settles what the provider reported, and
records the call in runcap's ledger. The run's figures show in the Temporal UI (``RunCost``...)
and the dashboard, its alerts go out as a gateway run's do, and its loop guard pauses it
(``workflows.agent_controls``). A worker crash or a provider outage mid-task loses nothing: the
workflow resumes where it was. The worker must register runcap's activities (``build_worker``
does). Start the workflow with the id ``workflow_id(run_id)`` (``run-<run_id>``): the dashboard's
run page and ``POST /admin/runs/{run_id}/resume`` then reach it as they reach a gateway run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from workflows import agent_controls as controls
    from workflows import errors
    from workflows.agent_controls import Shown
    from workflows.agent_lines import PeriodHold, PeriodLine
    from workflows.agent_periods import borrow, give_back
    from workflows.agent_walk import ModelReply, text_of, walk
    from workflows.budget import (
        Budget,
        BudgetExceeded,
        Plan,
        estimate_input_tokens,
        reservation_micros,
        settled_cost,
        target_key,
    )
    from workflows.calls import budget_error, check_call, fail, ledger_row
    from workflows.contracts import (
        Attempt,
        LedgerBatch,
        PeriodBudget,
        Target,
        WireFormat,
    )
    from workflows.errors import Failure
    from workflows.guards import fingerprint
    from workflows.legacy.contracts import (
        OpenCall,
        RunState,
        Settlement,
    )
    from workflows.lending_contracts import CallNeed
    from workflows.run_contracts import RunSpend

LEDGER_RETRY = RetryPolicy(maximum_attempts=10, maximum_interval=timedelta(seconds=30))
CONTROLS = "agent-controls"
"""Patch: calls draw on the key's periods, show the run's figures in the Temporal UI, raise
alerts and pass the loop guard (agents' workflows recorded before replay without them)."""


@dataclass
class AgentBudget:
    """A run's budget, kept in the agent's own workflow state (pass it to continue-as-new).

    Fields after ``state`` came later, with defaults: a budget kept by an older workflow
    decodes as it was."""

    run_id: str
    budget_micros: int
    chain: list[Target]
    key_id: str = ""
    tags: list[str] = field(default_factory=list)
    """Tags on every call of this agent, e.g. ``agent:coder`` and ``task:123``."""
    min_output_tokens: int = 16
    state: RunState | None = None
    periods: list[PeriodBudget] = field(default_factory=list)
    """The key's day, month and total caps (``KeyPolicy.periods()``; needs ``key_id``): each
    call also needs room at each of them, as a gateway call of the key does."""
    agent: str = ""
    """Shown as ``AgentName`` in the Temporal UI (and ``task_id`` as ``TaskId``)."""
    task_id: str = ""
    loop_max_repeats: int = 0
    """The same request (messages and tools) sent this many times within
    ``loop_window_seconds`` is enough: the next call is refused and the agent is paused until
    ``resume()`` (0: no loop guard)."""
    loop_window_seconds: int = 300
    caller_timeout_seconds: int = 30
    """A key's period counts the agent silent after twice this with no word from it: a model
    call that lasts longer is billed there at its reservation."""
    visible: bool = True
    """Show the run's figures as search attributes (``RunCost``...): the namespace must have
    runcap's (``make run`` and compose register them)."""
    lines: dict[str, PeriodLine] = field(default_factory=dict)
    """Its lines at its key's periods, by period workflow id (``workflows.agent_lines``)."""
    shown: Shown = field(default_factory=Shown)
    started_calls: int = 0
    """Calls started, so calls made at once get ids of their own."""

    def __post_init__(self) -> None:
        if self.state is None:
            self.state = RunState(budget_micros=self.budget_micros)

    @property
    def money(self) -> Budget:
        assert self.state is not None
        return Budget(self.state)

    @property
    def lock(self) -> asyncio.Lock:
        """One request to the key's periods at a time (not a field: never serialised)."""
        lock: asyncio.Lock | None = self.__dict__.get("_lock")
        if lock is None:
            lock = self.__dict__["_lock"] = asyncio.Lock()
        return lock

    def spend(self) -> RunSpend:
        """The figures, as ``AgentRun.spend`` gives them (answer a query with it)."""
        return self.money.report(self.run_id)

    def close(self) -> RunSpend:
        """The agent is done: its status becomes ``closed``, its final figures show in the
        Temporal UI, and later calls are refused. Call it before the workflow returns."""
        if workflow.patched(CONTROLS):
            assert self.state is not None
            if self.state.status in ("open", "looping"):
                self.state.status = "closed"
            controls.show(self, workflow.now(), force=True)
        return self.spend()

    def resume(self) -> RunSpend:
        """A person's word: an agent paused by the loop guard takes calls again (answer the
        workflow's ``resume`` update with it)."""
        assert self.state is not None
        if self.state.status == "looping":
            self.state.status = "open"
            self.state.fingerprints.clear()
            if workflow.patched(CONTROLS):
                controls.show(self, workflow.now())
        return self.spend()


async def call_model(
    budget: AgentBudget,
    body: dict[str, Any],
    *,
    step: str = "",
    max_tokens: int = 1024,
    tags: Sequence[str] = (),
    inbound: WireFormat = "openai",
) -> ModelReply:
    """One budgeted model call from workflow code; raises ``ApplicationError`` (with a
    ``workflows.errors.Failure`` as its detail) when refused or when every target failed."""
    controlled = workflow.patched(CONTROLS)
    money = budget.money
    call_tags = [*budget.tags, *tags, *([f"step:{step}"] if step else [])]
    call_id = _call_id(budget, controlled)
    input_tokens = estimate_input_tokens(body)
    check_call(call_id, budget.chain, input_tokens, max_tokens)
    now = workflow.now()
    asked = fingerprint(body) if controlled and budget.loop_max_repeats else ""
    if controlled:
        if budget.periods and not budget.key_id:
            raise fail(Failure(errors.BAD_CALL, "periods need the key_id they belong to"))
        refused = controls.refusal_before_money(budget, asked, now)
        if refused is not None:
            await _bookkeeping(budget, now)
            raise refused
    try:
        plan = money.plan(budget.chain, input_tokens, max_tokens, budget.min_output_tokens)
        held = money.reserve(call_id, plan, _about(budget, call_tags, now.isoformat()))
    except BudgetExceeded as exc:
        if controlled:
            controls.refused(budget, now)
            await _bookkeeping(budget, now)
        raise budget_error(exc) from None
    holds: list[PeriodHold] = []
    if controlled:
        if budget.periods:
            need = CallNeed(
                call_id, budget.chain, input_tokens, plan.max_tokens, budget.min_output_tokens
            )
            try:
                borrowed = await borrow(budget, need, now)
            except ApplicationError:
                money.release(call_id)
                raise
            holds = borrowed.holds
            if borrowed.max_tokens < plan.max_tokens:  # a period afforded less: hold less here
                plan = _plan(budget, input_tokens, borrowed.max_tokens)
                money.release(call_id)
                held = money.reserve(call_id, plan, _about(budget, call_tags, now.isoformat()))
        controls.admitted(budget, asked, now)
    attempts: list[Attempt] = []
    try:
        target, reply = await walk(budget.chain, body, inbound, plan.max_tokens, attempts)
    except ApplicationError as err:
        money.release(call_id)
        money.state.failed_calls += 1
        failed = Settlement(call_id, "failed", attempts=attempts, error=err.message)
        await _record(budget, call_id, held, failed, 0, now, controlled, holds)
        raise
    cost = settled_cost("ok", target.price, reply.usage, True, plan.reserved_micros)
    overrun = money.settle(call_id, cost, reply.usage, call_tags, target.model)
    done = Settlement(call_id, "ok", target=target, usage=reply.usage, attempts=attempts)
    await _record(budget, call_id, held, done, cost, now, controlled, holds)
    if controlled:
        controls.settled(budget, now, target_key(target) if overrun else "", call_id)
        await _bookkeeping(budget, workflow.now())
    return ModelReply(reply.body, text_of(reply.body), cost, reply.usage, target, attempts)


def _call_id(budget: AgentBudget, controlled: bool) -> str:
    """The next call's id. Before controls it counted ended calls, so two calls made at once
    got one id (the second reservation failed); a budget from then goes on past its count."""
    state = budget.money.state
    number = state.calls + state.failed_calls + 1
    if controlled:
        number = max(number, budget.started_calls + 1)
        budget.started_calls = number
    return f"{budget.run_id}-{number}"


def _plan(budget: AgentBudget, input_tokens: int, max_tokens: int) -> Plan:
    return Plan(max_tokens, reservation_micros(budget.chain, input_tokens, max_tokens))


async def _bookkeeping(budget: AgentBudget, now: datetime) -> None:
    """Alerts out, then the figures (batched) into the Temporal UI."""
    await controls.deliver_alerts(budget)
    controls.show(budget, now)


def _about(budget: AgentBudget, tags: list[str], started_at: str) -> OpenCall:
    return OpenCall("workflow", 0, 0, list(budget.chain), tags, "", started_at, started_at)


async def _record(
    budget: AgentBudget,
    call_id: str,
    held: OpenCall,
    settlement: Settlement,
    cost: int,
    started: datetime,
    controlled: bool = False,
    holds: Sequence[PeriodHold] = (),
) -> None:
    """The call's ledger row; with controls, its periods hear what it cost at the same time
    (the row names the workflow as its caller, the borrower its periods know)."""
    settlement.latency_ms = int((workflow.now() - started).total_seconds() * 1000)
    row = ledger_row(budget.run_id, budget.key_id, call_id, held, settlement, cost)
    if controlled:
        row = replace(row, caller_id=workflow.info().workflow_id)
    written = workflow.execute_activity_method(
        LedgerActivities.write_ledger,
        LedgerBatch([row]),
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=LEDGER_RETRY,
    )
    if not holds:
        await written
        return
    ok = settlement.status == "ok"
    await asyncio.gather(written, give_back(budget, list(holds), cost, ok=ok))
