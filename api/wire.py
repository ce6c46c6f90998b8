"""The inbound wire formats, checked just enough to route and budget a call.

Each model's ``output_cap()`` is the call's output bound as asked (or a default), and
``asked_output()`` the fields that set it; ``api.output_limits`` holds them to the model's limit.

The models tolerate unknown fields (``extra="allow"``) because the body itself is forwarded as
the caller sent it: we validate what budget and routing read, and let everything else pass.
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

DEFAULT_MAX_TOKENS = 4096
"""The output cap of an OpenAI call that sets none: a reservation needs an upper bound."""

DEFAULT_MAX_OUTPUT_TOKENS = 32_000
"""The output cap of a Responses call that sets none (Codex never sets one).

A reservation needs an upper bound, and the bound is sent to the provider as
``max_output_tokens`` so the answer cannot exceed what was reserved. Reasoning tokens count as
output, so the bound must leave room for a coding agent's turn with medium reasoning: 32,000
does, and reserves about $0.32 to $0.96 of output at $10 to $30 per million tokens, which lets
several calls of one run be in flight on a modest budget. A run that cannot afford it gets the
bound lowered to what it can afford. Set ``RUNCAP_RESPONSES_DEFAULT_MAX_OUTPUT_TOKENS`` to change.
"""


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

    def asked_output(self) -> dict[str, int]:
        """The output bounds the caller set, the one that counts first."""
        return _asked(max_completion_tokens=self.max_completion_tokens, max_tokens=self.max_tokens)


class MessagesRequest(_Tolerant):
    """Anthropic ``POST /v1/messages``: ``max_tokens`` is required, as the real api says."""

    model: str = Field(min_length=1, max_length=200)
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int = Field(gt=0)
    stream: bool = False

    def output_cap(self) -> int:
        return self.max_tokens

    def asked_output(self) -> dict[str, int]:
        return {"max_tokens": self.max_tokens}


class CountTokensRequest(_Tolerant):
    """Anthropic ``POST /v1/messages/count_tokens``."""

    model: str = Field(min_length=1, max_length=200)
    messages: list[dict[str, Any]] = Field(min_length=1)


class ResponsesRequest(_Tolerant):
    """OpenAI ``POST /v1/responses``. ``previous_response_id`` and ``conversation`` name stored
    state, and runcap stores no responses, so both are refused with a 400 that says so."""

    default_output_cap: ClassVar[int] = DEFAULT_MAX_OUTPUT_TOKENS

    model: str = Field(min_length=1, max_length=200)
    input: str | list[dict[str, Any]]
    max_output_tokens: int | None = Field(default=None, gt=0)
    stream: bool = False
    previous_response_id: str | None = None
    conversation: Any = None

    @field_validator("previous_response_id")
    @classmethod
    def _no_stored_response(cls, value: str | None) -> str | None:
        if value:
            raise PydanticCustomError(
                "stored_state",
                "runcap stores no responses, so previous_response_id cannot be used: "
                "send the whole conversation in input (with store: false), as Codex does",
            )
        return value

    @field_validator("conversation")
    @classmethod
    def _no_stored_conversation(cls, value: Any) -> Any:
        if value:
            raise PydanticCustomError(
                "stored_state",
                "runcap stores no conversations: send the whole conversation in input",
            )
        return value

    def output_cap(self) -> int:
        return self.max_output_tokens or self.default_output_cap

    def asked_output(self) -> dict[str, int]:
        return _asked(max_output_tokens=self.max_output_tokens)

    @staticmethod
    def bounded(default_cap: int) -> type[ResponsesRequest]:
        """This model with another default output cap (the api's setting)."""
        return _bounded(default_cap)


def _asked(**fields: int | None) -> dict[str, int]:
    return {name: value for name, value in fields.items() if value is not None}


@cache
def _bounded(default_cap: int) -> type[ResponsesRequest]:
    class Bounded(ResponsesRequest):
        default_output_cap: ClassVar[int] = default_cap

    return Bounded
