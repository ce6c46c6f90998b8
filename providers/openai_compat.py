"""Adapter for OpenAI-compatible chat completions (OpenAI, OpenRouter, vLLM, Groq, ...).

``base_url`` includes the version path (``https://api.openai.com/v1``); the adapter appends
``/chat/completions``.
"""

from __future__ import annotations

import re
from typing import Any

from providers.base import ProviderCall
from providers.http_adapter import HttpAdapter
from workflows.contracts import WireFormat

JSON = dict[str, Any]

# Reasoning models refuse ``max_tokens``; a translated body must use the newer name for them.
_NEEDS_COMPLETION_TOKENS = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-[5-9])")


class OpenAICompatProvider(HttpAdapter):
    """Speaks OpenAI chat completions; answers in whichever format the caller used."""

    api: WireFormat = "openai"

    def url(self) -> str:
        return self.config.base_url.rstrip("/") + "/chat/completions"

    def headers(self, call: ProviderCall) -> dict[str, str]:
        headers = dict(self.config.headers)
        key = self.config.api_key.get_secret_value()
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    def shape(self, body: JSON, call: ProviderCall, *, stream: bool) -> JSON:
        translated = call.inbound != self.api
        if "max_completion_tokens" in body or (
            translated and _NEEDS_COMPLETION_TOKENS.match(call.model)
        ):
            body["max_completion_tokens"] = call.max_tokens
            body.pop("max_tokens", None)
        else:
            body["max_tokens"] = call.max_tokens
        body["stream"] = stream
        if stream:
            # Usage only arrives in the final chunk, and only when asked for.
            options = body.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {})}
            body["stream_options"]["include_usage"] = True
        else:
            body.pop("stream_options", None)
        return body
