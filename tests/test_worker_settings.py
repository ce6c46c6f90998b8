"""The worker's alert settings, read from the environment as a deployment sets them."""

from __future__ import annotations

import pytest

from worker.launch import LaunchSettings, child_env
from worker.settings import WorkerSettings

URL = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX"


def test_alert_settings_reach_the_activity_and_never_print(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """URL, secret, format and dashboard come from RUNCAP_*; the URL and secret stay hidden."""
    monkeypatch.setenv("RUNCAP_ALERT_WEBHOOK_URL", URL)
    monkeypatch.setenv("RUNCAP_ALERT_WEBHOOK_SECRET", "whsec-from-env")
    monkeypatch.setenv("RUNCAP_ALERT_FORMAT", "slack")
    monkeypatch.setenv("RUNCAP_DASHBOARD_URL", "https://runcap.example.com/ui")
    settings = WorkerSettings()
    webhook = settings.alert_webhook()
    assert webhook.url is not None and webhook.url.get_secret_value() == URL
    assert webhook.secret is not None and webhook.secret.get_secret_value() == "whsec-from-env"
    assert (webhook.format, webhook.dashboard_url) == ("slack", "https://runcap.example.com/ui")
    for shown in (repr(settings), str(settings), repr(webhook)):
        assert "SECRET" not in shown and "whsec-from-env" not in shown


def test_empty_alert_settings_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty values (as compose passes an unset variable) mean unset: no empty signing key."""
    for name in ("URL", "SECRET"):
        monkeypatch.setenv(f"RUNCAP_ALERT_WEBHOOK_{name}", "")
    monkeypatch.setenv("RUNCAP_ALERT_FORMAT", "")
    monkeypatch.setenv("RUNCAP_DASHBOARD_URL", "")
    webhook = WorkerSettings().alert_webhook()
    assert (webhook.url, webhook.secret, webhook.format, webhook.dashboard_url) == (
        None,
        None,
        "json",
        None,
    )


def test_make_run_tells_the_worker_where_the_dashboard_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The launcher points alert links at its api's dashboard unless one is configured."""
    monkeypatch.delenv("RUNCAP_DASHBOARD_URL", raising=False)
    settings = LaunchSettings(api_host="127.0.0.1", api_port=8123)
    env = child_env(settings, "127.0.0.1:7233", "rc-admin-x")
    assert env["RUNCAP_DASHBOARD_URL"] == "http://127.0.0.1:8123/ui"
    monkeypatch.setenv("RUNCAP_DASHBOARD_URL", "https://runcap.example.com/ui")
    env = child_env(settings, "127.0.0.1:7233", "rc-admin-x")
    assert env["RUNCAP_DASHBOARD_URL"] == "https://runcap.example.com/ui"
