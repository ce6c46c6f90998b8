"""A run's guards, whichever path it takes: the loop guard, and the alerts a run raises.

``RunBook`` (a gateway run) and ``AgentBudget`` (an agent written as a workflow) both use these,
so the same request is "the same" on either path, a run pauses after the same number of
repeats, and an alert about a run has the same event id. Pure: the clock is passed in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from workflows.contracts import Alert

KEPT_FINGERPRINTS = 1_000
"""Fingerprints a run remembers (the oldest go first), so an agent that never repeats itself
cannot grow the run's state."""
ASKED = ("messages", "input", "system", "instructions", "tools", "tool_choice")
AlertKind = Literal["threshold", "refused", "overrun", "loop", "held"]


def fingerprint(body: dict[str, Any]) -> str:
    """A request's fingerprint: canonical JSON of what the model is asked (messages, input,
    system or instructions, tools), so key order, streaming, ``max_tokens`` or runcap's own tags
    do not make two identical requests look different."""
    asked = {name: body[name] for name in ASKED if name in body}
    canonical = json.dumps(asked, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class LoopGuard:
    """The same request admitted ``max_repeats`` times within ``window_seconds`` is enough: the
    next one is refused and the run pauses until a person resumes it (0: no guard)."""

    max_repeats: int
    window_seconds: int

    def repeated(self, seen: dict[str, list[str]], fingerprint: str, now: datetime) -> int:
        """How many times this request would now have been sent within the window when that
        makes a loop (the run must pause), else 0. Forgets admissions older than the window."""
        if not self.max_repeats or not fingerprint:
            return 0
        window = timedelta(seconds=self.window_seconds)
        recent = [t for t in seen.get(fingerprint, []) if now - datetime.fromisoformat(t) < window]
        seen[fingerprint] = recent
        return len(recent) + 1 if len(recent) >= self.max_repeats else 0

    def admitted(self, seen: dict[str, list[str]], fingerprint: str, now: datetime) -> None:
        """Remember a request that was let through."""
        if not self.max_repeats or not fingerprint:
            return
        seen.setdefault(fingerprint, []).append(now.isoformat())
        while len(seen) > KEPT_FINGERPRINTS:
            del seen[next(iter(seen))]

    def detail(self, run_id: str, sent: int) -> str:
        """The loop alert's sentence."""
        return (
            f"run {run_id} sent the same request {sent} times within {self.window_seconds} s "
            "and is paused"
        )

    def paused_message(self, run_id: str, resume: str) -> str:
        """What every call of a paused run is told; ``resume`` says how a person resumes it."""
        return (
            f"loop detected: run {run_id} kept sending the same request (same messages "
            f"and tools, {self.max_repeats} times within {self.window_seconds} s), so it is "
            "paused and every call is refused. An agent should stop and tell its user; a person "
            f"can look at the transcript and resume it: {resume}."
        )


def run_alert(
    run_id: str,
    key_id: str,
    kind: AlertKind,
    pct: int,
    budget_micros: int,
    spent_micros: int,
    now: datetime,
    detail: str = "",
    *,
    event: str = "",
) -> Alert:
    """An alert about a run's own budget. ``event`` names a repeatable event (an overrun, a
    loop); by default a threshold or a refusal is one event per run, kind, percentage and
    budget, so a replayed decision makes the same id."""
    return Alert(
        run_id=run_id,
        key_id=key_id,
        kind=kind,
        threshold_percent=pct,
        budget_micros=budget_micros,
        spent_micros=spent_micros,
        at=now.isoformat(),
        event_id=f"run:{run_id}:{event or f'{kind}:{pct}:{budget_micros}'}",
        detail=detail,
    )
