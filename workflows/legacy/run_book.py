"""The run's books: everything ``AgentRun`` decides synchronously, without Temporal.

Admission (open? not looping? a usable target? within parallel calls?), reservation against the
run's budget and its period leases, settlement (with overruns contained), expiry of silent
callers, and the alerts all of these raise. ``AgentRun`` only adds what needs awaiting: drawing
and giving back leases, ledger writes, alerts delivery. The clock is passed in, so every rule
here is unit-tested on its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from temporalio.exceptions import ApplicationError

from workflows import errors
from workflows.budget import Budget, BudgetExceeded, Plan, settled_cost, target_key
from workflows.calls import budget_error, check_call, fail, ledger_row
from workflows.contracts import (
    Alert,
    CallResult,
    RecordedCall,
    Target,
    Usage,
)
from workflows.errors import Failure
from workflows.legacy.advances import (
    ADVANCE_CALLS,
    PER_CALLER,
    SHARE,
    UNREPORTED,
    USE_SECONDS,
    advance_size,
    call_under,
)
from workflows.legacy.contracts import (
    Advance,
    Grant,
    OpenCall,
    ReserveRequest,
    RunState,
    Settlement,
)
from workflows.legacy.leases import Draw, RunLeases
from workflows.money import micros_to_usd
from workflows.run_contracts import RunInput

KEPT_RESULTS = 256
KEPT_FINGERPRINTS = 1_000
UNKNOWN_OUTCOME = "the caller stopped reporting; billed at its reservation"
AlertKind = Literal["threshold", "refused", "overrun", "loop"]


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


class RunBook:
    """The run's state and the rules that change it."""

    def __init__(self, run: RunInput, state: RunState) -> None:
        self.run = run
        self.state = state
        self.budget = Budget(state)
        self.leases = RunLeases(state)
        self.dirty = True
        """Something visible changed: search attributes and memo need a refresh."""

    # ---- admission and reservation ------------------------------------------------------

    def admit(self, req: ReserveRequest, now: datetime, *, draining: bool) -> None:
        """Refuse a call the run cannot take at all, before it holds any money."""
        state = self.state
        if state.status == "looping":
            raise fail(Failure(errors.LOOP_DETECTED, self._paused_message()))
        if state.status != "open":
            raise fail(Failure(errors.RUN_NOT_OPEN, f"run {self.run.run_id} is {state.status}"))
        if draining:
            raise ApplicationError("run is continuing as new; retry", type=errors.RUN_DRAINING)
        check_call(req.call_id, req.chain, req.input_tokens, req.max_tokens)
        if not self.usable(req.chain):
            blocked = ", ".join(sorted(state.blocked_targets))
            message = (
                f"every target of this call is closed after an overrun ({blocked}): a provider "
                "billed past what the call reserved. Resume the run to reopen them."
            )
            raise fail(Failure(errors.TARGET_BLOCKED, message))
        limit = self.run.max_parallel_calls
        if limit and len(state.open_calls) >= limit:
            raise fail(
                Failure(errors.TOO_MANY_CALLS, f"run already has {limit} calls in flight"),
                non_retryable=False,
            )

    def usable(self, chain: list[Target]) -> list[Target]:
        return [t for t in chain if target_key(t) not in self.state.blocked_targets]

    def check_loop(self, req: ReserveRequest, now: datetime) -> None:
        """The loop guard: the same request admitted ``loop_max_repeats`` times within the
        window pauses the run and refuses this one."""
        repeats, fingerprint = self.run.loop_max_repeats, req.fingerprint
        if not repeats or not fingerprint:
            return
        window = timedelta(seconds=self.run.loop_window_seconds)
        recent = [t for t in self.state.fingerprints.get(fingerprint, []) if now - at(t) < window]
        self.state.fingerprints[fingerprint] = recent
        if len(recent) < repeats:
            return
        self.state.status = "looping"
        self.dirty = True
        detail = (
            f"run {self.run.run_id} sent the same request {len(recent) + 1} times within "
            f"{self.run.loop_window_seconds} s and is paused"
        )
        self.raise_alert("loop", 0, now, detail, event=f"loop:{now.isoformat()}")
        raise fail(Failure(errors.LOOP_DETECTED, self._paused_message()))

    def _paused_message(self) -> str:
        return (
            f"loop detected: run {self.run.run_id} kept sending the same request (same messages "
            f"and tools, {self.run.loop_max_repeats} times within "
            f"{self.run.loop_window_seconds} s), so it is paused and every call is refused. An "
            "agent should stop and tell its user; a person can look at the transcript and "
            f"resume it: POST /admin/runs/{self.run.run_id}/resume."
        )

    def planned_need(self, req: ReserveRequest) -> tuple[int, int]:
        """What the call would hold against the run's budget alone, and its least: the amounts
        its period leases must cover."""
        chain = self.usable(req.chain)
        floor = min(req.max_tokens, self.run.min_output_tokens)
        factors = self.state.output_factors
        try:
            plan = self.budget.plan(chain, req.input_tokens, req.max_tokens, floor, factors=factors)
        except BudgetExceeded:
            return 0, 0
        least = self.budget.plan(chain, req.input_tokens, floor, floor, factors=factors)
        return plan.reserved_micros, least.reserved_micros

    def draws(self, req: ReserveRequest, now: datetime, *, advance: bool = False) -> list[Draw]:
        """The period leases to draw before ``req`` can be reserved (none for most calls).
        With ``advance``, enough for the caller's advance too, where the period can spare it."""
        if not self.state.periods:
            return []
        need, floor = self.planned_need(req)
        extra = (SHARE + 1) * ADVANCE_CALLS * need if advance else 0
        return self.leases.draws(now, need, floor, extra) if need else []

    def reserve(self, req: ReserveRequest, now: datetime) -> OpenCall:
        """Hold the call's worst case against the run and every period lease, or refuse."""
        chain = self.usable(req.chain)
        limit, tight = self.leases.limit(now)
        try:
            plan = self.budget.plan(
                chain,
                req.input_tokens,
                req.max_tokens,
                self.run.min_output_tokens,
                limit=limit,
                factors=self.state.output_factors,
            )
        except BudgetExceeded as exc:
            if limit is not None and limit < self.budget.remaining_micros:
                exc.refusal.cap = tight.kind if tight else self.state.periods[0].kind
                exc.refusal.resets_at = tight.ends_at if tight else ""
            self.refused(now, exc.refusal.cap)
            self.state.advances_paused = True  # near a cap: callers hand their advances back
            raise budget_error(exc) from None
        about = OpenCall(
            caller_id=req.caller_id,
            reserved_micros=plan.reserved_micros,
            max_tokens=plan.max_tokens,
            chain=chain,
            tags=req.tags,
            requested_model=req.requested_model,
            started_at=now.isoformat(),
            deadline=(now + timedelta(seconds=self.run.call_timeout_seconds)).isoformat(),
            leases=self.leases.lease_ids(now),
        )
        held = self.budget.reserve(req.call_id, plan, about)
        if self.run.loop_max_repeats and req.fingerprint:
            self.state.fingerprints.setdefault(req.fingerprint, []).append(now.isoformat())
            while len(self.state.fingerprints) > KEPT_FINGERPRINTS:
                del self.state.fingerprints[next(iter(self.state.fingerprints))]
        self.state.results.pop(req.call_id, None)  # a failed call id tried again
        self.state.callers[req.caller_id] = now.isoformat()
        return held

    def advance(
        self, req: ReserveRequest, held: OpenCall, now: datetime, advance_id: str
    ) -> Advance | None:
        """An advance for the caller of ``req`` (whose call was just reserved as ``held``) when
        the run is far enough from its caps and nothing needs each call to pass through it (the
        loop guard, a parallel-call limit, a closed target); else ``None``."""
        state = self.state
        if not self.advances_welcome() or self.run.loop_max_repeats or self.run.max_parallel_calls:
            return None
        holding = [
            c for c in state.open_calls.values() if c.advance and c.caller_id == req.caller_id
        ]
        if len(holding) >= PER_CALLER:
            return None  # it hands one back first
        calls = req.advance_calls
        size = advance_size(held.reserved_micros, self.budget.remaining_micros, calls)
        if not size:
            state.advances_paused = True  # the run itself is near its cap
            return None
        limit, _ = self.leases.limit(now)
        if limit is not None:
            size = min(size, advance_size(held.reserved_micros, limit, calls))
            if not size:
                return None  # the period lease is short this time; the next draw is bigger
        use_until = now + timedelta(seconds=USE_SECONDS)
        about = OpenCall(
            caller_id=req.caller_id,
            reserved_micros=size,
            max_tokens=0,
            chain=[],
            tags=[],
            requested_model="",
            started_at=now.isoformat(),
            deadline=(use_until + timedelta(seconds=self.run.call_timeout_seconds)).isoformat(),
            leases=self.leases.lease_ids(now),
            advance=True,
        )
        self.budget.reserve(advance_id, Plan(0, size), about)
        return Advance(
            advance_id=advance_id,
            micros=size,
            use_until=use_until.isoformat(),
            call_timeout_seconds=self.run.call_timeout_seconds,
            factors=dict(state.output_factors),
            blocked=sorted(state.blocked_targets),
        )

    def advances_welcome(self) -> bool:
        """Whether callers may hold advances now (what each settle batch's answer says)."""
        state = self.state
        return state.status == "open" and not state.advances_paused and not state.blocked_targets

    def retire(self, advance_id: str) -> None:
        """Its caller is done with an advance (every call under it settled): release the rest."""
        held = self.state.open_calls.get(advance_id)
        if held is not None and held.advance:
            self.budget.release(advance_id)
            self.dirty = True

    def is_advance(self, call_id: str) -> bool:
        held = self.state.open_calls.get(call_id)
        return held is not None and held.advance

    def bill_unreported(self, advance_id: str, now: datetime) -> None:
        """An advance whose caller went silent: what no recorded call accounts for is billed as
        ``unknown`` (the provider may have worked on calls the run never heard of)."""
        held = self.state.open_calls.get(advance_id)
        if held is None or not held.advance:
            return
        if held.reserved_micros == 0:
            self.budget.release(advance_id)
            return
        cost = held.reserved_micros
        s = Settlement(advance_id, "unknown", error=UNREPORTED)
        self.budget.settle(advance_id, cost, Usage(), [], "(unreported)")
        self.leases.charge(held, cost)
        self._booked(s, held, cost, now)

    def grant(
        self,
        call_id: str,
        held: OpenCall | None,
        done: CallResult | None = None,
        advance: Advance | None = None,
    ) -> Grant:
        return Grant(
            call_id=call_id,
            chain=held.chain if held else [],
            max_tokens=held.max_tokens if held else 0,
            reserved_micros=held.reserved_micros if held else 0,
            deadline=held.deadline if held else "",
            budget_micros=self.state.budget_micros,
            spent_micros=self.state.spent_micros,
            remaining_micros=max(self.budget.remaining_micros, 0),
            settled=done,
            advance=advance,
        )

    # ---- settlement ---------------------------------------------------------------------

    def heard_from(self, caller_id: str, now: datetime) -> None:
        """A settle batch (or heartbeat) from ``caller_id``."""
        if any(c.caller_id == caller_id for c in self.state.open_calls.values()):
            self.state.callers[caller_id] = now.isoformat()
        else:
            self.state.callers.pop(caller_id, None)

    def settle(self, s: Settlement, now: datetime) -> None:
        """Turn a call's reservation into spend; a call that is not open is ignored, so no call
        is ever charged twice. A settle above its reservation is an overrun: charged in full,
        and its target closed to new calls of this run."""
        if s.advance_id:
            self._settle_under(s, now)
            return
        held = self.state.open_calls.get(s.call_id)
        if held is None:
            return
        if s.status == "failed":
            self.budget.release(s.call_id)
            self.state.failed_calls += 1
            cost = 0
        else:
            cost = self._price(s, held)
            model = s.target.model if s.target else held.requested_model
            overrun = self.budget.settle(s.call_id, cost, s.usage, held.tags, model)
            self._charged(s, held, cost, overrun, now)
        self._remember(
            CallResult(
                call_id=s.call_id,
                status=s.status,
                cost_micros=cost,
                budget_micros=self.state.budget_micros,
                spent_micros=self.state.spent_micros,
                remaining_micros=max(self.budget.remaining_micros, 0),
                max_tokens=held.max_tokens,
                target=s.target,
                usage=s.usage,
                attempts=s.attempts,
                error=s.error,
            )
        )
        self._booked(s, held, cost, now)

    def _settle_under(self, s: Settlement, now: datetime) -> None:
        """A call its caller reserved under an advance. Ignored once the advance is gone
        (retired, or billed when its caller went silent) and when settled before."""
        advance = self.state.open_calls.get(s.advance_id)
        if advance is None or not advance.advance or s.call_id in advance.settled_calls:
            return
        advance.settled_calls.append(s.call_id)
        held = call_under(advance, s)
        if s.status == "failed":
            self.state.failed_calls += 1
            cost = 0
        else:
            cost = s.recorded_cost_micros if s.recorded_cost_micros >= 0 else self._price(s, held)
            model = s.target.model if s.target else held.requested_model
            overrun = self.budget.settle_under(
                s.advance_id, cost, s.usage, held.tags, model, held.reserved_micros
            )
            self._charged(s, held, cost, overrun, now)
        self._booked(s, held, cost, now)

    def _price(self, s: Settlement, held: OpenCall) -> int:
        target = s.target or (held.chain[0] if held.chain else None)
        if target is None:
            return held.reserved_micros
        return settled_cost(s.status, target.price, s.usage, s.usage_known, held.reserved_micros)

    def _charged(
        self, s: Settlement, held: OpenCall, cost: int, overrun: int, now: datetime
    ) -> None:
        self.leases.charge(held, cost)
        if overrun:
            self._contain_overrun(s, held, cost, now)

    def _booked(self, s: Settlement, held: OpenCall, cost: int, now: datetime) -> None:
        """The ledger row the caller could not write, and the alerts spend crossed."""
        if not s.ledger_written:
            row = ledger_row(self.run.run_id, self.run.key_id, s.call_id, held, s, cost)
            self.state.pending_ledger.append(row)
        self.dirty = True
        for pct in self.budget.crossed_thresholds():
            self.raise_alert("threshold", pct, now)

    def _contain_overrun(self, s: Settlement, held: OpenCall, cost: int, now: datetime) -> None:
        target = s.target or held.chain[0]
        key = target_key(target)
        if 0 < held.max_tokens < s.usage.output_tokens:
            factor = -(-s.usage.output_tokens * 1000 // held.max_tokens)
            self.state.output_factors[key] = max(self.state.output_factors.get(key, 1000), factor)
        first = key not in self.state.blocked_targets
        self.state.blocked_targets[key] = (
            f"billed {cost} micro-USD for a call that reserved {held.reserved_micros}"
        )
        if first:
            detail = (
                f"{key} billed ${micros_to_usd(cost)} for a call that held "
                f"${micros_to_usd(held.reserved_micros)} ({s.usage.output_tokens} output tokens "
                f"for max_tokens={held.max_tokens}); it takes no more calls of this run until the "
                "run is resumed"
            )
            self.raise_alert("overrun", 0, now, detail, event=f"overrun:{key}:{s.call_id}")

    def expired(self, now: datetime) -> list[str]:
        """Open calls whose caller is silent past its timeout, or past their deadline."""
        silence = timedelta(seconds=self.run.caller_timeout_seconds)
        return [
            call_id
            for call_id, held in self.state.open_calls.items()
            if now - at(self.state.callers.get(held.caller_id, held.started_at)) >= silence
            or now >= at(held.deadline)
        ]

    def forget_silent_callers(self) -> None:
        live = {held.caller_id for held in self.state.open_calls.values()}
        for caller_id in [c for c in self.state.callers if c not in live]:
            del self.state.callers[caller_id]

    def next_expiry(self, now: datetime) -> timedelta | None:
        """How long until some open call must be expired, if any is open."""
        if not self.state.open_calls:
            return None
        silence = timedelta(seconds=self.run.caller_timeout_seconds)
        soonest = min(
            min(at(self.state.callers.get(h.caller_id, h.started_at)) + silence, at(h.deadline))
            for h in self.state.open_calls.values()
        )
        return max(soonest - now, timedelta(0))

    def _remember(self, result: CallResult) -> None:
        results = self.state.results
        results[result.call_id] = result
        while len(results) > KEPT_RESULTS:
            del results[next(iter(results))]

    # ---- control ------------------------------------------------------------------------

    def resume(self) -> None:
        """An operator's word: a looping run reopens, targets closed by overruns reopen."""
        if self.state.status == "looping":
            self.state.status = "open"
        self.state.blocked_targets.clear()
        self.state.fingerprints.clear()
        self.dirty = True

    # ---- alerts -------------------------------------------------------------------------

    def refused(self, now: datetime, cap: str) -> None:
        """The first refusal of the run raises an alert."""
        if not self.state.refused_alerted:
            self.state.refused_alerted = True
            self.raise_alert("refused", 0, now)

    def raise_alert(
        self, kind: AlertKind, pct: int, now: datetime, detail: str = "", *, event: str = ""
    ) -> None:
        """Queue an alert; ``detail`` is a sentence when the standard one would not say enough
        (the delivery writes the standard sentence for thresholds and refusals)."""
        run = self.run
        self.state.pending_alerts.append(
            Alert(
                run_id=run.run_id,
                key_id=run.key_id,
                kind=kind,
                threshold_percent=pct,
                budget_micros=self.state.budget_micros,
                spent_micros=self.state.spent_micros,
                at=now.isoformat(),
                event_id=f"run:{run.run_id}:{event or f'{kind}:{pct}:{self.state.budget_micros}'}",
                detail=detail,
            )
        )
        self.dirty = True


def as_settlement(call_id: str, held: OpenCall, recorded: RecordedCall | None) -> Settlement:
    """How an expired call settles: as its caller recorded it, else ``unknown``."""
    if recorded is None:
        target = held.chain[0] if held.chain else None
        return Settlement(call_id, "unknown", target=target, error=UNKNOWN_OUTCOME)
    target = next(
        (t for t in held.chain if (t.provider, t.model) == (recorded.provider, recorded.model)),
        None,
    )
    return Settlement(
        call_id,
        recorded.status,
        target=target,
        usage=recorded.usage,
        usage_known=recorded.usage != Usage(),
        attempts=recorded.attempts,
        latency_ms=recorded.latency_ms,
        error=recorded.error,
        ledger_written=True,
    )
