"""``runcap tail``: follow calls as they settle, one line each.

Why ask again from a little before the cursor: writers on several processes may commit rows
slightly out of their ``settled_at`` order, so a row can appear just behind the cursor; asking
from ``cursor - GRACE`` and skipping the call ids already printed catches it without repeats.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from cli.args import short_time
from cli.client import Api

GRACE = timedelta(seconds=5)
PAGE = 500


def call_line(call: dict[str, Any]) -> str:
    """time, run, model, cost, status, tags: one call in one grep-friendly line."""
    tags = ",".join(call.get("tags", [])) or "-"
    return (
        f"{short_time(call['settled_at'])}  {call['run_id']}  {call['model'] or '-'}  "
        f"${call['cost_usd']}  {call['status']}  {tags}"
    )


def _parse(cursor: str) -> datetime:
    return datetime.fromisoformat(cursor.replace("Z", "+00:00"))


def follow(
    api: Api, *, backlog: int, interval: float, sleep: Callable[[float], None] = time.sleep
) -> Iterator[dict[str, Any]]:
    """Yield the last ``backlog`` calls, then every call that settles after them, forever."""
    first = api.get("/admin/calls", limit=backlog)
    cursor = _parse(first["cursor"]) if first["cursor"] else None
    seen: dict[str, datetime] = {}
    if cursor is not None:  # older calls inside the grace window count as seen, not as new
        for call in _pages(api, cursor - GRACE):
            seen[call["call_id"]] = _parse(call["settled_at"])
    for call in first["calls"]:
        seen[call["call_id"]] = _parse(call["settled_at"])
        yield call
    while True:
        sleep(interval)
        for call in _pages(api, None if cursor is None else cursor - GRACE):
            settled = _parse(call["settled_at"])
            cursor = settled if cursor is None else max(cursor, settled)
            if call["call_id"] not in seen:
                seen[call["call_id"]] = settled
                yield call
        if cursor is not None:
            horizon = cursor - 2 * GRACE
            seen = {k: v for k, v in seen.items() if v >= horizon}


def _pages(api: Api, after: datetime | None) -> Iterator[dict[str, Any]]:
    """Every call settled after ``after``, page by page, each page strictly after the last."""
    while True:
        page = api.get("/admin/calls", after=after and after.isoformat(), limit=PAGE)
        yield from page["calls"]
        if len(page["calls"]) < PAGE:
            return
        after = _parse(page["cursor"])
