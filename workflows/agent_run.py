"""``AgentRun``: one agent task, one workflow, one budget.

Calls arrive as ``call_model`` updates. Handlers interleave only at awaits, so the reservation
taken synchronously at the top of a handler is atomic: a burst of 200 cannot slip past the cap.
The main loop does the slow, batchable work off the call path: ledger rows, alerts, search
attributes. It closes the run when idle and continues as new when Temporal suggests it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import errors
    from workflows.budget import Budget, BudgetExceeded
    from workflows.chain import ATTEMPT_RETRY, budget_error, call_with_budget, check_call
    from workflows.contracts import (
        Alert,
        AttemptInput,
        AttemptOutcome,
        CallRequest,
        CallResult,
        LedgerBatch,
        LedgerRow,
        Revoke,
        RunInput,
        RunSpend,
        RunState,
        RunStatus,
        TopUp,
    )
    from workflows.visibility import memo, search_attribute_updates

ATTEMPT_START_TIMEOUT = timedelta(seconds=10)
"""No caller picked the attempt up in this time: the caller is gone."""
ATTEMPT_TIMEOUT = timedelta(minutes=10)
ATTEMPT_HEARTBEAT = timedelta(seconds=30)
FLUSH_PAUSE = timedelta(seconds=1)
"""Coalesces search-attribute upserts and ledger writes: at most one flush per pause."""
KEPT_RESULTS = 256
BOOKKEEPING_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)


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
        self.in_flight = 0
        self.last_call_at = workflow.now()
        self.flush_lock = asyncio.Lock()

    # ---- calls -------------------------------------------------------------------------

    @workflow.update
    async def call_model(self, req: CallRequest) -> CallResult:
        """Reserve, attempt the chain, settle. A repeated call id answers with its first result."""
        done = self.state.results.get(req.call_id)
        if done is not None:
            return done
        self._admit(req)
        self.in_flight += 1
        self.last_call_at = workflow.now()
        try:
            result = await call_with_budget(
                self.budget,
                req,
                lambda attempt: self._attempt(req, attempt),
                run_id=self.run_input.run_id,
                key_id=self.run_input.key_id,
                min_output_tokens=self.run_input.min_output_tokens,
                record=self._record,
            )
        except ApplicationError as err:
            if err.type == errors.BUDGET_EXCEEDED:
                self._refused()
            elif err.type != errors.BAD_CALL:
                self.state.failed_calls += 1
            raise
        finally:
            self.in_flight -= 1
            self.last_call_at = workflow.now()
        self._remember(result)
        self._check_thresholds()
        return result

    @call_model.validator
    def _validate_call(self, req: CallRequest) -> None:
        """Reject early, outside history: closed run, bad call, or a run that cannot pay."""
        if req.call_id in self.state.results:
            return
        if self.state.budget_micros <= 0:
            raise ApplicationError("the run's budget must be positive", type=errors.BAD_CALL)
        self._admit(req, validating=True)

    def _admit(self, req: CallRequest, *, validating: bool = False) -> None:
        if self.state.status != "open":
            raise ApplicationError(
                f"run {self.run_input.run_id} is {self.state.status}",
                type=errors.RUN_NOT_OPEN,
                non_retryable=True,
            )
        if self.draining:
            raise ApplicationError("run is continuing as new; retry", type=errors.RUN_DRAINING)
        check_call(req)
        limit = self.run_input.max_parallel_calls
        if limit and self.in_flight >= limit:
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
                raise budget_error(self.budget, exc) from None

    async def _attempt(self, req: CallRequest, attempt: AttemptInput) -> AttemptOutcome:
        outcome: AttemptOutcome = await workflow.execute_activity(
            "attempt_call",
            attempt,
            task_queue=req.task_queue,
            schedule_to_start_timeout=ATTEMPT_START_TIMEOUT,
            start_to_close_timeout=ATTEMPT_TIMEOUT,
            heartbeat_timeout=ATTEMPT_HEARTBEAT,
            retry_policy=ATTEMPT_RETRY,
            result_type=AttemptOutcome,
        )
        return outcome

    def _record(self, row: LedgerRow) -> None:
        self.state.pending_ledger.append(row)
        self.dirty = True

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
        """No new calls; calls in flight finish; the run then completes."""
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
        """Flush bookkeeping while the run is open; close on idle; continue as new when told."""
        if self.state.budget_micros <= 0:
            raise ApplicationError(
                f"budget must be positive, got {self.state.budget_micros} micro-USD",
                type=errors.BAD_CALL,
                non_retryable=True,
            )
        while self.state.status == "open":
            if workflow.info().is_continue_as_new_suggested():
                await self._drain()
                workflow.continue_as_new(
                    RunInput(**{**run.__dict__, "state": self.state, "spent_before_micros": 0})
                )
            try:
                await workflow.wait_condition(
                    lambda: (
                        self._has_bookkeeping()
                        or self.state.status != "open"
                        or workflow.info().is_continue_as_new_suggested()
                    ),
                    timeout=max(self._idle_left(), timedelta(seconds=1)),
                )
            except TimeoutError:
                if self.in_flight == 0 and self._idle_left() <= timedelta(0):
                    self._set_status("expired")
                continue
            # Let a burst of calls settle first: one flush then covers all of them, and the
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
                    await workflow.execute_activity(
                        "write_ledger",
                        LedgerBatch(rows),
                        task_queue=workflow.info().task_queue,
                        start_to_close_timeout=timedelta(seconds=30),
                        retry_policy=BOOKKEEPING_RETRY,
                    )
                except Exception:
                    # Never lose a row: put the batch back and try again on the next pass.
                    self.state.pending_ledger[:0] = rows
                    workflow.logger.warning("ledger write failed; will retry", exc_info=True)
            for alert in alerts:
                try:
                    await workflow.execute_activity(
                        "send_alert",
                        alert,
                        task_queue=workflow.info().task_queue,
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
