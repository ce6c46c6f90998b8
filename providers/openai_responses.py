"""Adapter for the OpenAI Responses API (OpenAI, and compatible servers that speak it).

``base_url`` includes the version path (``https://api.openai.com/v1``); the adapter appends
``/responses``. runcap stores no responses, so it never relies on the provider's stored state:
a Responses caller sends the whole conversation each turn (Codex does, with ``store: false``).
"""

from __future__ import annotations

from typing import Any

from providers.base import ProviderCall
from providers.openai_compat import OpenAICompatProvider
from workflows.contracts import WireFormat

JSON = dict[str, Any]


class OpenAIResponsesProvider(OpenAICompatProvider):
    """Speaks ``/v1/responses``; answers in whichever format the caller used."""

    api: WireFormat = "responses"

    def url(self) -> str:
        return self.config.base_url.rstrip("/") + "/responses"

    def shape(self, body: JSON, call: ProviderCall, *, stream: bool) -> JSON:
        body["max_output_tokens"] = call.max_tokens
        body["stream"] = stream
        return body
