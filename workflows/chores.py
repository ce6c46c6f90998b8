"""The awaited bookkeeping every keeper shares (runs and key periods, before lines and after):
alerts out, ledger rows the callers could not write, and a silent borrower's reconciliation.

Every activity call has a bounded retry policy. A delivery that still fails is logged, never
fatal: an alert is already recorded (its receiver dedupes by event id), a ledger row goes back
to the keeper's queue for the next pass, and a reconciliation that cannot read the journal
bills the borrower's whole line (the provider may have worked on every call it held money for).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.alerts import AlertActivities
    from activities.journal import JournalActivities, KeyLine, RunEnded, RunLine
    from activities.ledger import LedgerActivities
    from workflows.contracts import Alert, LedgerBatch, LedgerRow
    from workflows.lending_contracts import Recorded

BOOKKEEPING_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)
LOOKUP_RETRY = RetryPolicy(maximum_attempts=3, maximum_interval=timedelta(seconds=2))


async def send_alerts(alerts: Iterable[Alert], retry: RetryPolicy) -> None:
    """Send each alert in turn (from workflow code)."""
    for alert in alerts:
        try:
            await workflow.execute_activity_method(
                AlertActivities.send_alert,
                alert,
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=retry,
            )
        except Exception:
            workflow.logger.warning("alert could not be delivered", exc_info=True)


async def write_ledger(rows: list[LedgerRow]) -> bool:
    """Write rows the callers could not; False when they must be tried again later."""
    try:
        await workflow.execute_activity_method(
            LedgerActivities.write_ledger,
            LedgerBatch(rows),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=BOOKKEEPING_RETRY,
        )
    except Exception:
        workflow.logger.warning("ledger write failed; will retry", exc_info=True)
        return False
    return True


async def recorded(line: RunLine | KeyLine) -> Recorded:
    """What a silent borrower left in the journal for this keeper (``read=False`` when the
    journal could not be read)."""
    try:
        if isinstance(line, RunLine):
            return await workflow.execute_activity_method(
                JournalActivities.recorded_for_run,
                line,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=LOOKUP_RETRY,
            )
        return await workflow.execute_activity_method(
            JournalActivities.recorded_for_key,
            line,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=LOOKUP_RETRY,
        )
    except Exception:
        workflow.logger.warning("journal look-up failed; billing the whole line", exc_info=True)
        return Recorded(read=False)


async def run_ended(run_id: str) -> None:
    """Mark the run closed in the journal (its key may open another)."""
    try:
        await workflow.execute_activity_method(
            JournalActivities.run_ended,
            RunEnded(run_id, workflow.now().isoformat()),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=BOOKKEEPING_RETRY,
        )
    except Exception:
        workflow.logger.warning("could not mark the run closed", exc_info=True)
