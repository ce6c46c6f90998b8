"""The chain walk of a gateway call: try each target until one answers, within bounds.

Rules (the same classification as the workflow path's activity):
- a provider's 4xx about the request (400, 422...) is final: the client gets that status;
- 401/403/404 mean this target cannot serve (runcap's key, access, a missing model): next target;
- 408/409/429/5xx/529, transport errors and timeouts are worth another try. While a fallback
  remains the walk moves on at once, rather than wait out a ``Retry-After`` or a backoff; on the
  last target it retries, honouring ``Retry-After`` up to a bound;
- a target that did not answer within the first-byte timeout is not tried again: a hanging
  provider costs one timeout, not two;
- a stream that broke after bytes reached the client cannot move on: it ends as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from activities.model_call import classify
from caller.errors import CallFailed
from providers.base import (
    ChunkSink,
    Provider,
    ProviderCall,
    ProviderError,
    ProviderReply,
    StreamResult,
)
from telemetry.genai import AttemptEnd, attempt_span
from workflows import errors
from workflows.contracts import Attempt, Target, Usage
from workflows.errors import Failure


@dataclass(frozen=True)
class WalkPolicy:
    """The walk's bounds: every retry and every wait has one."""

    attempts_on_last_target: int = 2
    backoff_seconds: float = 0.2
    max_retry_after_seconds: float = 10.0
    first_byte_timeout: float | None = 120.0


@dataclass
class Served:
    """The target that answered, how, and every attempt on the way."""

    target: Target
    attempts: list[Attempt]
    reply: ProviderReply | None = None
    streamed: StreamResult | None = None

    @property
    def usage(self) -> Usage:
        if self.reply is not None:
            return self.reply.usage
        assert self.streamed is not None
        return self.streamed.usage


@dataclass
class Walk:
    """One call's walk; ``current`` is the target being tried (for billing a cancelled call)."""

    chain: list[Target]
    providers: Mapping[str, Provider]
    make_call: Callable[[Target], ProviderCall]
    policy: WalkPolicy
    sink: ChunkSink | None = None
    """Set for a streaming call: chunks go straight to the client."""
    attempts: list[Attempt] = field(default_factory=list)
    current: Target | None = None
    ended: list[AttemptEnd] = field(default_factory=list)
    """Each attempt's outcome and provider time (its span's), for the call's metrics."""

    async def run(self) -> Served:
        """The first target's answer that came; ``CallFailed`` when none could serve."""
        for index, target in enumerate(self.chain):
            self.current = target
            if target.provider not in self.providers:
                missing = f"provider {target.provider!r} is not configured here"
                self.attempts.append(Attempt(target.provider, target.model, False, missing))
                continue
            last = index == len(self.chain) - 1
            tries = self.policy.attempts_on_last_target if last else 1
            for attempt in range(tries):
                try:
                    return await self._try(target)
                except ProviderError as err:
                    self._failed(target, err)
                    wait = self._retry_wait(err, attempt, tries)
                    if wait is None:
                        break
                    await asyncio.sleep(wait)
        failure = Failure(
            errors.ALL_TARGETS_FAILED,
            f"all {len(self.chain)} targets failed",
            attempts=self.attempts,
        )
        raise CallFailed(failure)

    async def _try(self, target: Target) -> Served:
        provider = self.providers[target.provider]
        call = self.make_call(target)
        with attempt_span(target, self.ended) as span:
            if self.sink is None:
                reply = await provider.complete(call)
                span.served(reply.usage)
                self.attempts.append(
                    Attempt(target.provider, target.model, True, usage=reply.usage)
                )
                return Served(target, self.attempts, reply=reply)
            streamed = await provider.stream(call, self.sink)
            span.served(streamed.usage, streamed.broken)
        self.attempts.append(
            Attempt(
                target.provider, target.model, not streamed.broken, streamed.broken, streamed.usage
            )
        )
        return Served(target, self.attempts, streamed=streamed)

    def _failed(self, target: Target, err: ProviderError) -> None:
        failure = classify(err)
        self.attempts.append(
            Attempt(target.provider, target.model, False, err.message, failure.usage)
        )
        if failure.kind == errors.PROVIDER_REJECTED:
            raise CallFailed(
                Failure(
                    errors.PROVIDER_REJECTED,
                    err.message,
                    provider_status=err.status,
                    attempts=self.attempts,
                    usage=failure.usage,
                )
            )

    def _retry_wait(self, err: ProviderError, attempt: int, tries: int) -> float | None:
        """Seconds before trying this target again, or ``None`` to move on."""
        if not err.retryable or err.timed_out or attempt + 1 >= tries:
            return None
        if err.retry_after is not None:
            if err.retry_after > self.policy.max_retry_after_seconds:
                return None
            return err.retry_after
        return float(self.policy.backoff_seconds * 2**attempt)
