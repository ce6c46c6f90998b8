"""The processes' OpenTelemetry SDK: OTLP export of traces and metrics, when asked for.

``python -m api`` and ``python -m worker`` call ``configure`` at start. With
``OTEL_EXPORTER_OTLP_ENDPOINT`` set it installs a TracerProvider and a MeterProvider that export
over OTLP/HTTP (protobuf), and Temporal's tracing interceptor joins each call's span to the run's
workflow work. Unset, it installs nothing: library code keeps the API's no-op, and the SDK is
not even imported. The SDK reads the rest of the standard variables itself (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_HEADERS``, per-signal endpoints...).

Why OTLP over HTTP rather than gRPC: no grpcio (a large native wheel) in the gateway's image,
it passes through ordinary HTTP proxies, and every collector takes it (port 4318).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace

if TYPE_CHECKING:
    from temporalio.client import Interceptor

log = logging.getLogger(__name__)
ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"


def configure(service_name: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Install the SDK with OTLP exporters when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; whether
    it did. Call once, at process start, before any client connects."""
    endpoint = environ.get(ENDPOINT_VARIABLE, "").strip()
    if not endpoint:
        return False
    # Imported here: a process without an endpoint never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = environ.get("OTEL_SERVICE_NAME") or service_name
    resource = Resource.create({"service.name": name})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    log.info("OpenTelemetry: exporting traces and metrics of %s to %s", name, endpoint)
    return True


def shutdown() -> None:
    """Flush what is buffered (at process exit); nothing to do when nothing was configured."""
    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        stop = getattr(provider, "shutdown", None)
        if callable(stop) and type(provider).__module__.startswith("opentelemetry.sdk"):
            stop()


def tracing_enabled() -> bool:
    """Whether this process records spans: an SDK TracerProvider is installed (by ``configure``,
    or by a test), not the API's default."""
    return type(trace.get_tracer_provider()).__module__.startswith("opentelemetry.sdk")


def temporal_interceptors() -> list[Interceptor]:
    """Temporal's tracing interceptor when spans are recorded, else none.

    Without an SDK its spans would be no-ops, so it would only cost time on every update; with
    one it carries each call's trace into the run's update handlers. It adds no history events
    (its workflow spans are made outside the workflow, and not again on replay)."""
    if not tracing_enabled():
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]
