"""The provider seam: what every adapter offers and how it reports failure.

Adapters never retry (Temporal owns retries); they classify each failure as retryable or not
and hand back the provider's own message. One ``httpx.AsyncClient`` is shared by all of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import SecretStr

from workflows.contracts import Usage, WireFormat

ChunkSink = Callable[[bytes], Awaitable[None]]
"""Receives server-sent-event bytes, already in the caller's wire format."""


@dataclass(frozen=True)
class ProviderConfig:
    """Where one provider lives. ``api`` is the wire format it speaks."""

    name: str
    api: WireFormat
    base_url: str
    api_key: SecretStr = field(default_factory=lambda: SecretStr(""))
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderCall:
    """One request for one target. ``body`` is in the caller's (inbound) wire format."""

    body: dict[str, Any]
    inbound: WireFormat
    model: str
    max_tokens: int
    headers: dict[str, str] = field(default_factory=dict)
    """Caller headers worth forwarding (``anthropic-version``, ``anthropic-beta``)."""


@dataclass
class ProviderReply:
    """A finished non-streaming answer, already in the caller's wire format."""

    body: dict[str, Any]
    usage: Usage


@dataclass
class StreamResult:
    """How a stream ended. ``usage_known`` is false when the provider never reported usage."""

    usage: Usage
    usage_known: bool
    chunks_sent: int


class ProviderError(Exception):
    """A provider said no; ``retryable`` picks retry-then-fallback or failing the call."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.usage = usage


def is_retryable_status(status: int) -> bool:
    """408, 409, 429 and every 5xx (529 included) are worth another try or another target."""
    return status in (408, 409, 429) or status >= 500


class Provider(Protocol):
    config: ProviderConfig

    async def complete(self, call: ProviderCall) -> ProviderReply: ...

    async def stream(self, call: ProviderCall, sink: ChunkSink) -> StreamResult: ...
