"""Parsing the command's own arguments: times like ``30m``, ``1d`` or an ISO time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from cli.client import CliError

_SPAN = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30m``, ``12h``, ``1d``, ``7d``, ``2w`` ago, or an ISO time (naive is UTC)."""
    now = now or datetime.now(UTC)
    value = text.strip()
    if match := _SPAN.fullmatch(value):
        amount, unit = match.groups()
        return now - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"--since {text!r}: give a span like 30m, 12h, 1d, 7d or an ISO time"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def short_time(text: str | None) -> str:
    """An api time as ``2025-03-01 12:00:05`` (UTC)."""
    if not text:
        return "-"
    when = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S")
