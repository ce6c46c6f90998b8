"""Building providers from configuration around one shared client."""

from __future__ import annotations

import pytest

from providers import (
    AnthropicProvider,
    OpenAICompatProvider,
    ProviderConfig,
    build_providers,
    make_http_client,
)


async def test_build_providers_by_name() -> None:
    """Each config becomes the adapter for its wire format, sharing the one client."""
    async with make_http_client() as http:
        providers = build_providers(
            [
                ProviderConfig("openai", "openai", "https://api.openai.com/v1"),
                ProviderConfig("claude", "anthropic", "https://api.anthropic.com"),
            ],
            http,
        )
        assert isinstance(providers["openai"], OpenAICompatProvider)
        assert isinstance(providers["claude"], AnthropicProvider)
        assert all(getattr(p, "http", None) is http for p in providers.values())


async def test_duplicate_provider_names_are_refused() -> None:
    """Two providers with one name is a configuration mistake, reported at start."""
    async with make_http_client() as http:
        config = ProviderConfig("x", "openai", "https://a")
        with pytest.raises(ValueError, match="twice"):
            build_providers([config, config], http)


async def test_client_timeouts() -> None:
    """The shared client fails fast on connect and waits out slow models on read."""
    async with make_http_client() as http:
        assert http.timeout.connect == 5.0
        assert http.timeout.read == 120.0
