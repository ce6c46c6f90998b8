"""The failure types a call can end with, as ``ApplicationError.type`` strings.

Workflow, activities and callers agree on these names; the api maps them to HTTP errors.

    CallFailure (ApplicationError.type)
    ├── BudgetExceeded     the run cannot afford the call (details: budget, spent, remaining)
    ├── RunNotOpen         the run was closed or revoked
    ├── RunDraining        the run is continuing as new; retry, the new run takes the call
    ├── TooManyCalls       the run already has its maximum of parallel calls in flight
    ├── BadCall            the request itself is wrong (empty chain, absurd max_tokens...)
    ├── ProviderRejected   a provider answered 4xx: not retried, not billed (details: status)
    ├── ProviderUnavailable  408/429/5xx/529/timeout: retried briefly, then the next target
    ├── AllTargetsFailed   every target of the chain failed (details: the attempts)
    ├── CallerGone         the caller that holds the body is no longer there
    └── TemporalUnavailable  the caller could not reach Temporal (raised caller-side only)
"""

from __future__ import annotations

BUDGET_EXCEEDED = "BudgetExceeded"
RUN_NOT_OPEN = "RunNotOpen"
RUN_DRAINING = "RunDraining"
BAD_CALL = "BadCall"
TOO_MANY_CALLS = "TooManyCalls"
PROVIDER_REJECTED = "ProviderRejected"
PROVIDER_UNAVAILABLE = "ProviderUnavailable"
ALL_TARGETS_FAILED = "AllTargetsFailed"
CALLER_GONE = "CallerGone"
TEMPORAL_UNAVAILABLE = "TemporalUnavailable"

NON_RETRYABLE = [PROVIDER_REJECTED, CALLER_GONE, BAD_CALL]
