"""Advances, the run's side, pure: when a caller may hold a slice of the run's budget, and how big.

Why: a reservation in the run costs every call a Temporal round trip. Far from its caps, the run
advances a caller instance a few worst cases like the asking call's, and the caller reserves its
next calls against that in its own process. Near a cap there are none: every call reserves in the
run, so money held in one caller's advance cannot get another caller's call refused for long.

Invariant: an advance is held in the run like a call's reservation, so spent + reserved stays
within every cap with advances out; each call under it is charged once; what is left is released
only when its caller retires it (all its calls settled), or billed as ``unknown`` when the
caller goes silent, since the provider may have worked on calls the run never heard of.
"""

from __future__ import annotations

from workflows.contracts import (
    RecordedCall,
    Usage,
)
from workflows.legacy.contracts import (
    OpenCall,
    Settlement,
)

ADVANCE_CALLS = 8
"""An advance covers this many calls like the one that asked for it, unless the caller asks for
more (it runs that many at once), up to ``MAX_CALLS``."""
MAX_CALLS = 64
PER_CALLER = 3
"""Advances one caller may hold in a run: a new one while older ones' calls finish or their
return is on its way (it asks for the new one without waiting for that)."""
SHARE = 4
"""An advance takes at most a quarter of what is left (of the run, and of each period lease)."""
MIN_CALLS = 2
"""Below two calls' worth an advance saves nothing: the run is near its cap, calls reserve there."""
CALLS_PER_ADVANCE = 256
"""A caller starts at most this many calls under one advance (its money comes back as calls
cost less than they held), so the run's list of those it settled stays short."""
USE_SECONDS = 30
"""A caller starts no new call under an advance after this long, and retires it."""
UNREPORTED = "an api instance holding an advance stopped reporting: its unreported part is billed"


def advance_size(per_call: int, room: int, wanted: int = 0) -> int:
    """Whole calls like the asking one: ``wanted`` (``ADVANCE_CALLS`` by default, at most
    ``MAX_CALLS``), at most ``room / SHARE``; 0 near the cap."""
    if per_call <= 0:
        return 0
    want = min(max(wanted, ADVANCE_CALLS), MAX_CALLS)
    calls = min(want, room // (SHARE * per_call))
    return calls * per_call if calls >= MIN_CALLS else 0


def call_under(advance: OpenCall, s: Settlement) -> OpenCall:
    """A call under an advance, described as an open call from what its settlement carries."""
    return OpenCall(
        caller_id=advance.caller_id,
        reserved_micros=s.reserved_micros,
        max_tokens=s.max_tokens,
        chain=[s.target] if s.target else [],
        tags=list(s.tags),
        requested_model=s.requested_model,
        started_at=s.started_at or advance.started_at,
        deadline=advance.deadline,
        leases=list(advance.leases),
    )


def recorded_settlement(advance_id: str, call: RecordedCall) -> Settlement:
    """How a call recorded under an advance settles when its caller went silent: as recorded,
    at the cost the caller billed it (the run never saw its target's price)."""
    return Settlement(
        call.call_id,
        call.status,
        usage=call.usage,
        usage_known=call.usage != Usage(),
        attempts=call.attempts,
        latency_ms=call.latency_ms,
        error=call.error,
        ledger_written=True,
        advance_id=advance_id,
        reserved_micros=call.reserved_micros,
        tags=call.tags,
        requested_model=call.requested_model,
        started_at=call.started_at,
        recorded_cost_micros=call.cost_micros,
    )
