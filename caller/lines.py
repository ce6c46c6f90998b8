"""One line as this process keeps it (see ``caller.lending``): what the keeper holds for it,
what its calls hold and spent, the report on its way, and what the keeper last said of itself.
Also a call's hold across its lines, and how a call ended as its lines report it.

Invariant (per line): what its calls hold and spent unacknowledged never exceeds what the
keeper holds for it (``limit``). Room handed back leaves ``limit`` when the report is frozen;
room granted joins it when the answer arrives, which ``limit`` then adopts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from workflows.contracts import LedgerRow, RunStatus, StepSpend, Target, Usage
from workflows.lending import MAX_CALLS
from workflows.lending_contracts import CallNeed, LendAnswer, NeedAnswer, Overrun, Report

MIN_ROOM_CALLS = 4
"""Spare room a line asks for: at least four calls' worth, or twice the most calls it has seen
in flight at once, so a sparse run's next call (and a burst's) finds room with no hop."""


@dataclass(frozen=True)
class Keeper:
    """A keeper as a caller addresses it: its workflow id, and how to start it if it is not
    running (a ``RunInput`` or a ``KeyBudgetInput``)."""

    workflow_id: str
    start: Any = field(compare=False, hash=False)
    is_run: bool = True
    per_call: bool = False
    """Every call must pass through this keeper (a run under the loop guard)."""


_last_stamp = datetime.min.replace(tzinfo=UTC)


def wall_now() -> datetime:
    """Now (UTC), never earlier than a time this process stamped before: a call's start is
    never before its line opened, even if the clock steps back."""
    global _last_stamp
    _last_stamp = max(datetime.now(UTC), _last_stamp)
    return _last_stamp


@dataclass
class News:
    """What the calls that ended since the last report add up to."""

    spent: int = 0
    charged: int = 0
    calls: int = 0
    failed: int = 0
    by_step: dict[str, StepSpend] = field(default_factory=dict)
    by_model: dict[str, StepSpend] = field(default_factory=dict)
    overruns: list[Overrun] = field(default_factory=list)
    rows: list[LedgerRow] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.calls or self.failed or self.spent or self.rows)


class LocalLine:
    """This process's line at one keeper."""

    def __init__(self, keeper: Keeper, *, now: float, journaled: bool = True) -> None:
        self.keeper = keeper
        self.journaled = journaled
        self.opened_at = wall_now().isoformat()
        self.limit = 0
        """What the keeper holds for us, as it last said, less room handed back since."""
        self.in_flight = 0
        self.unacked = 0
        """Charged by calls that ended, not yet acknowledged by the keeper."""
        self.calls_in_flight = 0
        self.peak = 0
        """The most calls in flight at once since the last report."""
        self.per_call = 0
        """The largest call held since the last report: room is asked for in calls like it."""
        self.seq = 0
        self.news = News()
        self.sending: Report | None = None
        """The report on its way, resent as it is until answered."""
        self.sending_want = 0
        self.reported_in_flight = 0
        """What this line's calls in flight held when it last reported (the keeper's view)."""
        self.lock = asyncio.Lock()
        self.waiting: list[tuple[CallNeed, asyncio.Future[NeedAnswer]]] = []
        self.lend = True
        self.recalled = False
        self.per_call_only = keeper.per_call
        self.status: RunStatus = "open"
        self.blocked: set[str] = set()
        self.factors: dict[str, int] = {}
        self.cap = 0
        self.spent = 0
        """The keeper's cap and spend as it last said (for the answers' budget headers)."""
        self.heard_at = float("-inf")
        self.sent_at = now
        self.used_at = now
        self.gone = False

    @property
    def room(self) -> int:
        return self.limit - self.in_flight - self.unacked

    def holding(self) -> bool:
        """Whether the keeper holds money for us here (so we must keep reporting)."""
        return bool(self.limit or self.in_flight or self.unacked or self.sending)

    def can_hold(self, amount: int, now: float, fresh_for: float) -> bool:
        return (
            not self.per_call_only
            and not self.gone
            and self.status == "open"
            and now - self.heard_at < fresh_for
            and self.room >= amount
        )

    def hold(self, amount: int, now: float) -> None:
        self.in_flight += amount
        self.calls_in_flight += 1
        self.peak = max(self.peak, self.calls_in_flight)
        self.per_call = max(self.per_call, amount)
        self.used_at = now

    def release(self, amount: int) -> None:
        """A hold given back unused (the call never went out)."""
        self.in_flight -= amount
        self.calls_in_flight -= 1

    def desired_room(self) -> int:
        if not self.journaled:
            return 0  # no journal: a crash bills the whole line, so it holds no spare room
        calls = min(max(2 * self.peak, MIN_ROOM_CALLS), MAX_CALLS)
        return calls * self.per_call

    def freeze(self, *, keep_room: bool) -> tuple[Report, int]:
        """The report to send now and the room to ask for: this line's news, and its unused
        room beyond what it keeps, handed back (it leaves the line at once)."""
        if self.sending is not None:
            return self.sending, self.sending_want
        keep = self.desired_room() if keep_room else 0
        returned = max(self.room - keep, 0)
        want = max(keep - self.room, 0)
        news = self.news
        if news.empty() and not returned:
            return Report(seq=self.seq, in_flight_micros=self.in_flight), want  # a heartbeat
        self.seq += 1
        self.limit -= returned
        self.sending = Report(
            seq=self.seq,
            spent_micros=news.spent,
            charged_micros=news.charged,
            calls=news.calls,
            failed_calls=news.failed,
            returned_micros=returned,
            in_flight_micros=self.in_flight,
            by_step=news.by_step,
            by_model=news.by_model,
            overruns=news.overruns,
            rows=news.rows,
        )
        self.sending_want = want
        self.reported_in_flight = self.in_flight
        self.news = News()
        self.peak = self.calls_in_flight
        return self.sending, want

    def answered(self, report: Report, answer: LendAnswer, now: float) -> None:
        """Adopt the keeper's view of the line, and what it says of itself."""
        if self.sending is report:
            self.unacked -= report.charged_micros
            self.sending = None
        self.limit = answer.held_micros
        self.cap = answer.cap_micros
        self.spent = answer.spent_micros
        self.lend = answer.lend
        self.recalled = answer.recalled
        self.status = answer.status
        self.per_call_only = answer.per_call_only
        if self.keeper.is_run:
            self.blocked = set(answer.blocked)
            self.factors = dict(answer.factors)
        self.heard_at = now


@dataclass
class Hold:
    """A call's reservation across its keepers: how much it holds at each line."""

    call_id: str
    chain: list[Target]
    max_tokens: int
    amount: int
    lines: list[tuple[LocalLine, int]]
    run_line: LocalLine | None
    """The line at the call's own run (its parents' runs, for a sub-agent, are in ``lines``)."""

    def started(self, chosen: datetime) -> datetime:
        """The call's start as its intent and ledger row record it: when its keepers were
        chosen, but never before one of its lines opened (a crash reconciliation reads a
        line's rows from its opening)."""
        opened = [datetime.fromisoformat(line.opened_at) for line, _ in self.lines]
        return max([chosen, *opened])


@dataclass
class Ending:
    """How a call ended, as its lines report it."""

    cost: int
    ok: bool
    usage: Usage
    tags: list[str]
    model: str
    target: Target | None
    max_tokens: int
    row: LedgerRow | None = None
    """Set when this process could not write the row: the run writes it."""
