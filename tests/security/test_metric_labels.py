"""Attack: made-up model names, each a new set of metric series that lives as long as the api
process. Labels come from the price book's canonical names; any other name is ``other``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai import AsyncOpenAI
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families

from tests.security.conftest import HELLO, Api, Stack

MADE_UP = 30
Series = set[tuple[str, frozenset[tuple[str, object]]]]


@pytest.fixture(scope="module")
def otlp() -> Iterator[InMemoryMetricReader]:
    """The GenAI metrics this process records, read in memory (as OTLP export would see them).
    A global MeterProvider cannot be taken back: installed once, it stays for the session."""
    reader = InMemoryMetricReader()
    current = metrics.get_meter_provider()
    if isinstance(current, MeterProvider):
        pytest.skip("a MeterProvider is installed already; this test needs its own reader")
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    yield reader


async def prometheus_series(api: Api) -> Series:
    """Every series ``/metrics`` shows now."""
    response = await api.admin.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items()))
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def otlp_series(reader: InMemoryMetricReader) -> Series:
    """Every data point's metric name and attributes that OTLP export would send now."""
    data = reader.get_metrics_data()
    return {
        (metric.name, frozenset((point.attributes or {}).items()))
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    }


async def test_made_up_model_names_add_no_metric_series(
    security_stack: Stack, otlp: InMemoryMetricReader
) -> None:
    """30 calls with made-up names (``r1/gpt-4.1``... priced as gpt-4.1, and names priced only
    by the floor price) add no series, in /metrics or OTLP, once gpt-4.1 and ``other`` have
    theirs."""
    floor = {"floor_price_input_per_mtok_usd": "1", "floor_price_output_per_mtok_usd": "2"}
    async with security_stack.api(**floor) as api:
        key = await api.create_key()
        async with AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key=key) as client:

            async def chat(model: str) -> None:
                await client.chat.completions.create(model=model, messages=HELLO, max_tokens=16)

            for model in ("gpt-4.1", "made-up-0"):  # the labels' own series, once
                await chat(model)
            before, otlp_before = await prometheus_series(api), otlp_series(otlp)
            for i in range(1, MADE_UP + 1):
                await chat(f"r{i}/gpt-4.1" if i % 2 else f"made-up-{i}")
            after, otlp_after = await prometheus_series(api), otlp_series(otlp)
    print(f"/metrics series: {len(before)} before the {MADE_UP} made-up names, {len(after)} after")
    print(f"OTLP series: {len(otlp_before)} before, {len(otlp_after)} after")
    assert after == before, sorted(str(s) for s in after - before)
    assert otlp_after == otlp_before, sorted(str(s) for s in otlp_after - otlp_before)
    models = {value for _, labels in after for name, value in labels if name == "model"}
    assert models == {"gpt-4.1", "other"}
    otlp_models = {v for _, attrs in otlp_after for k, v in attrs if k.endswith(".model")}
    assert otlp_models == {"gpt-4.1", "other"}
