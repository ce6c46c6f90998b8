"""A call's keepers (its run, and each of its key's current periods) and how a run opens.

A run nobody has opened yet is opened by the first caller that inserts its ``runs`` row: that
caller holds the run's first line at once, and starts the run's workflow in the background, off
the call's path. The row's uniqueness is what stops two callers from opening one run with fresh
money each; a caller that finds the row asks the run for room like any caller (one hop, once).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from temporalio.converter import value_to_type

from caller.errors import CallFailed
from caller.journal import Journal
from caller.keepers import KEPT_RUNNING, TemporalKeepers, remember
from caller.lending import Lending
from caller.lines import (
    MIN_ROOM_CALLS,
    Keeper,
)
from db.journal import MAX_TREE_DEPTH, Opening
from workflows import errors
from workflows.key_contracts import key_budget_id, period_start
from workflows.lending import room_size
from workflows.money import PPM
from workflows.run_contracts import OpeningLine, RunInput, workflow_id

log = logging.getLogger(__name__)
START_RETRIES = (0.2, 0.5, 1.0, 2.0, 5.0)
"""A run this caller opened is started with these waits between tries; if every try fails, the
worker's janitor starts it from its ``runs`` row."""


def run_id_of(run: RunInput | str) -> str:
    return run if isinstance(run, str) else run.run_id


def keepers_of(lineage: RunInput | Sequence[RunInput] | str, now: datetime) -> list[Keeper]:
    """The keepers a call needs room at: its run first, then each period of its key that
    contains ``now`` (the call's start), then its run's ancestors (a sub-agent's calls spend
    its parents' budgets too). ``lineage`` is the run, then its parent and up."""
    if isinstance(lineage, str):
        return [Keeper(workflow_id(lineage), None)]
    run, *ancestors = [lineage] if isinstance(lineage, RunInput) else lineage
    keepers = [_run_keeper(run)]
    for budget in run.periods:
        start = period_start(run.key_id, budget, now, 2 * run.caller_timeout_seconds)
        keepers.append(Keeper(key_budget_id(run.key_id, budget.kind, start.period), start, False))
    return keepers + [_run_keeper(ancestor) for ancestor in ancestors]


def _run_keeper(run: RunInput) -> Keeper:
    return Keeper(workflow_id(run.run_id), run, per_call=run.loop_max_repeats > 0)


class RunOpener:
    """Opens runs through the journal, starting their workflows off the call's path."""

    def __init__(self, journal: Journal, keepers: TemporalKeepers, lending: Lending) -> None:
        self.journal = journal
        self.keepers = keepers
        self.lending = lending
        self._known: OrderedDict[str, list[RunInput]] = OrderedDict()
        """Runs this caller saw open, with the input they start with: their calls need no look
        at the journal."""
        self._starting: set[asyncio.Task[None]] = set()

    async def open(
        self, run: RunInput, per_call: int, now: datetime, parents: Sequence[RunInput] = ()
    ) -> list[RunInput]:
        """Make sure ``run`` is open, and its parents: open it with a line if nobody did (no
        hop), else leave its first call to ask it for room. Returns its lineage: the input
        its workflow starts with (its opener's line in it), whoever starts it, then its
        parent's and up. ``parents`` are the api's guesses of the parents' inputs, used when
        a parent was never opened. Raises ``CallFailed`` past ``max_open_runs``."""
        known = self._known.get(run.run_id)
        if known is not None:
            return known
        above = await self._parents(run.parent_id, per_call, now, parents)
        if len(above) > MAX_TREE_DEPTH:
            return above  # nested too deep: the call is its parent's
        if above and run.parent_share_ppm:
            run = replace(run, budget_micros=await self._share(run, above[0]))
        micros = room_size(run.budget_micros, per_call, MIN_ROOM_CALLS * per_call)
        if run.loop_max_repeats:
            micros = 0  # the loop guard sees every call: its runs lend no room
        line = OpeningLine(self.lending.borrower, micros, now.isoformat())
        started = replace(run, opening=line if micros else None)
        opening = Opening(
            run.run_id,
            run.key_id,
            self.lending.borrower,
            micros,
            now,
            run.max_open_runs or 1 << 62,
            start_input=dataclasses.asdict(started),
            parent_run_id=run.parent_id or None,
        )
        found, start_input = await self.journal.open_run(opening)
        if found == "too_many":
            raise CallFailed.of(
                errors.TOO_MANY_RUNS,
                f"key {run.key_id} already has {run.max_open_runs} runs open (max_open_runs): "
                "finish or close one, or raise the key's max_open_runs",
            )
        if found == "open" and start_input is not None:
            started = value_to_type(RunInput, start_input, [])
        elif found != "opened":
            started = run  # ended: its first call here reopens it
        lineage = [started, *above]
        remember(self._known, run.run_id, lineage, KEPT_RUNNING)
        if found == "opened":
            if micros:
                self.lending.adopt(keepers_of(lineage, now)[0], micros, now.isoformat())
            task = asyncio.create_task(self._start(started))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)
        return lineage

    async def _parents(
        self, parent_id: str, per_call: int, now: datetime, guesses: Sequence[RunInput]
    ) -> list[RunInput]:
        """The lineage of a run's parent, opened: from its row where it has one (its true
        parents), else from the api's guess; empty for a run with no parent."""
        if not parent_id:
            return []
        guess = next((p for p in guesses if p.run_id == parent_id), None)
        if guess is None:
            guess = await self.journal.run_input(parent_id)
        if guess is None:
            log.info("parent run %s is unknown: its sub-agent's run stands alone", parent_id)
            return []
        return await self.open(guess, per_call, now, guesses)

    async def _share(self, run: RunInput, parent: RunInput) -> int:
        """The run's budget capped at its share of what its parent has left now (spent and
        held by the parent's whole tree, from the journal)."""
        spent, held = await self.journal.tree_spend(parent.run_id)
        left = max(parent.budget_micros - spent - held, 0)
        return max(min(run.budget_micros, left * run.parent_share_ppm // PPM), 1)

    async def _start(self, run: RunInput) -> None:
        for wait in (0.0, *START_RETRIES):
            await asyncio.sleep(wait)
            try:
                await self.keepers.start_opened(run)
                await self.journal.mark_started(run.run_id)
                return
            except Exception as err:
                log.info("starting run %s failed: %s", run.run_id, err)
        log.warning("run %s not started; the worker's janitor will start it", run.run_id)

    async def reopened(self, run: RunInput) -> bool:
        """An expired run is reopened: the journal counts it open again."""
        return await self.journal.reopen_run(run.run_id, run.key_id, run.max_open_runs or 1 << 62)

    async def close(self) -> None:
        if self._starting:
            await asyncio.gather(*self._starting, return_exceptions=True)
