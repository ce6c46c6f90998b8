"""``KeyBudget`` before lines (frozen): period leases lent to runs, not to api instances.
``workflows.key_budget.KeyBudget`` delegates here for periods that started before
``workflow.patched("lines")``. What follows is that class's original text.


One workflow per (key, period) owns the period's money. A run draws a lease when it opens or
runs low, and gives back what it did not use when it closes or goes idle, so the cap holds
exactly across any number of runs and api instances with one hop per lease, not per call.
Handlers have no await: a grant is atomic. Invariant: ``spent + leased <= cap`` after every
grant (a run that overran reports more spend than it leased; that is counted, not refused).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import errors
    from workflows.budget import ALERT_THRESHOLDS
    from workflows.chores import send_alerts
    from workflows.contracts import Alert
    from workflows.key_contracts import KeyBudgetInput, PeriodFigures
    from workflows.legacy.contracts import (
        KeyBudgetState,
        LeaseGrant,
        LeaseRequest,
        LeaseReturn,
    )
    from workflows.legacy.leases import grant_size
    from workflows.money import micros_to_usd

KEEP_AFTER_PERIOD = timedelta(days=7)
"""A period's workflow waits this long after the period for its runs' last reports."""
ALERT_RETRY = RetryPolicy(maximum_attempts=10, maximum_interval=timedelta(seconds=30))
KEPT_REQUESTS = 1_000


class LegacyKeyBudget:
    def __init__(self, inp: KeyBudgetInput) -> None:
        self.inp = inp
        self.state = inp.state or KeyBudgetState(cap_micros=inp.cap_micros)

    @property
    def leased_micros(self) -> int:
        return sum(self.state.leased.values())

    @property
    def available_micros(self) -> int:
        return self.state.cap_micros - self.state.spent_micros - self.leased_micros

    def lease(self, req: LeaseRequest) -> LeaseGrant:
        """Lend ``req.run_id`` a slice (see ``grant_size``); nothing when the period cannot pay
        even the asking call's floor."""
        answered = self.state.answered.get(req.request_id)
        if answered is not None:
            return answered
        amount = grant_size(
            self.available_micros, req.need_micros, req.floor_micros, req.want_micros
        )
        if amount:
            self.state.leased[req.run_id] = self.state.leased.get(req.run_id, 0) + amount
        elif not self.state.refused_alerted:
            self.state.refused_alerted = True
            self._alert("refused", 0)
        self._check_thresholds()
        grant = LeaseGrant(
            amount, self.state.cap_micros, self.state.spent_micros, self.leased_micros
        )
        if req.request_id:
            self.state.answered[req.request_id] = grant
            while len(self.state.answered) > KEPT_REQUESTS:
                del self.state.answered[next(iter(self.state.answered))]
        return grant

    def give_back(self, ret: LeaseReturn) -> PeriodFigures:
        """A run's report: its spend since the last one, and what it hands back."""
        if ret.request_id in self.state.reported:
            return self.figures()
        if ret.request_id:
            self.state.reported = [*self.state.reported[-KEPT_REQUESTS:], ret.request_id]
        held = self.state.leased.get(ret.run_id, 0)
        left = held - ret.spent_micros - ret.unused_micros
        if left > 0:
            self.state.leased[ret.run_id] = left
        else:
            self.state.leased.pop(ret.run_id, None)
        self.state.spent_micros += ret.spent_micros
        self._check_thresholds()
        return self.figures()

    def set_cap(self, cap_micros: int) -> PeriodFigures:
        """A new cap for this period (the key was edited); thresholds re-arm above spend."""
        self.state.cap_micros = cap_micros
        self.state.refused_alerted = False
        self.state.alerted_thresholds = [
            pct for pct in self.state.alerted_thresholds if self._committed_percent() >= pct
        ]
        return self.figures()

    def validate_cap(self, cap_micros: int) -> None:
        if cap_micros <= 0:
            raise ApplicationError("a period's cap must be positive", type=errors.BAD_CALL)

    def figures(self) -> PeriodFigures:
        return PeriodFigures(
            key_id=self.inp.key_id,
            kind=self.inp.kind,
            period=self.inp.period,
            ends_at=self.inp.ends_at,
            cap_micros=self.state.cap_micros,
            spent_micros=self.state.spent_micros,
            leased_micros=self.leased_micros,
            remaining_micros=max(self.available_micros, 0),
            runs=len(self.state.leased),
        )

    def _committed_percent(self) -> int:
        committed = self.state.spent_micros + self.leased_micros
        return committed * 100 // max(self.state.cap_micros, 1)

    def _check_thresholds(self) -> None:
        # Spend reaches a period late (when runs report); spend plus what runs hold is the
        # honest upper bound, and what the alert says.
        for pct in ALERT_THRESHOLDS:
            if pct not in self.state.alerted_thresholds and self._committed_percent() >= pct:
                self.state.alerted_thresholds.append(pct)
                inp = self.inp
                held = (
                    f"key {inp.key_id}: {pct}% of its {inp.kind} budget for {inp.period} is spent "
                    f"or held by its runs (cap ${micros_to_usd(self.state.cap_micros)})"
                )
                self._alert("threshold", pct, held)

    def _alert(self, kind: str, pct: int, detail: str = "") -> None:
        inp = self.inp
        cap = self.state.cap_micros
        self.state.pending_alerts.append(
            Alert(
                run_id="",
                key_id=inp.key_id,
                kind="refused" if kind == "refused" else "threshold",
                threshold_percent=pct,
                budget_micros=cap,
                spent_micros=self.state.spent_micros,
                at=workflow.now().isoformat(),
                scope=inp.kind,
                period=inp.period,
                event_id=f"key:{inp.key_id}:{inp.kind}:{inp.period}:{kind}:{pct}:{cap}",
                detail=detail,
            )
        )

    async def run(self, inp: KeyBudgetInput) -> PeriodFigures:
        """Deliver alerts; continue as new when told; end a week after the period, or once the
        period is over and every lease is back."""
        ends = datetime.fromisoformat(inp.ends_at)
        while True:
            now = workflow.now()
            if now >= ends and not self.state.leased and not self.state.pending_alerts:
                break
            if now >= ends + KEEP_AFTER_PERIOD:
                break
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(KeyBudgetInput(**{**inp.__dict__, "state": self.state}))
            wake = max(ends - now, timedelta(seconds=60)) if now < ends else timedelta(hours=1)
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: (
                        bool(self.state.pending_alerts)
                        or workflow.info().is_continue_as_new_suggested()
                        or (workflow.now() >= ends and not self.state.leased)
                    ),
                    timeout=wake,
                )
            alerts, self.state.pending_alerts = self.state.pending_alerts, []
            await send_alerts(alerts, ALERT_RETRY)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.figures()
