"""One budgeted call: reserve, walk the fallback chain, settle. Shared by every workflow.

``AgentRun`` runs attempts on the caller's task queue (the body stays with the caller); an agent
written as a workflow runs them on the worker's queue with the body in the activity input. Both
go through this one function, so the cap is enforced by the same code whichever way a call comes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from workflows import errors
    from workflows.budget import Budget, BudgetExceeded, cost_micros
    from workflows.contracts import (
        Attempt,
        AttemptInput,
        AttemptOutcome,
        CallRequest,
        CallResult,
        LedgerRow,
        Target,
        Usage,
    )

MAX_TOKENS_LIMIT = 1_000_000
MAX_INPUT_TOKENS = 50_000_000

ATTEMPT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=2,
    non_retryable_error_types=errors.NON_RETRYABLE,
)

RunAttempt = Callable[[AttemptInput], Awaitable[AttemptOutcome]]


def check_call(req: CallRequest) -> None:
    """Refuse a malformed call before it holds any money."""
    if not req.call_id:
        raise _fail(errors.BAD_CALL, "call_id is required")
    if not req.chain:
        raise _fail(errors.BAD_CALL, "the chain is empty: name at least one target")
    if not 1 <= req.max_tokens <= MAX_TOKENS_LIMIT:
        raise _fail(
            errors.BAD_CALL,
            f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}, got {req.max_tokens}",
        )
    if not 0 <= req.input_tokens <= MAX_INPUT_TOKENS:
        raise _fail(errors.BAD_CALL, f"input token estimate out of range: {req.input_tokens}")
    for target in req.chain:
        price = target.price
        if min(price.input, price.output, price.cached_input, price.cache_write) < 0:
            raise _fail(errors.BAD_CALL, f"negative price for {target.model}")
        if price.input == 0 and price.output == 0:
            raise _fail(errors.BAD_CALL, f"no price for {target.model}: free calls are refused")


def _fail(kind: str, message: str, *details: object) -> ApplicationError:
    return ApplicationError(message, *details, type=kind, non_retryable=True)


def budget_error(budget: Budget, exc: BudgetExceeded) -> ApplicationError:
    """The refusal, with the figures the api puts in its 429 body."""
    state = budget.state
    return _fail(
        errors.BUDGET_EXCEEDED,
        str(exc),
        {
            "budget_micros": state.budget_micros,
            "spent_micros": state.spent_micros,
            "reserved_micros": budget.reserved_micros,
            "remaining_micros": max(budget.remaining_micros, 0),
            "needed_micros": exc.needed_micros,
        },
    )


def _describe(err: ActivityError) -> tuple[str, str, Usage]:
    """(failure type, message, usage reported) of one failed attempt."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        usage = Usage()
        if len(cause.details) > 1 and isinstance(cause.details[1], dict):
            usage = Usage(**cause.details[1])
        return cause.type or errors.PROVIDER_UNAVAILABLE, cause.message, usage
    if isinstance(cause, TimeoutError):
        if cause.type in (TimeoutType.SCHEDULE_TO_START, TimeoutType.HEARTBEAT):
            return errors.CALLER_GONE, "the caller stopped answering", Usage()
        return errors.PROVIDER_UNAVAILABLE, "the provider timed out", Usage()
    return errors.PROVIDER_UNAVAILABLE, str(cause or err), Usage()


async def call_with_budget(
    budget: Budget,
    req: CallRequest,
    run_attempt: RunAttempt,
    *,
    run_id: str,
    key_id: str,
    min_output_tokens: int,
    record: Callable[[LedgerRow], None],
) -> CallResult:
    """Reserve synchronously (no await before it), try each target, settle the one that answered.

    Every call that held money is ``record``-ed for the ledger, failed ones too (cost 0), so
    wasted attempts stay visible. Raises only ``ApplicationError``: anything else would wedge
    the workflow task.
    """
    try:
        plan = budget.plan(req.chain, req.input_tokens, req.max_tokens, min_output_tokens)
        budget.reserve(req.call_id, plan)
    except BudgetExceeded as exc:
        raise budget_error(budget, exc) from None
    started = workflow.now()
    attempts: list[Attempt] = []

    def row(served: Target | None, usage: Usage, cost: int, error: str = "") -> LedgerRow:
        return LedgerRow(
            call_id=req.call_id,
            run_id=run_id,
            key_id=key_id,
            tags=list(req.tags),
            requested_model=req.requested_model,
            provider=served.provider if served else "",
            model=served.model if served else "",
            status="ok" if served else "failed",
            attempts=attempts,
            usage=usage,
            cost_micros=cost,
            reserved_micros=plan.reserved_micros,
            started_at=started.isoformat(),
            latency_ms=int((workflow.now() - started).total_seconds() * 1000),
            error=error,
        )

    served: Target | None = None
    outcome: AttemptOutcome | None = None
    failure: ApplicationError | None = None
    for target in req.chain:
        try:
            outcome = await run_attempt(AttemptInput(req.call_id, target, plan.max_tokens))
        except ActivityError as err:
            kind, message, usage = _describe(err)
            attempts.append(Attempt(target.provider, target.model, False, message, usage))
            if kind in (errors.PROVIDER_REJECTED, errors.CALLER_GONE):
                failure = _fail(kind, message, _attempt_details(attempts))
                break
            continue
        except BaseException:
            budget.release(req.call_id)  # cancelled or evicted: hold nothing
            raise
        attempts.append(Attempt(target.provider, target.model, True, usage=outcome.usage))
        served = target
        break
    if served is None or outcome is None:
        budget.release(req.call_id)
        failure = failure or _fail(
            errors.ALL_TARGETS_FAILED,
            f"all {len(req.chain)} targets failed",
            _attempt_details(attempts),
        )
        record(row(None, Usage(), 0, failure.message))
        raise failure
    usage = outcome.usage
    known = outcome.usage_known and usage != Usage()
    # A stream cut short or a $0 reading is billed at its reservation: no free calls.
    cost = cost_micros(served.price, usage) if known else plan.reserved_micros
    budget.settle(req.call_id, cost, usage, req.tags, served.model)
    state = budget.state
    result = CallResult(
        call_id=req.call_id,
        status="ok",
        cost_micros=cost,
        budget_micros=state.budget_micros,
        spent_micros=state.spent_micros,
        remaining_micros=max(budget.remaining_micros, 0),
        max_tokens=plan.max_tokens,
        target=served,
        usage=usage,
        attempts=attempts,
    )
    record(row(served, usage, cost))
    return result


def _attempt_details(attempts: list[Attempt]) -> list[dict[str, object]]:
    return [
        {"provider": a.provider, "model": a.model, "ok": a.ok, "error": a.error} for a in attempts
    ]
