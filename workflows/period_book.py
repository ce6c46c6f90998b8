"""A key period's books: everything a ``KeyBudget`` that lends lines decides synchronously.

A borrower's request: its report applied once, spare room lent while the period is far from
its cap, and each call that needs its worst case granted, or refused (the first refusal raises
an alert), or made to wait while unused room is recalled from other borrowers. Thresholds are
crossed on reported spend. The clock is passed in, so every rule is unit-tested on its own.
"""

from __future__ import annotations

from datetime import datetime

from workflows import errors
from workflows.budget import ALERT_THRESHOLDS, BudgetExceeded
from workflows.contracts import Alert
from workflows.key_contracts import KeyBudgetInput, PeriodBooks, PeriodFigures
from workflows.lending import Lender, available_micros, lends, unused_micros
from workflows.lending_contracts import CallNeed, LendAnswer, LendRequest, NeedAnswer
from workflows.money import micros_to_usd


class PeriodBook:
    """One key period's books and the rules that change them."""

    def __init__(self, inp: KeyBudgetInput, state: PeriodBooks) -> None:
        self.inp = inp
        self.state = state
        self.lender = Lender(state.books)

    def lend(self, req: LendRequest, now: datetime) -> LendAnswer:
        """A borrower's report, its spare room, and its calls that need a grant now."""
        lender, books = self.lender, self.state.books
        if lender.apply_report(req, now):
            self.check_thresholds(now)
        lend = lends(available_micros(books), req.per_call_micros)
        granted = lender.grant_room(req) if lend else 0
        needs = [self._need(req, need, now) for need in req.needs]
        answer = lender.answer(req, granted, lend=lend)
        answer.needs = needs
        if any(n.wait for n in needs):
            answer.recalling = lender.recall(req.borrower)
        return answer

    def _need(self, req: LendRequest, need: CallNeed, now: datetime) -> NeedAnswer:
        try:
            plan = self.lender.plan_need(need, need.chain, need.factors)
        except BudgetExceeded as exc:
            lines = self.state.books.lines
            others = [b for b, line in lines.items() if b != req.borrower and unused_micros(line)]
            if others and not need.final:
                return NeedAnswer(need.call_id, wait=True)
            refusal = exc.refusal
            refusal.cap = self.inp.kind
            refusal.resets_at = "" if self.inp.kind == "total" else self.inp.ends_at
            if not self.state.refused_alerted:
                self.state.refused_alerted = True
                self.alert("refused", 0, now)
            return NeedAnswer(need.call_id, refusal=refusal, failure=errors.BUDGET_EXCEEDED)
        answer = self.lender.hold(req.borrower, plan)
        answer.call_id = need.call_id
        return answer

    def set_cap(self, cap_micros: int) -> None:
        """A new cap (the key was edited); thresholds re-arm above spend. A lower cap recalls
        the lines' unused room."""
        state, books = self.state, self.state.books
        if cap_micros < books.cap_micros:
            self.lender.recall("")
        books.cap_micros = cap_micros
        state.refused_alerted = False
        state.alerted_thresholds = [
            pct for pct in state.alerted_thresholds if books.spent_micros * 100 >= pct * cap_micros
        ]

    def figures(self) -> PeriodFigures:
        inp, books = self.inp, self.state.books
        available = available_micros(books)
        return PeriodFigures(
            key_id=inp.key_id,
            kind=inp.kind,
            period=inp.period,
            ends_at=inp.ends_at,
            cap_micros=books.cap_micros,
            spent_micros=books.spent_micros,
            leased_micros=books.cap_micros - books.spent_micros - available,
            remaining_micros=max(available, 0),
            runs=sum(1 for line in books.lines.values() if line.held_micros),
        )

    def check_thresholds(self, now: datetime) -> None:
        """Alert thresholds newly crossed by reported spend; each is raised once."""
        state, books = self.state, self.state.books
        for pct in ALERT_THRESHOLDS:
            spent = books.spent_micros
            if pct not in state.alerted_thresholds and spent * 100 >= pct * books.cap_micros:
                state.alerted_thresholds.append(pct)
                inp = self.inp
                detail = (
                    f"key {inp.key_id}: {pct}% of its {inp.kind} budget for {inp.period} is "
                    f"spent (${micros_to_usd(spent)} of ${micros_to_usd(books.cap_micros)})"
                )
                self.alert("threshold", pct, now, detail)

    def alert(self, kind: str, pct: int, now: datetime, detail: str = "") -> None:
        inp, books = self.inp, self.state.books
        cap = books.cap_micros
        self.state.pending_alerts.append(
            Alert(
                run_id="",
                key_id=inp.key_id,
                kind="refused" if kind == "refused" else "threshold",
                threshold_percent=pct,
                budget_micros=cap,
                spent_micros=books.spent_micros,
                at=now.isoformat(),
                scope=inp.kind,
                period=inp.period,
                event_id=f"key:{inp.key_id}:{inp.kind}:{inp.period}:{kind}:{pct}:{cap}",
                detail=detail,
            )
        )
