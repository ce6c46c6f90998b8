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
RunStatus = Literal["open", "looping", "paused", "closed", "revoked", "expired"]
"""``looping``: paused by the loop guard until someone resumes it; ``paused``: at its cap, held
until someone approves more budget (keys with ``hold_at_cap``); ``expired``: closed after the
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


PeriodKind = Literal["day", "month", "total"]
"""``total``: a key's cap over its whole life (one period, ``all``, that never ends)."""


@dataclass
class PeriodBudget:
    """A key's cap for one kind of period, in its time zone (calendar days and months)."""

    kind: PeriodKind
    cap_micros: int
    timezone: str = "UTC"


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
    caller_id: str = ""
    """The caller process that made the call (empty: the run or an agent's workflow)."""


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
    same request too often), ``held`` (a run reached its cap and waits for an approval).
    ``scope``: the run's own budget, or the key's ``day``/``month``.
    ``event_id`` names the event itself, so a receiver (and the sender) can tell a repeat.
    """

    run_id: str
    key_id: str
    kind: Literal["threshold", "refused", "overrun", "loop", "held"]
    threshold_percent: int
    budget_micros: int
    spent_micros: int
    at: str
    scope: Literal["run", "day", "month", "total"] = "run"
    period: str = ""
    """The period the alert is about (``2026-11-28``, ``2026-11``), for day and month scopes."""
    event_id: str = ""
    detail: str = ""
    """A sentence for a human: what happened and what to do."""


@dataclass
class TopUp:
    amount_micros: int


@dataclass
class Extend:
    """A person's approval of more budget for a run: ``by_micros`` more, or a new cap
    (``budget_micros``); exactly one is set. A run paused at its cap goes on."""

    by_micros: int = 0
    budget_micros: int = 0


@dataclass
class Revoke:
    reason: str = ""


@dataclass
class StepSpend:
    calls: int = 0
    cost_micros: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
