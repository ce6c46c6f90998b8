"""The dataclasses of a run as a whole: how it starts (``RunInput``), what it carries across
continue-as-new (``RunBooks``), and what its ``spend`` query answers. Plain data, no forward
references (see ``workflows.contracts``).
"""

from dataclasses import dataclass, field

from workflows.contracts import Alert, LedgerRow, PeriodBudget, RunStatus, StepSpend
from workflows.legacy.contracts import RunState
from workflows.lending_contracts import Books


@dataclass
class RunSpend:
    """The answer of the ``spend`` query."""

    run_id: str
    status: RunStatus
    budget_micros: int
    spent_micros: int
    reserved_micros: int
    remaining_micros: int
    calls: int
    failed_calls: int
    overruns: int
    overrun_micros: int
    by_step: dict[str, StepSpend]
    by_model: dict[str, StepSpend]
    open_calls: dict[str, int] = field(default_factory=dict)
    """(Runs before lines.) Reserved micro-dollars by call id, and callers' advances."""
    settled_under: dict[str, list[str]] = field(default_factory=dict)
    """(Runs before lines.) By advance id: the calls under it the run has settled."""
    in_flight_micros: int = 0
    """(Runs that lend lines: the same as ``reserved_micros``.)"""
    lent_micros: int = 0
    """Lent to caller processes: their calls in flight, spend they have not reported yet, and
    unused room. ``spent + lent`` never passes the budget."""
    lines: int = 0
    """Caller processes holding a line of the run."""


@dataclass
class OpeningLine:
    """The line the run's opener took before the run's workflow existed (``runs`` row)."""

    borrower: str
    micros: int
    opened_at: str


@dataclass
class RunBooks:
    """Everything an ``AgentRun`` that lends lines carries across continue-as-new."""

    books: Books
    calls: int = 0
    failed_calls: int = 0
    overruns: int = 0
    by_step: dict[str, StepSpend] = field(default_factory=dict)
    by_model: dict[str, StepSpend] = field(default_factory=dict)
    status: RunStatus = "open"
    alerted_thresholds: list[int] = field(default_factory=list)
    refused_alerted: bool = False
    pending_ledger: list[LedgerRow] = field(default_factory=list)
    """Rows callers could not write: the run writes them."""
    pending_alerts: list[Alert] = field(default_factory=list)
    blocked_targets: dict[str, str] = field(default_factory=dict)
    """``provider/model`` closed to new calls after an overrun, with why."""
    output_factors: dict[str, int] = field(default_factory=dict)
    """Per ``provider/model``: output seen per ``max_tokens`` asked, in thousandths, when a
    provider returned more than asked; reservations use it from then on."""
    fingerprints: dict[str, list[str]] = field(default_factory=dict)
    """Recent admission times (ISO-8601) of each request fingerprint, for the loop guard."""
    last_call_at: str = ""
    """When a call last ended or asked for money (ISO-8601): the idle timeout counts from it."""


@dataclass
class RunInput:
    """Start an ``AgentRun``. ``carried`` (or ``state``) is set only when it continues as new."""

    run_id: str
    budget_micros: int
    key_id: str = ""
    agent: str = ""
    task_id: str = ""
    tags: list[str] = field(default_factory=list)
    idle_timeout_seconds: int = 3600
    min_output_tokens: int = 16
    max_parallel_calls: int = 0
    """(Runs before lines.) Parallel calls of a run; keys limit theirs with ``max_parallel``."""
    spent_before_micros: int = 0
    """Spend carried over from an earlier run with the same id (a key's task that went idle)."""
    reopen: bool = False
    """Set by the caller when it restarts an expired run; a first start never replaces a run."""
    caller_timeout_seconds: int = 30
    """A caller silent this long (no report, no heartbeat) is billed what it recorded and its
    calls that may have gone out; the rest of its line comes back."""
    call_timeout_seconds: int = 900
    """The deadline of every grant: no call holds money longer, whatever its caller says."""
    periods: list[PeriodBudget] = field(default_factory=list)
    loop_max_repeats: int = 0
    """The same request admitted this many times within ``loop_window_seconds`` is enough: the
    next one is refused and the run pauses (0: no loop guard)."""
    loop_window_seconds: int = 300
    lease_idle_seconds: int = 30
    """(Runs before lines.) An idle run gives its unused period leases back after this long."""
    max_open_runs: int = 0
    """The key's most open runs: its callers refuse to open more (0: no bound)."""
    own_budget: bool = True
    """The budget is the run's own (a key's per-run budget). Else it is only its key's largest
    cap, which the key's periods enforce and alert on: the run's thresholds stay silent."""
    parent_id: str = ""
    """The run of the agent whose sub-agent this run is: each call here also needs room there,
    so the parent's budget bounds its sub-agents' spend, and shows it."""
    parent_share_ppm: int = 0
    """When it opens, the run's budget is capped at this share (in millionths) of its parent's
    remaining budget (0: no such cap)."""
    hold_at_cap: bool = False
    """At its own cap the run pauses (``paused``) until a person approves more budget
    (``AgentRun.extend``), rather than refusing for good."""
    state: RunState | None = None
    """(Runs before lines.) What such a run carries across continue-as-new."""
    opening: OpeningLine | None = None
    carried: RunBooks | None = None
    """What a run that lends lines carries across continue-as-new."""


def workflow_id(run_id: str) -> str:
    """The ``AgentRun`` workflow id of a run."""
    return f"run-{run_id}"
