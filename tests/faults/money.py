"""The money invariants every fault case asserts, from the workflow and the ledger.

- spent + lent never above the run's cap (watched while the fault happens, and after);
- nothing held by calls in flight once the topology is whole again;
- the ledger equals the workflow: same calls, same total, each call once;
- no answered call missing from the ledger, each billed what its client was told.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlmodel import col
from temporalio.client import Client

from caller import run_handle
from db.models import LedgerEntry
from tests.polling import eventually
from workflows.agent_run import AgentRun
from workflows.run_contracts import RunSpend

if TYPE_CHECKING:
    from tests.faults.gateway import Answer, Gateway

SETTLE_SECONDS = 120.0


async def run_spend(client: Client, run_id: str) -> RunSpend:
    """The run's own figures (its workflow's ``spend`` query)."""
    return await run_handle(client, run_id).query(AgentRun.spend)


async def ledger_rows(gateway: Gateway, run_id: str, calls: int = 0) -> list[LedgerEntry]:
    """The run's billed ledger rows (every status but ``failed``, which spent nothing), once
    there are at least ``calls`` of them."""

    def read() -> list[LedgerEntry]:
        with gateway.engine.connect() as conn:
            query = select(LedgerEntry).where(
                col(LedgerEntry.run_id) == run_id, col(LedgerEntry.status) != "failed"
            )
            return [LedgerEntry.model_validate(row._mapping) for row in conn.execute(query)]

    async def enough() -> list[LedgerEntry] | None:
        rows = await asyncio.to_thread(read)
        return rows if len(rows) >= calls and (rows or not calls) else None

    rows: list[LedgerEntry] | None = await eventually(enough, within=SETTLE_SECONDS)
    if rows is None:
        rows = await asyncio.to_thread(read)
        raise AssertionError(f"ledger of {run_id} has {len(rows)} billed rows, not {calls}")
    return rows


@dataclass
class CapWatch:
    """Samples spent + reserved of a run while a fault happens; queries that fail (Temporal
    down, the run's worker gone) are counted, not fatal."""

    client: Client
    run_id: str
    budget_micros: int = 0
    highest_micros: int = 0
    samples: int = 0
    unavailable: int = 0
    over: list[tuple[int, int]] = field(default_factory=list)

    async def _watch(self) -> None:
        while True:
            try:
                async with asyncio.timeout(2):
                    spend = await run_spend(self.client, self.run_id)
            except Exception:
                self.unavailable += 1
            else:
                self.samples += 1
                committed = spend.spent_micros + max(spend.lent_micros, spend.reserved_micros)
                self.budget_micros = spend.budget_micros
                self.highest_micros = max(self.highest_micros, committed)
                if committed > spend.budget_micros:
                    self.over.append((committed, spend.budget_micros))
            await asyncio.sleep(0.1)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CapWatch]:
        task = asyncio.create_task(self._watch())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert self.over == [], f"spent + lent above the cap: {self.over[:5]}"


async def assert_settled(gateway: Gateway, run_id: str, answers: Iterable[Answer]) -> RunSpend:
    """Once whole again: nothing held by calls in flight, the run heard of every call its
    ledger has, the ledger equals the workflow, every answered call is in the ledger once at
    the cost its client was told, and the cap held."""
    answered = {a.call_id: a.cost_micros for a in answers if a.ok}

    async def settled() -> RunSpend | None:
        with contextlib.suppress(Exception):  # Temporal or the worker may still be coming back
            spend = await run_spend(gateway.temporal, run_id)
            rows = await asyncio.to_thread(_rows, gateway, run_id)
            billed = [status for status in rows if status != "failed"]
            heard = spend.calls == len(billed) and spend.failed_calls == len(rows) - len(billed)
            if spend.reserved_micros == 0 and heard:
                return spend
        return None

    spend: RunSpend | None = await eventually(settled, within=SETTLE_SECONDS)
    assert spend is not None, f"{run_id} still holds calls in flight after {SETTLE_SECONDS:.0f}s"
    rows = await ledger_rows(gateway, run_id, calls=spend.calls)
    ids = [row.call_id for row in rows]
    assert len(ids) == len(set(ids)) == spend.calls, (len(ids), spend.calls)
    assert sum(row.cost_micros for row in rows) == spend.spent_micros
    assert spend.spent_micros + spend.lent_micros <= spend.budget_micros
    billed = {row.call_id: row.cost_micros for row in rows}
    missing = set(answered) - set(billed)
    assert not missing, f"answered calls missing from the ledger: {sorted(missing)[:5]}"
    told = {call: cost for call, cost in answered.items() if cost is not None}
    assert {call: billed[call] for call in told} == told
    return spend


def _rows(gateway: Gateway, run_id: str) -> list[str]:
    """The status of each of the run's ledger rows."""
    with gateway.engine.connect() as conn:
        query = select(col(LedgerEntry.status)).where(col(LedgerEntry.run_id) == run_id)
        return list(conn.execute(query).scalars())
