"""Calendar periods in a key's time zone: which day or month an instant falls in, and when it
ends. Pure: the workflow passes ``workflow.now()``, tests pass any instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from workflows.contracts import PeriodKind

ALL_TIME = "all"
"""The one period of a key's total cap."""
BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)
FOREVER = datetime(9999, 1, 1, tzinfo=UTC)


def period_of(kind: PeriodKind, now: datetime, timezone: str) -> tuple[str, datetime]:
    """The period containing ``now`` (``2026-11-28``, ``2026-11``, or ``all`` for a key's
    total) and its end, in UTC."""
    period, _, ends = period_window(kind, now, timezone)
    return period, ends


def period_window(kind: PeriodKind, now: datetime, timezone: str) -> tuple[str, datetime, datetime]:
    """The period containing ``now``, its start and its end, in UTC.

    Arithmetic on zoned datetimes is wall-clock arithmetic, so a day that DST makes 23 or 25
    hours long still ends at the next local midnight. A key's total never ends.
    """
    if kind == "total":
        return ALL_TIME, BEGINNING, FOREVER
    local = now.astimezone(ZoneInfo(timezone))
    if kind == "day":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        ends = start + timedelta(days=1)
        return start.strftime("%Y-%m-%d"), start.astimezone(UTC), ends.astimezone(UTC)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    ends = (first + timedelta(days=32)).replace(day=1)
    return first.strftime("%Y-%m"), first.astimezone(UTC), ends.astimezone(UTC)
