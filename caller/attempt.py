"""The caller-side attempt activity: sends one call to one target from the caller's memory.

It runs on a task queue owned by the process that holds the request (the api instance, or a
Python program using ``caller.caller.Caller``), so the prompt and the answer never enter
workflow history: the workflow passes only the call id, the target and ``max_tokens``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from providers.base import Provider, ProviderCall, ProviderError, ProviderReply
from workflows import errors
from workflows.contracts import AttemptInput, AttemptOutcome, WireFormat

HEARTBEAT_EVERY = 10.0
"""Seconds between heartbeats of a long call, well inside the workflow's heartbeat timeout."""


@dataclass
class PendingCall:
    """A call whose body waits in this process for the workflow to say which target to try."""

    body: dict[str, Any]
    inbound: WireFormat
    stream: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    chunks: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    reply: ProviderReply | None = None
    chunks_sent: int = 0

    async def sink(self, chunk: bytes) -> None:
        self.chunks_sent += 1
        await self.chunks.put(chunk)


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeat while a slow call runs, so a dead caller is noticed and a live one is not."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


def _retry_delay(err: ProviderError) -> timedelta | None:
    if err.retry_after is None:
        return None
    return timedelta(seconds=min(max(err.retry_after, 0.0), 60.0))


TARGET_REFUSED = (401, 403, 404)
"""The target, not the request, is at fault (runcap's key, access, or the model is missing
there): no retry, but the next target may serve the call."""


def provider_failure(err: ProviderError) -> ApplicationError:
    """400-class: the provider's word on the request is final. 401/403/404: this target cannot
    serve, try the next. 408/429/5xx/529/timeouts: retry, then fall back."""
    usage = asdict(err.usage) if err.usage else {}
    if err.status in TARGET_REFUSED:
        return ApplicationError(
            f"{err.status} from the provider: {err.message}",
            err.status,
            usage,
            type=errors.PROVIDER_UNAVAILABLE,
            non_retryable=True,
        )
    if err.retryable:
        return ApplicationError(
            err.message,
            err.status,
            usage,
            type=errors.PROVIDER_UNAVAILABLE,
            next_retry_delay=_retry_delay(err),
        )
    return ApplicationError(
        err.message, err.status, usage, type=errors.PROVIDER_REJECTED, non_retryable=True
    )


def provider_named(providers: Mapping[str, Provider], name: str) -> Provider:
    """The configured provider; one this process lacks fails the attempt, not the whole call."""
    provider = providers.get(name)
    if provider is None:
        raise ApplicationError(
            f"provider {name!r} is not configured here",
            type=errors.PROVIDER_UNAVAILABLE,
            non_retryable=True,
        )
    return provider


async def send(provider: Provider, call: ProviderCall, pending: PendingCall) -> AttemptOutcome:
    """One provider round trip; the answer lands in ``pending``, only usage goes back."""
    try:
        async with _heartbeating():
            if pending.stream:
                streamed = await provider.stream(call, pending.sink)
                return AttemptOutcome(streamed.usage, streamed.usage_known)
            pending.reply = await provider.complete(call)
            return AttemptOutcome(pending.reply.usage)
    except ProviderError as err:
        raise provider_failure(err) from None


class AttemptActivities:
    """Hosts ``attempt_call`` for the calls this process holds in ``pending``."""

    def __init__(self, providers: Mapping[str, Provider], pending: dict[str, PendingCall]) -> None:
        self.providers = providers
        self.pending = pending

    @activity.defn(name="attempt_call")
    async def attempt_call(self, attempt: AttemptInput) -> AttemptOutcome:
        pending = self.pending.get(attempt.call_id)
        if pending is None:
            raise ApplicationError(
                "the caller no longer holds this call", type=errors.CALLER_GONE, non_retryable=True
            )
        provider = provider_named(self.providers, attempt.target.provider)
        call = ProviderCall(
            body=pending.body,
            inbound=pending.inbound,
            model=attempt.target.model,
            max_tokens=attempt.max_tokens,
            headers=pending.headers,
        )
        return await send(provider, call, pending)
