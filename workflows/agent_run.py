"""``AgentRun``: one agent task, one workflow, one budget.

The run lends its budget in lines (``workflows.lending``): each caller process holds a line and
reserves its calls of the run against it in its own process, so far from the cap a call costs
the run no round trip at all. Callers report what their calls spent a few seconds late, many at
once, and top their lines up in the same update (``lend``); near the cap each call asks the run
for its worst case, and room lent but unused is recalled before a call is refused. A caller
silent too long is billed from its journal (what it recorded and did not report, and its calls
that may have gone out); the rest of its line comes back.

The decisions are in ``RunBook``; this class adds Temporal: the handlers, the main loop, and the
slow work off the call path (rows callers could not write, alerts, search attributes, a silent
caller's reconciliation). It closes when idle and continues as new when told. Runs started
before lines take the frozen path (``workflows.legacy.run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.journal import RunLine
    from workflows import errors
    from workflows.chores import BOOKKEEPING_RETRY, recorded, run_ended, send_alerts, write_ledger
    from workflows.contracts import Extend, Revoke, RunStatus, TopUp
    from workflows.key_contracts import RunPolicy
    from workflows.legacy.contracts import Grant, ReserveRequest, SettleAck, SettleBatch
    from workflows.legacy.run import LegacyRun
    from workflows.lending_contracts import LendAnswer, LendRequest, Recorded
    from workflows.run_book import RunBook, opening_books
    from workflows.run_contracts import RunInput, RunSpend
    from workflows.visibility import memo, search_attribute_updates

LINES = "lines"
"""Patch: the run lends lines to caller processes (runs recorded before take the legacy path)."""
HOLD_AT_CAP = "hold-at-cap"
"""Patch: a run of a key with ``hold_at_cap`` pauses at its cap (runs recorded before refuse)."""
FLUSH_PAUSE = timedelta(seconds=1)
"""At most one refresh of the search attributes per pause: each is a history event."""
IDLES_OUT: tuple[RunStatus, ...] = ("open", "looping")
"""Live statuses the idle timeout ends."""
LIVE: tuple[RunStatus, ...] = (*IDLES_OUT, "paused")
"""A run paused at its cap is live too: it waits for a person's approval, with no timer."""


@workflow.defn(sandboxed=False)
class AgentRun:
    @workflow.init
    def __init__(self, run: RunInput) -> None:
        if run.hold_at_cap and not workflow.patched(HOLD_AT_CAP):
            run = dataclasses.replace(run, hold_at_cap=False)
        self.run_input = run
        # A run carrying legacy state continued as new from a legacy run: it stays legacy.
        legacy = run.state is not None or not workflow.patched(LINES)
        self.legacy = LegacyRun(run) if legacy else None
        self.state = run.carried or opening_books(run, workflow.now())
        self.book = RunBook(run, self.state)
        self.draining = False
        self.rearm = False
        """A handler left work that cannot wait for the loop's current timer."""
        self.wake_at: datetime | None = workflow.now()
        """When the loop's current wait ends (``None``: no timer; a paused run lends nothing, so
        no new line needs one)."""
        self.reconciling: set[str] = set()
        self.flush_lock = asyncio.Lock()
        self.last_upsert = workflow.now() - FLUSH_PAUSE

    # ---- lines --------------------------------------------------------------------------

    @workflow.update
    def lend(self, req: LendRequest) -> LendAnswer:
        """A caller's report, its spare room, and its calls that need a grant (no await: the
        checks and the holds are atomic among interleaved handlers)."""
        now = workflow.now()
        answer = self.book.lend(req, now)
        state = self.state
        if self.book.dirty and now - self.last_upsert >= FLUSH_PAUSE:
            # Refresh the UI's figures in this task rather than wake the loop for one. Figures
            # left for later wait for the next report or heartbeat (seconds): no timer churn.
            self._upsert(now)
        if state.pending_ledger or state.pending_alerts:
            self.rearm = True  # rows and alerts go out now, not at the loop's next timer
        if self.wake_at is not None and now + self._silence() < self.wake_at:
            self.rearm = True  # a new line: the loop must wake in time to find it silent
        return answer

    @lend.validator
    def _validate_lend(self, req: LendRequest) -> None:
        """Reject early, outside history: a legacy run, a draining run, a line already billed."""
        if self.legacy is not None:
            raise ApplicationError(
                "this run started before lines; it takes no new calls", type=errors.LEGACY_RUN
            )
        if self.draining:
            raise ApplicationError("run is continuing as new; retry", type=errors.RUN_DRAINING)
        borrower = req.borrower
        gone = self.book.lender.is_reconciled(borrower, req.opened_at)
        if borrower in self.reconciling or gone:
            raise ApplicationError(
                "this caller went silent and its line was billed; open a new one",
                type=errors.LINE_GONE,
            )

    # ---- the protocol before lines (legacy runs only) -------------------------------------

    @workflow.update
    async def reserve(self, req: ReserveRequest) -> Grant:
        return await self._legacy().reserve(req)

    @reserve.validator
    def _validate_reserve(self, req: ReserveRequest) -> None:
        self._legacy().validate_reserve(req)

    @workflow.update
    def settle(self, batch: SettleBatch) -> SettleAck:
        return self._legacy().settle(batch)

    def _legacy(self) -> LegacyRun:
        if self.legacy is None:
            raise ApplicationError("this run lends lines: use lend", type=errors.BAD_CALL)
        return self.legacy

    # ---- run control --------------------------------------------------------------------

    @workflow.update
    async def close(self) -> RunSpend:
        """No new calls; calls in flight settle; the run then completes."""
        if self.legacy is not None:
            return await self.legacy.close()
        self.book.set_status("closed")
        return self.spend()

    @workflow.update
    async def revoke(self, revoke: Revoke) -> RunSpend:
        """Like close, but marks the run revoked (its key was revoked)."""
        if self.legacy is not None:
            return await self.legacy.revoke(revoke)
        self.book.set_status("revoked")
        return self.spend()

    @workflow.update
    async def resume(self) -> RunSpend:
        """An operator's word: a run paused by the loop guard takes calls again, and targets
        closed by overruns reopen."""
        if self.legacy is not None:
            return await self.legacy.resume()
        self.book.resume()
        return self.spend()

    @workflow.update
    async def top_up(self, top_up: TopUp) -> RunSpend:
        """Raise the cap; the alert thresholds re-arm for the new budget."""
        if self.legacy is not None:
            return await self.legacy.top_up(top_up)
        if self.book.extend(self.state.books.cap_micros + top_up.amount_micros, workflow.now()):
            self.rearm = True  # a run paused at its cap goes on: the idle timeout counts again
            self._upsert(workflow.now())  # at once: no report may come to carry the news
        return self.spend()

    @top_up.validator
    def _validate_top_up(self, top_up: TopUp) -> None:
        if self.legacy is not None:
            self.legacy.validate_top_up(top_up)
            return
        if top_up.amount_micros <= 0:
            raise ApplicationError("top_up amount must be positive", type=errors.BAD_CALL)
        if self.state.status not in LIVE:
            raise ApplicationError("run is not open", type=errors.RUN_NOT_OPEN)

    @workflow.update
    async def extend(self, extend: Extend) -> RunSpend:
        """A person approved more budget: the cap rises, and a run paused at its cap goes on."""
        cap = extend.budget_micros or self.state.books.cap_micros + extend.by_micros
        if self.book.extend(cap, workflow.now()):
            self.rearm = True  # the idle timeout counts again: the loop's wait changes
        # The new cap and status show in the UI at once (an approval is rare: one event), not
        # after the flush pause, when no report may come to carry them.
        self._upsert(workflow.now())
        return self.spend()

    @extend.validator
    def _validate_extend(self, extend: Extend) -> None:
        if self.legacy is not None:
            raise ApplicationError(
                "this run started before lines: use top_up", type=errors.BAD_CALL
            )
        by, budget = extend.by_micros, extend.budget_micros
        if min(by, budget) < 0 or (by > 0) == (budget > 0):
            raise ApplicationError(
                "extend takes one positive amount: by_micros, or a new budget_micros",
                type=errors.BAD_CALL,
            )
        if 0 < budget <= self.state.books.cap_micros:
            raise ApplicationError(
                f"a new budget must be above the run's {self.state.books.cap_micros} micro-USD",
                type=errors.BAD_CALL,
            )
        if self.state.status not in ("open", "paused"):
            raise ApplicationError(
                f"run is {self.state.status}, not paused or open", type=errors.RUN_NOT_OPEN
            )

    @workflow.update
    async def set_policy(self, policy: RunPolicy) -> RunSpend:
        """The key's policy changed: a new per-run cap, from the next call."""
        if self.legacy is not None:
            return await self.legacy.set_policy(policy)
        self.book.set_budget(policy.budget_micros)
        return self.spend()

    @set_policy.validator
    def _validate_policy(self, policy: RunPolicy) -> None:
        if policy.budget_micros <= 0:
            raise ApplicationError("the run's budget must be positive", type=errors.BAD_CALL)

    @workflow.query
    def spend(self) -> RunSpend:
        if self.legacy is not None:
            return self.legacy.spend()
        return self.book.spend()

    @workflow.query
    def status(self) -> RunStatus:
        return self.legacy.status() if self.legacy is not None else self.state.status

    # ---- the main loop ------------------------------------------------------------------

    @workflow.run
    async def run(self, run: RunInput) -> RunSpend:
        """Reconcile silent callers; write what callers could not; close on idle; continue as
        new when told. A closed run completes once no caller holds money in it."""
        if self.legacy is not None:
            return await self.legacy.run(run)
        if self.state.books.cap_micros <= 0:
            raise ApplicationError(
                f"budget must be positive, got {self.state.books.cap_micros} micro-USD",
                type=errors.BAD_CALL,
                non_retryable=True,
            )
        while self.state.status in LIVE or not self.book.lender.idle_lines():
            if self.state.status in LIVE and workflow.info().is_continue_as_new_suggested():
                await self._drain()
                carried = {"carried": self.state, "opening": None, "spent_before_micros": 0}
                workflow.continue_as_new(RunInput(**{**run.__dict__, **carried}))
            wait = self._next_wake()
            self.wake_at = workflow.now() + wait if wait is not None else None
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(self._should_wake, timeout=wait)
            self.rearm = False
            await self._reconcile_silent()
            if self.state.status in IDLES_OUT and self._idle_left() <= timedelta(0):
                self.book.set_status("expired")
            if self._has_bookkeeping():
                await self._flush()
        await self._drain()
        await run_ended(run.run_id)
        return self.spend()

    def _should_wake(self) -> bool:
        state = self.state
        live = state.status in LIVE
        return (
            self.rearm
            or bool(state.pending_ledger or state.pending_alerts)
            or (not live and self.book.lender.idle_lines())
            or (live and workflow.info().is_continue_as_new_suggested())
        )

    def _next_wake(self) -> timedelta | None:
        """How long the loop waits; ``None``: until a handler wakes it (a paused run waits for
        its approval with no timer, unless a caller holds money in it)."""
        now = workflow.now()
        silence = self.book.lender.next_silence(now, self._silence())
        if self.state.status == "paused":
            return None if silence is None else max(silence, timedelta(seconds=1))
        wake = self._idle_left()
        if silence is not None:
            wake = min(wake, silence)
        # No timer for figures left by the flush pause: the next report or heartbeat (seconds
        # away while a caller holds money) refreshes them, at no workflow task of its own.
        return max(wake, timedelta(seconds=1))

    def _silence(self) -> timedelta:
        return timedelta(seconds=self.run_input.caller_timeout_seconds)

    def _idle_left(self) -> timedelta:
        idle = timedelta(seconds=self.run_input.idle_timeout_seconds)
        return idle - (workflow.now() - datetime.fromisoformat(self.state.last_call_at))

    def _has_bookkeeping(self) -> bool:
        """Rows or alerts to send, or figures to show that waited out the flush pause."""
        state = self.state
        paused = workflow.now() - self.last_upsert < FLUSH_PAUSE
        return bool(
            state.pending_ledger or state.pending_alerts or (self.book.dirty and not paused)
        )

    async def _reconcile_silent(self) -> None:
        """Bill each caller silent past its timeout from its journal (see ``RunBook``)."""
        for borrower in self.book.lender.silent(workflow.now(), self._silence()):
            line = self.state.books.lines[borrower]
            self.reconciling.add(borrower)  # its late word is refused meanwhile
            try:
                found = Recorded(read=False)
                if line.journaled:
                    found = await recorded(RunLine(borrower, self.run_input.run_id, line.opened_at))
                self.book.reconcile(borrower, found, workflow.now())
            finally:
                self.reconciling.discard(borrower)

    async def _flush(self) -> None:
        """Search attributes and memo, rows callers could not write, alerts: one pass."""
        async with self.flush_lock:
            state = self.state
            self._upsert(workflow.now())
            rows, state.pending_ledger = state.pending_ledger, []
            alerts, state.pending_alerts = state.pending_alerts, []
            if rows and not await write_ledger(rows):
                state.pending_ledger[:0] = rows  # never lose a row: the next pass tries again
            await send_alerts(alerts, BOOKKEEPING_RETRY)

    def _upsert(self, now: datetime) -> None:
        book = self.book
        if not book.dirty:
            return
        book.dirty = False
        self.last_upsert = now
        state, books = self.state, self.state.books
        workflow.upsert_search_attributes(
            search_attribute_updates(
                self.run_input,
                spent_micros=books.spent_micros,
                budget_micros=books.cap_micros,
                calls=state.calls,
                status=state.status,
            )
        )
        workflow.upsert_memo(memo(state.by_step, books.spent_micros))

    async def _drain(self) -> None:
        self.draining = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._flush()
