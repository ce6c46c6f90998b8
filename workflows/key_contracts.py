"""The dataclasses of a key's period budgets: how a ``KeyBudget`` starts, what it carries.

A key may cap its spend per day, per month and in total. Each (key, period) has one
``KeyBudget`` workflow that owns that period's cap and lends it in lines to the caller processes
that make the key's calls (``workflows.lending``). Plain data, no forward references (see
``workflows.contracts``).
"""

from dataclasses import dataclass, field
from datetime import datetime

from workflows.contracts import Alert, PeriodBudget, PeriodKind
from workflows.legacy.contracts import KeyBudgetState
from workflows.lending_contracts import Books
from workflows.periods import period_window


@dataclass
class PeriodBooks:
    """Everything a ``KeyBudget`` that lends lines carries across continue-as-new."""

    books: Books
    alerted_thresholds: list[int] = field(default_factory=list)
    refused_alerted: bool = False
    pending_alerts: list[Alert] = field(default_factory=list)


@dataclass
class KeyBudgetInput:
    key_id: str
    kind: PeriodKind
    period: str
    ends_at: str
    cap_micros: int
    timezone: str = "UTC"
    state: KeyBudgetState | None = None
    """(Periods before lines.) What such a period carries across continue-as-new."""
    starts_at: str = ""
    """When the period starts (ISO-8601 UTC): a silent caller's rows are read from it."""
    caller_timeout_seconds: int = 60
    """A caller silent this long is billed from its journal (twice a run's default timeout: a
    period hears from its callers less often than their runs do)."""
    carried: PeriodBooks | None = None


@dataclass
class RunPolicy:
    """A key's policy as its running runs apply it (``PATCH /admin/keys/{id}``)."""

    budget_micros: int
    periods: list[PeriodBudget] = field(default_factory=list)


def key_budget_id(key_id: str, kind: PeriodKind, period: str) -> str:
    """The ``KeyBudget`` workflow id of a key's period."""
    return f"keybudget-{key_id}-{kind}-{period}"


def period_start(
    key_id: str, budget: PeriodBudget, now: datetime, caller_timeout_seconds: int
) -> KeyBudgetInput:
    """How the ``KeyBudget`` of ``budget``'s period containing ``now`` starts, for a borrower
    counted silent after ``caller_timeout_seconds``."""
    period, starts, ends = period_window(budget.kind, now, budget.timezone)
    return KeyBudgetInput(
        key_id=key_id,
        kind=budget.kind,
        period=period,
        ends_at=ends.isoformat(),
        cap_micros=budget.cap_micros,
        timezone=budget.timezone,
        starts_at=starts.isoformat(),
        caller_timeout_seconds=caller_timeout_seconds,
    )


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
