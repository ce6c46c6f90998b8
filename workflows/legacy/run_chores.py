"""The run's chores: the work ``AgentRun`` awaits, off the calls' own path.

Drawing period leases and reporting them back, looking up what a silent caller recorded,
writing ledger rows the callers could not, delivering alerts, refreshing the Temporal UI's
search attributes and memo. Every activity call has a bounded retry policy, and a chore that
fails is kept and tried again on the next pass: nothing is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.key_budget import KeyBudgetActivities
    from activities.ledger import LedgerActivities
    from workflows import errors
    from workflows.chores import BOOKKEEPING_RETRY, LOOKUP_RETRY, send_alerts
    from workflows.contracts import (
        LedgerBatch,
        RecordedCall,
    )
    from workflows.legacy.contracts import LeaseRequest, LeaseReturn
    from workflows.legacy.leases import Draw, GiveBack
    from workflows.legacy.run_book import RunBook
    from workflows.run_contracts import RunInput
    from workflows.visibility import memo, search_attribute_updates

LEASE_RETRY = RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=2))


class RunChores:
    """The awaited bookkeeping of one run."""

    def __init__(self, run: RunInput, book: RunBook) -> None:
        self.run_input = run
        self.book = book
        self.state = book.state
        self.flush_lock = asyncio.Lock()
        self.lease_lock = asyncio.Lock()
        """Held while drawing or reporting leases, so a burst of calls draws once."""

    async def draw(self, draw: Draw) -> None:
        """A new slice of a period budget for this run (none when the period is spent)."""
        self.state.lease_requests += 1
        budget = draw.budget
        req = LeaseRequest(
            key_id=self.run_input.key_id,
            kind=budget.kind,
            period=draw.period,
            ends_at=draw.ends_at,
            cap_micros=budget.cap_micros,
            timezone=budget.timezone,
            run_id=self.run_input.run_id,
            need_micros=draw.need_micros,
            floor_micros=draw.floor_micros,
            want_micros=draw.want_micros,
            request_id=f"{self.run_input.run_id}:{self.state.lease_requests}",
        )
        try:
            grant = await workflow.execute_activity_method(
                KeyBudgetActivities.draw_lease,
                req,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=LEASE_RETRY,
            )
        except Exception:
            # Only ApplicationError may leave an update handler; the call is refused, not lost.
            workflow.logger.warning("lease draw failed", exc_info=True)
            raise ApplicationError(
                f"the key's {budget.kind} budget could not be reached; retry",
                type=errors.TEMPORAL_UNAVAILABLE,
            ) from None
        self.book.leases.granted(draw, grant.granted_micros)
        self.book.dirty = True

    async def recorded(self, call_ids: list[str]) -> dict[str, RecordedCall]:
        """How a silent caller recorded these calls (none found when the look-up fails: they
        then settle at their reservations)."""
        found = await self._look_up(LedgerActivities.recorded_calls, call_ids, "reservations")
        return {call.call_id: call for call in found}

    async def recorded_under(self, advance_ids: list[str]) -> list[RecordedCall]:
        """The calls a silent caller recorded under its advances (none when the look-up fails:
        the advances are then billed whole, never released as free)."""
        return await self._look_up(
            LedgerActivities.recorded_under_advances, advance_ids, "advances whole"
        )

    async def _look_up(
        self,
        activity: Callable[[LedgerActivities, list[str]], Awaitable[list[RecordedCall]]],
        ids: list[str],
        fallback: str,
    ) -> list[RecordedCall]:
        try:
            return await workflow.execute_activity_method(
                activity,
                ids,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=LOOKUP_RETRY,
            )
        except Exception:
            workflow.logger.warning(f"ledger look-up failed; billing {fallback}", exc_info=True)
            return []

    async def flush(self, *, idle: bool) -> None:
        """Give leases back, write ledger rows and alerts, then refresh search attributes and
        memo, in one pass."""
        async with self.flush_lock:
            await self.give_back(idle=idle, closing=False)
            self.upsert_visibility()
            rows, self.state.pending_ledger = self.state.pending_ledger, []
            alerts, self.state.pending_alerts = self.state.pending_alerts, []
            if rows:
                try:
                    await workflow.execute_activity_method(
                        LedgerActivities.write_ledger,
                        LedgerBatch(rows),
                        start_to_close_timeout=timedelta(seconds=30),
                        retry_policy=BOOKKEEPING_RETRY,
                    )
                except Exception:
                    # Never lose a row: put the batch back and try again on the next pass.
                    self.state.pending_ledger[:0] = rows
                    workflow.logger.warning("ledger write failed; will retry", exc_info=True)
            await send_alerts(alerts, BOOKKEEPING_RETRY)

    async def give_back(self, *, idle: bool, closing: bool) -> None:
        """Report spend to the key's periods and hand back leases no call will use.

        A report leaves the run's lease at once and waits in ``unsent_reports`` until its
        period takes it; its request id makes a repeat harmless.
        """
        async with self.lease_lock:
            for back in self.book.leases.give_backs(idle=idle, closing=closing):
                self.state.lease_requests += 1
                self.state.unsent_reports.append(self.report(back))
                self.book.leases.given_back(back)
            while self.state.unsent_reports:
                try:
                    await workflow.execute_activity_method(
                        KeyBudgetActivities.give_back,
                        self.state.unsent_reports[0],
                        start_to_close_timeout=timedelta(seconds=10),
                        retry_policy=LEASE_RETRY,
                    )
                except Exception:
                    workflow.logger.warning("lease report failed; will retry", exc_info=True)
                    return
                self.state.unsent_reports.pop(0)

    def report(self, back: GiveBack) -> LeaseReturn:
        lease = back.lease
        return LeaseReturn(
            key_id=self.run_input.key_id,
            kind=lease.kind,
            period=lease.period,
            run_id=self.run_input.run_id,
            spent_micros=back.spent_micros,
            unused_micros=back.unused_micros,
            request_id=f"{self.run_input.run_id}:{self.state.lease_requests}",
        )

    def upsert_visibility(self) -> None:
        if not self.book.dirty:
            return
        self.book.dirty = False
        state = self.state
        workflow.upsert_search_attributes(
            search_attribute_updates(
                self.run_input,
                spent_micros=state.spent_micros,
                budget_micros=state.budget_micros,
                calls=state.calls,
                status=state.status,
            )
        )
        workflow.upsert_memo(memo(state.by_step, state.spent_micros))
