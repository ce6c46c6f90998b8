"""The worker process's settings, from ``RUNCAP_*`` variables and secret files."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from settings import RuncapSettings
from workflows.contracts import TASK_QUEUE


class WorkerSettings(RuncapSettings):
    """One settings class for the worker; activities receive what they need from it.

    No admin key: the worker serves no admin endpoint, so it neither needs nor gets one.
    """

    alert_webhook_url: str | None = None
    max_concurrent_activities: int = 200
    task_queue: str = TASK_QUEUE
    health_file: Path | None = None
    """Touched while the worker runs and reaches Temporal; compose's health check reads it."""


@lru_cache(maxsize=1)
def get_settings() -> WorkerSettings:
    """The process's settings, parsed once."""
    return WorkerSettings.load()
