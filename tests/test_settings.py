"""One settings base for every process: empty is unset, secrets come from files, passwords
never need escaping; Temporal is reached through its own environment configuration."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from temporalio.service import TLSConfig

from api.settings import Settings
from db.engine import database_url
from settings import RuncapSettings, SettingsError
from settings.temporal import dev_server_env, load_target
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


# -- Temporal: its own environment configuration (settings/temporal.py) ----------------------

PEM = "-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n"


@pytest.fixture
def temporal_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ``TEMPORAL_*`` variable from the outside, and a home without a Temporal profile."""
    for name in list(os.environ):
        if name.startswith("TEMPORAL_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    return home


def test_with_nothing_set_temporal_is_the_plaintext_dev_server(temporal_env: Path) -> None:
    """No variable and no profile: ``make run``'s dev server, in plaintext, as before."""
    target = WorkerSettings.load().temporal()
    assert (target.address, target.namespace, target.security) == (
        "127.0.0.1:7233",
        "default",
        "plaintext",
    )
    assert "tls" not in target.options and "api_key" not in target.options


def test_temporal_variables_configure_mtls(
    temporal_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and TEMPORAL_TLS_* (paths) reach Client.connect
    as an mTLS configuration, the files read at startup."""
    for name in ("ca", "cert", "key"):
        (tmp_path / name).write_text(f"{name}\n{PEM}")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.internal:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "runcap")
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(tmp_path / "ca"))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(tmp_path / "cert"))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(tmp_path / "key"))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "temporal")
    target = Settings.load().temporal()
    assert str(target) == "temporal.internal:7233 (namespace 'runcap', mTLS)"
    tls = target.options["tls"]
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == f"ca\n{PEM}".encode()
    assert tls.client_cert == f"cert\n{PEM}".encode()
    assert tls.client_private_key == f"key\n{PEM}".encode()
    assert tls.domain == "temporal"


def test_an_api_key_turns_tls_on_and_never_prints(
    temporal_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TEMPORAL_API_KEY (Temporal Cloud) goes to Client.connect with TLS on; the target's
    description, used in logs and errors, names it without showing it."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", "us-east-1.aws.api.temporal.io:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "runcap.a1b2c")
    monkeypatch.setenv("TEMPORAL_API_KEY", "tcld-secret-key")
    target = WorkerSettings.load().temporal()
    assert target.options["api_key"] == "tcld-secret-key"
    assert target.options["tls"] is True
    assert target.security == "TLS + API key"
    assert "tcld-secret-key" not in str(target)


def test_a_toml_profile_is_read_and_variables_win(
    temporal_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """TEMPORAL_CONFIG_FILE and TEMPORAL_PROFILE pick a profile (address, namespace, mTLS
    files); a TEMPORAL_* variable wins over the file."""
    (tmp_path / "client.pem").write_text(PEM)
    (tmp_path / "client.key").write_text(PEM)
    config = tmp_path / "temporal.toml"
    config.write_text(
        f"""
[profile.default]
address = "localhost:7233"

[profile.prod]
address = "temporal.prod:7233"
namespace = "runcap-prod"

[profile.prod.tls]
client_cert_path = "{tmp_path / "client.pem"}"
client_key_path = "{tmp_path / "client.key"}"
"""
    )
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(config))
    monkeypatch.setenv("TEMPORAL_PROFILE", "prod")
    target = WorkerSettings.load().temporal()
    assert str(target) == "temporal.prod:7233 (namespace 'runcap-prod', mTLS)"
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "from-env")
    assert WorkerSettings.load().temporal().namespace == "from-env"


def test_runcap_aliases_win_over_temporal_variables(
    temporal_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RUNCAP_TEMPORAL_ADDRESS and RUNCAP_TEMPORAL_NAMESPACE still work, and win when both
    names are set; Temporal's other settings (TLS, API key) still apply."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", "elsewhere:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "elsewhere")
    monkeypatch.setenv("TEMPORAL_API_KEY", "k")
    monkeypatch.setenv("RUNCAP_TEMPORAL_ADDRESS", "runcap-temporal:7233")
    monkeypatch.setenv("RUNCAP_TEMPORAL_NAMESPACE", "runcap")
    target = Settings.load().temporal()
    assert (target.address, target.namespace, target.security) == (
        "runcap-temporal:7233",
        "runcap",
        "TLS + API key",
    )


def test_an_empty_temporal_variable_is_unset(
    temporal_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As compose passes ``${X:-}``: an empty TEMPORAL_API_KEY is no key (not an empty one
    that would turn TLS on), an empty TEMPORAL_ADDRESS the default."""
    for name in ("TEMPORAL_API_KEY", "TEMPORAL_ADDRESS", "TEMPORAL_TLS", "TEMPORAL_PROFILE"):
        monkeypatch.setenv(name, "")
    target = WorkerSettings.load().temporal()
    assert (target.address, target.security) == ("127.0.0.1:7233", "plaintext")


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"TEMPORAL_CONFIG_FILE": "/nowhere/temporal.toml"}, "does not exist"),
        ({"TEMPORAL_PROFILE": "missing"}, "Profile 'missing' not found"),
        ({"TEMPORAL_TLS_CLIENT_CERT_PATH": "/nowhere/client.pem"}, "/nowhere/client.pem"),
    ],
)
def test_a_bad_temporal_configuration_stops_startup(
    temporal_env: Path, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    """A missing config file, an unknown profile or an unreadable certificate is a settings
    error naming it, raised before anything connects (not a silent plaintext default)."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=re.escape(message)):
        WorkerSettings.load().temporal()


def test_a_broken_profile_file_is_reported_without_its_content(
    temporal_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A TOML syntax error is reported by line, without quoting the line (it may hold a key)."""
    config = tmp_path / "temporal.toml"
    config.write_text('[profile.default]\napi_key = "tcld-secret-key\n')
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(config))
    with pytest.raises(SettingsError, match="TOML parse error") as error:
        WorkerSettings.load().temporal()
    assert "tcld-secret-key" not in str(error.value)


def test_dev_server_children_ignore_the_shells_temporal_settings(
    temporal_env: Path, tmp_path: Path
) -> None:
    """make run and the bench pin their children to the dev server they started, in
    plaintext, whatever Temporal variables, profile or aliases the shell carries."""
    config = tmp_path / "temporal.toml"
    config.write_text('[profile.default]\naddress = "cloud:7233"\napi_key = "k"\n')
    shell = {
        "PATH": "/usr/bin",
        "TEMPORAL_CONFIG_FILE": str(config),
        "TEMPORAL_ADDRESS": "cloud:7233",
        "TEMPORAL_API_KEY": "k",
        "TEMPORAL_TLS_CLIENT_CERT_PATH": "/nowhere",
        "RUNCAP_TEMPORAL_ADDRESS": "cloud:7233",
        "RUNCAP_TEMPORAL_NAMESPACE": "prod",
    }
    env = dev_server_env(shell, "127.0.0.1:40001")
    assert env["PATH"] == "/usr/bin"
    target = load_target(env.get("RUNCAP_TEMPORAL_ADDRESS"), environ=env)
    assert str(target) == "127.0.0.1:40001 (namespace 'default', plaintext)"
