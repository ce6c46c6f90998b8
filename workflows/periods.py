"""Calendar periods in a key's time zone: which day or month an instant falls in, and when it
ends. Pure: the workflow passes ``workflow.now()``, tests pass any instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from workflows.contracts import PeriodKind


def period_of(kind: PeriodKind, now: datetime, timezone: str) -> tuple[str, datetime]:
    """The period containing ``now`` (``2026-11-28`` or ``2026-11``) and its end, in UTC.

    Arithmetic on zoned datetimes is wall-clock arithmetic, so a day that DST makes 23 or 25
    hours long still ends at the next local midnight.
    """
    local = now.astimezone(ZoneInfo(timezone))
    if kind == "day":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), (start + timedelta(days=1)).astimezone(UTC)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first.strftime("%Y-%m"), (first + timedelta(days=32)).replace(day=1).astimezone(UTC)
