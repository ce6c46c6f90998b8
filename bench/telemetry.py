"""What tracing costs a call: the api with no OTLP endpoint (the API's no-op, no interceptor)
against the api and worker exporting every span and metric over OTLP/HTTP to a local sink.

Each case gets its own stack (dev server, fake, worker, api), so the worker's interceptor is
measured too; the load is the gateway benchmark's non-stream call. Besides latency it prints the
CPU time the api and the worker spent per call, which a busy machine disturbs far less.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack
from pathlib import Path

import httpx

from bench.cpu import tree_seconds
from bench.gateway import BODY
from bench.harness import create_key, free_port, percentiles, python_child, stack, timed

CALLS = {1: 300, 16: 800}


async def run(data_dir: str) -> None:
    print("\n### Tracing off vs. on, non-stream calls through the api (ms)\n")
    print("| case | p50 | p95 | p99 | api CPU/call | worker CPU/call |\n|---|---|---|---|---|---|")
    await _case("off", data_dir, exporting=False)
    await _case("on (OTLP/HTTP to a local sink)", data_dir, exporting=True)


async def _case(label: str, data_dir: str, *, exporting: bool) -> None:
    async with AsyncExitStack() as exits:
        env: dict[str, str] = {}
        sink = ""
        if exporting:
            port = free_port()
            sink = f"http://127.0.0.1:{port}"
            log = Path(data_dir) / "otlp-sink.log"
            args = ("--port", str(port))
            await exits.enter_async_context(
                python_child("bench.otlp_sink", dict(os.environ), port, log, *args)
            )
            env = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink, "OTEL_METRIC_EXPORT_INTERVAL": "5000"}
        running = await exits.enter_async_context(
            stack(with_api=True, data_dir=data_dir, extra_env=env)
        )
        assert running.api_url is not None
        http = await exits.enter_async_context(httpx.AsyncClient(timeout=120))
        key = await create_key(http, running)
        url = f"{running.api_url}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {key}"}

        async def call() -> None:
            (await http.post(url, json=BODY, headers=headers)).raise_for_status()

        await timed(call, concurrency=8, total=100)  # warm-up
        for concurrency, total in CALLS.items():
            before = {name: tree_seconds(pid) for name, pid in running.pids.items()}
            latencies, _ = await timed(call, concurrency=concurrency, total=total)
            cpu = [
                (tree_seconds(running.pids[name]) - before[name]) / total * 1000
                for name in ("api", "worker")
            ]
            cells = " | ".join(f"{v:.1f}" for v in (*percentiles(latencies), *cpu))
            print(f"| tracing {label}, conc {concurrency} | {cells} |")
        if sink:
            await asyncio.sleep(6)  # one more metric interval and span batch
            got = (await http.get(sink)).json()
            batches, size = got.get("/v1/traces", 0), got.get("/v1/traces bytes", 0)
            print(f"| (the sink received {batches} span batches, {size} bytes) | | | | | |")
