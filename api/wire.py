"""The inbound wire formats, checked just enough to route and budget a call.

The models tolerate unknown fields (``extra="allow"``) because the body itself is forwarded as
the caller sent it: we validate what budget and routing read, and let everything else pass.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MAX_TOKENS = 4096
"""The output cap of an OpenAI call that sets none: a reservation needs an upper bound."""


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatCompletionRequest(_Tolerant):
    """OpenAI ``POST /v1/chat/completions``."""

    model: str = Field(min_length=1, max_length=200)
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    stream: bool = False

    def output_cap(self) -> int:
        return self.max_completion_tokens or self.max_tokens or DEFAULT_MAX_TOKENS


class MessagesRequest(_Tolerant):
    """Anthropic ``POST /v1/messages``: ``max_tokens`` is required, as the real api says."""

    model: str = Field(min_length=1, max_length=200)
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int = Field(gt=0)
    stream: bool = False

    def output_cap(self) -> int:
        return self.max_tokens


class CountTokensRequest(_Tolerant):
    """Anthropic ``POST /v1/messages/count_tokens``."""

    model: str = Field(min_length=1, max_length=200)
    messages: list[dict[str, Any]] = Field(min_length=1)
