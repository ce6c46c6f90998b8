"""A run's burn rate and when its cap will be reached at that rate.

The rate is the money the run's calls settled over the last ``WINDOW`` (ten minutes), divided
by the time it had to spend it: the window, or less when the run's first call started inside
it, and never under ``MIN_SPAN`` (so one call a second old is not read as a torrent). The
forecast is then ``remaining / rate`` from now, where remaining is what is neither spent nor
held by calls in flight. A run with no cap, or nothing settled in the window, has no forecast.

Why the ledger: each call's row is written before its answer, so the rate is as fresh as the
spend beside it, on any api instance. All of it is integer arithmetic on micro-dollars and
microseconds; the rate becomes a USD ``Decimal`` (six places, half up) only at the edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from api.spend import L, utc
from db.journal import run_tree
from workflows.money import micros_to_usd
from workflows.run_contracts import RunSpend

WINDOW = timedelta(minutes=10)
MIN_SPAN = timedelta(minutes=1)
_US = timedelta(microseconds=1)
_US_PER_MINUTE = 60_000_000


@dataclass(frozen=True)
class Forecast:
    """The burn of a run at ``now``: what it settled over ``span``, and its cap's ETA."""

    now: datetime
    window_micros: int
    """Money settled in the window."""
    span: timedelta
    """The time that money was spent over (see the module's docstring)."""
    remaining_micros: int
    capped: bool

    @property
    def rate_usd_per_minute(self) -> Decimal:
        """USD per minute, rounded half up to the micro-dollar."""
        numerator = self.window_micros * _US_PER_MINUTE
        denominator = self.span // _US
        micros = (2 * numerator + denominator) // (2 * denominator)
        return Decimal(micros_to_usd(micros))

    @property
    def to_cap(self) -> timedelta | None:
        """How long until the cap at this rate (floored to the microsecond); ``None`` when
        there is no cap or no burn."""
        if not self.capped or self.window_micros <= 0:
            return None
        return timedelta(
            microseconds=self.remaining_micros * (self.span // _US) // self.window_micros
        )

    @property
    def cap_at(self) -> datetime | None:
        """When the cap will be reached at this rate."""
        left = self.to_cap
        return None if left is None else self.now + left

    def json(self) -> dict[str, Any]:
        """For the run JSON and the status line: money as USD strings, times as ISO 8601."""
        left = self.to_cap
        return {
            "window_seconds": int(WINDOW.total_seconds()),
            "window_spent_usd": micros_to_usd(self.window_micros),
            "burn_usd_per_minute": str(self.rate_usd_per_minute),
            "cap_at": None if left is None else (self.now + left).isoformat(),
            "seconds_to_cap": None if left is None else int(left.total_seconds()),
        }


def burn(
    window_micros: int,
    first_started_at: datetime | None,
    now: datetime,
    remaining_micros: int,
    capped: bool = True,
) -> Forecast:
    """The forecast of a run that settled ``window_micros`` over the last ``WINDOW``, whose
    first call started at ``first_started_at``, with ``remaining_micros`` left under its cap."""
    start = now - WINDOW
    if first_started_at is not None and first_started_at > start:
        start = first_started_at
    span = max(now - start, MIN_SPAN)
    return Forecast(now, max(window_micros, 0), span, max(remaining_micros, 0), capped)


def window_spend(
    conn: Connection, run_ids: Sequence[str], now: datetime
) -> tuple[int, datetime | None]:
    """(micro-dollars the calls of ``run_ids`` settled in the ``WINDOW`` before ``now``, when
    the first of them started), from the ledger."""
    since = now - WINDOW
    settled = func.coalesce(func.sum(L.c.cost_micros).filter(L.c.settled_at >= since), 0)
    stmt = select(settled, func.min(L.c.started_at)).where(L.c.run_id.in_(run_ids))
    micros, first = conn.execute(stmt).one()
    return int(micros), utc(first)


def run_forecast(engine: Engine, spend: RunSpend, now: datetime | None = None) -> Forecast:
    """The forecast of a run whose figures are ``spend`` (its budget and remaining): the calls
    counted are those its spent counts."""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        micros, first = window_spend(conn, run_tree(conn, spend.run_id), now)
    return burn(micros, first, now, spend.remaining_micros, capped=spend.budget_micros > 0)
