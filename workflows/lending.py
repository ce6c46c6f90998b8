"""The lending model, the keeper's side, pure: no temporalio, no clock, no I/O.

A keeper (``AgentRun`` for a run's cap, ``KeyBudget`` for a key's day, month or total cap) lends
each borrower (a caller process) a *line*: money it counts as held by that borrower, which the
borrower reserves its calls against in its own process, with no Temporal hop. The borrower
reports what its calls spent, a few seconds late and many calls at once, and tops its line up
with the same report. So a sparse run (a call every few seconds) and a new run of a busy key
cost no round trip per call, and a key's money sits in one line per api instance, not per run.

Near the cap (less than ``SHARE * MIN_CALLS`` calls' worth available) the keeper lends no spare
room: each call asks for exactly its worst case (a ``CallNeed``), one by one. A need that does
not fit while other borrowers hold unused room recalls that room first; the asking borrower
nudges them and asks again, for about a second, before the call is refused. So a call is refused
only when the money neither spent nor held by calls in flight cannot pay for it.

Invariant: ``spent + sum(line.held) <= cap`` after every grant. A report only lowers a line; an
overrun (a provider billed past a call's reservation) is counted apart, never lent. A borrower
that goes silent is reconciled from what it wrote to the database: its ledger rows it did not
report, and its intents (calls that may have gone out) at their reservations; the rest of its
line comes back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows.budget import BudgetExceeded, Factors, Plan, affordable_max_tokens, plan_call
from workflows.contracts import Refusal, Target
from workflows.lending_contracts import (
    KEPT_RECONCILED,
    Books,
    CallNeed,
    LendAnswer,
    LendRequest,
    Line,
    Money,
    NeedAnswer,
    Recorded,
)

SHARE = 4
"""A line takes at most a quarter of what is available, so a few busy borrowers cannot strand a
cap's money while another waits; near the cap there is no spare room at all."""
MIN_CALLS = 2
"""Spare room below two calls' worth saves nothing: the keeper is near its cap."""
MAX_CALLS = 1024
"""The most calls' worth of spare room one line holds (a key's period line serves every run of
the key on its api instance: at 100 calls/s it holds a few seconds' worth)."""


def lent_micros(books: Books) -> Money:
    return sum(max(line.held_micros, 0) for line in books.lines.values())


def available_micros(books: Books) -> Money:
    """Neither spent nor lent."""
    return books.cap_micros - books.spent_micros - lent_micros(books)


def in_flight_micros(books: Books) -> Money:
    """Held by calls in flight, as their borrowers last reported."""
    return sum(line.in_flight_micros for line in books.lines.values())


def room_size(available: Money, per_call: Money, want: Money) -> Money:
    """Spare room lent on request: whole calls of ``per_call`` (identical calls strand nothing),
    at most ``want``, ``MAX_CALLS`` calls and ``available / SHARE``; none near the cap."""
    if per_call <= 0 or want <= 0:
        return 0
    calls = min(-(-want // per_call), MAX_CALLS, available // (SHARE * per_call))
    return calls * per_call if calls >= MIN_CALLS else 0


def lends(available: Money, per_call: Money) -> bool:
    """Whether the keeper is far enough from its cap to lend spare room for calls like this."""
    return per_call > 0 and available >= SHARE * MIN_CALLS * per_call


def unused_micros(line: Line) -> Money:
    """What a line holds beyond its calls in flight, as of its last report (its unreported
    spend is in there too, so this is at most what a recall brings back)."""
    return max(line.held_micros - line.in_flight_micros, 0)


class Lender:
    """The rules on a keeper's ``Books``; the keeper passes its clock in."""

    def __init__(self, books: Books) -> None:
        self.books = books

    def line_of(self, req: LendRequest, now: datetime) -> Line:
        """The borrower's line, opened on its first request."""
        line = self.books.lines.get(req.borrower)
        if line is None:
            line = Line(
                req.borrower,
                opened_at=req.opened_at or now.isoformat(),
                journaled=req.journaled,
            )
            self.books.lines[req.borrower] = line
        line.heard_at = now.isoformat()
        return line

    def is_reconciled(self, borrower: str, opened_at: str) -> bool:
        """A late word from a line already billed after its borrower went silent (the borrower
        opens a new line, with a later ``opened_at``, to go on)."""
        return f"{borrower}@{opened_at}" in self.books.reconciled

    def apply_report(self, req: LendRequest, now: datetime) -> bool:
        """Apply the request's report once (False for a repeat: a retry, or a heartbeat)."""
        line = self.line_of(req, now)
        report = req.report
        if report.seq <= line.seq:
            return False
        line.seq = report.seq
        books = self.books
        books.spent_micros += report.spent_micros
        books.overrun_micros += report.spent_micros - report.charged_micros
        line.held_micros -= report.charged_micros + report.returned_micros
        line.in_flight_micros = report.in_flight_micros
        line.reported_micros += report.spent_micros
        line.reported_calls += report.calls
        if report.returned_micros and line.recalled:
            line.recalled = False
        return True

    def grant_room(self, req: LendRequest) -> Money:
        """Spare room for the borrower, when the keeper lends at all."""
        line = self.books.lines[req.borrower]
        if line.recalled:
            return 0
        room = room_size(available_micros(self.books), req.per_call_micros, req.want_micros)
        line.held_micros += room
        return room

    def plan_need(
        self, need: CallNeed, chain: list[Target], factors: Factors, limit: Money | None = None
    ) -> Plan:
        """What ``need`` may hold here (clamped to what is available), or ``BudgetExceeded``
        with the keeper's figures in its refusal."""
        available = available_micros(self.books)
        if limit is not None:
            available = min(available, limit)
        try:
            return plan_call(
                chain,
                need.input_tokens,
                need.max_tokens,
                need.min_output_tokens,
                available,
                factors,
            )
        except BudgetExceeded as exc:
            self.fill(exc.refusal)
            fits = affordable_max_tokens(chain, need.input_tokens, self.books.cap_micros, factors)
            exc.refusal.max_tokens_that_fit_budget = max(fits, 0)
            raise

    def fill(self, refusal: Refusal) -> None:
        """The keeper's figures in a refusal: its cap, spent, and what calls in flight hold."""
        books = self.books
        refusal.budget_micros = books.cap_micros
        refusal.spent_micros = books.spent_micros
        refusal.reserved_micros = in_flight_micros(books)

    def hold(self, borrower: str, plan: Plan) -> NeedAnswer:
        """Add a granted need to the borrower's line."""
        self.books.lines[borrower].held_micros += plan.reserved_micros
        return NeedAnswer("", plan.reserved_micros, plan.max_tokens)

    def recall(self, asking: str) -> list[str]:
        """Ask every other borrower holding unused room to hand it back; who was asked."""
        asked = []
        for borrower, line in self.books.lines.items():
            if borrower != asking and unused_micros(line) > 0:
                line.recalled = True
                asked.append(borrower)
        return asked

    def answer(self, req: LendRequest, granted: Money, *, lend: bool) -> LendAnswer:
        """The figures every answer carries."""
        books = self.books
        line = books.lines[req.borrower]
        return LendAnswer(
            held_micros=line.held_micros,
            granted_micros=granted,
            cap_micros=books.cap_micros,
            spent_micros=books.spent_micros,
            available_micros=available_micros(books),
            lend=lend,
            recalled=line.recalled,
        )

    def silent(self, now: datetime, after: timedelta) -> list[str]:
        """Borrowers holding money that have not been heard from for ``after``."""
        return [
            borrower
            for borrower, line in self.books.lines.items()
            if (line.held_micros or line.in_flight_micros)
            and now - datetime.fromisoformat(line.heard_at) >= after
        ]

    def next_silence(self, now: datetime, after: timedelta) -> timedelta | None:
        """How long until a borrower holding money counts as silent, if any holds money."""
        heard = [
            datetime.fromisoformat(line.heard_at)
            for line in self.books.lines.values()
            if line.held_micros or line.in_flight_micros
        ]
        if not heard:
            return None
        return max(min(heard) + after - now, timedelta(0))

    def reconcile(self, borrower: str, recorded: Recorded) -> tuple[Money, int]:
        """Bill a silent borrower what it wrote and did not report, and what it may have sent
        (its intents, at their reservations); the rest of its line comes back. A borrower with
        no database, or a database that could not be read, is billed its whole line: the
        provider may have worked on every call it held money for. Returns (billed, calls)."""
        books = self.books
        line = books.lines.pop(borrower, None)
        if line is None:
            return 0, 0
        gone = f"{borrower}@{line.opened_at}"
        books.reconciled = [*books.reconciled[-(KEPT_RECONCILED - 1) :], gone]
        if recorded.read and line.journaled:
            unreported = max(recorded.ledger_micros - line.reported_micros, 0)
            billed = unreported + recorded.in_flight_micros
            calls = max(recorded.ledger_calls - line.reported_calls, 0)
            calls += recorded.in_flight_calls
        else:
            billed, calls = max(line.held_micros, 0), 1 if line.held_micros > 0 else 0
        books.spent_micros += billed
        books.overrun_micros += max(billed - max(line.held_micros, 0), 0)
        return billed, calls

    def idle_lines(self) -> bool:
        """True when no borrower holds money here: the keeper may end."""
        return all(
            not line.held_micros and not line.in_flight_micros for line in self.books.lines.values()
        )
