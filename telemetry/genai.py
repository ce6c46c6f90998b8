"""A call's spans and GenAI metrics, through the OpenTelemetry API only.

The caller (library code) uses this module; without an SDK in the process every span and
instrument is the API's no-op, so it costs a few attribute dicts per call. Names follow the
OpenTelemetry GenAI semantic conventions (Development status, as published in
open-telemetry/semantic-conventions-genai; ``gen_ai.provider.name`` replaced the deprecated
``gen_ai.system`` in semconv 1.37): a call is a ``chat {model}`` span, each attempt at a target a
``chat {model}`` CLIENT span under it. runcap's own attributes are under ``runcap.``.

Why the call span is INTERNAL and its attempts CLIENT: the call is runcap's work (reserve, walk,
ledger); each attempt is the request that leaves this process for a provider.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from providers.base import ProviderError
from telemetry.labels import model_label
from workflows import errors
from workflows.contracts import CallResult, LedgerRow, Target, Usage
from workflows.errors import Failure

log = logging.getLogger(__name__)
tracer = trace.get_tracer("runcap")
meter = metrics.get_meter("runcap")

OPERATION = "chat"
WELL_KNOWN_PROVIDERS = {"openai": "openai", "openai-responses": "openai", "anthropic": "anthropic"}
"""Configured providers that are a well-known ``gen_ai.provider.name`` (the convention says the
well-known value MUST then be used); any other keeps its configured name (``fake``, ``groq``...)."""

Outcome = Literal["ok", "broken", "error", "timeout", "cancelled"]
REFUSALS = (errors.BUDGET_EXCEEDED, errors.RUN_NOT_OPEN, errors.TOO_MANY_CALLS)

# The buckets the conventions recommend for these two histograms.
_duration = meter.create_histogram(
    "gen_ai.client.operation.duration",
    unit="s",
    description="GenAI operation duration.",
    explicit_bucket_boundaries_advisory=[0.01 * 2**i for i in range(14)],
)
_tokens = meter.create_histogram(
    "gen_ai.client.token.usage",
    unit="{token}",
    description="Number of input and output tokens used.",
    explicit_bucket_boundaries_advisory=[4.0**i for i in range(14)],
)


def provider_name(provider: str) -> str:
    return WELL_KNOWN_PROVIDERS.get(provider, provider)


@dataclass
class AttemptEnd:
    """How one attempt at a target ended, and how long the provider took."""

    target: Target
    outcome: Outcome
    error_type: str
    seconds: float


@dataclass
class CallEnded:
    """What a call's observer (the api's metrics) learns when the call ends."""

    row: LedgerRow
    attempts: list[AttemptEnd]
    stream: bool
    total_seconds: float
    """From the request's arrival (or the caller's start) to the ledger row being stored."""

    @property
    def provider_seconds(self) -> float:
        return sum(a.seconds for a in self.attempts)


CallObserver = Callable[[CallEnded], None]


def _usage_attributes(usage: Usage) -> dict[str, AttributeValue]:
    # The conventions count every input token in ``input_tokens``, cache reads and writes too;
    # runcap's ``Usage.input_tokens`` excludes them.
    return {
        "gen_ai.usage.input_tokens": (
            usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens
        ),
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cached_input_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
    }


def _error(span: Span, error_type: str, message: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, message[:200]))


class AttemptSpan:
    """The span of one attempt; the walk says how a served attempt went."""

    def __init__(self, span: Span) -> None:
        self.span = span
        self.outcome: Outcome = "ok"
        self.error_type = ""

    def served(self, usage: Usage, broken: str = "") -> None:
        self.span.set_attributes(_usage_attributes(usage))
        if broken:
            self.failed("broken", "stream_broken", broken)

    def failed(self, outcome: Outcome, error_type: str, message: str) -> None:
        self.outcome, self.error_type = outcome, error_type
        _error(self.span, error_type, message)


@contextmanager
def attempt_span(target: Target, ended: list[AttemptEnd]) -> Iterator[AttemptSpan]:
    """A CLIENT span around one provider request; its end is appended to ``ended``."""
    start = time.perf_counter()
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": provider_name(target.provider),
        "gen_ai.request.model": target.model,
        "runcap.target.provider": target.provider,
        "runcap.target.api": target.api,
        "runcap.attempt.number": len(ended) + 1,
    }
    with tracer.start_as_current_span(
        f"{OPERATION} {target.model}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        attempt = AttemptSpan(span)
        try:
            yield attempt
        except ProviderError as err:
            if err.timed_out:
                attempt.failed("timeout", "timeout", err.message)
            else:
                attempt.failed("error", str(err.status), err.message)
            raise
        except asyncio.CancelledError:
            attempt.failed("cancelled", "cancelled", "the call was cancelled")
            raise
        except Exception as exc:
            attempt.failed("error", type(exc).__qualname__, str(exc))
            raise
        finally:
            span.set_attribute("runcap.attempt.outcome", attempt.outcome)
            ended.append(AttemptEnd(target, attempt.outcome, attempt.error_type, _since(start)))


def _since(start: float) -> float:
    return time.perf_counter() - start


@dataclass
class CallTrace:
    """One call's span, from before its reservation to its single ending, and its observer.

    ``opening()`` makes the span current while the call is granted and walked, so the
    reservation's Temporal client span and the attempts' spans are its children.
    """

    run_id: str
    key_id: str
    requested_model: str
    chain: Sequence[Target]
    tags: Sequence[str]
    max_tokens: int
    stream: bool
    observer: CallObserver | None = None
    started: float = field(default_factory=time.perf_counter)
    span: Span = field(init=False)
    done: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        model = self.requested_model or (self.chain[0].model if self.chain else "")
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": self.max_tokens,
            "gen_ai.request.stream": self.stream,
            "runcap.run.id": self.run_id,
            "runcap.tags": list(self.tags),
        }
        if self.chain:
            attributes["gen_ai.provider.name"] = provider_name(self.chain[0].provider)
        if self.key_id:
            attributes["runcap.key.id"] = self.key_id
        self.span = tracer.start_span(
            f"{OPERATION} {model}".strip(), kind=SpanKind.INTERNAL, attributes=attributes
        )

    @contextmanager
    def opening(self) -> Iterator[None]:
        """The span is current inside; a call that fails before its ending is recorded here."""
        try:
            with trace.use_span(self.span, record_exception=False, set_status_on_exception=False):
                yield
        except BaseException as exc:
            self.failed(exc)
            raise

    def failed(self, exc: BaseException) -> None:
        """A call that ended before a grant (refused, run closed, Temporal unreachable)."""
        if self.done:
            return
        failure: Failure | None = getattr(exc, "failure", None)
        error_type = failure.kind if failure is not None else type(exc).__qualname__
        refused = failure is not None and failure.kind in REFUSALS
        self.span.set_attribute("runcap.status", "refused" if refused else "error")
        _error(self.span, error_type, str(exc))
        self._end()

    def replayed(self, result: CallResult) -> None:
        """An idempotent retry answered with a call that had already settled."""
        self.span.set_attributes({"runcap.call.id": result.call_id, "runcap.replayed": True})
        self._end()

    def ended(self, row: LedgerRow, attempts: list[AttemptEnd]) -> None:
        """The call's single ending: its ledger row, its attempts' timings."""
        if self.done:
            return
        span = self.span
        served = row.status in ("ok", "broken") and bool(attempts)
        attributes: dict[str, AttributeValue] = {
            "runcap.call.id": row.call_id,
            "runcap.status": row.status,
            "runcap.cost_micros": row.cost_micros,
            "runcap.reserved_micros": row.reserved_micros,
            "runcap.attempt.count": len(attempts),
            **_usage_attributes(row.usage),
        }
        if row.provider:
            attributes["gen_ai.provider.name"] = provider_name(row.provider)
            attributes["gen_ai.response.model"] = row.model
        if served:
            attributes["runcap.attempt.served"] = len(attempts)
        span.set_attributes(attributes)
        if row.status != "ok":
            _error(span, row.status if row.status != "failed" else "all_targets_failed", row.error)
        total = _since(self.started)
        self._record_metrics(row, total)
        self._end()
        if self.observer is not None:
            try:
                self.observer(CallEnded(row, list(attempts), self.stream, total))
            except Exception:  # metrics must never fail a call that is already recorded
                log.exception("call observer failed")

    def _record_metrics(self, row: LedgerRow, total: float) -> None:
        # Model attributes are labels here: bounded (telemetry.labels), unlike the span's.
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.request.model": model_label(self.requested_model),
        }
        if row.provider:
            attributes["gen_ai.provider.name"] = provider_name(row.provider)
            attributes["gen_ai.response.model"] = model_label(row.model)
        if row.status != "ok":
            _duration.record(total, {**attributes, "error.type": row.status})
            return
        _duration.record(total, attributes)
        usage = row.usage
        input_tokens = usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens
        _tokens.record(input_tokens, {**attributes, "gen_ai.token.type": "input"})
        _tokens.record(usage.output_tokens, {**attributes, "gen_ai.token.type": "output"})

    def _end(self) -> None:
        self.done = True
        self.span.end()
