"""What keepers read from the journal: what a silent borrower left (its crash reconciliation),
and a run's end (its key then has one open run fewer).

Temporal may run an activity more than once: a run's reconciliation turns the borrower's
intents into ``unknown`` ledger rows and deletes them in one transaction, so a repeat finds none
left and bills nothing twice (the keeper bills once, from the first answer it got).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import Engine
from temporalio import activity

from db.journal import mark_closed, recorded_for_key, recorded_for_run
from db.ledger import parse_time
from workflows.lending_contracts import Recorded


@dataclass
class RunLine:
    """A borrower's line at a run."""

    caller_id: str
    run_id: str
    opened_at: str


@dataclass
class KeyLine:
    """A borrower's line at one of a key's periods: its calls that started in the period."""

    caller_id: str
    key_id: str
    starts_at: str
    ends_at: str


@dataclass
class RunEnded:
    run_id: str
    at: str


class JournalActivities:
    """Reads and closes what the api instances journal; the engine is injected."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn
    async def recorded_for_run(self, line: RunLine) -> Recorded:
        """What a silent borrower recorded for a run; its intents become ``unknown`` rows."""
        since = parse_time(line.opened_at)
        return await asyncio.to_thread(
            recorded_for_run, self.engine, line.caller_id, line.run_id, since
        )

    @activity.defn
    async def recorded_for_key(self, line: KeyLine) -> Recorded:
        """What a silent borrower recorded for a key's period (rows and intents, read only)."""
        start, end = parse_time(line.starts_at), parse_time(line.ends_at)
        return await asyncio.to_thread(
            recorded_for_key, self.engine, line.caller_id, line.key_id, start, end
        )

    @activity.defn
    async def run_ended(self, ended: RunEnded) -> None:
        """The run's workflow is ending: its key has one open run fewer."""
        await asyncio.to_thread(mark_closed, self.engine, ended.run_id, parse_time(ended.at))
