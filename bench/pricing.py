"""``python -m bench pricing``: what pricing tiers, tools and media cost a call (no stack).

Three tables: the long-context calls issue 15 found under-billed, billed before (a flat base
price, as runcap read genai-prices' tiers until then) and now; the reservation of a call
before and now, at two input bounds; and the time the api spends per call reading a request
for tools and media (``api.request_costs.inspect``) next to parsing it (``api.body.loads``),
and decoding a reservation request whose targets carry tiers and fees. Times are the median
of rounds, so a machine busy with something else smears both sides alike.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from api.body import loads
from api.request_costs import inspect, priced
from bench.report import table
from providers.pricing import PriceBook
from workflows.budget import cost_micros, reservation_micros
from workflows.contracts import (
    Price,
    Target,
    Usage,
)
from workflows.converter import DATA_CONVERTER
from workflows.lending_contracts import CallNeed, LendRequest, Report
from workflows.money import micros_to_usd

ROUNDS = 7
MODELS = ("claude-sonnet-4-5", "gemini-2.5-pro", "claude-opus-4-8", "gpt-5.5")


def _flat(price: Price) -> Price:
    """The price as runcap held it before tiers: base rates, no one-hour rate, no fees."""
    return Price(price.input, price.output, price.cached_input, price.cache_write)


def _median_ms(work: Callable[[], Any], number: int) -> float:
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(number):
            work()
        rounds.append((time.perf_counter() - start) / number * 1000)
    return statistics.median(rounds)


def _conversation(turns: int) -> dict[str, Any]:
    """A Claude-Code-like body: text turns, tool calls and their results."""
    messages: list[dict[str, Any]] = []
    for n in range(turns):
        if n % 2:
            call = {"type": "tool_use", "id": f"t{n}", "name": "Read", "input": {"path": "a.py"}}
            messages.append(
                {"role": "assistant", "content": [{"type": "text", "text": "x" * 900}, call]}
            )
        else:
            result = {"type": "tool_result", "tool_use_id": f"t{n}", "content": "y" * 1000}
            messages.append({"role": "user", "content": [result]})
    return {"model": "claude-sonnet-4-5", "max_tokens": 32_000, "messages": messages}


async def run() -> None:
    book = PriceBook()
    long_call = Usage(input_tokens=300_000, output_tokens=2_000)
    rows = [
        [
            m,
            micros_to_usd(cost_micros(_flat(book.price_of(m)), long_call)),
            micros_to_usd(cost_micros(book.price_of(m), long_call)),
        ]
        for m in MODELS[:2]
    ]
    print("\n### 300K input + 2K output tokens, billed\n")
    print(table(["model", "before (base tier)", "now"], rows))
    extras = inspect(_conversation(2), "anthropic")
    rows = []
    for model in MODELS:
        now = priced([Target("p", model, "anthropic", book.price_of(model))], extras, "anthropic")
        before = [Target("p", model, "anthropic", _flat(book.price_of(model)))]
        for bound in (50_000, 300_000):
            rows.append(
                [
                    model,
                    f"{bound:,}",
                    micros_to_usd(reservation_micros(before, bound, 32_000)),
                    micros_to_usd(reservation_micros(now, bound, 32_000)),
                ]
            )
    print("\n### Reservation of a call, max_tokens 32,000 (no one-hour caching asked)\n")
    print(table(["model", "input bound", "before", "now"], rows))
    body = _conversation(3_000)
    raw = json.dumps(body).encode()
    sonnet = book.price_of("claude-sonnet-4-5")
    timings = [
        [
            f"inspect a {len(raw) // 1000:,} KB conversation",
            f"{_median_ms(lambda: inspect(body, 'anthropic'), 20):.2f} ms",
        ],
        ["parse it (api.body.loads), for scale", f"{_median_ms(lambda: loads(raw), 5):.2f} ms"],
    ]
    for label, price in (("flat prices", _flat(sonnet)), ("tiers and fees", sonnet)):
        need = CallNeed("c", [Target("p", "m", "anthropic", price)] * 2, 1000, 100)
        request = LendRequest("k", Report(seq=1), needs=[need])
        payloads = await DATA_CONVERTER.encode([request])
        started = time.perf_counter()
        for _ in range(1000):
            await DATA_CONVERTER.decode(payloads, [LendRequest])
        took = (time.perf_counter() - started) / 1000 * 1e6
        timings.append(
            [
                f"decode a call's need for money, 2 targets, {label}",
                f"{took:.0f} us ({len(payloads[0].data)} bytes)",
            ]
        )
    print("\n### Time per call\n")
    print(table(["step", "median"], timings))


if __name__ == "__main__":
    asyncio.run(run())
