"""The worker process's settings, from ``RUNCAP_*`` variables and secret files."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from activities.alerts import AlertWebhook
from settings import RuncapSettings
from workflows.contracts import TASK_QUEUE


class WorkerSettings(RuncapSettings):
    """One settings class for the worker; activities receive what they need from it.

    No admin key: the worker serves no admin endpoint, so it neither needs nor gets one.
    An empty value is unset (the base's rule): ``RUNCAP_ALERT_WEBHOOK_SECRET=`` signs nothing.
    """

    alert_webhook_url: SecretStr | None = None
    """Where alerts are posted; a secret, since a Slack incoming-webhook URL is a credential."""
    alert_webhook_secret: SecretStr | None = None
    """Signs every alert post (``X-Runcap-Signature``, HMAC-SHA256); unset sends them unsigned."""
    alert_format: Literal["json", "slack"] = "json"
    dashboard_url: str | None = None
    """The dashboard's address as receivers reach it (``https://runcap.example.com/ui``):
    alerts link to the run's page there."""
    max_concurrent_activities: int = 200
    task_queue: str = TASK_QUEUE
    health_file: Path | None = None
    """Touched while the worker runs and reaches Temporal; compose's health check reads it."""

    def alert_webhook(self) -> AlertWebhook:
        """What the alert activity needs from these settings."""
        return AlertWebhook(
            url=self.alert_webhook_url,
            secret=self.alert_webhook_secret,
            format=self.alert_format,
            dashboard_url=self.dashboard_url,
        )


@lru_cache(maxsize=1)
def get_settings() -> WorkerSettings:
    """The process's settings, parsed once."""
    return WorkerSettings.load()
