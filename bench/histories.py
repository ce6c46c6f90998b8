"""What a key's calls cost Temporal, counted from the histories of its keepers: its runs
(``AgentRun``) and its day's period (``KeyBudget``).

Counted per execution (a keeper that continued as new has several), from the events
themselves: ``WORKFLOW_EXECUTION_UPDATE_ACCEPTED`` (an update that reached the workflow; one a
validator rejects leaves no event), ``WORKFLOW_TASK_COMPLETED`` (a workflow task the worker ran)
and every event (the history's growth). A closed execution never changes, so it is fetched once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from workflows.key_contracts import key_budget_id
from workflows.periods import period_window

UPDATE = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
TASK = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
FETCHES_AT_ONCE = 16


@dataclass(frozen=True)
class Tally:
    executions: int = 0
    updates: int = 0
    tasks: int = 0
    events: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.executions + other.executions,
            self.updates + other.updates,
            self.tasks + other.tasks,
            self.events + other.events,
        )

    def __sub__(self, other: Tally) -> Tally:
        return Tally(
            self.executions - other.executions,
            self.updates - other.updates,
            self.tasks - other.tasks,
            self.events - other.events,
        )


@dataclass(frozen=True)
class KeyTally:
    runs: Tally
    """The key's ``AgentRun`` executions."""
    periods: Tally
    """The key's ``KeyBudget`` executions (its day periods)."""
    open_runs: int

    def __sub__(self, other: KeyTally) -> KeyTally:
        return KeyTally(self.runs - other.runs, self.periods - other.periods, self.open_runs)


class KeyHistories:
    """Counts one key's keepers' events; call ``count`` after each round, diff the tallies."""

    def __init__(self, client: Client, key_id: str) -> None:
        self.client = client
        self.key_id = key_id
        self.periods: set[str] = set()
        self._closed: dict[tuple[str, str], Tally] = {}

    async def count(self) -> KeyTally:
        # The day's period now: a bench that crosses midnight (UTC, the key's zone) has two.
        day, _, _ = period_window("day", datetime.now(UTC), "UTC")
        self.periods.add(key_budget_id(self.key_id, "day", day))
        runs = await self._executions(f'KeyId = "{self.key_id}"')
        periods = []
        for period in sorted(self.periods):
            periods += await self._executions(f'WorkflowId = "{period}"')
        limit = asyncio.Semaphore(FETCHES_AT_ONCE)
        run_tallies = await asyncio.gather(*(self._tally(e, limit) for e in runs))
        period_tallies = await asyncio.gather(*(self._tally(e, limit) for e in periods))
        open_runs = sum(1 for _, _, running in runs if running)
        return KeyTally(_sum(run_tallies), _sum(period_tallies), open_runs)

    async def _executions(self, query: str) -> list[tuple[str, str, bool]]:
        found = []
        async for execution in self.client.list_workflows(query):
            running = execution.status == WorkflowExecutionStatus.RUNNING
            found.append((execution.id, execution.run_id, running))
        return found

    async def _tally(self, execution: tuple[str, str, bool], limit: asyncio.Semaphore) -> Tally:
        workflow_id, run_id, running = execution
        if (workflow_id, run_id) in self._closed:
            return self._closed[workflow_id, run_id]
        updates = tasks = events = 0
        async with limit:
            handle = self.client.get_workflow_handle(workflow_id, run_id=run_id)
            async for event in handle.fetch_history_events():
                events += 1
                updates += event.event_type == UPDATE
                tasks += event.event_type == TASK
        tally = Tally(1, updates, tasks, events)
        if not running:
            self._closed[workflow_id, run_id] = tally
        return tally


def _sum(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for tally in tallies:
        total += tally
    return total
