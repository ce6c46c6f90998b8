"""What an agent written as a workflow shows and raises, as a gateway run does: its figures in
the Temporal UI, its alerts, its loop guard. The rules are the gateway run's own
(``workflows.guards``, ``workflows.budget``, ``workflows.visibility``); this module applies them
to an ``AgentBudget``'s state.

Search attributes are upserted at most once per ``FLUSH_PAUSE`` unless the run's status
changed (each upsert is a history event): a refresh skipped within that pause is made by one
timer at its end, so a fast agent's figures lag by at most a second however long it then works
without calling a model, and ``AgentBudget.close`` shows the final ones before it returns.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import errors
    from workflows.calls import fail
    from workflows.chores import BOOKKEEPING_RETRY, send_alerts
    from workflows.errors import Failure
    from workflows.guards import AlertKind, LoopGuard, run_alert
    from workflows.legacy.contracts import RunState
    from workflows.run_contracts import RunInput
    from workflows.visibility import memo, search_attribute_updates

if TYPE_CHECKING:
    from temporalio.exceptions import ApplicationError

    from workflows.agent_budget import AgentBudget

FLUSH_PAUSE = timedelta(seconds=1)
"""At most one refresh of the search attributes per pause (a status change shows at once)."""


@dataclass
class Shown:
    """The figures last upserted to the run's search attributes, and when."""

    at: str = ""
    spent_micros: int = -1
    budget_micros: int = -1
    calls: int = -1
    status: str = ""


def state_of(budget: AgentBudget) -> RunState:
    assert budget.state is not None
    return budget.state


def loop_guard(budget: AgentBudget) -> LoopGuard:
    return LoopGuard(budget.loop_max_repeats, budget.loop_window_seconds)


def refusal_before_money(
    budget: AgentBudget, fingerprint: str, now: datetime
) -> ApplicationError | None:
    """Why a call is refused before it holds any money: the agent was closed, its loop guard
    paused it, or this very call makes the loop (which pauses it and raises the alert)."""
    state = state_of(budget)
    if state.status == "closed":
        message = f"run {budget.run_id} is closed: its agent called close()"
        return fail(Failure(errors.RUN_NOT_OPEN, message))
    guard = loop_guard(budget)
    if state.status == "looping":
        return fail(Failure(errors.LOOP_DETECTED, _paused_message(budget, guard)))
    sent = guard.repeated(state.fingerprints, fingerprint, now)
    if not sent:
        return None
    state.status = "looping"
    detail = guard.detail(budget.run_id, sent)
    raise_alert(budget, "loop", 0, now, detail, event=f"loop:{now.isoformat()}")
    return fail(Failure(errors.LOOP_DETECTED, _paused_message(budget, guard)))


def _paused_message(budget: AgentBudget, guard: LoopGuard) -> str:
    how = (
        f"the resume update of workflow {workflow.info().workflow_id} (POST "
        f"/admin/runs/{budget.run_id}/resume sends it when that id is run-{budget.run_id})"
    )
    return guard.paused_message(budget.run_id, how)


def admitted(budget: AgentBudget, fingerprint: str, now: datetime) -> None:
    """A call holds its money: the loop guard counts it."""
    loop_guard(budget).admitted(state_of(budget).fingerprints, fingerprint, now)


def refused(budget: AgentBudget, now: datetime) -> None:
    """The run's own budget refused a call: the first refusal raises an alert."""
    state = state_of(budget)
    if not state.refused_alerted:
        state.refused_alerted = True
        raise_alert(budget, "refused", 0, now)


def settled(budget: AgentBudget, now: datetime, overrun_key: str, call_id: str) -> None:
    """A call was billed: thresholds newly crossed, and a provider that billed past the
    reservation (``overrun_key``: its ``provider/model``), raise their alerts."""
    for pct in budget.money.crossed_thresholds():
        raise_alert(budget, "threshold", pct, now)
    if overrun_key:
        raise_alert(budget, "overrun", 0, now, event=f"overrun:{overrun_key}:{call_id}")


def raise_alert(
    budget: AgentBudget,
    kind: AlertKind,
    pct: int,
    now: datetime,
    detail: str = "",
    *,
    event: str = "",
) -> None:
    state = state_of(budget)
    state.pending_alerts.append(
        run_alert(
            budget.run_id,
            budget.key_id,
            kind,
            pct,
            state.budget_micros,
            state.spent_micros,
            now,
            detail,
            event=event,
        )
    )


async def deliver_alerts(budget: AgentBudget) -> None:
    """Send the alerts raised so far (through runcap's alert activity)."""
    state = state_of(budget)
    alerts, state.pending_alerts = state.pending_alerts, []
    await send_alerts(alerts, BOOKKEEPING_RETRY)


def show(budget: AgentBudget, now: datetime, *, force: bool = False) -> None:
    """Upsert the run's figures when they changed: at once for a new status (or ``force``),
    else at most once per ``FLUSH_PAUSE``."""
    if not budget.visible:
        return
    state, last = state_of(budget), budget.shown
    figures = Shown(
        now.isoformat(), state.spent_micros, state.budget_micros, state.calls, state.status
    )
    if (last.spent_micros, last.budget_micros, last.calls, last.status) == (
        figures.spent_micros,
        figures.budget_micros,
        figures.calls,
        figures.status,
    ):
        return
    since = now - datetime.fromisoformat(last.at) if last.at else FLUSH_PAUSE
    if since < FLUSH_PAUSE and not force and last.status == state.status:
        _show_later(budget, FLUSH_PAUSE - since)
        return
    run = RunInput(
        run_id=budget.run_id,
        budget_micros=state.budget_micros,
        key_id=budget.key_id,
        agent=budget.agent,
        task_id=budget.task_id,
        tags=list(budget.tags),
    )
    workflow.upsert_search_attributes(
        search_attribute_updates(
            run,
            spent_micros=state.spent_micros,
            budget_micros=state.budget_micros,
            calls=state.calls,
            status=state.status,
        )
    )
    workflow.upsert_memo({**memo(state.by_step, state.spent_micros), "run_id": budget.run_id})
    budget.shown = figures


def _show_later(budget: AgentBudget, wait: timedelta) -> None:
    """One refresh at the end of the pause, whatever the agent does meanwhile (a task of the
    workflow, not state: a continue-as-new drops it, and the next call shows the figures)."""
    if budget.__dict__.get("_show_pending"):
        return
    budget.__dict__["_show_pending"] = True

    async def refresh() -> None:
        await workflow.sleep(wait)
        budget.__dict__["_show_pending"] = False
        show(budget, workflow.now())

    budget.__dict__["_show_task"] = asyncio.ensure_future(refresh())
