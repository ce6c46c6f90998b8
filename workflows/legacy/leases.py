"""Period leases, both sides, pure: how big a slice a period grants, and a run's account of the
slices it holds (what is left, what to draw, what to give back).

Invariant on the period's side: ``spent + leased <= cap`` after every grant, so the cap holds
exactly across any number of runs and api instances. On the run's side, a call is reserved
against the run's own budget and against each period lease at once, synchronously, so a lease
is never spent twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from workflows.contracts import PeriodBudget
from workflows.legacy.contracts import (
    Lease,
    OpenCall,
    RunState,
)
from workflows.periods import period_of

SHARE = 4
"""Far from its cap, a period lends each run at most a quarter of what is left beyond one call,
so a few busy runs cannot strand the period's money while others are refused."""
WANT_CALLS = 8
"""A run asks for enough to serve this many calls like the current one without another hop."""


def grant_size(available: int, need: int, floor: int, want: int) -> int:
    """How much a period lends a run.

    While the period can pay the asking call in full: whole multiples of that call's ``need``
    (so identical calls never leave a stranded remainder), at most ``want`` and at most
    ``available / SHARE``, at least one call. Near the cap, when only the call's ``floor`` fits:
    all that is left (the call then shrinks its ``max_tokens``). Otherwise nothing.
    """
    if need > 0 and available >= need:
        calls = max(1, min(want // need, available // (SHARE * need)))
        return calls * need
    if 0 < floor <= available:
        return available
    return 0


@dataclass
class Draw:
    """A lease the run must draw before it can reserve a call."""

    budget: PeriodBudget
    period: str
    ends_at: str
    need_micros: int
    floor_micros: int
    want_micros: int


@dataclass
class GiveBack:
    """What a run reports to a period: spend since its last report, and unused money."""

    lease: Lease
    spent_micros: int
    unused_micros: int


class RunLeases:
    """A run's period leases, kept in its ``RunState``."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    def all(self) -> Iterator[Lease]:
        yield from self.state.leases.values()
        yield from self.state.retired_leases

    def held_under(self, lease: Lease) -> int:
        """Reserved by open calls against ``lease``."""
        lease_id = lease.id
        return sum(
            call.reserved_micros
            for call in self.state.open_calls.values()
            if lease_id in call.leases
        )

    def room(self, lease: Lease) -> int:
        return lease.granted_micros - lease.spent_micros - self.held_under(lease)

    def limit(self, now: datetime) -> tuple[int | None, Lease | None]:
        """The least room among the current leases, and the lease that has it (``None``, None
        when the run draws on no period)."""
        tightest: tuple[int | None, Lease | None] = (None, None)
        for budget in self.state.periods:
            lease = self.current(budget, now)
            room = self.room(lease) if lease else 0
            if tightest[0] is None or room < tightest[0]:
                tightest = (room, lease)
        return tightest

    def current(self, budget: PeriodBudget, now: datetime) -> Lease | None:
        """The lease of ``budget``'s kind for the period containing ``now``, if held."""
        lease = self.state.leases.get(budget.kind)
        period, _ = period_of(budget.kind, now, budget.timezone)
        return lease if lease is not None and lease.period == period else None

    def draws(self, now: datetime, need: int, floor: int, extra: int = 0) -> list[Draw]:
        """The leases to draw before a call holding ``need`` (at least ``floor``) can reserve;
        ``extra`` asks for more (an advance for the caller) where the period can spare it."""
        wanted = []
        for budget in self.state.periods:
            lease = self.current(budget, now)
            if lease is not None and self.room(lease) >= need:
                continue
            period, ends = period_of(budget.kind, now, budget.timezone)
            short = need - (self.room(lease) if lease else 0)
            want = max(short, min(WANT_CALLS * need + extra, budget.cap_micros // 10))
            wanted.append(Draw(budget, period, ends.isoformat(), short, floor, want))
        return wanted

    def granted(self, draw: Draw, amount: int) -> None:
        """Add a grant to the run's lease of that period; a lease of an older period retires."""
        kind = draw.budget.kind
        lease = self.state.leases.get(kind)
        if lease is not None and lease.period != draw.period:
            self.state.retired_leases.append(lease)
            lease = None
        if lease is None:
            lease = Lease(kind, draw.period, draw.ends_at)
            self.state.leases[kind] = lease
        lease.granted_micros += amount

    def lease_ids(self, now: datetime) -> list[str]:
        """The leases a call reserved now counts against."""
        return [lease.id for b in self.state.periods if (lease := self.current(b, now))]

    def charge(self, call: OpenCall, cost: int) -> None:
        """A settled call's cost, spent under each lease it reserved against."""
        for lease in self.all():
            if lease.id in call.leases:
                lease.spent_micros += cost

    def give_backs(self, *, idle: bool, closing: bool) -> list[GiveBack]:
        """Reports due now: retired leases no open call still holds; every lease when the run
        closes; the unused part of every lease when the run is idle."""
        due = []
        for lease in self.all():
            held = self.held_under(lease)
            retired = lease in self.state.retired_leases
            if held == 0 and (retired or closing):
                unused = lease.granted_micros - lease.spent_micros
                due.append(GiveBack(lease, lease.spent_micros, unused))
            elif idle and (lease.spent_micros or self.room(lease) > 0):
                due.append(GiveBack(lease, lease.spent_micros, max(self.room(lease), 0)))
        return due

    def given_back(self, back: GiveBack) -> None:
        """The period took ``back``: the lease shrinks to what open calls still hold."""
        lease = back.lease
        lease.granted_micros -= back.spent_micros + back.unused_micros
        lease.spent_micros -= back.spent_micros
        if lease.granted_micros <= 0 and self.held_under(lease) == 0:
            if lease in self.state.retired_leases:
                self.state.retired_leases.remove(lease)
            elif self.state.leases.get(lease.kind) is lease:
                del self.state.leases[lease.kind]
