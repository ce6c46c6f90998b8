"""How a call can fail: the kinds, and the one dataclass that carries a failure everywhere.

Workflows, activities, the caller and the api agree on these names; the api maps each kind to one
HTTP error. A failure crosses every boundary (activity to workflow, workflow to caller, caller to
api) as ``Failure``, never as positional details, so a provider's status or usage is not lost.

    Failure.kind
    ├── BudgetExceeded       the run cannot afford the call (``refusal`` has the figures)
    ├── RunNotOpen           the run was closed, revoked or expired
    ├── RunDraining          the run is continuing as new; retry, the new run takes the call
    ├── TooManyCalls         the run already has its maximum of parallel calls in flight
    ├── TooManyRuns          the key already has its ``max_open_runs`` runs open
    ├── LoopDetected         the run kept sending the same request and is paused
    ├── RunHeld              the run reached its cap and waits for a person to approve more
    ├── TargetBlocked        every target of the call is closed after an overrun
    ├── BadCall              the request itself is wrong (empty chain, absurd max_tokens...)
    ├── ProviderRejected     a provider refused the request (4xx): final, not billed
    ├── ProviderUnavailable  408/429/5xx/529/timeout: retried briefly, then the next target
    ├── AllTargetsFailed     every target of the chain failed (``attempts`` says how)
    ├── LineGone             the run billed this caller's line after it went silent: forget it
    ├── LegacyRun            the run started before lines and takes no ``lend``: a new run will
    ├── CallerGone           the caller that holds the body is no longer there
    ├── StreamBroken         the provider's stream broke after bytes reached the client
    └── TemporalUnavailable  the caller could not reach Temporal (raised caller-side only)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workflows.contracts import Attempt, Refusal, Usage

BUDGET_EXCEEDED = "BudgetExceeded"
RUN_NOT_OPEN = "RunNotOpen"
RUN_DRAINING = "RunDraining"
BAD_CALL = "BadCall"
TOO_MANY_CALLS = "TooManyCalls"
TOO_MANY_RUNS = "TooManyRuns"
LOOP_DETECTED = "LoopDetected"
RUN_HELD = "RunHeld"
TARGET_BLOCKED = "TargetBlocked"
PROVIDER_REJECTED = "ProviderRejected"
PROVIDER_UNAVAILABLE = "ProviderUnavailable"
ALL_TARGETS_FAILED = "AllTargetsFailed"
CALLER_GONE = "CallerGone"
LINE_GONE = "LineGone"
LEGACY_RUN = "LegacyRun"
STREAM_BROKEN = "StreamBroken"
TEMPORAL_UNAVAILABLE = "TemporalUnavailable"

NON_RETRYABLE = [PROVIDER_REJECTED, CALLER_GONE, BAD_CALL]


@dataclass
class Failure:
    """One failed call or attempt, with everything the next layer needs to decide and report."""

    kind: str
    message: str
    provider_status: int | None = None
    """The provider's HTTP status, passed on to the client for a rejected request."""
    attempts: list[Attempt] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    """What the provider reported using before it failed (kept so waste is visible)."""
    refusal: Refusal | None = None
    retry_after: float | None = None
    """Seconds the provider asked us to wait, when it said."""
