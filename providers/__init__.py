"""Provider adapters: the seam (``base``), the three wire formats, translation and the registry."""

from providers.anthropic import AnthropicProvider
from providers.base import (
    ChunkSink,
    Provider,
    ProviderCall,
    ProviderConfig,
    ProviderError,
    ProviderReply,
    StreamResult,
    is_retryable_status,
)
from providers.openai_compat import OpenAICompatProvider
from providers.openai_responses import OpenAIResponsesProvider
from providers.registry import build_providers, make_http_client, make_provider

__all__ = [
    "AnthropicProvider",
    "ChunkSink",
    "OpenAICompatProvider",
    "OpenAIResponsesProvider",
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
