"""What every budgeted call shares, whichever path it takes: the checks before it holds money,
the refusal it gets when the budget cannot pay, and the ledger row it leaves.

``AgentRun`` (gateway path) and ``call_model`` (an agent's own workflow) both use these, so a call
is checked, refused and recorded the same way on either path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from temporalio.exceptions import ApplicationError

from workflows import errors
from workflows.budget import BudgetExceeded
from workflows.contracts import (
    LedgerRow,
    Target,
)
from workflows.errors import Failure
from workflows.legacy.contracts import (
    OpenCall,
    Settlement,
)

MAX_TOKENS_LIMIT = 1_000_000
MAX_INPUT_TOKENS = 50_000_000


def fail(failure: Failure, *, non_retryable: bool = True) -> ApplicationError:
    """``failure`` as the ``ApplicationError`` that carries it across Temporal."""
    return ApplicationError(
        failure.message, asdict(failure), type=failure.kind, non_retryable=non_retryable
    )


def check_call(call_id: str, chain: Sequence[Target], input_tokens: int, max_tokens: int) -> None:
    """Refuse a malformed call before it holds any money."""
    problem = call_problem(call_id, chain, input_tokens, max_tokens)
    if problem:
        raise fail(Failure(errors.BAD_CALL, problem))


def call_problem(call_id: str, chain: Sequence[Target], input_tokens: int, max_tokens: int) -> str:
    """What is wrong with a call before it holds any money (empty: nothing)."""
    if not call_id:
        return "call_id is required"
    if not chain:
        return "the chain is empty: name at least one target"
    if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        return f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}, got {max_tokens}"
    if not 0 <= input_tokens <= MAX_INPUT_TOKENS:
        return f"input token estimate out of range: {input_tokens}"
    for target in chain:
        price = target.price
        if min(price.input, price.output, price.cached_input, price.cache_write) < 0:
            return f"negative price for {target.model}"
        if price.input == 0 and price.output == 0:
            return f"no price for {target.model}: free calls are refused"
    return ""


def budget_error(exc: BudgetExceeded) -> ApplicationError:
    """The refusal, with the figures the api puts in its 429."""
    return fail(Failure(errors.BUDGET_EXCEEDED, str(exc), refusal=exc.refusal))


def ledger_row(
    run_id: str, key_id: str, call_id: str, held: OpenCall, settlement: Settlement, cost: int
) -> LedgerRow:
    """The ledger row of a settled call, as the run records it."""
    served = settlement.target
    return LedgerRow(
        call_id=call_id,
        run_id=run_id,
        key_id=key_id,
        tags=list(held.tags),
        requested_model=held.requested_model,
        provider=served.provider if served else "",
        model=served.model if served else "",
        status=settlement.status,
        attempts=list(settlement.attempts),
        usage=settlement.usage,
        cost_micros=cost,
        reserved_micros=held.reserved_micros,
        started_at=held.started_at,
        latency_ms=settlement.latency_ms,
        error=settlement.error,
    )
