"""Telemetry of real calls through a gateway: GenAI spans joined to the run's Temporal work, and
``/metrics`` figures that match the ledger.

The spans go to the SDK's in-memory exporter through a TracerProvider installed for the test
session (the processes install theirs with ``telemetry.setup.configure``). This module runs its
own api, worker and fake provider, with a Temporal client that carries the tracing interceptor,
so its figures count only its own calls.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from sqlmodel import col
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import Replayer

from api.app import create_app
from api.settings import Settings
from caller import run_handle
from db.models import LedgerEntry
from fake_provider import FakeProvider
from providers.registry import build_providers, make_http_client
from telemetry.setup import temporal_interceptors, tracing_enabled
from tests.gateway.conftest import ADMIN, ADMIN_KEY, ROUTE_CODER
from tests.polling import eventually
from tests.serving import serving
from worker.app import build_worker
from workflows.agent_run import AgentRun

METRICS_TOKEN = "metrics-test-token"
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}
HELLO = [{"role": "user", "content": "fix the failing test"}]


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span this process ends, kept in memory (a test-only TracerProvider), until the
    module ends: a global provider cannot be taken back, but its exporter stops keeping."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


@dataclass
class Traced:
    base_url: str
    admin: httpx.AsyncClient
    engine: Engine
    fake: FakeProvider
    temporal: Client

    async def key(self, **fields: Any) -> tuple[str, str]:
        """A new virtual key: its secret and its id."""
        body = {"name": "telemetry", "budget_usd": "1", **fields}
        response = await self.admin.post("/admin/keys", json=body)
        assert response.status_code == 201, response.text
        created = response.json()
        return created["key"], created["id"]

    async def chat(
        self, key: str, model: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> httpx.Response:
        body = {"model": model, "messages": HELLO, "max_tokens": 64, **extra}
        async with httpx.AsyncClient(base_url=self.base_url, timeout=60) as http:
            return await http.post(
                "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}", **(headers or {})},
            )

    async def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        response = await self.admin.get("/metrics", headers=SCRAPE)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }


@pytest.fixture(scope="module")
async def traced(
    spans: InMemorySpanExporter,
    temporal_client: Client,
    gateway_engine: Engine,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Traced]:
    """An api and a worker whose Temporal client carries the tracing interceptor, as
    ``telemetry.setup`` gives them once a TracerProvider is installed."""
    assert tracing_enabled()
    interceptors = temporal_interceptors()
    assert [type(i) for i in interceptors] == [TracingInterceptor]
    client = Client(
        temporal_client.service_client,
        namespace=temporal_client.namespace,
        interceptors=interceptors,
    )
    queue = f"traced-{uuid.uuid4().hex[:8]}"
    routes = tmp_path_factory.mktemp("traced") / "routes.json"
    routes.write_text(json.dumps({"routes": [ROUTE_CODER]}))
    async with FakeProvider.running() as fake, make_http_client() as http:
        settings = Settings.model_validate(
            {
                "admin_key": SecretStr(ADMIN_KEY),
                "metrics_token": SecretStr(METRICS_TOKEN),
                "fake_provider_url": fake.base_url,
                "workflow_task_queue": queue,
                "routes_file": str(routes),
            }
        )
        app = create_app(settings, engine=gateway_engine, temporal_client=client)
        providers = build_providers(settings.provider_configs(), http)
        worker = build_worker(
            client, engine=gateway_engine, http=http, providers=providers, task_queue=queue
        )
        async with (
            worker,
            serving(app) as base,
            httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=60) as admin,
        ):
            yield Traced(base, admin, gateway_engine, fake, client)


def one(found: Sequence[ReadableSpan], name: str, kind: SpanKind | None = None) -> ReadableSpan:
    named = [s for s in found if s.name == name and kind in (None, s.kind)]
    assert len(named) == 1, [s.name for s in found]
    return named[0]


def children(found: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    parent_id = parent.context.span_id
    return [s for s in found if s.parent is not None and s.parent.span_id == parent_id]


async def trace_of(
    spans: InMemorySpanExporter, call_span: ReadableSpan, name: str
) -> list[ReadableSpan]:
    """The spans of ``call_span``'s trace, once one named ``name`` (made in the worker) is in."""
    trace_id = call_span.context.trace_id

    def found() -> list[ReadableSpan]:
        same = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
        return same if any(s.name == name for s in same) else []

    return await eventually(found)


async def test_a_fallback_call_is_one_trace_from_the_api_to_the_run(
    traced: Traced, spans: InMemorySpanExporter
) -> None:
    """A call's span, under the HTTP request's (which joins the agent's ``traceparent``), carries
    the GenAI attributes and runcap's, has one child per attempt (a fallback has two), and
    parents the start of the run it opened (off the call's path), which runs in the same
    trace; a call that asks its run for money parents that update. The run's history replays
    with the interceptor on."""
    await traced.fake.script("fake-large", faults=[{"status": 500, "times": 1}])
    key, _ = await traced.key()
    spans.clear()
    tags = ["agent:coder", "task:otel-1", "step:edit"]
    agent_trace = uuid.uuid4().hex
    traceparent = {"traceparent": f"00-{agent_trace}-{uuid.uuid4().hex[:16]}-01"}
    response = await traced.chat(key, "coder", traceparent, metadata={"tags": tags})
    assert response.status_code == 200, response.text
    call_id = response.headers["x-runcap-call-id"]

    call = one(spans.get_finished_spans(), "chat coder")
    assert call.kind == SpanKind.INTERNAL
    assert call.context.trace_id == int(agent_trace, 16)
    ours = [s for s in spans.get_finished_spans() if s.context.trace_id == call.context.trace_id]
    server = one(ours, "POST /v1/chat/completions", SpanKind.SERVER)
    assert call.parent is not None and call.parent.span_id == server.context.span_id
    with traced.engine.connect() as conn:
        row = conn.execute(select(LedgerEntry).where(col(LedgerEntry.call_id) == call_id)).one()
    attributes = dict(call.attributes or {})
    run_id = row.run_id
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "coder",
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.stream": False,
        "gen_ai.provider.name": "fake",
        "gen_ai.response.model": "fake-small",
        "gen_ai.usage.input_tokens": row.input_tokens,
        "gen_ai.usage.output_tokens": row.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.cache_creation.input_tokens": 0,
        "runcap.run.id": run_id,
        "runcap.key.id": row.key_id,
        "runcap.tags": tuple(tags),
        "runcap.call.id": call_id,
        "runcap.status": "ok",
        "runcap.cost_micros": row.cost_micros,
        "runcap.reserved_micros": row.reserved_micros,
        "runcap.attempt.count": 2,
        "runcap.attempt.served": 2,
    }
    assert row.cost_micros > 0 and row.output_tokens > 0

    joined = await trace_of(spans, call, "RunWorkflow:AgentRun")
    failed, served = sorted(
        (s for s in children(joined, call) if s.name.startswith("chat ")),
        key=lambda s: s.start_time or 0,
    )
    assert failed.kind == served.kind == SpanKind.CLIENT
    assert (failed.name, served.name) == ("chat fake-large", "chat fake-small")
    failed_attributes = dict(failed.attributes or {})
    assert failed_attributes["runcap.attempt.outcome"] == "error"
    assert failed_attributes["error.type"] == "500"
    assert failed_attributes["runcap.attempt.number"] == 1
    assert not failed.status.is_ok
    served_attributes = dict(served.attributes or {})
    assert served_attributes["runcap.attempt.outcome"] == "ok"
    assert served_attributes["gen_ai.usage.output_tokens"] == row.output_tokens
    assert served.status.is_unset

    # The first call of a run opens it with a line (no hop to the run; the key's first call
    # draws its total's line) and starts the run's workflow in the background, a child of the
    # call's span; the run runs in the same trace.
    start = one(joined, "StartWorkflow:AgentRun")
    assert start.parent is not None and start.parent.span_id == call.context.span_id

    # A call that must pass through its run (the loop guard's runs lend no room) asks it with
    # an update, a child of its own call span; TracingInterceptor puts the run's handling of
    # it in the run's trace, linked to that update.
    guarded, _ = await traced.key(loop_max_repeats=50)
    first_guarded = await traced.chat(guarded, "fake-small", metadata={"tags": tags})
    assert first_guarded.status_code == 200, first_guarded.text
    spans.clear()
    again = await traced.chat(guarded, "fake-small", metadata={"tags": tags})
    assert again.status_code == 200, again.text
    second = one(spans.get_finished_spans(), "chat fake-small", SpanKind.INTERNAL)
    update = one(spans.get_finished_spans(), "StartWorkflowUpdate:lend")
    assert update.parent is not None and update.parent.span_id == second.context.span_id
    assert update.context.trace_id == second.context.trace_id
    linked = await eventually(
        lambda: [s for s in spans.get_finished_spans() if s.name == "HandleUpdate:lend"]
    )
    assert linked and [link.context.span_id for link in linked[0].links] == [update.context.span_id]

    history = await run_handle(traced.temporal, run_id).fetch_history()
    await Replayer(workflows=[AgentRun], interceptors=[TracingInterceptor()]).replay_workflow(
        history
    )


async def test_a_streamed_call_and_a_refusal_have_spans(
    traced: Traced, spans: InMemorySpanExporter
) -> None:
    """A stream's attempt is a child of its call's span; a refused call's span says why."""
    key, _ = await traced.key()
    spans.clear()
    body = {"stream": True, "stream_options": {"include_usage": True}}
    async with (
        httpx.AsyncClient(base_url=traced.base_url, timeout=60) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "fake-small", "messages": HELLO, "max_tokens": 16, **body},
            headers={"Authorization": f"Bearer {key}"},
        ) as response,
    ):
        assert response.status_code == 200
        await response.aread()
    # The stream's span ends once its ledger row is stored, as its last bytes leave.
    ended = await eventually(
        lambda: [
            s
            for s in spans.get_finished_spans()
            if s.name == "chat fake-small" and s.kind == SpanKind.INTERNAL
        ]
    )
    call = one(ended, "chat fake-small")
    assert dict(call.attributes or {})["gen_ai.request.stream"] is True
    attempts = children(spans.get_finished_spans(), call)
    assert [(s.name, s.kind) for s in attempts if s.name.startswith("chat")] == [
        ("chat fake-small", SpanKind.CLIENT)
    ]

    poor, _ = await traced.key(budget_usd="0.000001")
    spans.clear()
    refused = await traced.chat(poor, "fake-large")
    assert refused.status_code == 429, refused.text
    span = one(spans.get_finished_spans(), "chat fake-large", SpanKind.INTERNAL)
    attributes = dict(span.attributes or {})
    assert attributes["runcap.status"] == "refused"
    assert attributes["error.type"] == "BudgetExceeded"
    assert not span.status.is_ok


async def test_metrics_match_the_ledger(traced: Traced) -> None:
    """After real calls, a fallback and two refusals, /metrics counts the calls and the cost the
    ledger holds, the attempts by outcome, the refusals by reason and the latencies."""
    await traced.fake.script("fake-large", faults=[{"status": 500, "times": 1}])
    before = await traced.scrape()
    key, key_id = await traced.key(rpm=2)
    ok = [await traced.chat(key, "coder"), await traced.chat(key, "fake-small")]
    assert [r.status_code for r in ok] == [200, 200], [r.text for r in ok]
    limited = await traced.chat(key, "fake-small")
    assert limited.json()["error"]["code"] == "rate_limited"
    poor, poor_id = await traced.key(budget_usd="0.000001")
    budget = await traced.chat(poor, "fake-small")
    assert budget.json()["error"]["code"] == "budget_exceeded"
    after = await traced.scrape()

    def grew(name: str, **labels: str) -> float:
        at = (name, frozenset(labels.items()))
        return after.get(at, 0.0) - before.get(at, 0.0)

    with traced.engine.connect() as conn:
        count, cost = conn.execute(
            select(func.count(), func.sum(LedgerEntry.cost_micros)).where(
                col(LedgerEntry.key_id).in_([key_id, poor_id])
            )
        ).one()
    assert count == 2
    assert grew("runcap_calls_total", provider="fake", model="fake-small", status="ok") == 2
    assert grew("runcap_cost_microdollars_total", provider="fake", model="fake-small") == cost
    assert grew("runcap_attempts_total", provider="fake", model="fake-large", outcome="error") == 1
    assert grew("runcap_attempts_total", provider="fake", model="fake-small", outcome="ok") == 2
    assert grew("runcap_refusals_total", reason="budget") == 1
    assert grew("runcap_refusals_total", reason="rate_limited") == 1
    assert grew("runcap_refusals_total", reason="run_closed") == 0
    assert grew("runcap_added_latency_seconds_count", stream="false") == 2
    assert grew("runcap_provider_latency_seconds_count", provider="fake", model="fake-small") == 2
    assert ("runcap_open_runs", frozenset()) in after


async def test_metrics_ask_for_the_token_when_set_and_stay_out_of_the_schema(
    traced: Traced,
) -> None:
    """With RUNCAP_METRICS_TOKEN set /metrics wants it; /metrics is not in the OpenAPI schema."""
    async with httpx.AsyncClient(base_url=traced.base_url) as http:
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert (await http.get("/metrics", headers=SCRAPE)).status_code == 200
        schema = (await http.get("/openapi.json")).json()
    assert "/metrics" not in schema["paths"]
