"""The body-carrying call activity, for agents written as workflows.

Such an agent keeps its conversation in workflow state, so the body travels in the activity
input and the answer in its result: history grows with the prompts, in exchange for the whole
loop being durable. Budget, chain and settle go through the same ``workflows.chain`` core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity

from caller.attempt import PendingCall, provider_named, send
from providers.base import Provider, ProviderCall
from workflows.contracts import Target, Usage, WireFormat


@dataclass
class DirectAttempt:
    body: dict[str, Any]
    inbound: WireFormat
    target: Target
    max_tokens: int


@dataclass
class DirectOutcome:
    usage: Usage
    body: dict[str, Any] = field(default_factory=dict)


class DirectCallActivities:
    """Hosts ``complete_call`` on the worker's queue with the worker's providers."""

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self.providers = providers

    @activity.defn(name="complete_call")
    async def complete_call(self, attempt: DirectAttempt) -> DirectOutcome:
        provider = provider_named(self.providers, attempt.target.provider)
        pending = PendingCall(attempt.body, attempt.inbound)
        call = ProviderCall(attempt.body, attempt.inbound, attempt.target.model, attempt.max_tokens)
        outcome = await send(provider, call, pending)
        return DirectOutcome(outcome.usage, pending.reply.body if pending.reply else {})
