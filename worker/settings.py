"""The worker process's settings, from ``RUNCAP_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache

from providers.settings import ProviderSettings
from workflows.contracts import TASK_QUEUE


class WorkerSettings(ProviderSettings):
    """One settings class for the worker; activities receive what they need from it."""

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    database_url: str = "sqlite:///.runcap/runcap.db"
    alert_webhook_url: str | None = None
    max_concurrent_activities: int = 200
    task_queue: str = TASK_QUEUE


@lru_cache(maxsize=1)
def get_settings() -> WorkerSettings:
    return WorkerSettings()
