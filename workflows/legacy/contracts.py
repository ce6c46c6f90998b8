"""The dataclasses of the lending model before lines (advances and period leases), frozen.

Kept so runs and key periods started before lines replay and finish (the recorded histories
in ``tests/workflows/histories``), and for ``AgentBudget``'s state until agents written as
workflows borrow lines too. Plain data, no forward references (see ``workflows.contracts``).
"""

from dataclasses import dataclass, field

from workflows.contracts import (
    Alert,
    Attempt,
    CallResult,
    CallStatus,
    LedgerRow,
    PeriodBudget,
    PeriodKind,
    RunStatus,
    StepSpend,
    Target,
    Usage,
)


@dataclass
class Lease:
    """A slice of one period's cap held by a run.

    The rule across midnight: money counts in the period its lease was taken in, even when it
    is spent after that period ended. So a period's cap bounds everything spent from its leases,
    and a run never stops at midnight; once its lease runs out it draws from the current period.
    """

    kind: PeriodKind
    period: str
    """``2026-11-28`` for a day, ``2026-11`` for a month (in the key's time zone)."""
    ends_at: str
    """ISO-8601 UTC: when the period ends and the next one starts fresh."""
    granted_micros: int = 0
    """Held from the period and not yet given back."""
    spent_micros: int = 0
    """Spent under this lease since the run last reported to the period."""

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.period}"


@dataclass
class LeaseReturn:
    """A run reporting to its period: spend since its last report, and money it gives back."""

    key_id: str
    kind: PeriodKind
    period: str
    run_id: str
    spent_micros: int
    unused_micros: int
    request_id: str = ""
    """Unique per report: a retried report is applied once."""


@dataclass
class ReserveRequest:
    """One model call, as the run sees it: no prompt, no answer, only what budget needs."""

    call_id: str
    caller_id: str
    """The caller instance that will walk the chain and settle the call (its heartbeat owner)."""
    chain: list[Target]
    input_tokens: int
    """An upper bound of the prompt's tokens (the caller over-estimates)."""
    max_tokens: int
    requested_model: str = ""
    tags: list[str] = field(default_factory=list)
    stream: bool = False
    fingerprint: str = ""
    """A hash of the normalised messages and tools, for the loop guard (empty: not checked)."""
    want_advance: bool = False
    """The caller would hold an advance of the run's budget with this call (see ``Advance``)."""
    advance_calls: int = 0
    """How many calls like this one the advance should cover (0: the run's default)."""


@dataclass
class Advance:
    """A slice of the run's budget held by one caller instance, which reserves its next calls
    against it in its own process: no hop to the run per call while the run is far from its cap.

    The caller reports each call under it in its settle batches (call ids ``<advance_id>/<n>``)
    and retires it once its calls have ended; the run then releases what is left. A caller that
    goes silent has its recorded calls settled as recorded and the rest billed as ``unknown``:
    the provider may have worked on calls it never reported, and the cap must cover them.
    """

    advance_id: str
    micros: int
    use_until: str
    """ISO-8601: no new call starts under it after this."""
    call_timeout_seconds: int
    """The deadline of each call under it, as of a grant's."""
    factors: dict[str, int] = field(default_factory=dict)
    """The run's output factors when granted (reservations use them)."""
    blocked: list[str] = field(default_factory=list)
    """``provider/model`` closed to new calls when granted."""


@dataclass
class OpenCall:
    """A reservation held by a call in flight; part of ``RunState`` so it survives
    continue-as-new while its caller is still working."""

    caller_id: str
    reserved_micros: int
    max_tokens: int
    chain: list[Target]
    tags: list[str]
    requested_model: str
    started_at: str
    deadline: str
    """ISO-8601: settled at its reservation (outcome ``unknown``) if still open then."""
    leases: list[str] = field(default_factory=list)
    """The period leases (``Lease.id``) this reservation also counts against."""
    advance: bool = False
    """This is an ``Advance`` held by its caller, not one call."""
    settled_calls: list[str] = field(default_factory=list)
    """For an advance: the calls under it settled so far (a repeated settle is ignored)."""


@dataclass
class Grant:
    """The run's yes: what the caller may spend on this call, and until when."""

    call_id: str
    chain: list[Target]
    max_tokens: int
    reserved_micros: int
    deadline: str
    budget_micros: int
    spent_micros: int
    remaining_micros: int
    """What the run has left with this reservation held."""
    settled: CallResult | None = None
    """Set when this call id already settled: the caller must not call the provider again."""
    advance: Advance | None = None
    """Set when the caller asked for an advance and the run is far enough from its caps."""


@dataclass
class Settlement:
    """How one call ended, as its caller reports it to the run.

    The run prices it itself (``workflows.budget.settled_cost``), so the caller's figure and the
    run's cannot differ. ``ledger_written`` says the caller already wrote the ledger row.
    """

    call_id: str
    status: CallStatus
    target: Target | None = None
    usage: Usage = field(default_factory=Usage)
    usage_known: bool = True
    """False when the usage is the caller's bound (a cut stream), not the provider's report."""
    attempts: list[Attempt] = field(default_factory=list)
    latency_ms: int = 0
    error: str = ""
    ledger_written: bool = False
    advance_id: str = ""
    """Set for a call reserved under an advance: the run holds no reservation of its own for
    it, so the rest of what it needs comes with the settlement."""
    reserved_micros: int = 0
    max_tokens: int = 0
    tags: list[str] = field(default_factory=list)
    requested_model: str = ""
    started_at: str = ""
    recorded_cost_micros: int = -1
    """For a call the run settles from its caller's ledger row (the caller went silent)
    without knowing its price: the cost the caller billed (-1: price it here)."""


@dataclass
class SettleBatch:
    """Every call one caller finished since its last batch; an empty batch is a heartbeat."""

    caller_id: str
    settlements: list[Settlement] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    """Advances this caller is done with: every call under them is settled in this batch or
    an earlier one, so the run releases what is left of them."""


@dataclass
class SettleAck:
    status: RunStatus
    budget_micros: int
    spent_micros: int
    reserved_micros: int
    advances: bool = True
    """False when the caller should retire its advances now (the run nears a cap, closed, or
    a target was closed): its next calls reserve one by one."""


@dataclass
class RunState:
    """Everything an ``AgentRun`` must carry across continue-as-new, in one place."""

    budget_micros: int
    spent_micros: int = 0
    calls: int = 0
    failed_calls: int = 0
    overruns: int = 0
    overrun_micros: int = 0
    by_step: dict[str, StepSpend] = field(default_factory=dict)
    by_model: dict[str, StepSpend] = field(default_factory=dict)
    status: RunStatus = "open"
    alerted_thresholds: list[int] = field(default_factory=list)
    refused_alerted: bool = False
    open_calls: dict[str, OpenCall] = field(default_factory=dict)
    """Reservations of calls in flight, by call id."""
    callers: dict[str, str] = field(default_factory=dict)
    """When each caller holding open calls was last heard from (ISO-8601)."""
    results: dict[str, CallResult] = field(default_factory=dict)
    """Finished calls by id, so a repeated reserve or settle of one call id is a no-op."""
    pending_ledger: list[LedgerRow] = field(default_factory=list)
    pending_alerts: list[Alert] = field(default_factory=list)
    periods: list[PeriodBudget] = field(default_factory=list)
    """The key's period caps this run draws leases from (a key's policy may change them)."""
    leases: dict[str, Lease] = field(default_factory=dict)
    """The current lease of each period kind."""
    retired_leases: list[Lease] = field(default_factory=list)
    """Leases of past periods, still to be reported (calls under them may be open)."""
    blocked_targets: dict[str, str] = field(default_factory=dict)
    """``provider/model`` closed to new calls after an overrun, with why."""
    output_factors: dict[str, int] = field(default_factory=dict)
    """Per ``provider/model``: output seen per ``max_tokens`` asked, in thousandths, when a
    provider returned more than asked; reservations use it from then on."""
    fingerprints: dict[str, list[str]] = field(default_factory=dict)
    """Recent admission times (ISO-8601) of each request fingerprint, for the loop guard."""
    lease_requests: int = 0
    """Draws and reports sent to periods so far: each gets a unique request id from it."""
    unsent_reports: list[LeaseReturn] = field(default_factory=list)
    """Reports already taken out of the run's leases, waiting for their period to take them."""
    advances_paused: bool = False
    """Set when the run came near a cap (or closed a target): callers retire their advances
    and reserve call by call; a top-up or a new policy lifts it."""


@dataclass
class LeaseRequest:
    key_id: str
    kind: PeriodKind
    period: str
    ends_at: str
    cap_micros: int
    """The key's cap for this period kind: it starts the period's ``KeyBudget`` if needed."""
    timezone: str
    run_id: str
    need_micros: int
    """What the call asking for it would hold."""
    floor_micros: int
    """The least it could hold (its smallest useful answer)."""
    want_micros: int
    """What the run would like, to serve its next calls without another hop."""
    request_id: str = ""
    """Unique per draw: a retried draw gets its first answer, never a second grant."""


@dataclass
class LeaseGrant:
    granted_micros: int
    cap_micros: int
    spent_micros: int
    leased_micros: int


@dataclass
class KeyBudgetState:
    cap_micros: int
    spent_micros: int = 0
    leased: dict[str, int] = field(default_factory=dict)
    """Outstanding leases by run id."""
    alerted_thresholds: list[int] = field(default_factory=list)
    refused_alerted: bool = False
    pending_alerts: list[Alert] = field(default_factory=list)
    answered: dict[str, LeaseGrant] = field(default_factory=dict)
    """Recent draws by request id (bounded)."""
    reported: list[str] = field(default_factory=list)
    """Recent reports by request id (bounded)."""
