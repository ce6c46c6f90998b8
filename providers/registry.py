"""Build the configured providers around one shared HTTP client.

One ``httpx.AsyncClient`` for all adapters keeps connection pools warm across calls and gives a
single place for timeouts: connect fails fast, read waits out a slow model.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from providers.anthropic import AnthropicProvider
from providers.base import Provider, ProviderConfig
from providers.openai_compat import OpenAICompatProvider
from providers.openai_responses import OpenAIResponsesProvider

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=120.0, write=30.0, pool=10.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)


def make_http_client(
    *,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    limits: httpx.Limits = DEFAULT_LIMITS,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The shared client; the caller owns it and closes it (``async with`` or ``aclose``)."""
    return httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport)


def make_provider(config: ProviderConfig, http: httpx.AsyncClient) -> Provider:
    """The adapter for ``config.api``."""
    if config.api == "anthropic":
        return AnthropicProvider(config, http)
    if config.api == "responses":
        return OpenAIResponsesProvider(config, http)
    return OpenAICompatProvider(config, http)


def build_providers(
    configs: Iterable[ProviderConfig], http: httpx.AsyncClient
) -> dict[str, Provider]:
    """Adapters by provider name; a duplicate name is a configuration mistake."""
    providers: dict[str, Provider] = {}
    for config in configs:
        if config.name in providers:
            raise ValueError(f"provider {config.name!r} is configured twice")
        providers[config.name] = make_provider(config, http)
    return providers
