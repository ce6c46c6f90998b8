"""The ledger activities: the run's own ledger writes (calls its caller could not record), and
its look-up of what a silent caller recorded before it went silent.

Temporal may run an activity more than once; the write is an upsert on the call id.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine
from temporalio import activity

from db.ledger import recorded_calls, recorded_under, write_rows
from workflows.contracts import LedgerBatch, RecordedCall


class LedgerActivities:
    """Writes settled calls to the ledger database; the engine is injected."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write_sync(self, batch: LedgerBatch) -> None:
        """Upsert a batch in one transaction (blocking; the activity runs it in a thread)."""
        write_rows(self.engine, batch.rows)

    @activity.defn(name="write_ledger")
    async def write_ledger(self, batch: LedgerBatch) -> None:
        """Record settled calls; safe to retry (upsert on call id)."""
        await asyncio.to_thread(self.write_sync, batch)

    @activity.defn
    async def recorded_calls(self, call_ids: list[str]) -> list[RecordedCall]:
        """How the callers of ``call_ids`` recorded their ending, for those that did."""
        return await asyncio.to_thread(recorded_calls, self.engine, call_ids)

    @activity.defn
    async def recorded_under_advances(self, advance_ids: list[str]) -> list[RecordedCall]:
        """How a silent caller recorded the calls it made under its advances."""
        return await asyncio.to_thread(recorded_under, self.engine, advance_ids)
