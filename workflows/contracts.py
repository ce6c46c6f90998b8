"""The dataclasses that cross the workflow boundary: one light module both sides import.

Everything here is plain data (no temporalio, no I/O) so the api, the worker, the caller-side
helper and the workflows agree on one shape. Money is integer micro-dollars; prices are
micro-dollars per million tokens, so a cost is ``tokens * price / 1_000_000`` rounded up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MICROS_PER_USD = 1_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000

TASK_QUEUE = "runcap"
"""The worker's own task queue: workflows and the server-side activities (ledger, alerts)."""

WireFormat = Literal["openai", "anthropic", "responses"]
"""``openai`` is chat completions; ``responses`` is the OpenAI Responses API."""
CallStatus = Literal["ok", "failed"]
RunStatus = Literal["open", "closed", "revoked", "expired"]
"""``expired``: closed after the idle timeout; a later call reopens the run with its spend."""


@dataclass(frozen=True)
class Price:
    """Per-million-token prices of one model, in micro-dollars."""

    input: int
    output: int
    cached_input: int = 0
    cache_write: int = 0


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
    """Tokens a provider reported, normalised: ``input_tokens`` excludes cache reads and writes."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0


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
    state: RunState | None = None


@dataclass
class CallRequest:
    """One model call, as the workflow sees it: no prompt, no answer, only what budget needs."""

    call_id: str
    chain: list[Target]
    input_tokens: int
    """An upper bound of the prompt's tokens (the caller over-estimates)."""
    max_tokens: int
    task_queue: str
    """The caller's own task queue, where the body lives and the attempt activity runs."""
    requested_model: str = ""
    tags: list[str] = field(default_factory=list)
    stream: bool = False


@dataclass
class AttemptInput:
    """What the caller-side attempt activity needs to send one call to one target."""

    call_id: str
    target: Target
    max_tokens: int


@dataclass
class AttemptOutcome:
    """What one successful attempt reported. ``usage_known`` is false when a stream broke."""

    usage: Usage
    usage_known: bool = True
    status_code: int = 200


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


@dataclass
class LedgerBatch:
    rows: list[LedgerRow]


@dataclass
class Alert:
    """A budget threshold crossed (50, 80, 100) or a call refused for budget (0)."""

    run_id: str
    key_id: str
    kind: Literal["threshold", "refused"]
    threshold_percent: int
    budget_micros: int
    spent_micros: int
    at: str


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
    results: dict[str, CallResult] = field(default_factory=dict)
    """Finished calls by id, so a retried update answers with the first result."""
    pending_ledger: list[LedgerRow] = field(default_factory=list)
    pending_alerts: list[Alert] = field(default_factory=list)


def workflow_id(run_id: str) -> str:
    """The ``AgentRun`` workflow id of a run."""
    return f"run-{run_id}"
