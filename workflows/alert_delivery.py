"""Alerts leave a workflow through one activity; both the run and the key's period send them so.

A delivery that still fails after its retries is logged, never fatal: the alert is already
recorded, and the receiver dedupes by event id.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.alerts import AlertActivities
    from workflows.contracts import Alert


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
