"""``KeyBudget``: one key's cap for one day, one month, or its whole life (``total``).

One workflow per (key, period) owns the period's money and lends it in lines to the caller
processes that make the key's calls (``workflows.lending``): one line per api instance, not per
run, so the money of a key with many sparse runs sits where the calls are made, and what one
instance does not use is recalled before another's call is refused. A call counts in the period
it started in, so a period's cap bounds every call started in it, and a run never stops at
midnight: the next call borrows from the new day. Handlers have no await: a grant is atomic.
Periods started before lines take the frozen path (``workflows.legacy.key_budget``).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.journal import KeyLine
    from workflows import errors
    from workflows.chores import BOOKKEEPING_RETRY, recorded, send_alerts
    from workflows.key_contracts import KeyBudgetInput, PeriodBooks, PeriodFigures
    from workflows.legacy.contracts import LeaseGrant, LeaseRequest, LeaseReturn
    from workflows.legacy.key_budget import LegacyKeyBudget
    from workflows.lending_contracts import (
        Books,
        LendAnswer,
        LendRequest,
        Recorded,
    )
    from workflows.period_book import PeriodBook
    from workflows.periods import BEGINNING

LINES = "lines"
"""Patch: the period lends lines to caller processes (periods recorded before lease to runs)."""
KEEP_AFTER_PERIOD = timedelta(days=7)
"""A period's workflow waits this long after the period for its lines' last reports."""


@workflow.defn(sandboxed=False)
class KeyBudget:
    @workflow.init
    def __init__(self, inp: KeyBudgetInput) -> None:
        self.inp = inp
        legacy = inp.state is not None or not workflow.patched(LINES)
        self.legacy = LegacyKeyBudget(inp) if legacy else None
        self.state = inp.carried or PeriodBooks(Books(cap_micros=inp.cap_micros))
        self.book = PeriodBook(inp, self.state)
        self.lender = self.book.lender
        self.reconciling: set[str] = set()
        self.rearm = False
        self.wake_at = workflow.now()

    # ---- lines --------------------------------------------------------------------------

    @workflow.update
    def lend(self, req: LendRequest) -> LendAnswer:
        """A caller's report, its spare room, and its calls that need a grant now."""
        now = workflow.now()
        if now + self._silence() < self.wake_at:
            self.rearm = True  # a new line: the loop must wake in time to find it silent
        return self.book.lend(req, now)

    @lend.validator
    def _validate_lend(self, req: LendRequest) -> None:
        if self.legacy is not None:
            raise ApplicationError("this period lends leases to runs", type=errors.LEGACY_RUN)
        if req.borrower in self.reconciling or self.lender.is_reconciled(
            req.borrower, req.opened_at
        ):
            raise ApplicationError(
                "this caller went silent and its line was billed; open a new one",
                type=errors.LINE_GONE,
            )

    # ---- the protocol before lines (legacy periods only) -----------------------------------

    @workflow.update
    def lease(self, req: LeaseRequest) -> LeaseGrant:
        return self._legacy().lease(req)

    @workflow.update
    def give_back(self, ret: LeaseReturn) -> PeriodFigures:
        return self._legacy().give_back(ret)

    def _legacy(self) -> LegacyKeyBudget:
        if self.legacy is None:
            raise ApplicationError("this period lends lines: use lend", type=errors.BAD_CALL)
        return self.legacy

    # ---- control ------------------------------------------------------------------------

    @workflow.update
    def set_cap(self, cap_micros: int) -> PeriodFigures:
        """A new cap for this period (the key was edited); thresholds re-arm above spend. A
        lower cap recalls the lines' unused room (the admin api nudges their callers)."""
        if self.legacy is not None:
            return self.legacy.set_cap(cap_micros)
        self.book.set_cap(cap_micros)
        return self.figures()

    @set_cap.validator
    def _validate_cap(self, cap_micros: int) -> None:
        if cap_micros <= 0:
            raise ApplicationError("a period's cap must be positive", type=errors.BAD_CALL)

    @workflow.query
    def figures(self) -> PeriodFigures:
        if self.legacy is not None:
            return self.legacy.figures()
        return self.book.figures()

    # ---- the main loop ------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: KeyBudgetInput) -> PeriodFigures:
        """Deliver alerts; reconcile silent callers; continue as new when told; end a week after
        the period, or once the period is over and every line is back."""
        if self.legacy is not None:
            return await self.legacy.run(inp)
        ends = datetime.fromisoformat(inp.ends_at)
        while True:
            now = workflow.now()
            idle = self.lender.idle_lines()
            if now >= ends and idle and not self.state.pending_alerts:
                break
            if now >= ends + KEEP_AFTER_PERIOD:
                break
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(KeyBudgetInput(**{**inp.__dict__, "carried": self.state}))
            wait = self._next_wake(ends)
            self.wake_at = workflow.now() + wait
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: (
                        self.rearm
                        or bool(self.state.pending_alerts)
                        or workflow.info().is_continue_as_new_suggested()
                        or (workflow.now() >= ends and self.lender.idle_lines())
                    ),
                    timeout=wait,
                )
            self.rearm = False
            await self._reconcile_silent()
            alerts, self.state.pending_alerts = self.state.pending_alerts, []
            await send_alerts(alerts, BOOKKEEPING_RETRY)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.figures()

    def _silence(self) -> timedelta:
        return timedelta(seconds=self.inp.caller_timeout_seconds)

    def _next_wake(self, ends: datetime) -> timedelta:
        now = workflow.now()
        wake = max(ends - now, timedelta(seconds=60)) if now < ends else timedelta(hours=1)
        silence = self.lender.next_silence(now, self._silence())
        if silence is not None:
            wake = min(wake, silence)
        return max(wake, timedelta(seconds=1))

    async def _reconcile_silent(self) -> None:
        """Bill each caller silent past its timeout from its journal."""
        inp = self.inp
        for borrower in self.lender.silent(workflow.now(), self._silence()):
            line = self.state.books.lines[borrower]
            self.reconciling.add(borrower)
            try:
                found = Recorded(read=False)
                if line.journaled:
                    starts = datetime.fromisoformat(inp.starts_at) if inp.starts_at else BEGINNING
                    since = max(starts, datetime.fromisoformat(line.opened_at))
                    window = KeyLine(borrower, inp.key_id, since.isoformat(), inp.ends_at)
                    found = await recorded(window)
                self.lender.reconcile(borrower, found)
                self.book.check_thresholds(workflow.now())
            finally:
                self.reconciling.discard(borrower)
