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
            return reply.text

``call_model`` reserves the call's worst case from the budget (no await before it, so concurrent
calls of one agent cannot pass the cap together), tries each target of the chain as an activity
under Temporal's retry policy, settles what the provider reported, and records the call in
runcap's ledger. A worker crash or a provider outage mid-task loses nothing: the workflow resumes
where it was. The worker must register ``ModelCallActivities`` and ``LedgerActivities`` (runcap's
worker does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from activities.model_call import ModelCallActivities, TargetCall, TargetReply
    from workflows import errors
    from workflows.budget import Budget, BudgetExceeded, estimate_input_tokens, settled_cost
    from workflows.calls import budget_error, check_call, fail, ledger_row
    from workflows.contracts import (
        Attempt,
        LedgerBatch,
        Target,
        Usage,
        WireFormat,
    )
    from workflows.errors import Failure
    from workflows.legacy.contracts import (
        OpenCall,
        RunState,
        Settlement,
    )
    from workflows.run_contracts import RunSpend

TARGET_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=2,
    non_retryable_error_types=errors.NON_RETRYABLE,
)
"""Each target gets two tries, then the chain moves on: every retry policy has a bound."""
TARGET_TIMEOUT = timedelta(minutes=5)
LEDGER_RETRY = RetryPolicy(maximum_attempts=10, maximum_interval=timedelta(seconds=30))


@dataclass
class AgentBudget:
    """A run's budget, kept in the agent's own workflow state (pass it to continue-as-new)."""

    run_id: str
    budget_micros: int
    chain: list[Target]
    key_id: str = ""
    tags: list[str] = field(default_factory=list)
    """Tags on every call of this agent, e.g. ``agent:coder`` and ``task:123``."""
    min_output_tokens: int = 16
    state: RunState | None = None

    def __post_init__(self) -> None:
        if self.state is None:
            self.state = RunState(budget_micros=self.budget_micros)

    @property
    def money(self) -> Budget:
        assert self.state is not None
        return Budget(self.state)

    def spend(self) -> RunSpend:
        """The figures, as ``AgentRun.spend`` gives them (answer a query with it)."""
        return self.money.report(self.run_id)


@dataclass
class ModelReply:
    body: dict[str, Any]
    """The provider's answer in the format the call was written in."""
    text: str
    cost_micros: int
    usage: Usage
    target: Target
    attempts: list[Attempt]


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
    money = budget.money
    call_tags = [*budget.tags, *tags, *([f"step:{step}"] if step else [])]
    call_id = f"{budget.run_id}-{money.state.calls + money.state.failed_calls + 1}"
    input_tokens = estimate_input_tokens(body)
    check_call(call_id, budget.chain, input_tokens, max_tokens)
    now = workflow.now()
    try:
        plan = money.plan(budget.chain, input_tokens, max_tokens, budget.min_output_tokens)
        held = money.reserve(call_id, plan, _about(budget, call_tags, now.isoformat()))
    except BudgetExceeded as exc:
        raise budget_error(exc) from None
    attempts: list[Attempt] = []
    try:
        target, reply = await _walk(budget.chain, body, inbound, plan.max_tokens, attempts)
    except ApplicationError as err:
        money.release(call_id)
        money.state.failed_calls += 1
        failed = Settlement(call_id, "failed", attempts=attempts, error=err.message)
        await _record(budget, call_id, held, failed, 0, now)
        raise
    cost = settled_cost("ok", target.price, reply.usage, True, plan.reserved_micros)
    money.settle(call_id, cost, reply.usage, call_tags, target.model)
    done = Settlement(call_id, "ok", target=target, usage=reply.usage, attempts=attempts)
    await _record(budget, call_id, held, done, cost, now)
    return ModelReply(reply.body, _text_of(reply.body), cost, reply.usage, target, attempts)


def _about(budget: AgentBudget, tags: list[str], started_at: str) -> OpenCall:
    return OpenCall("workflow", 0, 0, list(budget.chain), tags, "", started_at, started_at)


async def _walk(
    chain: list[Target],
    body: dict[str, Any],
    inbound: WireFormat,
    max_tokens: int,
    attempts: list[Attempt],
) -> tuple[Target, TargetReply]:
    for target in chain:
        try:
            reply = await workflow.execute_activity_method(
                ModelCallActivities.call_target,
                TargetCall(body, inbound, target, max_tokens),
                start_to_close_timeout=TARGET_TIMEOUT,
                retry_policy=TARGET_RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            attempts.append(Attempt(target.provider, target.model, False, message))
            if isinstance(cause, ApplicationError) and cause.type == errors.PROVIDER_REJECTED:
                raise fail(Failure(errors.PROVIDER_REJECTED, message, attempts=attempts)) from None
            continue
        attempts.append(Attempt(target.provider, target.model, True, usage=reply.usage))
        return target, reply
    failure = Failure(
        errors.ALL_TARGETS_FAILED, f"all {len(chain)} targets failed", attempts=attempts
    )
    raise fail(failure)


async def _record(
    budget: AgentBudget,
    call_id: str,
    held: OpenCall,
    settlement: Settlement,
    cost: int,
    started: datetime,
) -> None:
    settlement.latency_ms = int((workflow.now() - started).total_seconds() * 1000)
    row = ledger_row(budget.run_id, budget.key_id, call_id, held, settlement, cost)
    await workflow.execute_activity_method(
        LedgerActivities.write_ledger,
        LedgerBatch([row]),
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=LEDGER_RETRY,
    )


def _text_of(body: dict[str, Any]) -> str:
    choices = body.get("choices")
    if isinstance(choices, list) and choices:
        return str((choices[0].get("message") or {}).get("content") or "")
    blocks = body.get("content")
    if isinstance(blocks, list):
        return "".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict))
    return ""
