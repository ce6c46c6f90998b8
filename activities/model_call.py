"""The model-call activity of agents written as workflows: one attempt of one target.

Such an agent keeps its conversation in workflow state, so the body travels in the activity
input and the answer in its result: history grows with the prompts, in exchange for the whole
loop being durable. Temporal's retry policy retries a target; ``call_model`` walks the chain.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from providers.base import Provider, ProviderCall, ProviderError
from workflows import errors
from workflows.contracts import Target, Usage, WireFormat
from workflows.errors import Failure

TARGET_REFUSED = (401, 403, 404)
"""The target, not the request, is at fault (runcap's key, access, or the model is missing
there): no retry, but the next target may serve the call."""
MAX_RETRY_DELAY = timedelta(seconds=60)


@dataclass
class TargetCall:
    body: dict[str, Any]
    inbound: WireFormat
    target: Target
    max_tokens: int
    first_byte_timeout: float | None = None


@dataclass
class TargetReply:
    usage: Usage
    body: dict[str, Any] = field(default_factory=dict)


def classify(err: ProviderError) -> Failure:
    """400-class: the provider's word on the request is final. 401/403/404: this target cannot
    serve, try the next. 408/429/5xx/529/timeouts: retry, then fall back."""
    if err.retryable or err.status in TARGET_REFUSED:
        kind = errors.PROVIDER_UNAVAILABLE
    else:
        kind = errors.PROVIDER_REJECTED
    return Failure(
        kind,
        err.message,
        provider_status=err.status,
        usage=err.usage or Usage(),
        retry_after=err.retry_after,
    )


def _as_activity_error(err: ProviderError) -> ApplicationError:
    failure = classify(err)
    delay = None
    if failure.retry_after is not None:
        delay = min(timedelta(seconds=max(failure.retry_after, 0.0)), MAX_RETRY_DELAY)
    return ApplicationError(
        failure.message,
        asdict(failure),
        type=failure.kind,
        non_retryable=not err.retryable,
        next_retry_delay=delay,
    )


class ModelCallActivities:
    """Hosts ``call_target`` on the worker's queue with the worker's providers."""

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self.providers = providers

    @activity.defn
    async def call_target(self, call: TargetCall) -> TargetReply:
        """One provider round trip; raises a classified ``ApplicationError`` on failure."""
        provider = self.providers.get(call.target.provider)
        if provider is None:
            raise ApplicationError(
                f"provider {call.target.provider!r} is not configured here",
                asdict(Failure(errors.PROVIDER_UNAVAILABLE, "provider not configured")),
                type=errors.PROVIDER_UNAVAILABLE,
                non_retryable=True,
            )
        request = ProviderCall(
            call.body,
            call.inbound,
            call.target.model,
            call.max_tokens,
            first_byte_timeout=call.first_byte_timeout,
        )
        try:
            reply = await provider.complete(request)
        except ProviderError as err:
            raise _as_activity_error(err) from None
        return TargetReply(reply.usage, reply.body)
