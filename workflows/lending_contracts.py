"""What a keeper and its borrowers exchange: lines, reports, requests for room and their answers.

A *keeper* owns a cap: ``AgentRun`` the run's, ``KeyBudget`` a key's day, month or total. A
*borrower* is one caller process (an api instance, or a Python program's ``Caller``). A *line* is
what a keeper counts as held by one borrower: the calls it has in flight there, what they spent
that it has not reported yet, and unused room it may reserve new calls against in its own process.
The rules are in ``workflows.lending``; these are the plain dataclasses that cross Temporal (no
forward references, see ``workflows.contracts``).
"""

from dataclasses import dataclass, field

from workflows.contracts import LedgerRow, Refusal, RunStatus, StepSpend, Target

Money = int
"""Integer micro-dollars."""


@dataclass
class Line:
    """One borrower's line at one keeper, as the keeper keeps it."""

    borrower: str
    held_micros: Money = 0
    """Held by the borrower: its calls in flight, their unreported spend, and its unused room."""
    in_flight_micros: Money = 0
    """What its calls in flight held when it last reported (the rest of the line is spend it has
    not reported yet, or room it is not using)."""
    seq: int = 0
    """The last report applied; a report at or below it is a repeat."""
    granted_last: Money = 0
    """What the last applied report was granted, answered again to a repeat of it."""
    opened_at: str = ""
    """The borrower's clock when it opened the line: its calls here started at or after it, so
    its ledger rows since then are this line's (what a crash reconciliation reads)."""
    heard_at: str = ""
    """The keeper's clock when the borrower last reported."""
    reported_micros: Money = 0
    """Spend the borrower has reported under this line since it opened it."""
    reported_calls: int = 0
    """Calls it has reported under this line (failed ones cost nothing and are not counted)."""
    journaled: bool = True
    """The borrower writes an intent before each call and its ledger row after: a crash is billed
    from what it wrote. A borrower with no database is billed its whole line instead."""
    recalled: bool = False
    """The keeper asked for the line's unused room back (another call needs it)."""


@dataclass
class Overrun:
    """A call a provider billed past its reservation (it ignored ``max_tokens``)."""

    call_id: str
    target: Target
    cost_micros: Money
    reserved_micros: Money
    max_tokens: int
    output_tokens: int


@dataclass
class Report:
    """A borrower's news since its last report: spend of calls that ended, and room it returns.

    ``seq`` numbers reports per borrower and keeper, one in flight at a time and resent as they
    were, so a keeper applies each exactly once.
    """

    seq: int
    spent_micros: Money = 0
    """What the calls that ended cost."""
    charged_micros: Money = 0
    """What they take off the line: each call's cost, but at most its reservation (an overrun's
    excess was never lent, and is counted apart)."""
    calls: int = 0
    failed_calls: int = 0
    returned_micros: Money = 0
    """Unused room handed back."""
    in_flight_micros: Money = 0
    """What the borrower's calls in flight here hold now."""
    by_step: dict[str, StepSpend] = field(default_factory=dict)
    by_model: dict[str, StepSpend] = field(default_factory=dict)
    overruns: list[Overrun] = field(default_factory=list)
    rows: list[LedgerRow] = field(default_factory=list)
    """Ledger rows the borrower could not write (no database, or a failed write): the run writes
    them."""


@dataclass
class CallNeed:
    """A call that needs its worst case granted by the keeper now (it is near its cap, or every
    call passes through it: the loop guard). Only what budget needs: no prompt, no answer."""

    call_id: str
    chain: list[Target]
    input_tokens: int
    max_tokens: int
    min_output_tokens: int = 16
    factors: dict[str, int] = field(default_factory=dict)
    """Output tokens seen per ``max_tokens`` asked, per ``provider/model`` (the run's)."""
    fingerprint: str = ""
    """For the loop guard: a hash of the normalised messages and tools (empty: not checked)."""
    tags: list[str] = field(default_factory=list)
    final: bool = False
    """Its last try after a recall: refuse it rather than ask others for room again."""


@dataclass
class LendRequest:
    """One borrower to one keeper: its report, the room it wants, and calls that need a grant."""

    borrower: str
    report: Report
    want_micros: Money = 0
    """The unused room the borrower would like to hold after this (0: none, return what is
    unused)."""
    per_call_micros: Money = 0
    """A call's worst case here: room is lent in whole calls of it."""
    needs: list[CallNeed] = field(default_factory=list)
    opened_at: str = ""
    """The borrower's clock when it opened its line here: names the line (a borrower billed
    after going silent opens a new one)."""
    journaled: bool = True


@dataclass
class NeedAnswer:
    """What one ``CallNeed`` got: a grant (its possibly clamped ``max_tokens`` and the amount),
    a refusal, or "wait": room is being recalled from other borrowers."""

    call_id: str
    granted_micros: Money = 0
    max_tokens: int = 0
    refusal: Refusal | None = None
    failure: str = ""
    """A failure kind other than budget (``LoopDetected``, ``TargetBlocked``, ``RunNotOpen``)."""
    message: str = ""
    wait: bool = False


@dataclass
class LendAnswer:
    """The keeper's answer to a ``LendRequest``."""

    held_micros: Money
    """The line as the keeper holds it now: the borrower's limit."""
    granted_micros: Money
    """Room added by this request (beyond what ``needs`` got)."""
    cap_micros: Money
    spent_micros: Money
    available_micros: Money
    """Neither spent nor lent."""
    status: RunStatus = "open"
    lend: bool = True
    """False near the cap: hold no unused room, reserve every call through the keeper."""
    recalled: bool = False
    """Return this line's unused room now."""
    recalling: list[str] = field(default_factory=list)
    """Borrowers asked to return room for a call that did not fit: nudge them, then ask again."""
    needs: list[NeedAnswer] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    """``provider/model`` closed to new calls (after an overrun)."""
    factors: dict[str, int] = field(default_factory=dict)
    per_call_only: bool = False
    """Every call must pass through the keeper (the loop guard is on)."""


@dataclass
class Recorded:
    """What a silent borrower left in the database for one keeper: the crash reconciliation."""

    ledger_micros: Money = 0
    """Its ledger rows since the line opened (every call that ended)."""
    ledger_calls: int = 0
    """Of those, the calls that did not fail."""
    in_flight_micros: Money = 0
    """Its intents with no ledger row: calls that may have gone out, at their reservations."""
    in_flight_calls: int = 0
    read: bool = True
    """False when the database could not be read: the line is then billed whole."""


KEPT_RECONCILED = 64


@dataclass
class Books:
    """A keeper's money: its cap, what was spent, and what each borrower holds."""

    cap_micros: Money
    spent_micros: Money = 0
    overrun_micros: Money = 0
    """Spent past what calls reserved (providers that ignored ``max_tokens``)."""
    lines: dict[str, Line] = field(default_factory=dict)
    reconciled: list[str] = field(default_factory=list)
    """Lines billed after their borrowers went silent (``borrower@opened_at``): a late word on
    one of them is refused."""
