"""Adapter for the Anthropic Messages API.

``base_url`` is the host (``https://api.anthropic.com``); the adapter appends ``/v1/messages``.
"""

from __future__ import annotations

from typing import Any

from providers.base import ProviderCall
from providers.http_adapter import HttpAdapter
from providers.replies import anthropic_to_openai_response, usage_from_anthropic
from providers.translate import openai_to_anthropic_request, strip_runcap_metadata
from workflows.contracts import Usage, WireFormat

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

    def body(self, call: ProviderCall, *, stream: bool) -> JSON:
        if call.inbound == "anthropic":
            body = dict(call.body)
        else:
            body = openai_to_anthropic_request(call.body)
        body["model"] = call.model
        body["max_tokens"] = call.max_tokens
        body["stream"] = stream
        strip_runcap_metadata(body)
        return body

    def usage(self, reply: JSON) -> Usage:
        return usage_from_anthropic(reply.get("usage"))

    def reply_for(self, reply: JSON, inbound: WireFormat) -> JSON:
        return reply if inbound == "anthropic" else anthropic_to_openai_response(reply)
