"""``AgentRun``: one agent task, one workflow, one budget.

A call costs the run one update (``reserve``). The handler has no await, so the reservation is
atomic among interleaved handlers: a burst of 200 cannot slip past the cap. The caller walks the
chain in its own process and reports how its calls ended in batches (``settle``), which double as
its heartbeat. A caller silent too long has its open calls settled at their reservations, as
``unknown``: the provider may have done the work, so the cap must cover it.
The main loop does the slow, batchable work off the call path: ledger rows the caller could not
write, alerts, search attributes. It closes the run when idle and continues as new when told.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.alerts import AlertActivities
    from activities.ledger import LedgerActivities
    from workflows import errors
    from workflows.budget import Budget, BudgetExceeded, settled_cost
    from workflows.calls import budget_error, check_call, ledger_row
    from workflows.contracts import (
        Alert,
        CallResult,
        Grant,
        LedgerBatch,
        OpenCall,
        RecordedCall,
        ReserveRequest,
        Revoke,
        RunInput,
        RunSpend,
        RunState,
        RunStatus,
        SettleAck,
        SettleBatch,
        Settlement,
        TopUp,
        Usage,
    )
    from workflows.visibility import memo, search_attribute_updates

FLUSH_PAUSE = timedelta(seconds=1)
"""Coalesces search-attribute upserts and ledger writes: at most one flush per pause."""
KEPT_RESULTS = 256
BOOKKEEPING_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)
UNKNOWN_OUTCOME = "the caller stopped reporting; billed at its reservation"
LOOKUP_RETRY = RetryPolicy(maximum_attempts=3, maximum_interval=timedelta(seconds=2))


@workflow.defn(sandboxed=False)
class AgentRun:
    @workflow.init
    def __init__(self, run: RunInput) -> None:
        self.run_input = run
        self.state = run.state or RunState(
            budget_micros=run.budget_micros, spent_micros=run.spent_before_micros
        )
        self.budget = Budget(self.state)
        self.draining = False
        self.dirty = True
        self.last_call_at = workflow.now()
        self.flush_lock = asyncio.Lock()

    # ---- calls -------------------------------------------------------------------------

    @workflow.update
    def reserve(self, req: ReserveRequest) -> Grant:
        """Hold the call's worst case and say which targets it may try; no await, so atomic.

        A repeated call id gets its open grant again, or its settled result.
        """
        done = self.state.results.get(req.call_id)
        if done is not None and done.status != "failed":
            return self._grant(req.call_id, self.state.open_calls.get(req.call_id), done)
        held = self.state.open_calls.get(req.call_id)
        if held is not None:
            return self._grant(req.call_id, held)
        self._admit(req)
        now = workflow.now()
        try:
            plan = self.budget.plan(
                req.chain, req.input_tokens, req.max_tokens, self.run_input.min_output_tokens
            )
            about = OpenCall(
                caller_id=req.caller_id,
                reserved_micros=plan.reserved_micros,
                max_tokens=plan.max_tokens,
                chain=req.chain,
                tags=req.tags,
                requested_model=req.requested_model,
                started_at=now.isoformat(),
                deadline=(now + timedelta(seconds=self.run_input.call_timeout_seconds)).isoformat(),
            )
            held = self.budget.reserve(req.call_id, plan, about)
        except BudgetExceeded as exc:
            self._refused()
            raise budget_error(exc) from None
        self.state.results.pop(req.call_id, None)  # a failed call id tried again
        self.state.callers[req.caller_id] = now.isoformat()
        self.last_call_at = now
        return self._grant(req.call_id, held)

    @reserve.validator
    def _validate_reserve(self, req: ReserveRequest) -> None:
        """Reject early, outside history: closed run, bad call, or a run that cannot pay."""
        if req.call_id in self.state.open_calls or req.call_id in self.state.results:
            return
        if self.state.budget_micros <= 0:
            raise ApplicationError("the run's budget must be positive", type=errors.BAD_CALL)
        self._admit(req, validating=True)

    def _admit(self, req: ReserveRequest, *, validating: bool = False) -> None:
        if self.state.status != "open":
            raise ApplicationError(
                f"run {self.run_input.run_id} is {self.state.status}",
                type=errors.RUN_NOT_OPEN,
                non_retryable=True,
            )
        if self.draining:
            raise ApplicationError("run is continuing as new; retry", type=errors.RUN_DRAINING)
        check_call(req.call_id, req.chain, req.input_tokens, req.max_tokens)
        limit = self.run_input.max_parallel_calls
        if limit and len(self.state.open_calls) >= limit:
            raise ApplicationError(
                f"run already has {limit} calls in flight", type=errors.TOO_MANY_CALLS
            )
        # The first refusal is let through to the handler so it can raise the alert once.
        if validating and self.state.refused_alerted:
            try:
                self.budget.plan(
                    req.chain, req.input_tokens, req.max_tokens, self.run_input.min_output_tokens
                )
            except BudgetExceeded as exc:
                raise budget_error(exc) from None

    def _grant(self, call_id: str, held: OpenCall | None, done: CallResult | None = None) -> Grant:
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
        )

    @workflow.update
    def settle(self, batch: SettleBatch) -> SettleAck:
        """Turn each finished call's reservation into spend; an empty batch is a heartbeat.

        A call id that is not open (settled before, or already expired) is ignored: no call is
        ever charged twice.
        """
        for settlement in batch.settlements:
            self._settle_one(settlement)
        callers = self.state.callers
        if any(c.caller_id == batch.caller_id for c in self.state.open_calls.values()):
            callers[batch.caller_id] = workflow.now().isoformat()
        else:
            callers.pop(batch.caller_id, None)
        if batch.settlements:
            self.last_call_at = workflow.now()
        return SettleAck(
            status=self.state.status,
            budget_micros=self.state.budget_micros,
            spent_micros=self.state.spent_micros,
            reserved_micros=self.budget.reserved_micros,
        )

    def _settle_one(self, s: Settlement) -> None:
        held = self.state.open_calls.get(s.call_id)
        if held is None:
            return
        if s.status == "failed":
            self.budget.release(s.call_id)
            self.state.failed_calls += 1
            cost = 0
        else:
            price = (s.target or held.chain[0]).price
            cost = settled_cost(s.status, price, s.usage, s.usage_known, held.reserved_micros)
            model = s.target.model if s.target else held.requested_model
            self.budget.settle(s.call_id, cost, s.usage, held.tags, model)
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
        if not s.ledger_written:
            row = ledger_row(self.run_input.run_id, self.run_input.key_id, s.call_id, held, s, cost)
            self.state.pending_ledger.append(row)
        self.dirty = True
        self._check_thresholds()

    async def _expire_silent_callers(self) -> None:
        """Settle the calls of callers silent past their timeout, and calls past their deadline.

        A caller writes a call's ledger row before answering, so a caller that died after
        answering left its call's real usage there: such a call settles as recorded. Every
        other expired call settles at its reservation, as ``unknown``: never as free.
        """
        now = workflow.now()
        silence = timedelta(seconds=self.run_input.caller_timeout_seconds)
        expired = [
            call_id
            for call_id, held in self.state.open_calls.items()
            if now - _at(self.state.callers.get(held.caller_id, held.started_at)) >= silence
            or now >= _at(held.deadline)
        ]
        if expired:
            recorded = await self._recorded(expired)
            for call_id in expired:
                held = self.state.open_calls.get(call_id)
                if held is not None:  # a late settle may have landed meanwhile
                    self._settle_one(_as_settlement(call_id, held, recorded.get(call_id)))
        live = {held.caller_id for held in self.state.open_calls.values()}
        for caller_id in [c for c in self.state.callers if c not in live]:
            del self.state.callers[caller_id]

    async def _recorded(self, call_ids: list[str]) -> dict[str, RecordedCall]:
        try:
            found = await workflow.execute_activity_method(
                LedgerActivities.recorded_calls,
                call_ids,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=LOOKUP_RETRY,
            )
        except Exception:
            workflow.logger.warning(
                "ledger look-up failed; settling at reservations", exc_info=True
            )
            return {}
        return {call.call_id: call for call in found}

    def _next_expiry(self) -> timedelta | None:
        """How long until some open call must be expired, if any is open."""
        if not self.state.open_calls:
            return None
        silence = timedelta(seconds=self.run_input.caller_timeout_seconds)
        soonest = min(
            min(
                _at(self.state.callers.get(held.caller_id, held.started_at)) + silence,
                _at(held.deadline),
            )
            for held in self.state.open_calls.values()
        )
        return max(soonest - workflow.now(), timedelta(0))

    def _remember(self, result: CallResult) -> None:
        results = self.state.results
        results[result.call_id] = result
        while len(results) > KEPT_RESULTS:
            del results[next(iter(results))]

    def _refused(self) -> None:
        if not self.state.refused_alerted:
            self.state.refused_alerted = True
            self.state.pending_alerts.append(self._alert("refused", 0))
            self.dirty = True

    def _check_thresholds(self) -> None:
        for pct in self.budget.crossed_thresholds():
            self.state.pending_alerts.append(self._alert("threshold", pct))

    def _alert(self, kind: str, pct: int) -> Alert:
        return Alert(
            run_id=self.run_input.run_id,
            key_id=self.run_input.key_id,
            kind="refused" if kind == "refused" else "threshold",
            threshold_percent=pct,
            budget_micros=self.state.budget_micros,
            spent_micros=self.state.spent_micros,
            at=workflow.now().isoformat(),
        )

    # ---- run control -------------------------------------------------------------------

    @workflow.update
    async def close(self) -> RunSpend:
        """No new calls; calls in flight settle; the run then completes."""
        self._set_status("closed")
        return self.spend()

    @workflow.update
    async def revoke(self, revoke: Revoke) -> RunSpend:
        """Like close, but marks the run revoked (its key was revoked)."""
        self._set_status("revoked")
        return self.spend()

    @workflow.update
    async def top_up(self, top_up: TopUp) -> RunSpend:
        """Raise the cap; the alert thresholds re-arm for the new budget."""
        self.state.budget_micros += top_up.amount_micros
        self.state.refused_alerted = False
        self.state.alerted_thresholds = [
            pct
            for pct in self.state.alerted_thresholds
            if self.state.spent_micros * 100 >= pct * self.state.budget_micros
        ]
        self.dirty = True
        return self.spend()

    @top_up.validator
    def _validate_top_up(self, top_up: TopUp) -> None:
        if top_up.amount_micros <= 0:
            raise ApplicationError("top_up amount must be positive", type=errors.BAD_CALL)
        if self.state.status != "open":
            raise ApplicationError("run is not open", type=errors.RUN_NOT_OPEN)

    def _set_status(self, status: RunStatus) -> None:
        if self.state.status == "open":
            self.state.status = status
            self.dirty = True

    @workflow.query
    def spend(self) -> RunSpend:
        return self.budget.report(self.run_input.run_id)

    @workflow.query
    def status(self) -> RunStatus:
        return self.state.status

    # ---- the main loop -----------------------------------------------------------------

    @workflow.run
    async def run(self, run: RunInput) -> RunSpend:
        """Flush bookkeeping; expire silent callers; close on idle; continue as new when told.

        A closed run completes once its open calls have settled or expired.
        """
        if self.state.budget_micros <= 0:
            raise ApplicationError(
                f"budget must be positive, got {self.state.budget_micros} micro-USD",
                type=errors.BAD_CALL,
                non_retryable=True,
            )
        while self.state.status == "open" or self.state.open_calls:
            if self.state.status == "open" and workflow.info().is_continue_as_new_suggested():
                await self._drain()
                workflow.continue_as_new(
                    RunInput(**{**run.__dict__, "state": self.state, "spent_before_micros": 0})
                )
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(self._should_wake, timeout=self._next_wake())
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
                        self.state.status != "open"
                        or workflow.info().is_continue_as_new_suggested()
                    ),
                    timeout=FLUSH_PAUSE,
                )
            await self._flush()
        await self._drain()
        return self.spend()

    def _should_wake(self) -> bool:
        return (
            self._has_bookkeeping()
            or (self.state.status != "open" and not self.state.open_calls)
            or (self.state.status == "open" and workflow.info().is_continue_as_new_suggested())
        )

    def _next_wake(self) -> timedelta:
        wake = self._idle_left()
        expiry = self._next_expiry()
        if expiry is not None:
            wake = min(wake, expiry)
        return max(wake, timedelta(seconds=1))

    def _idle_left(self) -> timedelta:
        idle = timedelta(seconds=self.run_input.idle_timeout_seconds)
        return idle - (workflow.now() - self.last_call_at)

    def _has_bookkeeping(self) -> bool:
        return bool(self.dirty or self.state.pending_ledger or self.state.pending_alerts)

    async def _drain(self) -> None:
        self.draining = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._flush()

    async def _flush(self) -> None:
        """Write ledger rows and alerts, then refresh search attributes and memo, in one pass."""
        async with self.flush_lock:
            self._upsert_visibility()
            rows, self.state.pending_ledger = self.state.pending_ledger, []
            alerts, self.state.pending_alerts = self.state.pending_alerts, []
            if rows:
                try:
                    await workflow.execute_activity_method(
                        LedgerActivities.write_ledger,
                        LedgerBatch(rows),
                        start_to_close_timeout=timedelta(seconds=30),
                        retry_policy=BOOKKEEPING_RETRY,
                    )
                except Exception:
                    # Never lose a row: put the batch back and try again on the next pass.
                    self.state.pending_ledger[:0] = rows
                    workflow.logger.warning("ledger write failed; will retry", exc_info=True)
            for alert in alerts:
                try:
                    await workflow.execute_activity_method(
                        AlertActivities.send_alert,
                        alert,
                        start_to_close_timeout=timedelta(seconds=15),
                        retry_policy=BOOKKEEPING_RETRY,
                    )
                except Exception:
                    workflow.logger.warning("alert could not be delivered", exc_info=True)

    def _upsert_visibility(self) -> None:
        if not self.dirty:
            return
        self.dirty = False
        workflow.upsert_search_attributes(search_attribute_updates(self.run_input, self.state))
        workflow.upsert_memo(memo(self.state))


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def _as_settlement(call_id: str, held: OpenCall, recorded: RecordedCall | None) -> Settlement:
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
