"""An agent written as a workflow, as a borrower of its key's period budgets: its lines, pure.

The agent's workflow is one borrower (its id is the workflow id) at each period of its key, as
an api instance is (``workflows.lending``). It keeps no spare room: each call asks every period
for its worst case (a ``CallNeed``) before it goes out, in one request with the report of what
the calls before it spent, and reports again once it ends. So a period's cap holds before the
call goes out, and between calls the agent's lines hold nothing: a period never counts an idle
agent silent. Requests to the periods go one at a time (the workflow holds a lock), a report is
resent unchanged until it is answered, so each is applied once, and every answer carries what
the period holds for the line, which this side adopts: a grant repeated by a retried activity
comes back with the next report.

The workflow writes no intents (``journaled=False``): it is durable and never loses a call. A
period that hears nothing from it for its caller timeout (a model call that lasts longer than
that) bills the line whole, that is, the call in flight at its reservation.

Plain data and pure functions (no temporalio, no clock); no forward references in the
dataclasses, which cross Temporal (see ``workflows.contracts``).
"""

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from workflows.contracts import PeriodBudget
from workflows.errors import Failure
from workflows.key_contracts import KeyBudgetInput, key_budget_id, period_start
from workflows.lending_contracts import CallNeed, LendAnswer, LendRequest, Report
from workflows.periods import period_of


@dataclass
class PeriodLine:
    """The agent's line at one period, as its workflow keeps it."""

    keeper_id: str
    start: KeyBudgetInput
    opened_at: str
    """Names the line at the period: a line the period billed is reopened with a later one."""
    seq: int = 0
    limit_micros: int = 0
    """What the period holds for the line, as it last said, less room handed back since."""
    in_flight_micros: int = 0
    """What the agent's calls in flight hold here."""
    unacked_micros: int = 0
    """Charged by calls that ended, not yet acknowledged by the period."""
    news: Report = field(default_factory=lambda: Report(seq=0))
    """What calls that ended since the last report add up to (its ``seq`` is unused)."""
    sending: Report | None = None
    """The report on its way, resent as it is until the period answers it."""


@dataclass
class PeriodHold:
    """What one call holds at one period's line (``opened_at``: the line it holds it in)."""

    keeper_id: str
    opened_at: str
    micros: int


@dataclass
class PeriodLend:
    """One request to one period: the lending activity sends it, starting the period if new."""

    keeper_id: str
    start: KeyBudgetInput
    request: LendRequest


@dataclass
class PeriodAnswer:
    keeper_id: str
    answer: LendAnswer | None = None
    failure: Failure | None = None
    """Set when the period would not hear the line: ``LineGone`` (it billed the line while the
    agent was silent: open a new one) or ``RunNotOpen`` (the period has ended)."""


@dataclass
class LendBatch:
    """The lending activity's input: one request per period, sent together."""

    lends: list[PeriodLend]


@dataclass
class LendBatchAnswer:
    answers: list[PeriodAnswer]


def current_lines(
    lines: dict[str, PeriodLine],
    key_id: str,
    periods: list[PeriodBudget],
    now: datetime,
    caller_timeout_seconds: int,
) -> list[PeriodLine]:
    """The lines a call starting ``now`` needs room at: one per period of the key that
    contains ``now`` (a call counts in the period it started in), opened when new."""
    current = []
    for budget in periods:
        start = period_start(key_id, budget, now, caller_timeout_seconds)
        keeper_id = key_budget_id(key_id, budget.kind, start.period)
        line = lines.get(keeper_id)
        if line is None:
            line = lines[keeper_id] = PeriodLine(keeper_id, start, now.isoformat())
        current.append(line)
    return current


def current_keepers(key_id: str, periods: list[PeriodBudget], now: datetime) -> set[str]:
    """The workflow ids of the key's periods that contain ``now``."""
    return {
        key_budget_id(key_id, budget.kind, period_of(budget.kind, now, budget.timezone)[0])
        for budget in periods
    }


def has_news(line: PeriodLine) -> bool:
    news = line.news
    return bool(news.calls or news.failed_calls or news.spent_micros)


def unused_micros(line: PeriodLine) -> int:
    return max(line.limit_micros - line.in_flight_micros - line.unacked_micros, 0)


def to_report(line: PeriodLine) -> bool:
    """Whether the line has something to tell its period: news, a report not yet answered, or
    room its calls no longer hold."""
    return line.sending is not None or has_news(line) or unused_micros(line) > 0


def lend_request(line: PeriodLine, borrower: str, needs: list[CallNeed]) -> PeriodLend:
    """The line's next request: its report (every unused micro-dollar handed back) and
    ``needs``. A report not yet answered is sent again as it was."""
    if line.sending is None and (has_news(line) or unused_micros(line) > 0):
        returned = unused_micros(line)
        line.seq += 1
        line.limit_micros -= returned
        line.sending = replace(
            line.news,
            seq=line.seq,
            returned_micros=returned,
            in_flight_micros=line.in_flight_micros,
        )
        line.news = Report(seq=0)
    report = line.sending or Report(seq=line.seq, in_flight_micros=line.in_flight_micros)
    request = LendRequest(
        borrower=borrower,
        report=report,
        needs=needs,
        opened_at=line.opened_at,
        journaled=False,
    )
    return PeriodLend(line.keeper_id, line.start, request)


def answered(line: PeriodLine, sent: LendRequest, answer: LendAnswer) -> int:
    """Adopt the period's view of the line after ``sent``; returns what its need got (0: not
    granted), which the call now holds here."""
    if line.sending is not None and sent.report.seq == line.sending.seq:
        line.unacked_micros -= line.sending.charged_micros
        line.sending = None
    line.limit_micros = answer.held_micros
    granted = sum(need.granted_micros for need in answer.needs)
    line.in_flight_micros += granted
    return granted


def reopened(line: PeriodLine, now: datetime) -> None:
    """The period billed this line (the agent was silent past its caller timeout): what the
    line held is spent there, so the agent starts a new line, named by a later ``opened_at``."""
    billed = datetime.fromisoformat(line.opened_at)
    line.opened_at = max(now, billed + timedelta(microseconds=1)).isoformat()
    line.seq = 0
    line.limit_micros = line.in_flight_micros = line.unacked_micros = 0
    line.news = Report(seq=0)
    line.sending = None


def ended(line: PeriodLine, hold: PeriodHold, cost: int, *, ok: bool, went_out: bool) -> None:
    """A call ended: its hold here becomes its cost, for the next report. ``went_out`` False:
    it never reached a provider (another cap refused it), so only its room comes back."""
    if hold.opened_at != line.opened_at:
        return  # billed with the line it held when the period counted the agent silent
    line.in_flight_micros -= hold.micros
    if not went_out:
        return
    charged = min(cost, hold.micros)
    line.unacked_micros += charged
    news = line.news
    news.spent_micros += cost
    news.charged_micros += charged
    if ok:
        news.calls += 1
    else:
        news.failed_calls += 1


def forget_settled(lines: dict[str, PeriodLine], current: set[str]) -> None:
    """Drop lines of past periods that hold nothing and have nothing left to report."""
    for keeper_id in [k for k in lines if k not in current]:
        line = lines[keeper_id]
        if not (to_report(line) or line.in_flight_micros or line.limit_micros):
            del lines[keeper_id]
