"""The one settings base every runcap process derives its own settings class from.

Why one base: the api, the worker, the migration command and the launcher read the same
providers, Temporal and database settings, and must agree on two rules:
- an empty value is unset (``RUNCAP_OPENAI_API_KEY=`` configures no provider; an empty secret
  file is no secret), so compose can pass a variable through or mount an empty file;
- secrets may come from files named after the setting (``runcap_openai_api_key``) in a secrets
  directory: ``RUNCAP_SECRETS_DIR``, else ``/run/secrets`` (where compose mounts ``secrets:``)
  when it exists. Environment variables win over files.

Temporal is the exception: where and how to reach it is Temporal's own environment
configuration (``TEMPORAL_*`` and its TOML profiles, ``settings/temporal.py``), with
``RUNCAP_TEMPORAL_ADDRESS`` and ``RUNCAP_TEMPORAL_NAMESPACE`` as aliases that win when set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

from pydantic import PrivateAttr, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from providers.base import ProviderConfig
from settings.temporal import DEFAULT_ADDRESS, TemporalConfigError, TemporalTarget, load_target

ENV_PREFIX = "RUNCAP_"
DEFAULT_SECRETS_DIR = Path("/run/secrets")
DEFAULT_DATABASE_URL = "sqlite:///.runcap/runcap.db"


class SettingsError(ValueError):
    """A process cannot start with these settings; the message says what to set."""


def secrets_dir() -> Path | None:
    """``RUNCAP_SECRETS_DIR`` (which must exist), else ``/run/secrets`` if present, else none."""
    explicit = os.environ.get(f"{ENV_PREFIX}SECRETS_DIR", "").strip()
    if explicit:
        path = Path(explicit)
        if not path.is_dir():
            raise SettingsError(f"{ENV_PREFIX}SECRETS_DIR={explicit} is not a directory")
        return path
    return DEFAULT_SECRETS_DIR if DEFAULT_SECRETS_DIR.is_dir() else None


class RuncapSettings(BaseSettings):
    """Providers, Temporal and database: what more than one process needs."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    openai_api_key: SecretStr | None = None
    anthropic_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_base_url: str = "https://api.anthropic.com"
    fake_provider_url: str | None = None
    """The fake provider's base URL (``python -m fake_provider``); set only for tests and demos."""

    temporal_address: str | None = None
    """Alias of ``TEMPORAL_ADDRESS`` that wins over it; read through ``temporal()``."""
    temporal_namespace: str | None = None
    """Alias of ``TEMPORAL_NAMESPACE`` that wins over it; read through ``temporal()``."""
    _temporal: TemporalTarget | None = PrivateAttr(default=None)

    database_url: str = DEFAULT_DATABASE_URL
    """Without the password: it goes in ``database_password``, so no character needs escaping."""
    database_password: SecretStr | None = None
    database_pool_size: int = 10
    database_max_overflow: int = 20
    """Pool size + overflow is this process's most connections; PostgreSQL's
    ``max_connections`` in docker-compose.yml is sized from it."""

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, data: Any) -> Any:
        # An empty (or blank) value from any source means "not set": the default applies.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data

    @classmethod
    def load(cls) -> Self:
        """Read the environment and the secrets directory (what each process's main calls)."""
        return cls(_secrets_dir=secrets_dir())

    @property
    def temporal_default_address(self) -> str:
        """Where Temporal is when nothing says otherwise: ``make run``'s dev server."""
        return DEFAULT_ADDRESS

    def temporal(self) -> TemporalTarget:
        """Where and how this process reaches Temporal (``settings/temporal.py``), read once:
        ``await settings.temporal().connect(...)`` is how every process connects."""
        if self._temporal is None:
            try:
                self._temporal = load_target(
                    self.temporal_address,
                    self.temporal_namespace,
                    default_address=self.temporal_default_address,
                )
            except TemporalConfigError as error:
                raise SettingsError(str(error)) from None
        return self._temporal

    def provider_configs(self) -> list[ProviderConfig]:
        """``openai`` (chat), ``openai-responses`` and ``anthropic`` when keyed; ``fake``,
        ``fake-anthropic`` and ``fake-responses`` when a fake runs."""
        configs: list[ProviderConfig] = []
        if self.openai_api_key is not None:
            key = self.openai_api_key
            configs.append(ProviderConfig("openai", "openai", self.openai_base_url, key))
            configs.append(
                ProviderConfig("openai-responses", "responses", self.openai_base_url, key)
            )
        if self.anthropic_api_key is not None:
            configs.append(
                ProviderConfig(
                    "anthropic", "anthropic", self.anthropic_base_url, self.anthropic_api_key
                )
            )
        if self.fake_provider_url:
            base = self.fake_provider_url.rstrip("/")
            configs.append(ProviderConfig("fake", "openai", f"{base}/v1"))
            configs.append(ProviderConfig("fake-anthropic", "anthropic", base))
            configs.append(ProviderConfig("fake-responses", "responses", f"{base}/v1"))
        return configs

    def require_provider(self) -> None:
        """Refuse to start without a provider: every call would fail, so fail now, clearly."""
        if not self.provider_configs():
            raise SettingsError(
                "no model provider is configured. Set RUNCAP_OPENAI_API_KEY or "
                "RUNCAP_ANTHROPIC_API_KEY (or put the key in the secret file "
                "runcap_openai_api_key / runcap_anthropic_api_key), or set "
                "RUNCAP_FAKE_PROVIDER_URL to run against the fake provider "
                "(docker compose --profile fake)."
            )
