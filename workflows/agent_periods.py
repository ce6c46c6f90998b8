"""An agent's workflow borrowing from its key's period budgets: the awaited side of
``workflows.agent_lines`` (the rules are there, pure).

Before a call goes out it holds its worst case at every current period of its key (day, month,
total), exactly as a gateway call does near a cap; after it ends, the agent reports what it cost
and hands the rest back. Each exchange is one activity (``WorkflowLendingActivities``) that
reaches all the periods at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.workflow_lending import WorkflowLendingActivities
    from workflows import errors
    from workflows.agent_lines import (
        LendBatch,
        PeriodAnswer,
        PeriodHold,
        PeriodLend,
        PeriodLine,
        answered,
        current_keepers,
        current_lines,
        ended,
        forget_settled,
        lend_request,
        reopened,
        to_report,
    )
    from workflows.calls import fail
    from workflows.contracts import Refusal
    from workflows.errors import Failure
    from workflows.lending_contracts import CallNeed, NeedAnswer
    from workflows.money import micros_to_usd

if TYPE_CHECKING:
    from workflows.agent_budget import AgentBudget

LEND_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=5,
)
"""A period that cannot be reached is retried a few seconds, then the call is refused (before
it goes out) or its report waits for the agent's next request."""
LEND_TIMEOUT = timedelta(seconds=30)


@dataclass
class Borrowed:
    """What a call holds at its periods, and the ``max_tokens`` they granted."""

    holds: list[PeriodHold]
    max_tokens: int


async def borrow(budget: AgentBudget, need: CallNeed, now: datetime) -> Borrowed:
    """Hold ``need``'s worst case at each current period of the agent's key; raises the
    refusal (``ApplicationError``, the period's figures in its ``Failure``) when one cannot pay,
    after handing back what the others granted."""
    async with budget.lock:
        lines = current_lines(
            budget.lines, budget.key_id, budget.periods, now, 2 * budget.caller_timeout_seconds
        )
        answers = await _exchange(budget, {line.keeper_id: [need] for line in lines}, now)
        holds: list[PeriodHold] = []
        refusals: list[tuple[PeriodLine, NeedAnswer | Failure]] = []
        max_tokens = need.max_tokens
        for line in lines:
            got = answers[line.keeper_id]
            answer = got.answer.needs[0] if got.answer and got.answer.needs else None
            if answer is not None and answer.granted_micros:
                holds.append(PeriodHold(line.keeper_id, line.opened_at, answer.granted_micros))
                max_tokens = min(max_tokens, answer.max_tokens)
            else:
                refusals.append((line, answer or got.failure or _unanswered(line)))
        if not refusals:
            return Borrowed(holds, max_tokens)
        for hold in holds:
            ended(budget.lines[hold.keeper_id], hold, 0, ok=False, went_out=False)
        await _report_held(budget, now)
    line, why = refusals[0]
    raise _refusal(budget, line, why)


async def give_back(budget: AgentBudget, holds: list[PeriodHold], cost: int, *, ok: bool) -> None:
    """A call ended: report what it cost to each period it held money at, with the rest."""
    for hold in holds:
        line = budget.lines.get(hold.keeper_id)
        if line is not None:
            ended(line, hold, cost, ok=ok, went_out=True)
    async with budget.lock:
        await _report_held(budget, workflow.now())


async def _report_held(budget: AgentBudget, now: datetime) -> None:
    """Tell each period what the agent's lines have to tell (the caller holds the lock), until
    they hold nothing unused: an idle line holding money would be billed whole once the period
    counts the agent silent. A period that cannot be reached hears it with the next request."""
    for _ in range(2):
        if not any(to_report(line) for line in budget.lines.values()):
            break
        try:
            await _exchange(budget, {}, now)
        except ApplicationError:
            workflow.logger.warning("a period could not be told; the next request tells it")
            break
    forget_settled(budget.lines, current_keepers(budget.key_id, budget.periods, now))


async def _exchange(
    budget: AgentBudget, needs: dict[str, list[CallNeed]], now: datetime
) -> dict[str, PeriodAnswer]:
    """One request to each line in ``needs`` (each with those needs, and every other line
    with something to report), in one activity; a line its period billed while the agent was
    silent is reopened and asked again once."""
    for keeper_id, line in budget.lines.items():
        if keeper_id not in needs and to_report(line):
            needs[keeper_id] = []
    answers: dict[str, PeriodAnswer] = {}
    borrower = workflow.info().workflow_id
    for _ in range(2):
        if not needs:
            break
        lends = [lend_request(budget.lines[k], borrower, asked) for k, asked in needs.items()]
        for lend, got in zip(lends, await _send(lends), strict=True):
            answers[lend.keeper_id] = got
            line = budget.lines[lend.keeper_id]
            if got.answer is not None:
                answered(line, lend.request, got.answer)
            elif got.failure is not None and got.failure.kind == errors.LINE_GONE:
                reopened(line, now)
            elif got.failure is not None and got.failure.kind == errors.RUN_NOT_OPEN:
                del budget.lines[lend.keeper_id]  # the period ended: nobody to report to
        needs = {k: needs[k] for k, got in answers.items() if _gone(got) and needs.get(k)}
    return answers


def _gone(got: PeriodAnswer) -> bool:
    return got.failure is not None and got.failure.kind == errors.LINE_GONE


async def _send(lends: list[PeriodLend]) -> list[PeriodAnswer]:
    try:
        batch = await workflow.execute_activity_method(
            WorkflowLendingActivities.lend_to_workflow,
            LendBatch(lends),
            start_to_close_timeout=LEND_TIMEOUT,
            retry_policy=LEND_RETRY,
        )
    except ActivityError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
        failure = Failure(
            errors.TEMPORAL_UNAVAILABLE, f"the key's period budgets did not answer: {message}"
        )
        raise fail(failure) from None
    return batch.answers


def _unanswered(line: PeriodLine) -> Failure:
    return Failure(errors.TEMPORAL_UNAVAILABLE, f"{line.keeper_id} did not answer the call")


def _refusal(budget: AgentBudget, line: PeriodLine, why: NeedAnswer | Failure) -> ApplicationError:
    """The period's refusal as the call's error: for budget, its figures (``refusal.cap`` is
    the period's kind, ``resets_at`` when the next one starts)."""
    if isinstance(why, Failure):
        return fail(why)
    refusal = why.refusal
    if refusal is None:
        kind = why.failure or errors.BUDGET_EXCEEDED
        return fail(Failure(kind, why.message or f"{line.keeper_id} refused the call"))
    return fail(Failure(errors.BUDGET_EXCEEDED, _sentence(budget, line, refusal), refusal=refusal))


def _sentence(budget: AgentBudget, line: PeriodLine, refusal: Refusal) -> str:
    start = line.start
    period = "" if start.kind == "total" else f" for {start.period}"
    resets = f"; it resets at {refusal.resets_at}" if refusal.resets_at else ""
    return (
        f"key {budget.key_id}: its {start.kind} budget{period} cannot pay for this call (it "
        f"needs at least ${micros_to_usd(refusal.needed_micros)}, "
        f"${micros_to_usd(refusal.remaining_micros)} remain){resets}"
    )
