"""A workflow that only delivers one alert through the real ``send_alert`` activity, with a
short retry interval, so the tests exercise Temporal's retries and not a loop of their own."""

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.alerts import AlertActivities
    from workflows.contracts import Alert


@dataclass
class Delivery:
    alert: Alert
    max_attempts: int = 5


@workflow.defn(sandboxed=False)
class DeliverAlert:
    @workflow.run
    async def run(self, job: Delivery) -> None:
        await workflow.execute_activity_method(
            AlertActivities.send_alert,
            job.alert,
            start_to_close_timeout=timedelta(seconds=15),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100),
                backoff_coefficient=2.0,
                maximum_interval=timedelta(seconds=1),
                maximum_attempts=job.max_attempts,
            ),
        )
