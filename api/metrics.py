"""``GET /metrics``: the gateway's figures in Prometheus text format.

Why prometheus-client with one registry per app, not the OpenTelemetry Prometheus exporter: it
is the reference implementation of the format (content negotiation included), needs no SDK,
and a registry per app keeps two apps in one process (the tests) from sharing or clashing; the
OTel exporter is still beta and registers into the global registry.

Labels stay bounded: providers are the configured ones, and models are labelled by their
canonical names in the price book, any other name ``other`` (``telemetry.labels``); never a run,
a key or a tag. Every figure is this process's own since it started; Prometheus
sums the api instances.

Like a usual scrape target it needs no credentials, unless ``RUNCAP_METRICS_TOKEN`` is set: then
``Authorization: Bearer <token>``. It is not in the OpenAPI schema.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder

from api.auth import bearer_token
from api.deps import SettingsDep
from api.errors import AuthError
from telemetry.genai import CallEnded
from telemetry.labels import model_label

REFUSAL_REASONS = {
    "budget_exceeded": "budget",
    "run_held": "budget",
    "rate_limited": "rate_limited",
    "run_closed": "run_closed",
}
"""The api error codes that are refusals (nothing was sent to a provider), by reason."""
ADDED_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PROVIDER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TARGET = ("provider", "model")

# A ``*_created`` series per counter and histogram would double what Prometheus stores, for
# nothing it needs: ``rate()`` and ``increase()`` already handle a restarted process.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client


class GatewayMetrics:
    """The api's counters, histograms and gauges, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls = Counter(
            "runcap_calls", "Calls granted and ended, by target and status.", (*TARGET, "status"),
            registry=r,
        )  # fmt: skip
        self.cost = Counter(
            "runcap_cost_microdollars", "Cost billed, in micro-dollars.", TARGET, registry=r
        )
        self.refusals = Counter(
            "runcap_refusals", "Calls refused before any provider saw them.", ("reason",),
            registry=r,
        )  # fmt: skip
        self.attempts = Counter(
            "runcap_attempts", "Attempts at targets, by outcome.", (*TARGET, "outcome"),
            registry=r,
        )  # fmt: skip
        self.added = Histogram(
            "runcap_added_latency_seconds",
            "What runcap adds to a call: its total time less the time spent in providers.",
            ("stream",),
            buckets=ADDED_BUCKETS,
            registry=r,
        )
        self.provider = Histogram(
            "runcap_provider_latency_seconds",
            "How long each attempt at a provider took (a stream: until its end).",
            TARGET,
            buckets=PROVIDER_BUCKETS,
            registry=r,
        )
        self.open_runs = Gauge(
            "runcap_open_runs", "Runs with calls in flight in this process.", registry=r
        )
        self.in_flight = Gauge(
            "runcap_calls_in_flight", "Calls in flight in this process.", registry=r
        )
        for reason in REFUSAL_REASONS.values():
            self.refusals.labels(reason)  # present at 0, so alerts on rate() work from the start

    def observe(self, ended: CallEnded) -> None:
        """One granted call ended (the caller's observer)."""
        row = ended.row
        provider, model = row.provider, row.model
        if not provider:  # failed: label it with the last target tried
            last = ended.attempts[-1].target if ended.attempts else None
            provider, model = (last.provider, last.model) if last else ("none", "")
        label = model_label(model) if model else "none"
        self.calls.labels(provider, label, row.status).inc()
        if row.cost_micros:
            self.cost.labels(provider, label).inc(row.cost_micros)
        for attempt in ended.attempts:
            target, tried = attempt.target, model_label(attempt.target.model)
            self.attempts.labels(target.provider, tried, attempt.outcome).inc()
            self.provider.labels(target.provider, tried).observe(attempt.seconds)
        added = max(ended.total_seconds - ended.provider_seconds, 0.0)
        self.added.labels("true" if ended.stream else "false").observe(added)

    def refused(self, code: str) -> None:
        """A call answered with the api error ``code``; counted when that is a refusal."""
        if reason := REFUSAL_REASONS.get(code):
            self.refusals.labels(reason).inc()

    def render(self, accept: str, in_flight: tuple[int, int]) -> tuple[bytes, str]:
        """The exposition in the format ``accept`` asks for, and its content type."""
        self.open_runs.set(in_flight[0])
        self.in_flight.set(in_flight[1])
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type


def get_metrics(request: Request) -> GatewayMetrics:
    metrics: GatewayMetrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[GatewayMetrics, Depends(get_metrics)]
router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def scrape(request: Request, settings: SettingsDep, metrics: MetricsDep) -> Response:
    """This process's figures for Prometheus."""
    expected = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    if expected:
        token = (bearer_token(request) or "").encode()
        if not hmac.compare_digest(token, expected.encode()):
            raise AuthError("missing or invalid metrics token: send Authorization: Bearer <token>")
    caller = getattr(request.app.state, "caller", None)
    in_flight = caller.lending.in_flight() if caller is not None else (0, 0)
    body, content_type = metrics.render(request.headers.get("accept", ""), in_flight)
    return Response(body, media_type=content_type)
