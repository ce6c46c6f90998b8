"""The processes' OpenTelemetry setup, each case in a fresh interpreter (a global provider, once
installed, cannot be taken back): nothing without an endpoint, real OTLP/HTTP export with one."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.polling import eventually
from tests.serving import serving

PROBE = """
import json, sys
from opentelemetry import trace
from telemetry import setup
configured = setup.configure("runcap-probe")
with trace.get_tracer("probe").start_as_current_span("probe span"):
    pass
from telemetry.genai import _duration
_duration.record(0.5, {"gen_ai.operation.name": "chat"})
interceptors = [type(i).__name__ for i in setup.temporal_interceptors()]
sdk_loaded = any(name.startswith("opentelemetry.sdk") for name in sys.modules)
setup.shutdown()
print(json.dumps([configured, interceptors, sdk_loaded]))
"""


async def probe(**env: str) -> list[Any]:
    """Run ``PROBE`` in a fresh interpreter with ``env`` (and no OTEL_* of ours)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PROBE,
        env={**base, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    result: list[Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


@pytest.fixture
async def sink() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """An OTLP/HTTP receiver on 127.0.0.1 that counts the requests per path."""
    received: dict[str, int] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        received[scope["path"]] = received.get(scope["path"], 0) + 1
        headers = [(b"content-type", b"application/x-protobuf")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async with serving(app) as base:
        yield base, received


async def test_without_an_endpoint_nothing_is_installed() -> None:
    """No OTEL_EXPORTER_OTLP_ENDPOINT: no provider, no interceptor, the SDK never imported."""
    assert await probe() == [False, [], False]


async def test_with_an_endpoint_spans_and_metrics_go_out_over_otlp_http(
    sink: tuple[str, dict[str, int]],
) -> None:
    """With an endpoint the SDK exports spans and metrics there, and Temporal's tracing
    interceptor is on."""
    base, received = sink
    configured, interceptors, sdk_loaded = await probe(OTEL_EXPORTER_OTLP_ENDPOINT=base)
    assert configured and sdk_loaded
    assert interceptors == ["TracingInterceptor"]
    assert await eventually(lambda: received.get("/v1/traces", 0) >= 1)
    assert received.get("/v1/metrics", 0) >= 1
