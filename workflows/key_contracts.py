"""The dataclasses of a key's period budgets: what runs and ``KeyBudget`` workflows exchange.

A key may cap its spend per day and per month. Each (key, period) has one ``KeyBudget``
workflow that owns that period's cap and leases slices of it to the key's runs; a run spends
from its leases and gives back what it did not use. Plain data, no forward references (see
``workflows.contracts``).
"""

from dataclasses import dataclass, field

from workflows.contracts import Alert, PeriodBudget, PeriodKind


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
class PeriodFigures:
    """The answer of a ``KeyBudget``'s ``figures`` query."""

    key_id: str
    kind: PeriodKind
    period: str
    ends_at: str
    cap_micros: int
    spent_micros: int
    """Reported by runs (when they give leases back)."""
    leased_micros: int
    """Held by runs: spent there but not yet reported, or not yet spent."""
    remaining_micros: int
    runs: int


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


@dataclass
class KeyBudgetInput:
    key_id: str
    kind: PeriodKind
    period: str
    ends_at: str
    cap_micros: int
    timezone: str = "UTC"
    state: KeyBudgetState | None = None


@dataclass
class RunPolicy:
    """A key's policy as its running runs apply it (``PATCH /admin/keys/{id}``)."""

    budget_micros: int
    periods: list[PeriodBudget] = field(default_factory=list)


def key_budget_id(key_id: str, kind: PeriodKind, period: str) -> str:
    """The ``KeyBudget`` workflow id of a key's period."""
    return f"keybudget-{key_id}-{kind}-{period}"
