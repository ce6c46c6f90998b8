"""Which providers a process can reach, read from ``RUNCAP_*`` settings.

Shared by the api (which hosts the caller-side attempt activity) and the worker (which hosts the
body-carrying activity of agents written as workflows), so both reach the same providers.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from providers.base import ProviderConfig


class ProviderSettings(BaseSettings):
    """Provider endpoints and keys. The fake provider is configured when its URL is set."""

    model_config = SettingsConfigDict(env_prefix="RUNCAP_", extra="ignore")

    openai_api_key: SecretStr | None = None
    anthropic_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_base_url: str = "https://api.anthropic.com"
    fake_provider_url: str | None = None

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
