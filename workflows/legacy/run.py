"""``AgentRun`` before lines (frozen): one update per call (``reserve``) or an advance, and
period leases drawn by the run. ``workflows.agent_run.AgentRun`` delegates here for runs that
started before ``workflow.patched("lines")``. What follows is that class's original text.


A call costs the run one update (``reserve``). The reservation is taken with no await between
its check and its hold, so it is atomic among interleaved handlers: a burst of 200 cannot slip
past the cap. Only a call that needs a new slice of its key's day or month budget waits for one
(one hop per lease, not per call). The caller walks the chain in its own process and reports how
its calls ended in batches (``settle``), which double as its heartbeat; a caller silent too long
has its calls settled as it recorded them, or at their reservations (``unknown``).
The decisions themselves are in ``RunBook``; this class adds Temporal: handlers, the main loop,
and the slow, batchable work off the call path (leases given back, ledger rows the caller could
not write, alerts, search attributes). It closes when idle and continues as new when told.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import errors
    from workflows.budget import BudgetExceeded
    from workflows.calls import budget_error
    from workflows.contracts import (
        Revoke,
        RunStatus,
        TopUp,
    )
    from workflows.key_contracts import RunPolicy
    from workflows.legacy.advances import recorded_settlement
    from workflows.legacy.contracts import (
        Grant,
        ReserveRequest,
        RunState,
        SettleAck,
        SettleBatch,
    )
    from workflows.legacy.run_book import RunBook, as_settlement
    from workflows.legacy.run_chores import RunChores
    from workflows.run_contracts import (
        RunInput,
        RunSpend,
    )

FLUSH_PAUSE = timedelta(seconds=1)
"""Coalesces search-attribute upserts and ledger writes: at most one flush per pause."""
LIVE: tuple[RunStatus, ...] = ("open", "looping")
ONE_TASK = "one-task-per-settle"
"""Patch: a settle batch refreshes the run's search attributes in its own workflow task, and a
call that must expire before the loop's next wake re-arms it (runs recorded before take the
old path on replay)."""
ADVANCES = "caller-advances"
"""Patch: a caller may ask for an advance with a call (runs recorded before never granted one)."""


class LegacyRun:
    def __init__(self, run: RunInput) -> None:
        self.run_input = run
        state = run.state or RunState(
            budget_micros=run.budget_micros,
            spent_micros=run.spent_before_micros,
            periods=list(run.periods),
        )
        self.book = RunBook(run, state)
        self.state = state
        self.chores = RunChores(run, self.book)
        self.draining = False
        self.last_call_at = workflow.now()
        self.wake_at = workflow.now()
        """When the main loop's current wait ends; a call that must expire sooner re-arms it."""
        self.rearm = False
        self.last_upsert = workflow.now() - FLUSH_PAUSE

    # ---- calls -------------------------------------------------------------------------

    async def reserve(self, req: ReserveRequest) -> Grant:
        """Hold the call's worst case and say which targets it may try.

        A repeated call id gets its open grant again, or its settled result. A call whose key
        budgets need a new lease waits for it; the check and the hold that follow have no
        await between them.
        """
        known = self._known(req)
        if known is not None:
            return known
        self.book.admit(req, workflow.now(), draining=self.draining)
        advance = req.want_advance and workflow.patched(ADVANCES)
        if self.book.draws(req, workflow.now(), advance=advance):
            async with self.chores.lease_lock:
                for draw in self.book.draws(req, workflow.now(), advance=advance):
                    await self.chores.draw(draw)
            # While this waited, the same call id may have been reserved (a caller's retry).
            known = self._known(req)
            if known is not None:
                return known
            self.book.admit(req, workflow.now(), draining=self.draining)
        now = workflow.now()
        self.book.check_loop(req, now)
        held = self.book.reserve(req, now)
        self.last_call_at = now
        granted = None
        if advance:
            granted = self.book.advance(req, held, now, f"adv-{workflow.uuid4().hex[:16]}")
        expiry = self.book.next_expiry(now)
        if expiry is not None and now + expiry < self.wake_at and workflow.patched(ONE_TASK):
            self.rearm = True  # the loop waits longer than this call may stay silent
        return self.book.grant(req.call_id, held, advance=granted)

    def _known(self, req: ReserveRequest) -> Grant | None:
        """The answer for a call id the run already has: its open grant, or its result."""
        done = self.state.results.get(req.call_id)
        if done is not None and done.status != "failed":
            return self.book.grant(req.call_id, self.state.open_calls.get(req.call_id), done)
        held = self.state.open_calls.get(req.call_id)
        return None if held is None else self.book.grant(req.call_id, held)

    def validate_reserve(self, req: ReserveRequest) -> None:
        """Reject early, outside history: closed run, bad call, or a run that cannot pay."""
        if req.call_id in self.state.open_calls or req.call_id in self.state.results:
            return
        if self.state.budget_micros <= 0:
            raise ApplicationError("the run's budget must be positive", type=errors.BAD_CALL)
        self.book.admit(req, workflow.now(), draining=self.draining)
        # The first refusal is let through to the handler so it can raise the alert once.
        if self.state.refused_alerted:
            try:
                self.book.budget.plan(
                    self.book.usable(req.chain),
                    req.input_tokens,
                    req.max_tokens,
                    self.run_input.min_output_tokens,
                    factors=self.state.output_factors,
                )
            except BudgetExceeded as exc:
                raise budget_error(exc) from None

    def settle(self, batch: SettleBatch) -> SettleAck:
        """Turn each finished call's reservation into spend; an empty batch is a heartbeat.

        A call id that is not open (settled before, or already expired) is ignored: no call is
        ever charged twice.
        """
        now = workflow.now()
        for settlement in batch.settlements:
            self.book.settle(settlement, now)
        for advance_id in batch.retired:  # after their calls' settlements, never before
            self.book.retire(advance_id)
        self.book.heard_from(batch.caller_id, now)
        if batch.settlements:
            self.last_call_at = now
        state = self.state
        quiet = not state.pending_ledger and not state.pending_alerts
        if quiet and now - self.last_upsert >= FLUSH_PAUSE and workflow.patched(ONE_TASK):
            # Nothing else to write: refresh the UI's figures in this task rather than wake the
            # loop for a task of its own (one workflow task per settle batch, not two).
            self._upsert_visibility(now)
        return SettleAck(
            status=self.state.status,
            budget_micros=self.state.budget_micros,
            spent_micros=self.state.spent_micros,
            reserved_micros=self.book.budget.reserved_micros,
            advances=self.book.advances_welcome(),
        )

    async def _expire_silent_callers(self) -> None:
        """Settle the calls of callers silent past their timeout, and calls past their deadline.

        A caller writes a call's ledger row before answering, so a caller that died after
        answering left its call's real usage there: such a call settles as recorded. Every
        other expired call settles at its reservation, as ``unknown``: never as free.
        """
        expired = self.book.expired(workflow.now())
        advances = [call_id for call_id in expired if self.book.is_advance(call_id)]
        calls = [call_id for call_id in expired if call_id not in advances]
        if calls:
            recorded = await self.chores.recorded(calls)
            now = workflow.now()
            for call_id in calls:
                held = self.state.open_calls.get(call_id)
                if held is not None:  # a late settle may have landed meanwhile
                    self.book.settle(as_settlement(call_id, held, recorded.get(call_id)), now)
        if advances:
            under = await self.chores.recorded_under(advances)
            now = workflow.now()
            for call in under:
                advance_id = call.call_id.split("/", 1)[0]
                self.book.settle(recorded_settlement(advance_id, call), now)
            for advance_id in advances:
                self.book.bill_unreported(advance_id, now)
        self.book.forget_silent_callers()

    # ---- run control -------------------------------------------------------------------

    async def close(self) -> RunSpend:
        """No new calls; calls in flight settle; the run then completes."""
        self._set_status("closed")
        return self.spend()

    async def revoke(self, revoke: Revoke) -> RunSpend:
        """Like close, but marks the run revoked (its key was revoked)."""
        self._set_status("revoked")
        return self.spend()

    async def resume(self) -> RunSpend:
        """An operator's word: a run paused by the loop guard takes calls again, and targets
        closed by overruns reopen."""
        self.book.resume()
        return self.spend()

    async def top_up(self, top_up: TopUp) -> RunSpend:
        """Raise the cap; the alert thresholds re-arm for the new budget."""
        self._rearm(self.state.budget_micros + top_up.amount_micros)
        return self.spend()

    def validate_top_up(self, top_up: TopUp) -> None:
        if top_up.amount_micros <= 0:
            raise ApplicationError("top_up amount must be positive", type=errors.BAD_CALL)
        if self.state.status not in LIVE:
            raise ApplicationError("run is not open", type=errors.RUN_NOT_OPEN)

    async def set_policy(self, policy: RunPolicy) -> RunSpend:
        """The key's policy changed: a new per-run cap and period caps, from the next call."""
        self.state.periods = list(policy.periods)
        self._rearm(policy.budget_micros)
        return self.spend()

    def validate_policy(self, policy: RunPolicy) -> None:
        if policy.budget_micros <= 0:
            raise ApplicationError("the run's budget must be positive", type=errors.BAD_CALL)

    def _rearm(self, budget_micros: int) -> None:
        state = self.state
        # A lower cap: callers hand their advances back now; a higher one lets them ask again.
        state.advances_paused = budget_micros < state.budget_micros
        state.budget_micros = budget_micros
        state.refused_alerted = False
        state.alerted_thresholds = [
            pct
            for pct in state.alerted_thresholds
            if state.spent_micros * 100 >= pct * budget_micros
        ]
        self.book.dirty = True

    def _set_status(self, status: RunStatus) -> None:
        if self.state.status in LIVE:
            self.state.status = status
            self.book.dirty = True

    def spend(self) -> RunSpend:
        return self.book.budget.report(self.run_input.run_id)

    def status(self) -> RunStatus:
        return self.state.status

    # ---- the main loop -----------------------------------------------------------------

    async def run(self, run: RunInput) -> RunSpend:
        """Flush bookkeeping; expire silent callers; give leases back; close on idle; continue
        as new when told. A closed run completes once its open calls have settled or expired
        and its leases are back."""
        if self.state.budget_micros <= 0:
            raise ApplicationError(
                f"budget must be positive, got {self.state.budget_micros} micro-USD",
                type=errors.BAD_CALL,
                non_retryable=True,
            )
        while self.state.status in LIVE or self.state.open_calls:
            if self.state.status in LIVE and workflow.info().is_continue_as_new_suggested():
                await self._drain()
                workflow.continue_as_new(
                    RunInput(**{**run.__dict__, "state": self.state, "spent_before_micros": 0})
                )
            wait = self._next_wake()
            self.wake_at = workflow.now() + wait
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(self._should_wake, timeout=wait)
            self.rearm = False
            await self._expire_silent_callers()
            if self._idle_left() <= timedelta(0) and not self.state.open_calls:
                self._set_status("expired")
            if not self._has_bookkeeping():
                continue
            # Let a burst of settles land first: one flush then covers all of them, and the
            # workflow tasks it costs stay off the calls' own path.
            with contextlib.suppress(TimeoutError):  # a close ends the pause early
                await workflow.wait_condition(
                    lambda: (
                        self.state.status not in LIVE
                        or workflow.info().is_continue_as_new_suggested()
                    ),
                    timeout=FLUSH_PAUSE,
                )
            await self.chores.flush(idle=self._lease_idle())
            self.last_upsert = workflow.now()
        await self._drain()
        await self.chores.give_back(idle=False, closing=True)
        return self.spend()

    def _upsert_visibility(self, now: datetime) -> None:
        self.chores.upsert_visibility()
        self.last_upsert = now

    def _should_wake(self) -> bool:
        live = self.state.status in LIVE
        return (
            self.rearm
            or self._has_bookkeeping()
            or (not live and not self.state.open_calls)
            or (live and workflow.info().is_continue_as_new_suggested())
        )

    def _next_wake(self) -> timedelta:
        wake = self._idle_left()
        if self._lease_idle_left() > timedelta(0):
            wake = min(wake, self._lease_idle_left())
        expiry = self.book.next_expiry(workflow.now())
        if expiry is not None:
            wake = min(wake, expiry)
        return max(wake, timedelta(seconds=1))

    def _idle_left(self) -> timedelta:
        idle = timedelta(seconds=self.run_input.idle_timeout_seconds)
        return idle - (workflow.now() - self.last_call_at)

    def _lease_idle_left(self) -> timedelta:
        if not self.state.leases:
            return timedelta(0)
        idle = timedelta(seconds=self.run_input.lease_idle_seconds)
        return idle - (workflow.now() - self.last_call_at)

    def _has_bookkeeping(self) -> bool:
        state = self.state
        leases_due = bool(self.book.leases.give_backs(idle=self._lease_idle(), closing=False))
        return bool(self.book.dirty or state.pending_ledger or state.pending_alerts or leases_due)

    def _lease_idle(self) -> bool:
        return bool(self.state.leases) and self._lease_idle_left() <= timedelta(0)

    async def _drain(self) -> None:
        self.draining = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self.chores.flush(idle=self._lease_idle())
