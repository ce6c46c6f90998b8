"""Adapter for the Anthropic Messages API.

``base_url`` is the host (``https://api.anthropic.com``); the adapter appends ``/v1/messages``.
"""

from __future__ import annotations

from typing import Any

from providers.base import ProviderCall
from providers.http_adapter import HttpAdapter
from workflows.contracts import WireFormat

JSON = dict[str, Any]

ANTHROPIC_VERSION = "2023-06-01"
_FORWARDED = ("anthropic-version", "anthropic-beta")


class AnthropicProvider(HttpAdapter):
    """Speaks Anthropic messages; answers in whichever format the caller used."""

    api: WireFormat = "anthropic"

    def url(self) -> str:
        return self.config.base_url.rstrip("/") + "/v1/messages"

    def headers(self, call: ProviderCall) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION, **self.config.headers}
        for name, value in call.headers.items():
            if name.lower() in _FORWARDED:
                headers[name.lower()] = value
        key = self.config.api_key.get_secret_value()
        if key:
            headers["x-api-key"] = key
        return headers

    def shape(self, body: JSON, call: ProviderCall, *, stream: bool) -> JSON:
        body["max_tokens"] = call.max_tokens
        body["stream"] = stream
        return body
