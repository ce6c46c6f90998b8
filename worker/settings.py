"""The worker process's settings, from ``RUNCAP_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import SecretStr, field_validator

from activities.alerts import AlertWebhook
from providers.settings import ProviderSettings
from workflows.contracts import TASK_QUEUE


class WorkerSettings(ProviderSettings):
    """One settings class for the worker; activities receive what they need from it."""

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    database_url: str = "sqlite:///.runcap/runcap.db"
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

    @field_validator("alert_webhook_url", "alert_webhook_secret", "dashboard_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `RUNCAP_ALERT_WEBHOOK_SECRET=` (empty) must not sign with an empty key.
        return value or None

    @field_validator("alert_format", mode="before")
    @classmethod
    def _empty_is_json(cls, value: object) -> object:
        return value or "json"

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
    return WorkerSettings()
