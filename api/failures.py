"""Each way a call can fail, as the one HTTP error that says so, with words an agent can act on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from api import errors as http
from api.errors import BadRequest, GatewayError
from workflows import errors
from workflows.budget import dearest_rates, fee_bound_micros
from workflows.contracts import CallResult, Refusal, Target
from workflows.errors import Failure
from workflows.money import micros_to_usd


def failure_to_http(failure: Failure, chain: Sequence[Target]) -> GatewayError:
    """The HTTP error of a failed call; ``chain`` prices the budget refusal's message."""
    kind = failure.kind
    if kind == errors.BUDGET_EXCEEDED and failure.refusal is not None:
        return budget_refusal(failure.refusal, chain)
    if kind in (errors.TOO_MANY_CALLS, errors.BUDGET_EXCEEDED):
        return http.RateLimited(failure.message, 1.0)
    if kind == errors.PROVIDER_REJECTED:
        return http.ProviderRejected(failure.provider_status or 400, failure.message)
    if kind == errors.ALL_TARGETS_FAILED:
        return http.AllTargetsFailed([_attempt(a) for a in failure.attempts])
    if kind == errors.BAD_CALL:
        return BadRequest(failure.message)
    if kind == errors.RUN_NOT_OPEN:
        return GatewayError(failure.message, status=409, code="run_closed", headers=http.NO_RETRY)
    if kind == errors.RUN_HELD:
        return run_held(failure.message)
    if kind == errors.LOOP_DETECTED:
        return GatewayError(
            failure.message, status=429, code="loop_detected", headers=http.NO_RETRY
        )
    if kind == errors.TARGET_BLOCKED:
        return GatewayError(
            failure.message, status=429, code="target_blocked", headers=http.NO_RETRY
        )
    if kind == errors.TOO_MANY_RUNS:
        return GatewayError(
            failure.message, status=429, code="too_many_runs", headers=http.NO_RETRY
        )
    return http.Unavailable(failure.message)


def run_held(message: str) -> http.BudgetExceeded:
    """The budget 429 of a run paused at its cap (its message says how to approve more): the
    same envelope as any budget refusal, so no client retries it."""
    held = http.BudgetExceeded(message)
    held.code = "run_held"
    return held


def _attempt(attempt: object) -> dict[str, object]:
    data = asdict(attempt)  # type: ignore[call-overload]
    return {k: data[k] for k in ("provider", "model", "ok", "error")}


def budget_refusal(refusal: Refusal, chain: Sequence[Target]) -> http.BudgetExceeded:
    """The 429 of a call the budget cannot pay: what the call needs, what the run has, and, when
    the call could never fit, what would."""
    usd = micros_to_usd
    rates = ""
    if chain:
        dearest = [dearest_rates(t.price, refusal.input_tokens) for t in chain]
        top_in = max(rate for rate, _ in dearest)
        top_out = max(rate for _, rate in dearest)
        rates = f" at ${usd(top_in)}/M input and ${usd(top_out)}/M output tokens"
        fees = max(fee_bound_micros(t.price) for t in chain)
        if fees:
            rates += f", and ${usd(fees)} for the server tools' uses it may make"
    needs = (
        f"this call needs ${usd(refusal.needed_micros)} held: up to {refusal.input_tokens} "
        f"input tokens and {refusal.min_output_tokens} output tokens{rates}"
    )
    has = (
        f"the run has spent ${usd(refusal.spent_micros)} of its ${usd(refusal.budget_micros)} "
        f"budget, calls in flight hold ${usd(refusal.reserved_micros)}, "
        f"${usd(refusal.remaining_micros)} remains"
    )
    if refusal.cap != "run":
        resets = (
            f" It resets at {refusal.resets_at} (UTC)."
            if refusal.resets_at
            else " It never resets: raise it, or use another key."
        )
        message = (
            f"budget exhausted: the key's {refusal.cap} budget of ${usd(refusal.budget_micros)} "
            f"has ${usd(refusal.spent_micros)} spent and calls in flight hold "
            f"${usd(refusal.reserved_micros)}; {needs}.{resets}"
        )
    elif refusal.needed_micros > refusal.budget_micros:
        fits = refusal.max_tokens_that_fit_budget
        would_fit = (
            f"A lower max_tokens (at most {fits}) would fit, or a larger budget."
            if fits > 0
            else "The prompt alone costs more than the budget: send a shorter prompt, or use a "
            "larger budget."
        )
        message = (
            f"budget too small for this call: {needs}, more than the run's whole "
            f"${usd(refusal.budget_micros)} budget. {would_fit}"
        )
    else:
        message = f"budget exhausted: {needs}; {has}."
    details = {
        "cap": refusal.cap,
        "resets_at": refusal.resets_at or None,
        "budget_usd": usd(refusal.budget_micros),
        "spent_usd": usd(refusal.spent_micros),
        "reserved_usd": usd(refusal.reserved_micros),
        "remaining_usd": usd(refusal.remaining_micros),
        "needed_usd": usd(refusal.needed_micros),
        "input_tokens": refusal.input_tokens,
        "max_tokens": refusal.max_tokens,
        "max_tokens_that_fit_budget": refusal.max_tokens_that_fit_budget,
    }
    return http.BudgetExceeded(message, details)


def interrupted(result: CallResult | None) -> http.CallInterrupted:
    """The answer to a retry of a call that was cut off after it may have been worked on."""
    billed = f" It was billed ${micros_to_usd(result.cost_micros)}." if result else ""
    return http.CallInterrupted(
        "the first request with this Idempotency-Key was cut off after the provider may have "
        f"worked on it, so it was billed and its answer is lost.{billed} Send the request again "
        "with a new Idempotency-Key."
    )
