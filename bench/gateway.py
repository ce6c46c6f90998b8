"""What the api adds over calling the fake provider directly, and its throughput.

The api is ``python -m api`` (one process), the worker ``python -m worker``, both talking to the
dev server; the load comes from this process over loopback, non-stream and stream.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

import httpx

from bench.harness import HEADER, Stack, create_key, row, timed

BODY = {
    "model": "fake-small",
    "messages": [{"role": "user", "content": "fix the bug"}],
    "max_tokens": 64,
}
CALLS = {1: 300, 16: 800, 64: 1280}
THROUGHPUT_CALLS = 2000


async def run(stack: Stack) -> None:
    assert stack.api_url is not None
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        key = await create_key(http, stack)
        headers = {"Authorization": f"Bearer {key}"}
        api = f"{stack.api_url}/v1/chat/completions"
        fake = f"{stack.fake_url}/v1/chat/completions"

        def post(
            url: str, extra: dict[str, object], hdrs: dict[str, str]
        ) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                (await http.post(url, json={**BODY, **extra}, headers=hdrs)).raise_for_status()

            return call

        def first_chunk(url: str, hdrs: dict[str, str]) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
                async with http.stream("POST", url, json=body, headers=hdrs) as response:
                    response.raise_for_status()
                    async for _ in response.aiter_bytes():
                        break  # time to first chunk; the rest drains on close

            return call

        await timed(post(api, {}, headers), concurrency=8, total=100)  # warm-up
        await timed(post(fake, {}, {}), concurrency=8, total=100)
        print("\n### A call through the api vs. a direct call to the fake (ms)\n")
        print(HEADER)
        for concurrency, total in CALLS.items():
            base, _ = await timed(post(fake, {}, {}), concurrency=concurrency, total=total)
            via, _ = await timed(post(api, {}, headers), concurrency=concurrency, total=total)
            print(row(f"non-stream, conc {concurrency}", base, via))
        for concurrency, total in CALLS.items():
            base, _ = await timed(first_chunk(fake, {}), concurrency=concurrency, total=total)
            via, _ = await timed(first_chunk(api, headers), concurrency=concurrency, total=total)
            print(row(f"stream TTFC, conc {concurrency}", base, via))
        tasks = itertools.cycle(range(64))

        async def per_task() -> None:
            tagged = {**headers, "x-runcap-tags": f"task:bench-{next(tasks)}"}
            (await http.post(api, json=BODY, headers=tagged)).raise_for_status()

        await _throughput(
            [
                ("fake provider, direct", post(fake, {}, {})),
                ("runcap api, one run", post(api, {}, headers)),
                ("runcap api, 64 task runs", per_task),
            ]
        )


async def _throughput(cases: list[tuple[str, Callable[[], Awaitable[None]]]]) -> None:
    print("\n### Throughput at concurrency 64 (api: 1 process, worker: 1 process)\n")
    print("| target | calls | seconds | calls/s |\n|---|---|---|---|")
    for label, call in cases:
        _, took = await timed(call, concurrency=64, total=THROUGHPUT_CALLS)
        print(f"| {label} | {THROUGHPUT_CALLS} | {took:.2f} | {THROUGHPUT_CALLS / took:.0f} |")
