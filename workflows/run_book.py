"""The run's books: everything an ``AgentRun`` that lends lines decides synchronously.

A borrower's request (``lend``): its report applied once (spend, calls, per-step and per-model
figures, overruns contained, rows it could not write), spare room lent while the run is far from
its cap, and each call that needs its worst case granted now admitted (open? not looping? a
usable target? the loop guard?) and planned, or refused, or made to wait while unused room is
recalled; a run that holds at its cap pauses there until a person approves more. Also: the
crash reconciliation of a silent borrower, the run's controls, and the alerts all of these
raise. The clock is passed in, so every rule is unit-tested on its own;
``AgentRun`` adds what needs awaiting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import quote

from temporalio.exceptions import ApplicationError

from workflows import errors
from workflows.budget import ALERT_THRESHOLDS, BudgetExceeded, figures, merge_spend, target_key
from workflows.calls import check_call
from workflows.contracts import LedgerRow, StepSpend, Target, Usage
from workflows.guards import AlertKind, LoopGuard, run_alert
from workflows.lending import (
    Lender,
    available_micros,
    in_flight_micros,
    lends,
    lent_micros,
    unused_micros,
)
from workflows.lending_contracts import (
    Books,
    CallNeed,
    LendAnswer,
    LendRequest,
    Line,
    NeedAnswer,
    Overrun,
    Recorded,
    Report,
)
from workflows.money import micros_to_usd
from workflows.run_contracts import RunBooks, RunInput, RunSpend

RECOVERED = "(recovered)"
UNREPORTED = (
    "a caller with no journal stopped reporting: what its line held is billed, since the "
    "provider may have worked on every call it held money for"
)
"""Where a silent borrower's unreported spend is counted in the per-step and per-model figures."""


def opening_books(run: RunInput, now: datetime) -> RunBooks:
    """A new run's books: its budget, spend carried over, and its opener's line, if any."""
    books = Books(cap_micros=run.budget_micros, spent_micros=run.spent_before_micros)
    if run.opening is not None:
        opening = run.opening
        books.lines[opening.borrower] = Line(
            opening.borrower,
            held_micros=opening.micros,
            opened_at=opening.opened_at,
            heard_at=now.isoformat(),
        )
    return RunBooks(books=books, last_call_at=now.isoformat())


class RunBook:
    """The run's books and the rules that change them."""

    def __init__(self, run: RunInput, state: RunBooks) -> None:
        self.run = run
        self.state = state
        self.lender = Lender(state.books)
        self.dirty = True
        """Something visible changed: search attributes and memo need a refresh."""
        self.loop_guard = LoopGuard(run.loop_max_repeats, run.loop_window_seconds)

    # ---- lending ------------------------------------------------------------------------

    def lend(self, req: LendRequest, now: datetime) -> LendAnswer:
        """A borrower's request: its report, spare room, and the calls that need a grant."""
        state = self.state
        if self.lender.apply_report(req, now):
            self._booked(req.report, now)
        if req.report.calls or req.report.failed_calls or req.needs:
            state.last_call_at = now.isoformat()
        per_call_only = bool(self.run.loop_max_repeats)
        lend = (
            state.status == "open"
            and not per_call_only
            and lends(available_micros(state.books), req.per_call_micros)
        )
        granted = self.lender.grant_room(req) if lend else 0
        was_open = state.status == "open"
        needs = [self._need(req, need, now) for need in req.needs]
        paused = was_open and state.status == "paused"  # others' unused room comes back now
        recall = paused or any(n.wait for n in needs)
        recalling = self.lender.recall(req.borrower) if recall else []
        answer = self.lender.answer(req, granted, lend=lend)
        answer.status = state.status
        answer.needs = needs
        answer.recalling = recalling
        answer.blocked = sorted(state.blocked_targets)
        answer.factors = dict(state.output_factors)
        answer.per_call_only = per_call_only
        if granted or any(n.granted_micros for n in needs):
            self.dirty = True
        return answer

    def _need(self, req: LendRequest, need: CallNeed, now: datetime) -> NeedAnswer:
        state = self.state
        if state.status == "looping":
            return self._failed(need, errors.LOOP_DETECTED, self._paused_message())
        if state.status == "paused":
            return self._held(need)
        if state.status != "open":
            return self._failed(need, errors.RUN_NOT_OPEN, f"run {self.run.run_id} is closed")
        try:
            check_call(need.call_id, need.chain, need.input_tokens, need.max_tokens)
        except ApplicationError as err:
            return self._failed(need, errors.BAD_CALL, err.message)
        chain = self.usable(need.chain)
        if not chain:
            blocked = ", ".join(sorted(state.blocked_targets))
            message = (
                f"every target of this call is closed after an overrun ({blocked}): a provider "
                "billed past what the call reserved. Resume the run to reopen them."
            )
            return self._failed(need, errors.TARGET_BLOCKED, message)
        if self._loops(need, now):
            return self._failed(need, errors.LOOP_DETECTED, self._paused_message())
        try:
            plan = self.lender.plan_need(need, chain, state.output_factors)
        except BudgetExceeded as exc:
            others = [
                borrower
                for borrower, line in state.books.lines.items()
                if borrower != req.borrower and unused_micros(line) > 0
            ]
            if others and not need.final:
                return NeedAnswer(need.call_id, wait=True)
            if self.holds_at_cap:
                return self._hold(need, now)
            self.refused(now)
            return NeedAnswer(need.call_id, refusal=exc.refusal, failure=errors.BUDGET_EXCEEDED)
        self.loop_guard.admitted(state.fingerprints, need.fingerprint, now)
        answer = self.lender.hold(req.borrower, plan)
        answer.call_id = need.call_id
        return answer

    @staticmethod
    def _failed(need: CallNeed, kind: str, message: str) -> NeedAnswer:
        return NeedAnswer(need.call_id, failure=kind, message=message)

    def usable(self, chain: list[Target]) -> list[Target]:
        return [t for t in chain if target_key(t) not in self.state.blocked_targets]

    def _loops(self, need: CallNeed, now: datetime) -> bool:
        """The loop guard: the same request admitted ``loop_max_repeats`` times within the
        window pauses the run and refuses this one."""
        sent = self.loop_guard.repeated(self.state.fingerprints, need.fingerprint, now)
        if not sent:
            return False
        self.state.status = "looping"
        self.dirty = True
        detail = self.loop_guard.detail(self.run.run_id, sent)
        self.raise_alert("loop", 0, now, detail, event=f"loop:{now.isoformat()}")
        return True

    def _paused_message(self) -> str:
        run_id = self.run.run_id
        return self.loop_guard.paused_message(run_id, f"POST /admin/runs/{run_id}/resume")

    # ---- holding at the cap -------------------------------------------------------------

    @property
    def holds_at_cap(self) -> bool:
        """At its own cap (not a key's period: waiting does not make that money), the run
        pauses for a person's approval rather than refuse for good."""
        return self.run.hold_at_cap and self.run.own_budget

    def _hold(self, need: CallNeed, now: datetime) -> NeedAnswer:
        """The first call the cap refuses pauses the run and raises its ``held`` alert (once
        per cap: a pause after an approval is another event)."""
        self.state.status = "paused"
        self.dirty = True
        cap = self.state.books.cap_micros
        self.raise_alert("held", 0, now, self._held_message(), event=f"held:{cap}")
        return self._held(need)

    def _held(self, need: CallNeed) -> NeedAnswer:
        """A paused run refuses every call at once: an agent's request is never held open for
        an approval that may take hours."""
        return self._failed(need, errors.RUN_HELD, self._held_message())

    def _held_message(self) -> str:
        run_id, books = self.run.run_id, self.state.books
        where = quote(run_id, safe="")
        return (
            f"run {run_id} is paused at its cap: ${micros_to_usd(books.spent_micros)} of its "
            f"${micros_to_usd(books.cap_micros)} budget is spent, and every call is refused "
            "until a person approves more budget (retrying does not help). An agent should stop "
            "and tell its user. To approve: open the run's page on the runcap dashboard "
            f"(/ui/runs/{where}), or run `runcap runs extend {run_id} --by USD`, or "
            f'POST /admin/runs/{where}/extend with {{"by_usd": "5"}}.'
        )

    def extend(self, budget_micros: int, now: datetime) -> bool:
        """A raised cap; a run paused at its cap goes on (its idle clock starts afresh: the
        approval may have taken hours). True when it was paused."""
        self.set_budget(budget_micros)
        if self.state.status != "paused":
            return False
        self.state.status = "open"
        self.state.last_call_at = now.isoformat()
        return True

    # ---- reports ------------------------------------------------------------------------

    def _booked(self, report: Report, now: datetime) -> None:
        """A report's figures: calls, per-step and per-model spend, overruns, rows to write."""
        state = self.state
        state.calls += report.calls
        state.failed_calls += report.failed_calls
        merge_spend(state.by_step, report.by_step)
        merge_spend(state.by_model, report.by_model)
        for overrun in report.overruns:
            self._contain_overrun(overrun, now)
        state.pending_ledger.extend(report.rows)
        self.dirty = True
        self._thresholds(now)

    def _contain_overrun(self, overrun: Overrun, now: datetime) -> None:
        """A provider billed past a reservation: its target takes no more calls of this run,
        and later reservations assume the output it really returned."""
        state = self.state
        state.overruns += 1
        key = target_key(overrun.target)
        if 0 < overrun.max_tokens < overrun.output_tokens:
            factor = -(-overrun.output_tokens * 1000 // overrun.max_tokens)
            state.output_factors[key] = max(state.output_factors.get(key, 1000), factor)
        first = key not in state.blocked_targets
        state.blocked_targets[key] = (
            f"billed {overrun.cost_micros} micro-USD for a call that reserved "
            f"{overrun.reserved_micros}"
        )
        if first:
            detail = (
                f"{key} billed ${micros_to_usd(overrun.cost_micros)} for a call that held "
                f"${micros_to_usd(overrun.reserved_micros)} ({overrun.output_tokens} output "
                f"tokens for max_tokens={overrun.max_tokens}); it takes no more calls of this "
                "run until the run is resumed"
            )
            self.raise_alert("overrun", 0, now, detail, event=f"overrun:{key}:{overrun.call_id}")

    def reconcile(self, borrower: str, recorded: Recorded, now: datetime) -> None:
        """A silent borrower, billed from what it recorded (see ``Lender.reconcile``). A line
        billed whole (no journal to read) leaves one ``unknown`` ledger row for what it held,
        so the ledger equals the run."""
        line = self.state.books.lines.get(borrower)
        whole = line is not None and not (recorded.read and line.journaled)
        opened_at = line.opened_at if line is not None else ""
        billed, calls = self.lender.reconcile(borrower, recorded)
        if whole and billed:
            self.state.pending_ledger.append(
                LedgerRow(
                    call_id=f"unreported-{borrower}-{opened_at}",
                    run_id=self.run.run_id,
                    key_id=self.run.key_id,
                    tags=[],
                    requested_model="",
                    provider="",
                    model=RECOVERED,
                    status="unknown",
                    attempts=[],
                    usage=Usage(),
                    cost_micros=billed,
                    reserved_micros=billed,
                    started_at=opened_at or now.isoformat(),
                    latency_ms=0,
                    error=UNREPORTED,
                    caller_id=borrower,
                )
            )
        if not billed and not calls:
            return
        self.state.calls += calls
        recovered = {RECOVERED: StepSpend(calls=calls, cost_micros=billed)}
        merge_spend(self.state.by_step, recovered)
        merge_spend(self.state.by_model, recovered)
        self.dirty = True
        self._thresholds(now)

    # ---- controls -----------------------------------------------------------------------

    def set_status(self, status: Literal["closed", "revoked", "expired"]) -> None:
        if self.state.status in ("open", "looping", "paused"):
            self.state.status = status
            self.dirty = True

    def resume(self) -> None:
        """An operator's word: a looping run reopens, targets closed by overruns reopen."""
        state = self.state
        if state.status == "looping":
            state.status = "open"
        state.blocked_targets.clear()
        state.fingerprints.clear()
        self.dirty = True

    def set_budget(self, budget_micros: int) -> None:
        """A new cap (a top-up or a key's new policy); thresholds re-arm above spend."""
        state = self.state
        state.books.cap_micros = budget_micros
        state.refused_alerted = False
        state.alerted_thresholds = [
            pct
            for pct in state.alerted_thresholds
            if state.books.spent_micros * 100 >= pct * budget_micros
        ]
        self.dirty = True

    def spend(self) -> RunSpend:
        """The run's figures as the ``spend`` query answers them."""
        state = self.state
        books = state.books
        held = in_flight_micros(books)
        return RunSpend(
            run_id=self.run.run_id,
            status=state.status,
            budget_micros=books.cap_micros,
            spent_micros=books.spent_micros,
            reserved_micros=held,
            remaining_micros=figures(books.cap_micros, books.spent_micros, held).remaining_micros,
            calls=state.calls,
            failed_calls=state.failed_calls,
            overruns=state.overruns,
            overrun_micros=books.overrun_micros,
            by_step=state.by_step,
            by_model=state.by_model,
            in_flight_micros=held,
            lent_micros=lent_micros(books),
            lines=sum(1 for line in books.lines.values() if line.held_micros),
        )

    # ---- alerts -------------------------------------------------------------------------

    def refused(self, now: datetime) -> None:
        """The first refusal of the run raises an alert."""
        if not self.state.refused_alerted and self.run.own_budget:
            self.state.refused_alerted = True
            self.raise_alert("refused", 0, now)

    def _thresholds(self, now: datetime) -> None:
        """Alert thresholds newly crossed by reported spend; each is raised once."""
        state = self.state
        cap, spent = state.books.cap_micros, state.books.spent_micros
        if cap <= 0 or not self.run.own_budget:
            return
        for pct in ALERT_THRESHOLDS:
            if pct not in state.alerted_thresholds and spent * 100 >= pct * cap:
                state.alerted_thresholds.append(pct)
                self.raise_alert("threshold", pct, now)

    def raise_alert(
        self, kind: AlertKind, pct: int, now: datetime, detail: str = "", *, event: str = ""
    ) -> None:
        """Queue an alert; ``detail`` is a sentence when the standard one would not say enough
        (the delivery writes the standard sentence for thresholds and refusals)."""
        run, books = self.run, self.state.books
        alert = run_alert(
            run.run_id,
            run.key_id,
            kind,
            pct,
            books.cap_micros,
            books.spent_micros,
            now,
            detail,
            event=event,
        )
        self.state.pending_alerts.append(alert)
        self.dirty = True
