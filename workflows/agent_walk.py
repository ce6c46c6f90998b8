"""The chain walk of an agent written as a workflow: each target of the chain is one activity
under Temporal's retry policy (the only retry layer of this path), in order, until one serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.model_call import ModelCallActivities, TargetCall, TargetReply
    from workflows import errors
    from workflows.calls import fail
    from workflows.contracts import Attempt, Target, Usage, WireFormat
    from workflows.errors import Failure

TARGET_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=2,
    non_retryable_error_types=errors.NON_RETRYABLE,
)
"""Each target gets two tries, then the chain moves on: every retry policy has a bound."""
TARGET_TIMEOUT = timedelta(minutes=5)


@dataclass
class ModelReply:
    body: dict[str, Any]
    """The provider's answer in the format the call was written in."""
    text: str
    cost_micros: int
    usage: Usage
    target: Target
    attempts: list[Attempt]


async def walk(
    chain: list[Target],
    body: dict[str, Any],
    inbound: WireFormat,
    max_tokens: int,
    attempts: list[Attempt],
) -> tuple[Target, TargetReply]:
    for target in chain:
        try:
            reply = await workflow.execute_activity_method(
                ModelCallActivities.call_target,
                TargetCall(body, inbound, target, max_tokens),
                start_to_close_timeout=TARGET_TIMEOUT,
                retry_policy=TARGET_RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            attempts.append(Attempt(target.provider, target.model, False, message))
            if isinstance(cause, ApplicationError) and cause.type == errors.PROVIDER_REJECTED:
                raise fail(Failure(errors.PROVIDER_REJECTED, message, attempts=attempts)) from None
            continue
        attempts.append(Attempt(target.provider, target.model, True, usage=reply.usage))
        return target, reply
    failure = Failure(
        errors.ALL_TARGETS_FAILED, f"all {len(chain)} targets failed", attempts=attempts
    )
    raise fail(failure)


def text_of(body: dict[str, Any]) -> str:
    choices = body.get("choices")
    if isinstance(choices, list) and choices:
        return str((choices[0].get("message") or {}).get("content") or "")
    blocks = body.get("content")
    if isinstance(blocks, list):
        return "".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict))
    return ""
