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
    first_byte_timeout: float | None = None
    """Seconds until the answer (non-stream) or the first event (stream); ``None``: the client's
    read timeout. A hanging provider then costs one timeout, and the chain moves on."""
    progress: StreamProgress | None = None
    """Updated as a stream arrives, so a caller that cancels it still knows what it received."""


@dataclass
class StreamProgress:
    """What a stream has delivered so far: usage reported and a bound of the output tokens."""

    usage: Usage = field(default_factory=Usage)
    output_bytes: int = 0
    chunks_sent: int = 0


@dataclass
class ProviderReply:
    """A finished non-streaming answer, already in the caller's wire format."""

    body: dict[str, Any]
    usage: Usage


@dataclass
class StreamResult:
    """How a stream ended. ``usage_known`` is false when the provider never reported usage.

    ``tail`` holds the stream's closing events, not yet sent: the caller writes the ledger row
    first, so a client that has seen the end of its answer can already read the call's cost.
    ``broken`` is set when the provider's stream failed after chunks were sent (no retry is
    possible then); ``output_bytes`` bounds the output tokens received, for billing a cut stream.
    """

    usage: Usage
    usage_known: bool
    chunks_sent: int
    tail: list[bytes] = field(default_factory=list)
    broken: str = ""
    output_bytes: int = 0


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
        timed_out: bool = False,
    ) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.usage = usage
        self.timed_out = timed_out
        """No answer in time: retrying the same target would only wait again."""


def is_retryable_status(status: int) -> bool:
    """408, 409, 429 and every 5xx (529 included) are worth another try or another target."""
    return status in (408, 409, 429) or status >= 500


class Provider(Protocol):
    config: ProviderConfig

    async def complete(self, call: ProviderCall) -> ProviderReply: ...

    async def stream(self, call: ProviderCall, sink: ChunkSink) -> StreamResult: ...
