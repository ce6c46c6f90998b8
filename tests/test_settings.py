"""One settings base for every process: empty is unset, secrets come from files, passwords
never need escaping."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from api.settings import Settings
from db.engine import database_url
from settings import RuncapSettings, SettingsError
from worker.launch import LaunchSettings
from worker.settings import WorkerSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No ``RUNCAP_*`` variable from the outside, and an empty secrets directory of our own."""
    for name in list(os.environ):
        if name.startswith("RUNCAP_"):
            monkeypatch.delenv(name)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    monkeypatch.setenv("RUNCAP_SECRETS_DIR", str(secrets))
    yield secrets


def test_every_process_settings_class_derives_from_the_base() -> None:
    """The api, the worker and the launcher read settings through the one base."""
    for cls in (Settings, WorkerSettings, LaunchSettings):
        assert issubclass(cls, RuncapSettings)


def test_an_empty_value_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """``RUNCAP_OPENAI_API_KEY=`` configures no provider, and an empty port keeps its default."""
    monkeypatch.setenv("RUNCAP_OPENAI_API_KEY", "")
    monkeypatch.setenv("RUNCAP_ANTHROPIC_API_KEY", "  ")
    monkeypatch.setenv("RUNCAP_API_PORT", "")
    settings = Settings.load()
    assert settings.openai_api_key is None
    assert settings.anthropic_api_key is None
    assert settings.api_port == 8000
    with pytest.raises(SettingsError, match="no model provider is configured"):
        settings.require_provider()


def test_secrets_come_from_files_and_the_environment_wins(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files named after the setting are read (an empty file is no secret); a variable wins."""
    (clean_env / "runcap_anthropic_api_key").write_text("sk-ant-file\n")
    (clean_env / "runcap_openai_api_key").write_text("")
    (clean_env / "runcap_database_password").write_text("a@b:/#%")
    (clean_env / "runcap_admin_key").write_text("rc-admin-file")
    worker = WorkerSettings.load()
    assert worker.anthropic_api_key == SecretStr("sk-ant-file")
    assert worker.openai_api_key is None
    assert worker.database_password == SecretStr("a@b:/#%")
    assert [c.name for c in worker.provider_configs()] == ["anthropic"]
    assert not hasattr(worker, "admin_key")  # the worker has no use for it
    monkeypatch.setenv("RUNCAP_ADMIN_KEY", "rc-admin-env")
    assert Settings.load().admin_key == SecretStr("rc-admin-env")


def test_a_missing_secrets_dir_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An explicit ``RUNCAP_SECRETS_DIR`` that does not exist is reported, not ignored."""
    monkeypatch.setenv("RUNCAP_SECRETS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SettingsError, match="is not a directory"):
        WorkerSettings.load()


def test_database_password_needs_no_escaping() -> None:
    """A password with URL syntax in it reaches the driver intact and is masked when shown."""
    raw = "a@b:/#%?&="
    url = database_url("postgresql://runcap_api@db:5432/runcap", SecretStr(raw))
    assert url.drivername == "postgresql+psycopg"
    assert (url.username, url.host, url.port, url.database) == ("runcap_api", "db", 5432, "runcap")
    assert url.password == raw
    assert raw not in str(url)
    assert make_url(url.render_as_string(hide_password=False)).password == raw


def test_a_password_is_ignored_on_sqlite() -> None:
    """A password secret left in place does not break an embedded SQLite database."""
    url = database_url("sqlite:////tmp/runcap.db", SecretStr("a@b"))
    assert url.password is None
    assert url.database == "/tmp/runcap.db"
