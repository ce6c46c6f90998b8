"""Provider adapters: the seam (``base``), the two wire formats, translation and the registry."""

from activities.providers.anthropic import AnthropicProvider
from activities.providers.base import (
    ChunkSink,
    Provider,
    ProviderCall,
    ProviderConfig,
    ProviderError,
    ProviderReply,
    StreamResult,
    is_retryable_status,
)
from activities.providers.openai_compat import OpenAICompatProvider
from activities.providers.registry import build_providers, make_http_client, make_provider

__all__ = [
    "AnthropicProvider",
    "ChunkSink",
    "OpenAICompatProvider",
    "Provider",
    "ProviderCall",
    "ProviderConfig",
    "ProviderError",
    "ProviderReply",
    "StreamResult",
    "build_providers",
    "is_retryable_status",
    "make_http_client",
    "make_provider",
]
