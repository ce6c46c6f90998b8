"""The worker's settings, read from the environment as a deployment sets them: alerts, and
how it reaches Temporal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.databases import sqlite_at_head
from tests.test_processes import PROCESSES, process_env, run_to_exit
from worker.devserver import DevServer
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


def test_make_run_children_reach_its_dev_server_in_plaintext(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever Temporal settings the shell has (another cluster, an API key, an alias), the
    launcher's worker and api reach the dev server it started, in plaintext."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", "cloud.example:7233")
    monkeypatch.setenv("TEMPORAL_API_KEY", "tcld-key")
    monkeypatch.setenv("RUNCAP_TEMPORAL_ADDRESS", "elsewhere:7233")
    env = child_env(LaunchSettings(), "127.0.0.1:17233", "rc-admin-x")
    for name in list(os.environ):
        if name not in env:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    target = WorkerSettings.load().temporal()
    assert str(target) == "127.0.0.1:17233 (namespace 'default', plaintext)"


@pytest.mark.parametrize("module", PROCESSES)
async def test_a_bad_temporal_configuration_is_a_clear_failure_at_start(
    module: str, tmp_path: Path
) -> None:
    """An unknown Temporal profile stops the worker and the api with exit 2 and one line
    naming it, before they touch the database or Temporal."""
    env = process_env(
        tmp_path,
        RUNCAP_FAKE_PROVIDER_URL="http://127.0.0.1:9",
        TEMPORAL_CONFIG_FILE=os.devnull,
        TEMPORAL_PROFILE="prod",
    )
    code, err = await run_to_exit(module, env)
    assert code == 2, err
    assert f"runcap {module}: Temporal's client configuration: Profile 'prod' not found" in err
    assert "Traceback" not in err


async def test_a_worker_that_cannot_connect_says_where_and_how(
    tmp_path: Path, dev_server: DevServer
) -> None:
    """TLS towards a plaintext server (a wrong setting, not a down server) stops the worker
    with exit 2 and one line naming the address, the namespace and the security it tried."""
    sqlite_at_head(tmp_path / "runcap.db").dispose()
    env = process_env(
        tmp_path,
        RUNCAP_FAKE_PROVIDER_URL="http://127.0.0.1:9",
        TEMPORAL_CONFIG_FILE=os.devnull,
        TEMPORAL_ADDRESS=dev_server.target,
        TEMPORAL_TLS="true",
    )
    code, err = await run_to_exit("worker", env)
    assert code == 2, err
    assert f"cannot reach Temporal at {dev_server.target} (namespace 'default', TLS)" in err
    assert "TEMPORAL_TLS_CLIENT_CERT_PATH" in err
    assert "Traceback" not in err
