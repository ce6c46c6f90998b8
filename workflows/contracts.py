"""The dataclasses that cross the workflow boundary: one light module both sides import.

Everything here is plain data (no temporalio, no I/O) so the api, the worker, the caller-side
helper and the workflows agree on one shape. No ``from __future__ import annotations`` and no
forward references: Temporal's converter then reads real types, even inside a workflow sandbox
that never imported this module by name. Money is integer micro-dollars; prices are
micro-dollars per million tokens, so a cost is ``tokens * price / 1_000_000`` rounded up.
"""

from dataclasses import dataclass, field
from typing import Literal

MICROS_PER_USD = 1_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000

TASK_QUEUE = "runcap"
"""The worker's own task queue: workflows and the server-side activities (ledger, alerts)."""

WireFormat = Literal["openai", "anthropic", "responses"]
"""``openai`` is chat completions; ``responses`` is the OpenAI Responses API."""
CallStatus = Literal["ok", "failed", "cancelled", "broken", "unknown"]
"""``cancelled``: the client left mid-call; ``broken``: the provider's stream broke after bytes
reached the client. Both are billed what was received. ``unknown``: the caller went silent, so
the call is billed at its reservation (the provider may have done the work)."""
RunStatus = Literal["open", "looping", "closed", "revoked", "expired"]
"""``looping``: paused by the loop guard until someone resumes it; ``expired``: closed after the
idle timeout (a later call reopens the run with its spend)."""


@dataclass(frozen=True)
class PriceTier:
    """The rates of a call whose input is above ``above_tokens`` (cache reads and writes
    included): every token of such a call, output too, is billed at these rates, as providers
    bill long context (a cliff, not marginal). Micro-dollars per million tokens."""

    above_tokens: int
    input: int
    output: int
    cached_input: int
    cache_write: int
    cache_write_1h: int = 0


@dataclass(frozen=True)
class ToolFee:
    """A provider's fee per use of one of its server-side tools, in micro-dollars per 1,000
    uses, and how many uses the call may make (``max_uses``): the api sets it from the request,
    and the reservation holds the fee for every one of them."""

    tool: str
    """``web_search``, ``file_search`` or ``code_execution`` (see ``Usage``)."""
    per_thousand: int
    max_uses: int = 0


@dataclass(frozen=True)
class Price:
    """What one model bills, in micro-dollars: token rates per million tokens (with the
    long-context tiers above them), and per-use fees of server-side tools.

    ``cache_write`` is the default (5-minute) cache write; ``cache_write_1h`` the one-hour write,
    where 0 means "as ``cache_write``". New fields keep defaults: recorded histories decode.
    """

    input: int
    output: int
    cached_input: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    tiers: tuple[PriceTier, ...] = ()
    """Ascending ``above_tokens``: the highest one below a call's input prices all of it."""
    tools: tuple[ToolFee, ...] = ()


@dataclass(frozen=True)
class Target:
    """One (provider, model) pair with the price the run is billed at.

    ``provider`` names a configured provider (``openai``, ``anthropic``, ``fake``...);
    ``api`` is the wire format that provider speaks.
    """

    provider: str
    model: str
    api: WireFormat
    price: Price


@dataclass(frozen=True)
class Usage:
    """Tokens a provider reported, normalised: ``input_tokens`` excludes cache reads and writes;
    ``cache_write_1h_tokens`` is the part of ``cache_write_tokens`` written for one hour. The
    last three count server-side tool uses the provider bills per use."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    web_searches: int = 0
    file_searches: int = 0
    code_executions: int = 0


PeriodKind = Literal["day", "month"]


@dataclass
class PeriodBudget:
    """A key's cap for one kind of period, in its time zone (calendar days and months)."""

    kind: PeriodKind
    cap_micros: int
    timezone: str = "UTC"


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
class Refusal:
    """Why a call was refused for budget, in figures the caller can act on."""

    budget_micros: int
    spent_micros: int
    reserved_micros: int
    """Held by the run's other calls in flight."""
    remaining_micros: int
    needed_micros: int
    """The least this call could hold: its input bound and the smallest useful output."""
    requested_micros: int = 0
    """What it would hold with the ``max_tokens`` it asked for."""
    input_tokens: int = 0
    max_tokens: int = 0
    min_output_tokens: int = 0
    max_tokens_that_fit_budget: int = 0
    """With nothing spent or held, the largest ``max_tokens`` the whole budget affords."""
    cap: str = "run"
    """Which cap refused: ``run``, or the key's ``day`` or ``month``."""
    resets_at: str = ""
    """For a period cap: when the next period starts (ISO-8601 UTC)."""


@dataclass
class Attempt:
    """One try of one target, kept so waste is visible."""

    provider: str
    model: str
    ok: bool
    error: str = ""
    usage: Usage = field(default_factory=Usage)


@dataclass
class CallResult:
    """The settled call. ``cost_micros`` is what the run was billed."""

    call_id: str
    status: CallStatus
    cost_micros: int
    budget_micros: int
    spent_micros: int
    remaining_micros: int
    max_tokens: int
    target: Target | None = None
    usage: Usage = field(default_factory=Usage)
    attempts: list[Attempt] = field(default_factory=list)
    error: str = ""


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
class LedgerRow:
    """One settled call, as the ledger activity writes it (upsert on ``call_id``)."""

    call_id: str
    run_id: str
    key_id: str
    tags: list[str]
    requested_model: str
    provider: str
    model: str
    status: CallStatus
    attempts: list[Attempt]
    usage: Usage
    cost_micros: int
    reserved_micros: int
    started_at: str
    """ISO-8601 time the workflow accepted the call (``workflow.now()``)."""
    latency_ms: int
    error: str = ""


@dataclass
class RecordedCall:
    """How a call ended, as its caller recorded it in the ledger before answering: the run's
    evidence for a call whose settlement never arrived (its caller died after answering)."""

    call_id: str
    status: CallStatus
    provider: str
    model: str
    usage: Usage
    attempts: list[Attempt]
    latency_ms: int
    error: str = ""
    reserved_micros: int = 0
    tags: list[str] = field(default_factory=list)
    requested_model: str = ""
    started_at: str = ""
    cost_micros: int = 0


@dataclass
class LedgerBatch:
    rows: list[LedgerRow]


@dataclass
class Alert:
    """Something worth paging for, about a run or about a key's period budget.

    ``kind``: ``threshold`` (50/80/100 % of the budget crossed), ``refused`` (a call refused
    for budget), ``overrun`` (a provider billed past its reservation), ``loop`` (a run sent the
    same request too often). ``scope``: the run's own budget, or the key's ``day``/``month``.
    ``event_id`` names the event itself, so a receiver (and the sender) can tell a repeat.
    """

    run_id: str
    key_id: str
    kind: Literal["threshold", "refused", "overrun", "loop"]
    threshold_percent: int
    budget_micros: int
    spent_micros: int
    at: str
    scope: Literal["run", "day", "month"] = "run"
    period: str = ""
    """The period the alert is about (``2026-11-28``, ``2026-11``), for day and month scopes."""
    event_id: str = ""
    detail: str = ""
    """A sentence for a human: what happened and what to do."""


@dataclass
class TopUp:
    amount_micros: int


@dataclass
class Revoke:
    reason: str = ""


@dataclass
class StepSpend:
    calls: int = 0
    cost_micros: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


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
    """Reserved micro-dollars by call id: the calls still in flight, and callers' advances."""
    settled_under: dict[str, list[str]] = field(default_factory=dict)
    """By advance id (among ``open_calls``): the calls under it the run has settled."""


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
class RunInput:
    """Start an ``AgentRun``. ``state`` is set only when a run continues as new."""

    run_id: str
    budget_micros: int
    key_id: str = ""
    agent: str = ""
    task_id: str = ""
    tags: list[str] = field(default_factory=list)
    idle_timeout_seconds: int = 3600
    min_output_tokens: int = 16
    max_parallel_calls: int = 0
    spent_before_micros: int = 0
    """Spend carried over from an earlier run with the same id (a key's task that went idle)."""
    reopen: bool = False
    """Set by the caller when it restarts an expired run; a first start never replaces a run."""
    caller_timeout_seconds: int = 30
    """A caller silent this long (no settle, no heartbeat) has its open calls settled as
    ``unknown`` at their reservations."""
    call_timeout_seconds: int = 900
    """The deadline of every grant: no call holds money longer, whatever its caller says."""
    periods: list[PeriodBudget] = field(default_factory=list)
    loop_max_repeats: int = 0
    """The same request admitted this many times within ``loop_window_seconds`` is enough: the
    next one is refused and the run pauses (0: no loop guard)."""
    loop_window_seconds: int = 300
    lease_idle_seconds: int = 30
    """An idle run gives its unused period leases back after this long."""
    state: RunState | None = None


def workflow_id(run_id: str) -> str:
    """The ``AgentRun`` workflow id of a run."""
    return f"run-{run_id}"
